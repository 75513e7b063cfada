"""The work of a build: read the changed files in parallel, write them in batches.

`build.build` decides whether there is any (see build.py for the design); this is the rest:
open or upgrade the index, plan which files to read, keep the workers fed and the writer busy,
and leave a consistent database however the run ends.
"""

from __future__ import annotations

import json
import queue
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import asdict

from sqlalchemy import and_, func, insert, select, true, update
from sqlalchemy.exc import DBAPIError, OperationalError

from . import __version__, summaries
from .build import (
    BuildInterrupted,
    BuildOptions,
    BuildSummary,
    Progress,
    in_shard,
    now,
    own_files,
    owned,
    pydicom_version,
)
from .crawl import Candidate, Skipped
from .direct import is_url
from .errors import IbashError
from .outcome import ExtractOptions, FileResult
from .schema import builds, files
from .spool import Spools, spools_for
from .store import (
    Writer,
    build_lock,
    defer_element_indexes,
    load_file_states,
    open_index,
    refresh_statistics,
    restore_element_indexes,
)

BATCH_FILES = 200
BATCH_ELEMENTS = 50_000
BATCH_SECONDS = 2.0
QUEUED_BATCHES = 2  # batches waiting for the writer thread
MB = 1024 * 1024


def load(
    roots: list[str],
    db: str,
    options: BuildOptions,
    items: Sequence[Candidate | Skipped],
    progress: Progress | None,
    started: float,
) -> BuildSummary:
    """Index the crawled `items` of the (resolved) `roots` into `db`: what `build.build` does when there is work."""
    engine = open_index(db)
    try:
        with build_lock(db, scope=json.dumps([roots, options.shard])), _signals_as_exceptions():
            return _build(engine, roots, items, db, options, progress, started)
    except OperationalError as exc:  # the database, not the files: disk full, I/O error, locked
        raise IbashError(_database_problem(db, exc)) from None
    finally:
        engine.dispose()


def _database_problem(db: str, exc: DBAPIError) -> str:
    detail = str(exc.orig).strip() or type(exc.orig).__name__
    hint = ""
    if "full" in detail or "I/O error" in detail:
        hint = " (is its disk full, or a file size limit reached?)"
    return (
        f"cannot write to the database {db}: {detail}{hint}; everything committed before is kept: "
        "fix this and run the same command again to finish"
    )


def _build(
    engine,
    roots: list[str],
    items: Sequence[Candidate | Skipped],
    db: str,
    options: BuildOptions,
    progress: Progress | None,
    started: float,
) -> BuildSummary:
    summary = BuildSummary()
    shard = json.dumps(list(options.shard) if options.shard else None)
    with engine.begin() as conn:
        ours = true()
        if is_url(db):  # PostgreSQL: other builders of other roots may be running right now
            ours = and_(builds.c.roots == json.dumps(roots), builds.c.options.contains(f'"shard": {shard}'))
        last = select(builds.c.status).where(ours).order_by(builds.c.id.desc()).limit(1)
        unclean = conn.execute(last).scalar() not in (None, "complete")
        # We hold the lock these builds held: one still "running" was killed before it could say so.
        conn.execute(update(builds).where(ours, builds.c.status == "running").values(status="killed"))
        build_id = conn.execute(
            insert(builds)
            .values(
                started_at=now(),
                status="running",
                tool_version=__version__,
                pydicom_version=pydicom_version(),
                roots=json.dumps(roots),
                options=json.dumps(asdict(options)),
            )
            .returning(builds.c.id)
        ).scalar_one()
    summary.build_id = build_id
    restore_element_indexes(engine)  # in case a build killed after deferring them
    defer_element_indexes(engine)
    stack = ExitStack()
    spools = None
    if options.workers > 0:  # workers leave element rows in spools; read in process, rows stay in the results
        spools = stack.enter_context(spools_for(None if is_url(db) else db, options.workers))
    with engine.connect() as conn:
        writer = Writer(engine, build_id, load_file_states(conn), spools)
    stack.callback(writer.close)
    status = "failed"
    results: Iterator[FileResult] | None = None
    try:
        mine = [p for p, state in writer.states.items() if owned(p, state.root, roots, options.shard)]
        if options.full:  # forget what these roots (and this shard) hold; other roots are left alone
            writer.remove(mine)
            mine = []
        to_read, direct, seen = _plan(items, options, writer, summary, own_files(db))
        summary.removed = writer.remove(p for p in mine if p not in seen)
        extract_options = ExtractOptions(
            max_blob=options.max_blob,
            site_from=options.site_from,
            max_inflated=options.max_memory_mb * MB // 4,  # pydicom holds the inflated data set, and more
        )
        results = _reader(engine, to_read, options, extract_options, spools)
        _write_all(writer, direct, results, summary, len(to_read), progress)
        restore_element_indexes(engine)
        if summary.indexed or summary.removed:
            refresh_statistics(engine)
        writer.refresh_hierarchy(everything=unclean or options.full)
        status = "complete"
    except (KeyboardInterrupt, _Terminated) as exc:
        _ignore_signals()  # a second Ctrl-C must not break off the tidying up below
        status = "interrupted"
        code = 143 if isinstance(exc, _Terminated) else 130
        what = "stopped by SIGTERM" if code == 143 else "interrupted (Ctrl-C)"
        recorded = _written(engine, build_id, summary)
        raise BuildInterrupted(
            f"build {what}: the {recorded} files written so far are kept and the batch being written was "
            "rolled back; run the same command again to finish (files already written are not read again)",
            code,
        ) from None
    finally:
        if results is not None:
            with suppress(Exception):
                results.close()  # type: ignore[attr-defined]  # stops the workers now
        stack.close()  # the writer's connection, then the spools
        summary.elements = writer.elements_written
        summary.seconds = round(time.monotonic() - started, 3)
        # Best effort: with the disk full this fails too, and the next build sees a run that did not complete.
        with suppress(DBAPIError), engine.begin() as conn:
            conn.execute(
                update(builds)
                .where(builds.c.id == build_id)
                .values(status=status, finished_at=now(), **summary.stored())
            )
    return summary


def _reader(
    engine, to_read: list[Candidate], options: BuildOptions, extract_options: ExtractOptions, spools: Spools | None
) -> Iterator[FileResult]:
    """Results for the files to read: from worker processes, or read here with --workers 0."""
    if not to_read:
        return iter(())  # a rebuild with nothing to read does not even import pydicom
    from .pool import Limits, Pool, read_serial
    from .tally import Profile

    if options.workers <= 0:
        return read_serial(to_read, extract_options)
    with engine.connect() as conn:
        profile = Profile(summaries.profile_rows(conn))
    pool = Pool(
        min(options.workers, len(to_read)),
        extract_options,
        Limits(options.timeout, options.max_memory_mb),
        spools=spools,
        profile=profile,
    )
    return pool.run(to_read)


def _written(engine, build_id: int, summary: BuildSummary) -> int:
    """Files this build has committed: asked of the database, as the signal may have come between commit and count."""
    try:
        with engine.connect() as conn:
            return conn.execute(
                select(func.count()).select_from(files).where(files.c.build_id == build_id)
            ).scalar_one()
    except DBAPIError:
        return summary.indexed + summary.not_dicom + summary.errors + summary.skipped


def _plan(
    items: Sequence[Candidate | Skipped],
    options: BuildOptions,
    writer: Writer,
    summary: BuildSummary,
    own: Callable[[bytes], bool],
) -> tuple[list[Candidate], list[FileResult], set[bytes]]:
    """Split what the crawl found into files to read, entries to record as they are, and unchanged files."""
    to_read: list[Candidate] = []
    direct: list[FileResult] = []
    seen: set[bytes] = set()
    for item in items:
        if not in_shard(item.path, item.root, options.shard) or own(item.path):
            continue
        seen.add(item.path)
        summary.files_seen += 1
        if isinstance(item, Skipped):
            direct.append(FileResult(item.path, item.root, item.status, reason=item.reason))
            continue
        state = writer.states.get(item.path)
        if state is not None and item.unchanged(state.size, state.mtime_ns, state.status):
            summary.unchanged += 1
        else:
            to_read.append(item)
    return to_read, direct, seen


def _write_all(
    writer: Writer,
    direct: list[FileResult],
    results: Iterator[FileResult],
    summary: BuildSummary,
    total: int,
    progress: Progress | None,
) -> None:
    if direct:
        writer.write(direct)
    for r in direct:
        summary.count(r)
    background = _WriterThread(writer, summary)
    try:
        batch: list[FileResult] = []
        batch_elements = 0
        last = time.monotonic()
        for done, result in enumerate(results, 1):
            batch.append(result)
            batch_elements += result.element_count
            full = len(batch) >= BATCH_FILES or batch_elements >= BATCH_ELEMENTS
            if (full or time.monotonic() - last > BATCH_SECONDS) and _ends_group(result):
                background.put(batch)
                batch, batch_elements, last = [], 0, time.monotonic()
            if progress:
                progress(done, total)
        if batch:
            background.put(batch)
    except BaseException:
        background.abandon()
        raise
    background.close()


def _ends_group(result: FileResult) -> bool:
    """Whether a batch may end after this result: never inside a worker's group, or its tally cannot be used."""
    return result.tally is None or result.path_bytes == result.tally.last


class _WriterThread:
    """Writes batches on a thread of its own, so that the main thread keeps draining the workers.

    Without it the workers stall on full pipes while a batch is written. sqlite3 and psycopg
    release the GIL while the database works, so reading and writing overlap. At most two
    batches wait (memory stays bounded); an error in the writer is raised in the main thread.
    """

    def __init__(self, writer: Writer, summary: BuildSummary) -> None:
        self.writer = writer
        self.summary = summary
        self.queue: queue.Queue[list[FileResult] | None] = queue.Queue(maxsize=QUEUED_BATCHES)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="ibash-writer", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while (batch := self.queue.get()) is not None:
            if self.error is not None:
                continue  # after an error, take what is queued without writing it
            try:
                self.writer.write(batch)
                for r in batch:
                    self.summary.count(r)
            except BaseException as exc:  # handed to the main thread
                self.error = exc

    def put(self, batch: list[FileResult]) -> None:
        self._raise()
        self.queue.put(batch)

    def close(self) -> None:
        """Wait until every batch is written."""
        self.queue.put(None)
        self.thread.join()
        self._raise()

    def abandon(self) -> None:
        """Interrupted: let the batch being written finish (or roll back), drop the ones waiting."""
        with suppress(queue.Empty):
            while True:
                self.queue.get_nowait()
        self.queue.put(None)
        self.thread.join()

    def _raise(self) -> None:
        if self.error is not None:
            raise self.error


class _Terminated(Exception):
    """SIGTERM, raised in the main thread so the open batch unwinds like Ctrl-C."""


def _ignore_signals() -> None:
    with suppress(ValueError):  # not the main thread
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)


@contextmanager
def _signals_as_exceptions() -> Iterator[None]:
    def on_term(signum: int, frame: object) -> None:
        raise _Terminated()

    try:
        previous_term = signal.signal(signal.SIGTERM, on_term)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    previous_int = signal.getsignal(signal.SIGINT)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous_term)
        signal.signal(signal.SIGINT, previous_int)

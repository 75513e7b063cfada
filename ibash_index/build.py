"""`build`: crawl the roots, read changed files in parallel, write them in batches.

Workers parse, the main process writes: SQLite allows one writer, and one writer keeps each
batch a single transaction, so a build killed at any moment leaves whole instances only and
the next run picks up where it stopped (unchanged files are skipped by size and mtime; files
that ended in an error are read again). A run after one that did not complete also checks
every study and series, since the killed run could not tidy them up.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import DBAPIError, OperationalError

from . import __version__, summaries
from .crawl import Candidate, Skipped, crawl, resolve_roots
from .errors import IbashError
from .outcome import ExtractOptions, FileResult
from .schema import builds, files
from .spool import Spools, spools_for
from .store import (
    Writer,
    build_lock,
    defer_element_indexes,
    is_url,
    load_file_states,
    open_index,
    restore_element_indexes,
)

BATCH_FILES = 200
BATCH_ELEMENTS = 50_000
BATCH_SECONDS = 2.0
QUEUED_BATCHES = 2  # batches waiting for the writer thread
MB = 1024 * 1024

# The first word(s) of every reason and warning the reader writes: what the summary groups by.
# Anything else (pydicom's own warnings) is counted as "other" and never echoed, since it may quote values.
REASON_GROUPS = frozenset(
    {
        "truncated",
        "stopped",
        "too large",
        "too deep",
        "unreadable DICOM",
        "not DICOM",
        "cannot read",
        "cannot spool",
        "cannot stat",
        "cannot list folder",
        "vanished",
        "timed out",
        "worker killed",
        "out of memory",
        "internal error",
        "not a regular file",
        "symlink loop",
        "dangling symlink",
        "symlink to outside the roots",
        "symlink to a file or folder inside the roots",
        "padding",
        "duplicate",
        "undecodable",
        "pydicom",
    }
)


def default_workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


@dataclass(frozen=True)
class BuildOptions:
    """Everything `ibash-index build` can be told."""

    workers: int = field(default_factory=default_workers)
    full: bool = False
    site_from: str = "InstitutionName"
    max_blob: int = 256
    follow_symlinks: bool = False
    timeout: float = 120.0
    max_memory_mb: int = 2048
    shard: tuple[int, int] | None = None  # (K, N): only files whose relative path hashes to K of N


def in_shard(path: bytes, root: str, shard: tuple[int, int] | None) -> bool:
    """Whether a file belongs to shard K of N: a stable hash of its path relative to its root.

    Relative, so machines that mount the same data at different places agree on the split.
    """
    if shard is None:
        return True
    relative = os.path.relpath(path, os.fsencode(root))
    digest = hashlib.blake2b(relative, digest_size=8).digest()
    return int.from_bytes(digest, "big") % shard[1] == shard[0] - 1


@dataclass
class BuildSummary:
    """The counts of one build, as stored in the `builds` table (`groups` is not stored)."""

    build_id: int = 0
    files_seen: int = 0
    indexed: int = 0
    unchanged: int = 0
    not_dicom: int = 0
    errors: int = 0
    skipped: int = 0
    removed: int = 0
    elements: int = 0
    seconds: float = 0.0
    groups: Counter[tuple[str, str]] = field(default_factory=Counter)  # (outcome, reason group) -> files

    def count(self, result: FileResult) -> None:
        if result.status == "indexed":
            self.indexed += 1
            if result.warning:
                for group in sorted({reason_group(w) for w in result.warning.split("; ")}):
                    self.groups["warnings", group] += 1
            return
        if result.status == "not_dicom":
            self.not_dicom += 1
        elif result.status == "error":
            self.errors += 1
        else:
            self.skipped += 1
        self.groups[result.status, reason_group(result.reason or "")] += 1

    def stored(self) -> dict[str, Any]:
        """The columns of the `builds` row."""
        return {k: v for k, v in asdict(self).items() if k not in ("build_id", "groups")}

    def group_lines(self) -> list[str]:
        """One line per outcome other than indexed, e.g. 'errors: 3 truncated, 1 too deep'."""
        names = {"error": "errors", "not_dicom": "not DICOM", "skipped": "skipped", "warnings": "indexed with warnings"}
        lines = []
        for status, title in names.items():
            counts = sorted(((n, g) for (s, g), n in self.groups.items() if s == status), key=lambda x: (-x[0], x[1]))
            if counts:
                lines.append(f"{title}: " + ", ".join(f"{n} {g}" for n, g in counts))
        return lines


def reason_group(text: str) -> str:
    """The category a reason or warning starts with ('truncated: the file ends...' -> 'truncated')."""
    head, _, detail = text.partition(":")
    head = head.split(" (", 1)[0].strip()
    if head == "not DICOM":  # every not_dicom reason says so: group by what was seen instead
        detail = detail.strip()
        for start, group in (
            ("empty", "empty file"),
            ("no DICM", "no DICM marker or element"),
            ("no data", "no data elements"),
        ):
            if detail.startswith(start):
                return group
        return "rejected by pydicom"
    return head if head in REASON_GROUPS else "other"


class BuildInterrupted(IbashError):
    """Ctrl-C or SIGTERM: committed batches are kept, the open one is rolled back."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


Progress = Callable[[int, int], None]


def build(
    roots: Sequence[str | os.PathLike[str]],
    db: str,
    options: BuildOptions | None = None,
    progress: Progress | None = None,
) -> BuildSummary:
    """Index every file under `roots` into `db`; return the counts.

    `progress(done, total)` is called as files are read (total = files to read).
    """
    options = options or BuildOptions()
    started = time.monotonic()
    resolved = resolve_roots(roots)
    engine = open_index(db)
    try:
        with build_lock(db, scope=json.dumps([resolved, options.shard])), _signals_as_exceptions():
            return _build(engine, resolved, db, options, progress, started)
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
    engine, roots: list[str], db: str, options: BuildOptions, progress: Progress | None, started: float
) -> BuildSummary:
    summary = BuildSummary()
    shard = json.dumps(list(options.shard) if options.shard else None)
    with engine.begin() as conn:
        last = select(builds.c.status).order_by(builds.c.id.desc()).limit(1)
        if is_url(db):  # PostgreSQL: other builders of other roots may be running right now
            last = last.where(builds.c.roots == json.dumps(roots), builds.c.options.contains(f'"shard": {shard}'))
        unclean = conn.execute(last).scalar() not in (None, "complete")
        build_id = conn.execute(
            insert(builds)
            .values(
                started_at=_now(),
                status="running",
                tool_version=__version__,
                pydicom_version=_pydicom_version(),
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
        mine = [p for p, state in writer.states.items() if _owned(p, state.root, roots, options.shard)]
        if options.full:  # forget what these roots (and this shard) hold; other roots are left alone
            writer.remove(mine)
            mine = []
        to_read, direct, seen = _plan(roots, options, writer, summary, _own_files(db))
        summary.removed = writer.remove(p for p in mine if p not in seen)
        extract_options = ExtractOptions(
            max_blob=options.max_blob,
            site_from=options.site_from,
            max_inflated=options.max_memory_mb * MB // 4,  # pydicom holds the inflated data set, and more
        )
        results = _reader(engine, to_read, options, extract_options, spools)
        _write_all(writer, direct, results, summary, len(to_read), progress)
        restore_element_indexes(engine)
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
                .values(status=status, finished_at=_now(), **summary.stored())
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


def _own_files(db: str) -> Callable[[bytes], bool]:
    """Whether a path is the index itself (its -wal, -shm, its spools): a database kept inside a root is not data."""
    if is_url(db):
        return lambda path: False
    base = os.fsencode(os.path.realpath(db))
    folder, name = os.path.split(base)
    spools = os.path.join(folder, b"." + name + b".spool-")
    return lambda path: (
        (path.startswith(base) and path[len(base) :] in (b"", b"-wal", b"-shm", b"-journal"))
        or (path.startswith(spools))
    )


def _plan(
    roots: list[str], options: BuildOptions, writer: Writer, summary: BuildSummary, own: Callable[[bytes], bool]
) -> tuple[list[Candidate], list[FileResult], set[bytes]]:
    """Split what the crawl finds into files to read, entries to record as they are, and unchanged files.

    A file is unchanged when its size and mtime match and it was indexed or found not DICOM;
    errors are read again, as their cause (a limit, a permission, a worker killed) may be gone.
    """
    to_read: list[Candidate] = []
    direct: list[FileResult] = []
    seen: set[bytes] = set()
    for item in crawl(roots, options.follow_symlinks):
        if not in_shard(item.path, item.root, options.shard) or own(item.path):
            continue
        seen.add(item.path)
        summary.files_seen += 1
        if isinstance(item, Skipped):
            direct.append(FileResult(item.path, item.root, item.status, reason=item.reason))
            continue
        state = writer.states.get(item.path)
        if (
            state is not None
            and state.size == item.size
            and state.mtime_ns == item.mtime_ns
            and state.status in ("indexed", "not_dicom")
        ):
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


def _owned(path: bytes, root: str, roots: list[str], shard: tuple[int, int] | None) -> bool:
    """Whether this build answers for a file already in the database: under its roots, in its shard."""
    return any(_under(path, r) for r in roots) and in_shard(path, root, shard)


def _under(path: bytes, root: str) -> bool:
    broot = os.fsencode(root).rstrip(b"/") + b"/"
    return path.startswith(broot) or path == broot[:-1]


def _pydicom_version() -> str:
    from importlib.metadata import version

    return version("pydicom")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


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

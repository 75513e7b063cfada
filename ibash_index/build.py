"""`build`: crawl the roots, read changed files in parallel, write them in batches.

Workers parse, the main process writes: SQLite allows one writer, and one writer keeps each
batch a single transaction, so a build killed at any moment leaves whole instances only and
the next run picks up where it stopped (unchanged files are skipped by size and mtime).
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone

import pydicom
from sqlalchemy import delete, insert, update

from . import __version__
from .crawl import Candidate, Skipped, crawl, resolve_roots
from .errors import IbashError
from .extract import ExtractOptions, FileResult
from .pool import Limits, Pool, default_workers, read_serial
from .schema import builds, elements, files, instances, series, studies
from .store import Writer, build_lock, load_file_states, open_index

BATCH_FILES = 200
BATCH_ELEMENTS = 50_000
BATCH_SECONDS = 2.0


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


@dataclass
class BuildSummary:
    """The counts of one build, as stored in the `builds` table."""

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

    def count(self, result: FileResult) -> None:
        if result.status == "indexed":
            self.indexed += 1
        elif result.status == "not_dicom":
            self.not_dicom += 1
        elif result.status == "error":
            self.errors += 1
        else:
            self.skipped += 1


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
        with build_lock(db), _signals_as_exceptions():
            return _build(engine, resolved, db, options, progress, started)
    finally:
        engine.dispose()


def _build(
    engine, roots: list[str], db: str, options: BuildOptions, progress: Progress | None, started: float
) -> BuildSummary:
    summary = BuildSummary()
    with engine.begin() as conn:
        if options.full:
            for table in (elements, instances, series, studies, files):
                conn.execute(delete(table))
        build_id = conn.execute(
            insert(builds)
            .values(
                started_at=_now(),
                status="running",
                tool_version=__version__,
                pydicom_version=pydicom.__version__,
                roots=json.dumps(roots),
                options=json.dumps(asdict(options)),
            )
            .returning(builds.c.id)
        ).scalar_one()
    summary.build_id = build_id
    with engine.connect() as conn:
        writer = Writer(engine, build_id, load_file_states(conn))
    status = "failed"
    try:
        to_read, direct, seen = _plan(roots, options, writer, summary)
        summary.removed = writer.remove(
            p for p in list(writer.states) if p not in seen and any(_under(p, r) for r in roots)
        )
        extract_options = ExtractOptions(max_blob=options.max_blob, site_from=options.site_from)
        if options.workers <= 0:
            results = read_serial(to_read, extract_options)
        else:
            pool = Pool(
                min(options.workers, max(1, len(to_read))),
                extract_options,
                Limits(options.timeout, options.max_memory_mb),
            )
            results = pool.run(to_read)
        _write_all(writer, direct, results, summary, len(to_read), progress)
        writer.refresh_hierarchy()
        status = "complete"
    except (KeyboardInterrupt, _Terminated) as exc:
        status = "interrupted"
        code = 143 if isinstance(exc, _Terminated) else 130
        what = "stopped by SIGTERM" if code == 143 else "interrupted"
        raise BuildInterrupted(
            f"build {what}: {summary.indexed} files committed, the open batch rolled back; "
            f"run the same command again to finish",
            code,
        ) from None
    finally:
        summary.elements = writer.elements_written
        summary.seconds = round(time.monotonic() - started, 3)
        with engine.begin() as conn:
            counts = {k: v for k, v in asdict(summary).items() if k != "build_id"}
            conn.execute(
                update(builds).where(builds.c.id == build_id).values(status=status, finished_at=_now(), **counts)
            )
    return summary


def _plan(
    roots: list[str], options: BuildOptions, writer: Writer, summary: BuildSummary
) -> tuple[list[Candidate], list[FileResult], set[bytes]]:
    """Split what the crawl finds into files to read, entries to record as they are, and unchanged files."""
    to_read: list[Candidate] = []
    direct: list[FileResult] = []
    seen: set[bytes] = set()
    for item in crawl(roots, options.follow_symlinks):
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
            and state.status != "skipped"
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
    for r in direct:
        summary.count(r)
    if direct:
        writer.write(direct)
    batch: list[FileResult] = []
    batch_elements = 0
    last = time.monotonic()
    for done, result in enumerate(results, 1):
        batch.append(result)
        batch_elements += len(result.rows)
        if len(batch) >= BATCH_FILES or batch_elements >= BATCH_ELEMENTS or time.monotonic() - last > BATCH_SECONDS:
            writer.write(batch)
            for r in batch:
                summary.count(r)
            batch, batch_elements, last = [], 0, time.monotonic()
        if progress:
            progress(done, total)
    if batch:
        writer.write(batch)
        for r in batch:
            summary.count(r)


def _under(path: bytes, root: str) -> bool:
    broot = os.fsencode(root).rstrip(b"/") + b"/"
    return path.startswith(broot) or path == broot[:-1]


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class _Terminated(Exception):
    """SIGTERM, raised in the main thread so the open batch unwinds like Ctrl-C."""


@contextmanager
def _signals_as_exceptions() -> Iterator[None]:
    def on_term(signum: int, frame: object) -> None:
        raise _Terminated()

    try:
        previous = signal.signal(signal.SIGTERM, on_term)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)

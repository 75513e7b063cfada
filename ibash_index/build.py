"""`build`: crawl the roots, read changed files in parallel, write them in batches.

Workers parse, the main process writes: SQLite allows one writer, and one writer keeps each
batch a single transaction, so a build killed at any moment leaves whole instances only and
the next run picks up where it stopped (unchanged files are skipped by size and mtime; files
that ended in an error are read again). A run after one that did not complete also checks
every study and series, since the killed run could not tidy them up.

This module is what a build is (its options, its counts, which files are its own) and its
entry point; `load.py` reads and writes. A rerun that finds nothing to do on a SQLite index is
answered by `rebuild.py` without importing either, so that it takes a blink, not a second.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from .crawl import crawl, resolve_roots
from .direct import as_path, is_url
from .errors import IbashError

if TYPE_CHECKING:
    from .outcome import FileResult

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

    def check(self) -> None:
        """Refuse values that would index every file wrongly, or not at all, before anything is read."""
        if self.workers < 0 or self.max_blob < 0 or self.max_memory_mb < 0 or not self.timeout > 0:
            raise IbashError("--workers, --max-blob and --max-memory cannot be negative; --timeout must be above 0")
        site = self.site_from
        if site.startswith("level:"):
            if not (site[6:].isascii() and site[6:].isdigit() and int(site[6:]) >= 1):
                raise IbashError(f"--site-from level:N takes a folder level of 1 or more (level:1); got {site!r}")
        elif site != "InstitutionName":
            import pydicom.datadict  # only here: the default needs no check, and reruns no pydicom

            if pydicom.datadict.tag_for_keyword(site) is None:
                raise IbashError(f"--site-from takes a DICOM keyword such as StationName, or level:N; got {site!r}")


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
    options.check()
    db = as_path(db)
    if not is_url(db) and os.path.isfile(db) and os.path.getsize(db) == 0:  # an empty file (touch) becomes
        with contextlib.suppress(OSError):  # the index: private, as a new one is
            os.chmod(db, 0o600)
    started = time.monotonic()
    resolved = resolve_roots(roots)
    try:
        items = list(crawl(resolved, options.follow_symlinks))
        if not options.full and not is_url(db) and os.path.isfile(db):
            from .rebuild import nothing_changed

            summary = nothing_changed(resolved, db, options, items, started)
            if summary is not None:
                return summary
    except KeyboardInterrupt:  # (SIGTERM ends the process here: it has nothing to tidy up)
        message = "build interrupted (Ctrl-C) while it listed the files; nothing was written"
        raise BuildInterrupted(message, 130) from None
    from .load import load

    return load(resolved, db, options, items, progress, started)


def own_files(db: str) -> Callable[[bytes], bool]:
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


def owned(path: bytes, root: str, roots: list[str], shard: tuple[int, int] | None) -> bool:
    """Whether this build answers for a file already in the database: under its roots, in its shard."""
    return any(_under(path, r) for r in roots) and in_shard(path, root, shard)


def _under(path: bytes, root: str) -> bool:
    broot = os.fsencode(root).rstrip(b"/") + b"/"
    return path.startswith(broot) or path == broot[:-1]


def pydicom_version() -> str:
    from importlib.metadata import version

    return version("pydicom")


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")

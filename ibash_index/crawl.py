"""Find the candidate files under the roots, without ever hanging on what a file system can hold.

Paths stay bytes from end to end (a name need not be valid UTF-8). Walking is iterative, so
deep trees cannot exhaust the stack; folders are remembered by (device, inode), so symlink
loops and bind mounts are entered once. Only regular files are candidates: FIFOs, sockets and
devices are recorded as skipped, never opened.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from .errors import IbashError


@dataclass(frozen=True, slots=True)
class Candidate:
    """A regular file to read, with the stat the incremental check compares."""

    path: bytes
    root: str
    size: int
    mtime_ns: int

    def unchanged(self, size: int | None, mtime_ns: int | None, status: str) -> bool:
        """Whether what an earlier build recorded of this file still holds, so it need not be read.

        Size and mtime must match, and the file must have been indexed or found not DICOM:
        errors are read again, as their cause (a limit, a permission, a worker killed) may be gone.
        """
        return size == self.size and mtime_ns == self.mtime_ns and status in ("indexed", "not_dicom")


@dataclass(frozen=True, slots=True)
class Skipped:
    """Something under a root that is not read, and why."""

    path: bytes
    root: str
    status: str  # skipped or error
    reason: str


def resolve_roots(roots: Sequence[str | os.PathLike[str]]) -> list[str]:
    """Absolute, normalised roots; a missing root is a user error."""
    resolved = []
    for root in roots:
        path = os.path.abspath(os.fspath(root))
        if not os.path.exists(path):
            raise IbashError(f"{os.fspath(root)!s}: no such file or folder")
        resolved.append(os.path.realpath(path))
    return resolved


def crawl(roots: Sequence[str], follow_symlinks: bool = False) -> Iterator[Candidate | Skipped]:
    """Yield every candidate file and every skipped entry under the (resolved) roots."""
    seen_dirs: set[tuple[int, int]] = set()
    seen_files: set[bytes] = set()
    broots = [os.fsencode(r) for r in roots]
    for root, broot in zip(roots, broots):
        try:
            st = os.stat(broot)
        except OSError as exc:
            yield Skipped(broot, root, "error", f"cannot stat: {exc.strerror or exc}")
            continue
        if not stat.S_ISDIR(st.st_mode):
            if not stat.S_ISREG(st.st_mode):
                yield Skipped(broot, root, "skipped", f"not a regular file ({file_kind(st.st_mode)})")
            elif broot not in seen_files:
                seen_files.add(broot)
                yield Candidate(broot, root, st.st_size, st.st_mtime_ns)
            continue
        stack = [broot]
        while stack:
            folder = stack.pop()
            try:
                st = os.stat(folder)
                key = (st.st_dev, st.st_ino)
                if key in seen_dirs:
                    continue
                seen_dirs.add(key)
                with os.scandir(folder) as it:
                    entries = sorted(it, key=lambda e: e.name)
            except OSError as exc:
                yield Skipped(folder, root, "error", f"cannot list folder: {exc.strerror or exc}")
                continue
            subfolders = []
            for entry in entries:
                item = _classify(entry, broots, follow_symlinks)
                if item is None:
                    subfolders.append(entry.path)
                elif isinstance(item, str):
                    yield Skipped(entry.path, root, "skipped" if not item.startswith("cannot") else "error", item)
                elif entry.path not in seen_files:
                    seen_files.add(entry.path)
                    yield Candidate(entry.path, root, item.st_size, item.st_mtime_ns)
            stack.extend(reversed(subfolders))


def _classify(entry: os.DirEntry[bytes], roots: list[bytes], follow_symlinks: bool) -> os.stat_result | str | None:
    """A stat for a regular file, None for a folder to enter, or the reason to skip it."""
    try:
        if entry.is_symlink():
            try:
                os.stat(entry.path)
            except OSError as exc:
                if exc.errno == errno.ELOOP:
                    return "symlink loop"
                if exc.errno in (errno.ENOENT, errno.ENOTDIR):
                    return "dangling symlink"
                raise
            target = os.path.realpath(entry.path)
            if any(_inside(target, r) for r in roots):
                return "symlink to a file or folder inside the roots (read under its own name)"
            if not follow_symlinks:
                return "symlink to outside the roots (use --follow-symlinks to read it)"
        st = entry.stat(follow_symlinks=True)
    except OSError as exc:
        return f"cannot stat: {exc.strerror or exc}"
    if stat.S_ISDIR(st.st_mode):
        return None
    if stat.S_ISREG(st.st_mode):
        return st
    return f"not a regular file ({file_kind(st.st_mode)})"


def _inside(path: bytes, root: bytes) -> bool:
    return path == root or path.startswith(root.rstrip(b"/") + b"/")


def file_kind(mode: int) -> str:
    """What a file that is not a regular file is, in words."""
    if stat.S_ISDIR(mode):
        return "folder"
    if stat.S_ISFIFO(mode):
        return "FIFO"
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISCHR(mode):
        return "character device"
    if stat.S_ISBLK(mode):
        return "block device"
    return "special file"

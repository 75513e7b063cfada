"""Files that may hold patient data are created readable by their owner only (mode 0600).

The database itself, reports written with `-o`, the comparison page: the umask alone (often
022) would let every user of the machine read them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO, Any


def open_private(path: str | Path, mode: str = "w", **kwargs: Any) -> IO[Any]:
    """open() for writing, creating a new file as 0600 (an existing file keeps the mode its owner gave it)."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if "a" in mode else os.O_TRUNC)
    fd = os.open(path, flags, 0o600)
    try:
        return open(fd, mode, **kwargs)  # the caller closes it
    except BaseException:
        os.close(fd)
        raise

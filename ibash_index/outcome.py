"""What reading one file gives back: the currency between readers, workers, spools and the writer.

Kept apart from `extract` so that what only stores or plans (the writer, a rebuild with nothing
to read) does not import pydicom.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .spool import Spooled
    from .tally import Tally


@dataclass(frozen=True)
class ExtractOptions:
    """What a worker needs to know besides the path."""

    max_blob: int = 256
    defer_size: int = 64 * 1024
    site_from: str = "InstitutionName"
    max_inflated: int = 512 * 1024 * 1024  # bytes a deflated data set may inflate to; 0 = no limit


@dataclass
class FileResult:
    """The outcome of reading one file; `rows` are element tuples in ROW_FIELDS order."""

    path_bytes: bytes
    root: str
    status: str  # indexed, not_dicom, error, skipped
    size: int | None = None
    mtime_ns: int | None = None
    reason: str | None = None
    warning: str | None = None
    header: dict[str, Any] = field(default_factory=dict)
    rows: list[tuple] = field(default_factory=list)
    spooled: Spooled | None = None  # where a worker left the rows instead (rows is then empty)
    new_tags: list[tuple[int, str]] = field(default_factory=list)  # (tag, creator) keys its spool had not seen
    tally: Tally | None = None  # the summary counts of the worker's group of files this one belongs to

    @property
    def element_count(self) -> int:
        return self.spooled.count if self.spooled is not None else len(self.rows)


ROW_FIELDS = (
    "seq",
    "parent_seq",
    "item",
    "depth",
    "tag",
    "private_creator",
    "vr",
    "vm",
    "value",
    "number",
    "length",
    "hash",
    "data",
    "element_path",
    "flag",
)

"""Turn one DICOM file into plain rows: the hierarchy keys and one tuple per data element.

Runs in worker processes, so everything returned is plain Python data that pickles cheaply.
Values are whatever pydicom decodes (per Specific Character Set, which pydicom tracks into
sequence items); the fidelity tests compare the rows with pydicom element by element.

Files from the wild are cut short, padded, nested absurdly deep or deflated into bombs. pydicom
reads many of them without a word, so the reader checks what pydicom met against the size of
the file before anything is extracted: a file is never indexed from part of its header as if
it were whole (see `_inspect`).
"""

from __future__ import annotations

import bisect
import contextlib
import functools
import hashlib
import math
import os
import re
import stat
import struct
import sys
import warnings
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any, BinaryIO

import pydicom
import pydicom.charset
import pydicom.config
import pydicom.hooks
import pydicom.misc
import pydicom.uid
import pydicom.valuerep
import pydicom.values
from pydicom.charset import convert_encodings, default_encoding
from pydicom.dataelem import DataElement, RawDataElement, convert_raw_data_element, empty_value_for_VR
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.filereader import _read_file_meta_info, read_partial, read_preamble
from pydicom.multival import MultiValue
from pydicom.tag import BaseTag, Tag
from pydicom.valuerep import AMBIGUOUS_VR
from pydicom.values import convert_string

from . import rawread
from .crawl import file_kind
from .outcome import ExtractOptions, FileResult

BINARY_VRS = frozenset({"OB", "OW", "OF", "OD", "OL", "OV", "UN", "OB or OW", "US or OW"})
NUMERIC_VRS = frozenset({"DS", "IS", "US", "SS", "UL", "SL", "FL", "FD", "UV", "SV", "US or SS"})
# Pixel data can be hundreds of MB: its length is recorded, its bytes are never read.
PIXEL_TAGS = frozenset({0x7FE00008, 0x7FE00009, 0x7FE00010})
UNDEFINED = 0xFFFFFFFF

# Hierarchy attributes copied from the top level of each file into studies/series/instances:
# keyword -> column. Everything is in `elements` too; these are for convenience and joins.
HIERARCHY = {
    "StudyInstanceUID": "study_instance_uid",
    "PatientID": "patient_id",
    "PatientName": "patient_name",
    "PatientBirthDate": "patient_birth_date",
    "PatientSex": "patient_sex",
    "StudyDate": "study_date",
    "StudyTime": "study_time",
    "StudyDescription": "study_description",
    "AccessionNumber": "accession_number",
    "StudyID": "dicom_study_id",
    "SeriesInstanceUID": "series_instance_uid",
    "SeriesNumber": "series_number",
    "Modality": "modality",
    "SeriesDescription": "series_description",
    "ProtocolName": "protocol_name",
    "Manufacturer": "manufacturer",
    "ManufacturerModelName": "manufacturer_model_name",
    "SoftwareVersions": "software_versions",
    "MagneticFieldStrength": "magnetic_field_strength",
    "InstitutionName": "institution_name",
    "StationName": "station_name",
    "SeriesDate": "series_date",
    "SeriesTime": "series_time",
    "SOPInstanceUID": "sop_instance_uid",
    "SOPClassUID": "sop_class_uid",
    "InstanceNumber": "instance_number",
    "TransferSyntaxUID": "transfer_syntax_uid",
    "AcquisitionTime": "acquisition_time",
}
HIERARCHY_TAGS = {int(Tag(k)): v for k, v in HIERARCHY.items()}
# Copied as numbers (from the `number` column), not text.
NUMBER_TAGS = frozenset(int(Tag(k)) for k in ("SeriesNumber", "InstanceNumber", "MagneticFieldStrength"))


class _Rows:
    """The rows of one file in walk order, and the header filled from its top-level hierarchy attributes."""

    def __init__(self, options: ExtractOptions) -> None:
        self.options = options
        self.rows: list[tuple] = []
        self.header: dict[str, Any] = {}

    def _keep(self, row: tuple) -> None:
        """Add a row; a top-level hierarchy attribute also goes into the header (as a number where one is kept)."""
        self.rows.append(row)
        tag, depth, text, number = row[4], row[3], row[8], row[9]
        if depth == 0 and tag in HIERARCHY_TAGS:
            self.header[HIERARCHY_TAGS[tag]] = number if number is not None and tag in NUMBER_TAGS else text


class _Walker(_Rows):
    """Depth-first walk of pydicom's data sets that numbers elements and remembers where each one sits."""

    def __init__(self, fp: BinaryIO | None, options: ExtractOptions) -> None:
        super().__init__(options)
        self.fp = fp
        self.skip_top: set[int] = set()  # top-level tags that are not data (zero padding)
        self._charsets: dict[int, Any] = {}

    def walk(self, ds: Dataset, parent: int | None, item: int | None, depth: int, prefix: str) -> None:
        if depth > MAX_DEPTH:
            raise _TooDeep()
        for tag in list(ds.keys()):
            if depth == 0 and int(tag) in self.skip_top:
                continue
            self.element(ds, int(tag), parent, item, depth, prefix)

    def element(self, ds: Dataset, tag: int, parent: int | None, item: int | None, depth: int, prefix: str) -> None:
        raw = ds.get_item(tag, keep_deferred=True)
        length = raw.length if isinstance(raw, RawDataElement) else None
        creator = _private_creator(ds, tag)
        known = self._known_value(ds, tag, creator, raw) if isinstance(raw, RawDataElement) else None
        if known is not None:
            for message in known[4]:  # what pydicom said the first time, said again for this file
                warnings.warn(message, UserWarning, stacklevel=1)
            path = f"{prefix}{_path_name(tag)}" if depth else None
            self._keep(_known_row(known, len(self.rows), parent, item, depth, tag, creator, length, path))
            return
        flag = None
        try:
            if isinstance(raw, RawDataElement) and raw.value is None and raw.length and raw.VR in BINARY_VRS:
                elem = None  # a large binary value left in the file: hashed from there, never loaded whole
            else:
                elem = ds[tag]
        except (MemoryError, RecursionError):
            raise  # about the whole file, not this element
        except Exception as exc:  # pydicom could not convert it: keep the raw bytes, flagged
            elem = None
            flag = f"{type(exc).__name__}: {exc}"
        seq = len(self.rows)
        name = _path_name(tag)
        path = f"{prefix}{name}" if depth else None
        if elem is None:
            row = self._raw_row(raw, tag, creator, seq, parent, item, depth, path, flag)
        elif elem.VR == "SQ":
            row = _sequence_row(seq, parent, item, depth, tag, creator, len(elem.value), length, path)
        else:
            data = raw.value if isinstance(raw, RawDataElement) else None
            row = _value_row(elem, tag, creator, seq, parent, item, depth, path, length, self.options.max_blob, data)
        self._keep(row)
        if elem is not None and elem.VR == "SQ":
            for i, child in enumerate(elem.value):
                self.walk(child, seq, i, depth + 1, f"{prefix}{name}[{i}].")

    def _known_value(self, ds: Dataset, tag: int, creator: str | None, raw: RawDataElement) -> tuple | None:
        """(vr, vm, text, number, warnings) of a text or number value, converted once per distinct raw value.

        Most header values repeat from file to file of a series; converting each distinct one
        once (with pydicom, so the result is exactly pydicom's) is most of the speed of a build.
        The key holds everything conversion depends on: tag, private creator, VR, byte order,
        character set and the raw bytes. Ambiguous VRs (resolved from other elements) are not cached.
        """
        if raw.value is None:
            return None
        vr = raw.VR
        if vr is None:  # implicit VR: the dictionary decides, for public tags only
            vr = None if (tag >> 16) & 1 else _dictionary_vr(tag)
        if vr not in CACHED_VRS:
            return None
        key = (tag, creator, raw.VR, raw.is_little_endian, self._charset(ds, tag), raw.value)
        known = _known(key)
        if known is None:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                try:
                    elem = ds[tag]
                except Exception:
                    return None  # the general path converts it again and flags it
            if elem.VR not in CACHED_VRS:
                return None
            known = _remember(key, elem, tuple(str(w.message) for w in caught))
            if known is None:  # not cached (see _remember): the general path makes its row, say what pydicom said
                for w in caught:
                    warnings.warn(str(w.message), UserWarning, stacklevel=1)
        return known

    def _charset(self, ds: Dataset, tag: int) -> Any:
        """The character set pydicom decodes this data set's text with (as Dataset.__getitem__ picks it)."""
        if tag == 0x00080005:
            return None
        key = id(ds)
        charset = self._charsets.get(key)
        if charset is None:
            found = ds.original_character_set or ds._character_set
            charset = self._charsets[key] = tuple(found) if isinstance(found, (list, MultiValue)) else found
        return charset

    def _raw_row(
        self,
        raw: Any,
        tag: int,
        creator: str | None,
        seq: int,
        parent: int | None,
        item: int | None,
        depth: int,
        path: str | None,
        flag: str | None,
    ) -> tuple:
        """A row from the raw bytes: a large binary value left in the file, or a value pydicom could not convert."""
        vr = getattr(raw, "VR", None) or "UN"
        length = getattr(raw, "length", None)
        data = getattr(raw, "value", None)
        if data is None and length and self.fp is not None:
            if length == UNDEFINED:
                length = _encapsulated_length(self.fp, raw.value_tell)
            if tag not in PIXEL_TAGS:
                data = self._read_deferred(raw.value_tell, length)
        return _raw_row(vr, length, data, flag, (seq, parent, item, depth, tag, creator), path, self.options.max_blob)

    def _read_deferred(self, offset: int, length: int) -> bytes:
        assert self.fp is not None
        self.fp.seek(offset)
        return self.fp.read(length)


# Values whose conversion depends only on their own bytes (and the key in _known_value).
CACHED_VRS = frozenset({"AE", "AS", "AT", "CS", "DA", "DS", "DT", "FD", "FL", "IS", "LO", "LT", "PN", "SH", "SL", "SS",
                        "ST", "SV", "TM", "UC", "UI", "UL", "UR", "US", "UT", "UV"})  # fmt: skip
# Two generations of at most KNOWN_VALUES_MAX entries each (per worker process): when the new one is
# full it becomes the old one and the previous old one is dropped, so values unique to one file
# (UIDs, positions, times) never pile up and memory stays flat however many files a worker reads,
# while values that repeat (a series' attributes) move to the new generation when met again.
KNOWN_VALUES_MAX = 8192
_KNOWN_VALUES: dict[tuple, tuple] = {}
_KNOWN_OLD: dict[tuple, tuple] = {}


def _remember(key: tuple, elem: DataElement, messages: tuple[str, ...]) -> tuple | None:
    """Cache what a converted text or number value turns into: (vr, vm, text, number, warnings).

    None for text decoded with replacement characters: its row is flagged and keeps the bytes (`_value_row`).
    """
    vm = elem.VM
    number = None
    if vm == 1 and elem.VR in NUMERIC_VRS:
        with contextlib.suppress(TypeError, ValueError, OverflowError):
            number = float(elem.value)
    text = value_text(elem.value)
    if _replaced(text, key[-1]):
        return None
    known = (elem.VR, vm, text, number, messages)
    _keep_known(key, known)
    return known


REPLACED = (
    "replacement characters: bytes that are not valid in the Specific Character Set were decoded as U+FFFD, "
    "as pydicom does; the raw bytes are in data"
)


def _replaced(text: str | None, raw: Any) -> bool:
    """Whether decoding put U+FFFD into the text (the bytes had none: EF BF BD is U+FFFD in UTF-8)."""
    if not text or "\ufffd" not in text or not isinstance(raw, bytes):
        return False
    return text.count("\ufffd") > raw.count(b"\xef\xbf\xbd")


def _known(key: tuple) -> tuple | None:
    """A cached value from either generation; one from the old generation moves to the new one."""
    known = _KNOWN_VALUES.get(key)
    if known is None:
        known = _KNOWN_OLD.get(key)
        if known is not None:
            _keep_known(key, known)
    return known


def _keep_known(key: tuple, known: tuple) -> None:
    global _KNOWN_VALUES, _KNOWN_OLD
    if len(_KNOWN_VALUES) >= KNOWN_VALUES_MAX:  # the old generation goes, values still in use live on
        _KNOWN_OLD, _KNOWN_VALUES = _KNOWN_VALUES, {}
    _KNOWN_VALUES[key] = known


def _known_row(
    known: tuple, seq: int, parent: int | None, item: int | None, depth: int, tag: int, creator: str | None,
    length: int | None, path: str | None,
) -> tuple:  # fmt: skip
    vr, vm, text, number, _ = known
    return (seq, parent, item, depth, tag, creator, vr, vm, text, number, length, None, None, path, None)


def _sequence_row(
    seq: int, parent: int | None, item: int | None, depth: int, tag: int, creator: str | None, items: int,
    length: int | None, path: str | None,
) -> tuple:  # fmt: skip
    return (seq, parent, item, depth, tag, creator, "SQ", items, None, None, length, None, None, path, None)


def _value_row(
    elem: DataElement,
    tag: int,
    creator: str | None,
    seq: int,
    parent: int | None,
    item: int | None,
    depth: int,
    path: str | None,
    length: int | None,
    max_blob: int,
    raw: bytes | None = None,
) -> tuple:
    """The row of a converted value: text and number, or the length and hash of a binary one.

    `raw`, the value's bytes as stored: text decoded with replacement characters keeps them, flagged.
    """
    vr = elem.VR
    value = elem.value
    if vr in BINARY_VRS or isinstance(value, (bytes, bytearray)):
        data = bytes(value) if value is not None else b""
        if isinstance(value, list):  # OB/OW split into fragments by some readers
            data = b"".join(value)
        digest = _sha1(data) if data else None
        keep = data if len(data) <= max_blob else None
        return (seq, parent, item, depth, tag, creator, vr, elem.VM, None, None, len(data), digest, keep, path, None)
    vm = elem.VM
    text = value_text(value)
    number = None
    if vm == 1 and vr in NUMERIC_VRS:
        try:
            number = float(value)
        except (TypeError, ValueError, OverflowError):
            number = None
    if _replaced(text, raw):
        return (seq, parent, item, depth, tag, creator, vr, vm, text, number, length, _sha1(raw), raw, path, REPLACED)
    return (seq, parent, item, depth, tag, creator, vr, vm, text, number, length, None, None, path, None)


def _raw_row(
    vr: str, length: int | None, data: Any, flag: str | None, where: tuple, path: str | None, max_blob: int
) -> tuple:
    """The row of unconverted bytes (None: pixel data, never read).

    `where` is (seq, parent, item, depth, tag, creator).
    """
    if isinstance(data, (bytes, bytearray)):
        digest = _sha1(data) if data else None
        keep = data if flag or len(data) <= max_blob else None
        text = data.decode("latin-1") if flag and vr not in BINARY_VRS else None
    else:
        digest = keep = text = None
    vm = 1 if length else 0
    return (*where, vr, vm, text, None, length, digest, keep, path, flag)


@functools.lru_cache(maxsize=4096)
def _dictionary_vr(tag: int) -> str | None:
    try:
        return pydicom.datadict.dictionary_VR(tag)
    except KeyError:
        return None


def _encapsulated_length(fp: BinaryIO, offset: int) -> int:
    """Bytes of an undefined-length value (items up to the sequence delimiter), found by skipping items."""
    fp.seek(offset)
    total = 0
    while True:
        header = fp.read(8)
        if len(header) < 8:
            return total  # no delimiter before the end of the file
        tag = int.from_bytes(header[0:2], "little") << 16 | int.from_bytes(header[2:4], "little")
        if tag == 0xFFFEE0DD:
            return total
        size = int.from_bytes(header[4:8], "little")
        if size == UNDEFINED:
            return total
        total += 8 + size
        fp.seek(size, 1)


def value_text(value: Any) -> str:
    """Render a decoded value as text: what pydicom's str() shows, values joined by backslash."""
    if value is None:
        return ""
    if isinstance(value, (MultiValue, list, tuple)):
        return "\\".join(_one(v) for v in value)
    return _one(value)


def _one(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, BaseTag):
        return f"({v.group:04X},{v.element:04X})"
    return str(v)


@functools.lru_cache(maxsize=8192)
def _path_name(tag: int) -> str:
    """The dictionary keyword (repeating groups included, e.g. OverlayRows), or (GGGG,EEEE)."""
    return pydicom.datadict.keyword_for_tag(tag) or f"({tag >> 16:04X},{tag & 0xFFFF:04X})"


def _private_creator(ds: Dataset, tag: int) -> str | None:
    group, elem = tag >> 16, tag & 0xFFFF
    if not group & 1 or elem < 0x1000:
        return None
    creator_tag = (group << 16) | (elem >> 8)
    if creator_tag not in ds:
        return ""
    try:
        value = ds[creator_tag].value
    except Exception:
        return ""
    return _creator_text(value)


def _creator_text(value: Any) -> str:
    """A private creator as it is stored: the first value, stripped."""
    if isinstance(value, (MultiValue, list)):
        value = value[0] if value else ""
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    return str(value or "").strip()


def _sha1(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


def looks_like_dicom(head: bytes) -> bool:
    """Recognise DICOM by content: the DICM marker, or a plausible first element (no preamble).

    Without the marker the first element must be in a group that starts a data set and have
    either a known VR (explicit VR) or a small length (implicit VR): `.DS_Store` files start
    with (0000,0100), so the group alone is not enough. A group length (gggg,0000) is 4 bytes
    long: zero bytes, a failed copy or one cut inside its preamble, would read as (0000,0000).
    """
    if len(head) >= 132 and head[128:132] == b"DICM":
        return True
    if len(head) < 8:
        return False
    for order in ("little", "big"):
        group = int.from_bytes(head[0:2], order)
        elem = int.from_bytes(head[2:4], order)
        if group not in (0x0000, 0x0002, 0x0004, 0x0008) or elem > 0x0100:
            continue
        if head[4:6] in _VR_BYTES:
            return True
        length = int.from_bytes(head[4:8], "little")
        if order == "little" and length <= FIRST_ELEMENT_MAX and (elem != 0 or length == 4):
            return True
    return False


_VR_BYTES = frozenset(vr.encode() for vr in pydicom.valuerep.VR if len(vr) == 2)
FIRST_ELEMENT_MAX = 0x10000  # bytes: the first element of a data set is a group length or a short string


class _TooDeep(Exception):
    """Sequences nested deeper than MAX_DEPTH."""


class _Source:
    """The file as pydicom reads it, remembering where the bytes ran out.

    pydicom stops without a word when a file ends inside an element header, and skips past the
    end of the file for a deferred value; reads that come back short and seeks past the end are
    recorded here so that a cut file is never passed off as complete. pydicom rereads deferred
    values through this object, so it also keeps a `name`.
    """

    def __init__(self, fd: int, name: str) -> None:
        self._fp = os.fdopen(fd, "rb")
        self.name = name
        self.size = os.fstat(fd).st_size
        self.short: list[tuple[int, int, int]] = []  # (offset, bytes asked for, bytes read)
        self.beyond: list[int] = []  # seek targets past the end
        self.last_read = 0

    @property
    def closed(self) -> bool:
        return self._fp.closed

    def fileno(self) -> int:
        return self._fp.fileno()

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            self.last_read = -1
            return self._fp.read()
        at = self._fp.tell()
        data = self._fp.read(size)
        self.last_read = size
        if len(data) < size:
            self.short.append((at, size, len(data)))
        return data

    def peek_raw(self, offset: int, size: int) -> bytes:
        """Bytes at `offset` without recording anything or moving the read position."""
        here = self._fp.tell()
        try:
            self._fp.seek(offset)
            return self._fp.read(size)
        finally:
            self._fp.seek(here)

    def seek(self, offset: int, whence: int = 0) -> int:
        at = self._fp.seek(offset, whence)
        if at > self.size:
            self.beyond.append(at)
        return at

    def tell(self) -> int:
        return self._fp.tell()

    def close(self) -> None:
        self._fp.close()

    def forget(self) -> None:
        self.short.clear()
        self.beyond.clear()


@dataclass(frozen=True)
class _Header:
    """A top-level element header as the parser met it: tag, VR (None: implicit), length, value offset."""

    tag: int
    vr: str | None
    length: int
    at: int

    @property
    def end(self) -> int | None:
        return None if self.length == UNDEFINED else self.at + self.length


@dataclass
class _Findings:
    """What the structure check found: a reason to reject the file, or warnings to keep with it."""

    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    skip: set[int] = field(default_factory=set)  # top-level tags that are padding, not data

    def problem(self, message: str, *, in_pixels: bool) -> None:
        """A cut or unread part: only a warning when the header is whole (it is in or after pixel data)."""
        if in_pixels:
            self.warnings.append(message)
        elif self.error is None:
            self.error = message


MAX_DEPTH = 100  # sequence levels; real files nest a handful, SR trees a few dozen
RECURSION_FRAMES = 1200  # Python frames granted to one read: pydicom parses nested sequences recursively
DEFLATED = "1.2.840.10008.1.2.1.99"
OUT_OF_MEMORY = "out of memory"
TOO_DEEP = f"too deep: sequences nested more than {MAX_DEPTH} levels deep, not read"
_MB = 1024 * 1024


def read_file(path: bytes, root: str, options: ExtractOptions) -> FileResult:
    """Read one file and extract all its elements; never raises for bad input.

    The outcome is `indexed` (with `warning` set when something is missing or odd), `not_dicom`,
    `skipped` (not a regular file by the time it is read) or `error`, always with a reason that
    starts with a short category ("truncated: ...", "cannot read: ...") that reports group by.
    """
    result = FileResult(path_bytes=path, root=root, status="error")
    try:
        # O_NONBLOCK: a file replaced by a FIFO since it was listed must not block the open.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except FileNotFoundError:
        result.reason = "vanished: the file was deleted or moved after it was listed"
        return result
    except OSError as exc:
        result.reason = f"cannot read: {exc.strerror or exc}"
        return result
    try:
        st = os.fstat(fd)
    except OSError as exc:
        os.close(fd)
        result.reason = f"cannot read: {exc.strerror or exc}"
        return result
    if not stat.S_ISREG(st.st_mode):  # replaced by a FIFO, a folder or a device since it was listed
        result.status, result.reason = "skipped", f"not a regular file ({file_kind(st.st_mode)})"
        os.close(fd)
        return result
    result.size, result.mtime_ns = st.st_size, st.st_mtime_ns
    if FAST_READ:  # reads the descriptor itself: most files never need a file object
        try:
            fast = _read_fast(fd, st.st_size, result, options, path, root)
        except BaseException:
            os.close(fd)
            raise
        if fast is not None:
            os.close(fd)
            return fast
    try:
        # A str name (surrogate-escaped if need be) lets pydicom name the file in its own messages.
        src = _Source(fd, os.fsdecode(path))
    except OSError as exc:
        os.close(fd)
        result.reason = f"cannot read: {exc.strerror or exc}"
        return result
    try:
        return _read(src, result, options, path, root)
    finally:
        src.close()


def _read(src: _Source, result: FileResult, options: ExtractOptions, path: bytes, root: str) -> FileResult:
    headers: list[_Header] = []
    try:
        head = src.peek_raw(0, 4096)
        if not looks_like_dicom(head):
            result.status, result.reason = "not_dicom", _not_dicom_reason(head)
            return result
        start = _deflated_start(src) if DEFLATED.encode() in head else None
        deflated = start is not None
        if start is not None:
            result.reason = _check_deflated(src, start, options.max_inflated)
            if result.reason:
                return result
        with warnings.catch_warnings(record=True) as caught, _recursion_room():
            warnings.simplefilter("always")

            def record(tag: BaseTag, vr: str | None, length: int) -> bool:
                if src.last_read != 2:  # 2: the VR look-ahead of the first element, not an element
                    headers.append(_Header(int(tag), vr, length, src.tell()))
                return False

            ds = read_partial(src, stop_when=None if deflated else record, defer_size=options.defer_size, force=True)
            stream = ds.buffer if ds.buffer is not None else src
            findings = _inspect(ds, src, stream, headers, deflated, [str(w.message) for w in caught])
            if findings.error:
                result.reason = findings.error
                return result
            walker = _Walker(stream, options)
            walker.skip_top = findings.skip
            walker.walk(ds.file_meta, None, None, 0, "")
            walker.walk(ds, None, None, 0, "")
        if not walker.rows:
            result.status, result.reason = "not_dicom", "not DICOM: no data elements found"
            return result
    except InvalidDicomError as exc:
        result.status, result.reason = "not_dicom", f"not DICOM: {exc}"
        return result
    except MemoryError:
        result.reason = f"{OUT_OF_MEMORY}: reading it needs more memory than this process may use"
        return result
    except (RecursionError, _TooDeep):
        result.reason = TOO_DEEP
        return result
    except OSError as exc:
        if exc.errno is not None:  # the disk, not the data: pydicom raises errno-less OSErrors for bad data
            result.reason = f"cannot read: {exc.strerror or exc}"
        else:
            result.reason = _truncation_reason(src, headers) or f"unreadable DICOM: {_describe(exc)}"
        return result
    except Exception as exc:  # pydicom raises many types on broken data
        result.reason = _truncation_reason(src, headers) or f"unreadable DICOM: {_describe(exc)}"
        return result
    site = _site(ds, path, root, options.site_from)
    return _finish(result, walker, site, findings.warnings, [str(w.message) for w in caught])


def _finish(
    result: FileResult,
    walker: _Rows,
    site: str | None,
    notes: list[str],
    messages: list[str],
    flagged: int | None = None,
) -> FileResult:
    """An indexed result: rows, header with the site, and the warnings (the structure's, then pydicom's).

    `flagged`: the number of flagged rows, if the caller knows it (counted here otherwise).
    """
    header = walker.header
    header["site"] = site
    result.status, result.header, result.rows = "indexed", header, walker.rows
    notes = list(notes)
    if flagged is None:
        flagged = sum(1 for row in walker.rows if row[14] is not None)
    if flagged:
        notes.append(
            f"undecodable: {flagged} element{'s' if flagged > 1 else ''} could not be decoded "
            "(raw bytes kept, see elements.flag)"
        )
    notes.extend(_pydicom_warnings(messages))
    if notes:
        # "; " separates warnings (reports split on it), so it must not occur inside one
        result.warning = "; ".join(n.replace("; ", ", ") for n in notes)[:2000]
    return result


# The fast path: rawread splits the file into element headers, values are converted by pydicom once
# per distinct value (or decoded by `_decode`, exactly as pydicom would, for common VRs). Files it
# does not read exactly as pydicom does go to `_read`.
# IBASH_INDEX_SLOW_READ=1 turns it off (every file is read by `_read`), for tests and debugging.
FAST_READ = os.environ.get("IBASH_INDEX_SLOW_READ", "") != "1"
FIRST_READ = 256 * 1024  # bytes read first; the rest only when the header goes on past them
FAST_MAX_BYTES = 64 * _MB  # larger files whose header goes past FIRST_READ are read by pydicom


def _read_fast(
    fd: int, size: int, result: FileResult, options: ExtractOptions, path: bytes, root: str
) -> FileResult | None:
    """The result of the fast path, or None if the file must be read by pydicom (`_read`)."""
    try:
        data = _pread(fd, min(size, FIRST_READ))
        try:
            return _extract_fast(data, size, result, options, path, root)
        except rawread.NeedMore:
            if size > FAST_MAX_BYTES:
                return None
            data = _pread(fd, size)
            return _extract_fast(data, size, result, options, path, root) if len(data) == size else None
    except (rawread.Unsupported, rawread.NeedMore):
        return None
    except Exception:  # an unforeseen file: pydicom reads it and says what is wrong
        return None


def _pread(fd: int, size: int) -> bytes:
    """Up to `size` bytes from the start of the file (fewer only if it is shorter now)."""
    parts, got = [], 0
    while got < size:
        chunk = os.pread(fd, size - got, got)
        if not chunk:
            break
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts) if len(parts) != 1 else parts[0]


def _extract_fast(
    data: bytes, size: int, result: FileResult, options: ExtractOptions, path: bytes, root: str
) -> FileResult:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        parsed = rawread.parse_meta(data, size)
        walker = _FastWalker(data, options, caught)
        meta = _Level(parsed.meta, implicit=False, top=False, encoding=default_encoding)
        # read_partial converts the first file meta element, the group length and the transfer syntax
        meta.early = frozenset({parsed.meta[0].tag, 0x00020000, 0x00020010})
        implicit = _implicit_vr(walker.transfer_syntax(meta))
        elements = rawread.parse_dataset(data, size, parsed.start, implicit, walker.defer)
        walker.walk(meta, None, None, 0, "")
        first = len(walker.rows)
        top = _Level(elements, implicit, top=True, encoding=default_encoding)
        top.early = frozenset({0x00080005})  # and the Specific Character Set
        walker.walk(top, None, None, 0, "")
        site = _fast_site(walker.rows[first:], path, root, options.site_from)
        messages = [str(w.message) for w in caught] + walker.messages
    return _finish(result, walker, site, [], messages, flagged=walker.flagged)


def _implicit_vr(transfer_syntax: Any) -> bool:
    """Whether pydicom reads the data set as implicit VR (read_partial's choice); only little endian here."""
    if transfer_syntax is None:
        raise rawread.Unsupported("no transfer syntax: pydicom guesses the encoding")
    if transfer_syntax == pydicom.uid.ImplicitVRLittleEndian:
        return True
    if transfer_syntax in (pydicom.uid.ExplicitVRBigEndian, pydicom.uid.DeflatedExplicitVRLittleEndian):
        raise rawread.Unsupported("big endian or deflated")
    if transfer_syntax in pydicom.uid.PrivateTransferSyntaxes:
        raise rawread.Unsupported("a private transfer syntax")
    return False  # explicit VR little endian, and every other (encapsulated) transfer syntax


def _fast_site(rows: list[tuple], path: bytes, root: str, site_from: str) -> str | None:
    """`_site` from the rows of the top-level data set (a text value, or a folder level)."""
    if site_from.startswith("level:"):
        return _site_level(path, root, site_from)
    tag = pydicom.datadict.tag_for_keyword(site_from)
    if tag is None:
        raise rawread.Unsupported("the site is not a keyword")  # _site reads any attribute of the data set
    for row in rows:
        if row[3] == 0 and row[4] == tag:
            if row[6] == "SQ" or row[8] is None:
                raise rawread.Unsupported("the site element is not text")
            return row[8] or None
    return None


_TAG = itemgetter(0)  # of a rawread.Element


class _Level:
    """One data set being walked: its elements, encoding, character set, and private creators."""

    __slots__ = ("_context", "creators", "early", "elements", "encoding", "implicit", "key", "top")

    def __init__(self, elements: list[rawread.Element], implicit: bool, top: bool, encoding: Any) -> None:
        self.elements = elements
        self.implicit = implicit
        self.top = top  # the top level of the main data set: large values are left in the file there
        self.encoding = encoding  # what pydicom decodes text with: str or list of Python encodings
        self.key = tuple(encoding) if isinstance(encoding, list) else encoding  # as _Walker._charset has it
        self.early: frozenset[int] = frozenset()  # tags pydicom converts while reading (see _FastWalker._leaf)
        self._context: Dataset | None = None
        self.creators: dict[int, str] = {}  # private creator tag -> text (see _FastWalker._creator)

    def find(self, tag: int) -> rawread.Element | None:
        """The element with this tag: a binary search, rawread gives elements in tag order."""
        elements = self.elements
        i = bisect.bisect_left(elements, tag, key=_TAG)
        return elements[i] if i < len(elements) and elements[i].tag == tag else None

    def context(self, walker: _FastWalker) -> Dataset:
        """A pydicom data set holding this level's private creators, for the private VR lookup."""
        if self._context is None:
            raws = {}
            for e in self.elements:
                if (e.tag >> 16) & 1 and 0x10 <= (e.tag & 0xFFFF) <= 0xFF:
                    raws[BaseTag(e.tag)] = walker.raw(self, e)
            self._context = Dataset(raws, parent_encoding=self.encoding)
            self._context.set_original_encoding(self.implicit, True, self.encoding)
        return self._context


class _FastWalker(_Rows):
    """Rows from rawread's elements, in the order and with the values `_Walker` gives for the same file."""

    def __init__(self, data: bytes, options: ExtractOptions, caught: list) -> None:
        super().__init__(options)
        self.data = data
        self.caught = caught  # the warnings pydicom gives while converting (the enclosing catch_warnings)
        self.messages: list[str] = []  # warnings of values converted for an earlier file, said again
        self.flagged = 0  # rows of text decoded with replacement characters (pydicom's errors fall back)
        self.defer = pydicom.misc.size_in_bytes(options.defer_size)
        self.direct = _direct_decoding()

    def transfer_syntax(self, meta: _Level) -> Any:
        """The Transfer Syntax UID, converted by pydicom once per distinct raw value."""
        element = meta.find(0x00020010)
        if element is None:
            return None
        key = (element.vr, element.length, self._value(element))
        return self._once(_TRANSFER_SYNTAXES, 64, key, lambda: self.convert(meta, element).value)

    def _once(self, cache: dict, limit: int, key: tuple, convert: Callable[[], Any]) -> Any:
        """A value pydicom converts once per distinct raw value; its warnings are replayed on every later use."""
        known = cache.get(key)
        if known is None:
            n = len(self.caught)
            value = convert()
            known = (value, tuple(str(w.message) for w in self.caught[n:]))
            if len(cache) >= limit:
                cache.clear()
            cache[key] = known
        else:
            self.messages.extend(known[1])
        return known[0]

    def walk(self, level: _Level, parent: int | None, item: int | None, depth: int, prefix: str) -> None:
        """Rows of a data set and, depth first, of its sequences' items.

        Most elements are a text or number value met before (in this file or an earlier one):
        their row is made here from the value cache; the rest go to `_leaf`. Names are bound
        to locals since this loop runs once per element of every file.
        """
        level.encoding, level.key = self._charset(level, level.encoding)
        early = level.early
        to_leaf = early | _CHARSET_TAG  # rows _leaf makes: converted early, or cached without a character set
        rows, data, messages = self.rows, self.data, self.messages
        append = rows.append
        header = self.header if depth == 0 else None
        charset = level.key
        creators = level.creators
        # values longer than this are left in the file (defer_size, top level only) or have no length
        limit = UNDEFINED - 1 if self.defer is None or not level.top else min(self.defer, UNDEFINED - 1)
        implicit = level.implicit
        for element in level.elements:
            tag, vr, length, start, end, items = element
            if tag & 0x10000 and tag & 0xF000:  # a private tag in a private block: (gggg,xx00) and on
                creator = creators.get(tag & 0xFFFF0000 | (tag >> 8) & 0xFF)
                if creator is None:
                    creator = self._creator(level, tag)
            else:
                creator = None
            seq = len(rows)
            if items is None:
                path = f"{prefix}{_path_name(tag)}" if depth else None
                if (
                    0 < length <= limit and tag not in to_leaf and (vr if not implicit else _key_vr(tag)) in CACHED_VRS
                ):  # as _leaf: the key holds all that conversion depends on
                    known = _KNOWN_VALUES.get((tag, creator, vr, True, charset, data[start:end]))
                    if known is not None:
                        known_vr, vm, text, number, said = known
                        if said:
                            messages.extend(said)
                        append((seq, parent, item, depth, tag, creator, known_vr, vm, text, number, length, None, None,
                                path, None))  # fmt: skip
                        if header is not None and tag in HIERARCHY_TAGS:
                            header[HIERARCHY_TAGS[tag]] = number if number is not None and tag in NUMBER_TAGS else text
                        continue
                self._keep(self._leaf(level, element, (seq, parent, item, depth, tag, creator), path, tag in early))
                continue
            name = _path_name(tag)
            path = f"{prefix}{name}" if depth else None
            length = None if length == UNDEFINED else length  # pydicom keeps no raw element then
            if length is not None:  # pydicom converts Pixel Representation when it converts such a sequence
                early = early | {0x00280103}
                to_leaf = early | _CHARSET_TAG
            self._keep(_sequence_row(seq, parent, item, depth, tag, creator, len(items), length, path))
            for i, child in enumerate(items):
                child_level = _Level(child, implicit, False, level.encoding)
                self.walk(child_level, seq, i, depth + 1, f"{prefix}{name}[{i}].")

    def _charset(self, level: _Level, inherited: Any) -> tuple[Any, Any]:
        """(encoding, cache key) of a data set: its own Specific Character Set, else its parent's."""
        for i, element in enumerate(level.elements):
            if element.tag >= 0x00080005:
                if element.tag != 0x00080005:
                    break
                if any(e.items is not None for e in level.elements[:i]):
                    raise rawread.Unsupported("a sequence before the Specific Character Set")
                encodings = _encodings(element.vr, self.data[element.start : element.end], level.implicit)
                return list(encodings), encodings
        return inherited, tuple(inherited) if isinstance(inherited, list) else inherited

    def _creator(self, level: _Level, tag: int) -> str:
        """The private creator of a private tag, as `_private_creator` finds it in the same data set.

        Kept in level.creators, where `walk` looks first: a private block has many elements. Its
        warnings are said once per file then, which is all `_finish` keeps of them.
        """
        creator_tag = (tag >> 16) << 16 | (tag & 0xFFFF) >> 8
        element = level.find(creator_tag)
        if element is None:
            level.creators[creator_tag] = ""
            return ""
        key = (element.vr, element.length, level.key, self._value(element))
        text = self._once(_CREATORS, 4096, key, lambda: _creator_text(self.convert(level, element).value))
        level.creators[creator_tag] = text
        return text

    def _value(self, element: rawread.Element) -> bytes | None:
        """The raw value pydicom's reader keeps for this element."""
        return self.data[element.start : element.end] if element.length else empty_value_for_VR(element.vr, raw=True)

    def raw(self, level: _Level, element: rawread.Element) -> RawDataElement:
        """The RawDataElement pydicom's reader makes of this element (values always read)."""
        value = self._value(element)
        return RawDataElement(
            BaseTag(element.tag), element.vr, element.length, value, element.start, level.implicit, True
        )

    def convert(self, level: _Level, element: rawread.Element) -> DataElement:
        """pydicom's conversion, as Dataset.__getitem__ does it; files where it would do more go to `_read`."""
        raw = self.raw(level, element)
        ds = level.context(self) if raw.VR is None or raw.VR == "UN" else None
        encoding = level.encoding if element.tag != 0x00080005 else default_encoding
        try:
            elem = convert_raw_data_element(raw, encoding=encoding, ds=ds)
        except Exception as exc:  # _Walker flags the element; that is its job
            raise rawread.Unsupported(f"pydicom cannot convert {element.tag:08X}") from exc
        if elem.VR in AMBIGUOUS_VR or elem.VR == "SQ":
            raise rawread.Unsupported("a VR that depends on other elements, or a sequence found late")
        return elem

    def _leaf(self, level: _Level, element: rawread.Element, where: tuple, path: str | None, early: bool) -> tuple:
        """The row of an element that is not a sequence (`where`: seq, parent, item, depth, tag, creator).

        `early`: pydicom converted the element before _Walker met it (its row has no length then).
        """
        tag, vr, length = element.tag, element.vr, element.length
        defer = self.defer if level.top else None
        if length == UNDEFINED:  # encapsulated pixel data: its items, then the delimiter
            deferred = defer is not None and defer <= element.end - element.start + 4
        else:
            deferred = defer is not None and length > defer and tag != 0x00080005
        if deferred and vr in BINARY_VRS and not early:  # left in the file by pydicom: hashed from there
            data = None if tag in PIXEL_TAGS else self.data[element.start : element.end]
            size = element.end - element.start if length == UNDEFINED else length
            return _raw_row(vr, size, data, None, where, path, self.options.max_blob)
        seq, parent, item, depth, _, creator = where
        key_vr = vr if vr is not None else None if (tag >> 16) & 1 else _dictionary_vr(tag)
        value = self.data[element.start : element.end] if length else empty_value_for_VR(vr, raw=True)
        if value is not None and not deferred and key_vr in CACHED_VRS:  # as _Walker._known_value caches
            key = (tag, creator, vr, True, None if tag == 0x00080005 else level.key, value)
            known = _KNOWN_VALUES.get(key) or _known(key)
            row_length = None if early else length
            if known is not None:
                self.messages.extend(known[4])
                return _known_row(known, seq, parent, item, depth, tag, creator, row_length, path)
            known = _decode(key_vr, tag, value) if self.direct else None
            if known is not None:
                _keep_known(key, known)
                return _known_row(known, seq, parent, item, depth, tag, creator, row_length, path)
            n = len(self.caught)
            elem = self.convert(level, element)
            if elem.VR in CACHED_VRS:
                known = _remember(key, elem, tuple(str(w.message) for w in self.caught[n:]))
                if known is not None:
                    return _known_row(known, seq, parent, item, depth, tag, creator, row_length, path)
        elif value and key_vr in _PLAIN_BINARY_VRS and self.direct and length != UNDEFINED:
            # what pydicom's conversion gives: the bytes as they are (see _value_row)
            return _raw_row(key_vr, length, value, None, where, path, self.options.max_blob)
        else:
            elem = self.convert(level, element)
        row_length = None if early else length
        raw = None if deferred else value  # as _Walker has it: pydicom keeps no bytes of a deferred value
        row = _value_row(elem, tag, creator, seq, parent, item, depth, path, row_length, self.options.max_blob, raw)
        self.flagged += row[14] is not None
        return row


_CREATORS: dict[tuple, tuple[str, tuple[str, ...]]] = {}  # private creator text and warnings, per raw value
_TRANSFER_SYNTAXES: dict[tuple, tuple[Any, tuple[str, ...]]] = {}  # converted value and warnings, per raw value
_CHARSET_TAG = frozenset({0x00080005})


@functools.lru_cache(maxsize=8192)
def _key_vr(tag: int) -> str | None:
    """The VR an implicit VR element is cached by: the dictionary's, for public tags only (as _leaf has it)."""
    return None if (tag >> 16) & 1 else _dictionary_vr(tag)


# Direct decoding. pydicom takes 10 to 20 µs to convert one value, and the values that are new in
# each file (UIDs, times, positions, counts) are most of the fast path's conversions. These VRs
# are decoded here on a cache miss, giving what _remember gives from pydicom's value, for values
# that pydicom converts simply and without a warning: numbers whose length fits their size, and
# text whose every value passes pydicom's own validation (a stricter pattern here, never a looser
# one). Anything else (padding inside a value, a long DS, an invalid UID, a LUT descriptor, a
# non-default pydicom setting or hook) is converted by pydicom as before.
_NUMBER_VRS = {vr: struct.Struct("<" + code) for vr, code in
               {"US": "H", "SS": "h", "UL": "L", "SL": "l", "FL": "f", "FD": "d"}.items()}  # fmt: skip
_STRING_VRS = frozenset({"CS", "DA", "TM"})  # convert_string: no validation, padding stripped at the end
_PLAIN_BINARY_VRS = frozenset({"OB", "OW", "OD", "OF", "OL"})  # converted to the raw bytes
_UID = re.compile(r"(?:0|[1-9][0-9]*)(?:\.(?:0|[1-9][0-9]*))*").fullmatch  # pydicom's UI pattern
_DS = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?").fullmatch  # DS, without spaces
_IS = re.compile(r"[+-]?[0-9]+").fullmatch  # IS, without spaces
_LUT_DESCRIPTORS = frozenset(getattr(pydicom.hooks, "_LUT_DESCRIPTOR_TAGS", (0x00281101, 0x00281102, 0x00281103,
                                                                            0x00283002)))  # fmt: skip


_CONVERTERS = {
    **{vr: (pydicom.values.convert_numbers, unpack.format[1:]) for vr, unpack in _NUMBER_VRS.items()},
    **dict.fromkeys(("OB", "OD", "OL"), pydicom.values.convert_OBvalue),
    **dict.fromkeys(("OW", "OF"), pydicom.values.convert_OWvalue),
    "CS": pydicom.values.convert_string,
    "DA": pydicom.values.convert_DA_string,
    "TM": pydicom.values.convert_TM_string,
    "UI": pydicom.values.convert_UI,
    "DS": pydicom.values.convert_DS_string,
    "IS": pydicom.values.convert_IS_string,
}  # what pydicom converts the VRs decoded here with, as _decode mirrors them
_CONVERTERS_OF = itemgetter(*_CONVERTERS)
_CONVERTER_VALUES = tuple(_CONVERTERS.values())


# The pydicom releases whose conversions _decode was checked against (tests/test_decode.py): with
# another one, pydicom converts every value until the tests have been run against it.
_CHECKED_PYDICOM = pydicom.__version__.split(".")[:2] == ["3", "0"]


def _direct_decoding() -> bool:
    """Whether pydicom is set up as _decode assumes: a checked release, default hooks, settings and converters."""
    if not _CHECKED_PYDICOM:
        return False
    config = pydicom.config
    hooks = pydicom.hooks.hooks
    try:
        converters = _CONVERTERS_OF(pydicom.values.converters)
    except KeyError:
        return False
    return (
        config.settings.reading_validation_mode == config.WARN
        and config.data_element_callback is None
        and not (config.datetime_conversion or config.use_DS_decimal or config.use_DS_numpy or config.use_IS_numpy)
        and hooks.raw_element_vr is pydicom.hooks.raw_element_vr
        and hooks.raw_element_value is pydicom.hooks.raw_element_value
        and not hooks.raw_element_kwargs
        and converters == _CONVERTER_VALUES
    )


def _decode(vr: str | None, tag: int, value: bytes) -> tuple | None:
    """(vr, vm, text, number, warnings) of a raw value as _remember has it from pydicom, or None: ask pydicom.

    `value` is not empty. Mirrors pydicom 3's convert_numbers, convert_string, convert_UI,
    convert_DS_string and convert_IS_string with the default settings, and DataElement.VM.
    """
    unpack = _NUMBER_VRS.get(vr)  # type: ignore[arg-type]
    if unpack is not None:
        count, rest = divmod(len(value), unpack.size)
        if rest or tag in _LUT_DESCRIPTORS:
            return None
        if count == 1:
            number = unpack.unpack(value)[0]
            return (vr, 1, str(number), float(number), ())
        numbers = struct.unpack(f"<{count}{unpack.format[1:]}", value)
        return (vr, count, "\\".join(map(str, numbers)), None, ())
    if vr in _STRING_VRS:
        text = value.decode(default_encoding).rstrip(" \x00")
        return (vr, text.count("\\") + 1 if text else 0, text, None, ())
    if vr == "UI":
        text = value.decode(default_encoding).rstrip(" \x00")
        items = text.split("\\")
        for item in items:
            if len(item) > 64 or not _UID(item):
                return None
        return (vr, len(items), text, None, ())
    if vr == "DS":
        text = value.decode(default_encoding).strip().rstrip(" \x00")
        items = text.split("\\")
        for item in items:
            if len(item) > 16 or not _DS(item) or not math.isfinite(float(item)):
                return None
        return (vr, len(items), text, float(text) if len(items) == 1 else None, ())
    if vr == "IS":
        text = value.decode(default_encoding).rstrip(" \x00")
        items = text.split("\\")
        for item in items:
            if len(item) > 12 or not _IS(item):
                return None
        return (vr, len(items), text, float(int(text)) if len(items) == 1 else None, ())
    return None


@functools.lru_cache(maxsize=64)
def _encodings(vr: str | None, value: bytes, implicit: bool) -> tuple[str, ...]:
    """The Python encodings of a Specific Character Set value, if pydicom's two ways to read it agree quietly.

    pydicom reads it as a data set's charset (converted element) and for sequences parsed at read
    time (the string read straight from the stream); a value where they differ, or that draws a
    warning, goes to `_read`.
    """
    if not value:
        raise rawread.Unsupported("an empty Specific Character Set")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        raw = RawDataElement(BaseTag(0x00080005), vr, len(value), value, 0, implicit, True)
        read = convert_encodings(convert_raw_data_element(raw).value)
        streamed = convert_encodings(convert_string(value, True))
    if caught or read != streamed:
        raise rawread.Unsupported("an unusual Specific Character Set")
    return tuple(read)


def _deflated_start(src: _Source) -> int | None:
    """Where the data set starts, if the file meta says it is deflated; None otherwise."""
    try:
        src.seek(0)
        read_preamble(src, True)
        meta = _read_file_meta_info(src)
        return src.tell() if meta.get("TransferSyntaxUID") == DEFLATED else None
    except Exception:
        return None  # pydicom will say what is wrong when it reads the file
    finally:
        src.seek(0)
        src.forget()  # this look-ahead is not the read whose short reads count


def _check_deflated(src: _Source, start: int, limit: int) -> str | None:
    """Inflate the data set once, discarding the output, to bound what pydicom will hold in memory.

    pydicom inflates a deflated data set whole: a few hundred KB can become gigabytes.
    """
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    total, offset = 0, start
    try:
        while not inflater.eof:
            chunk = src.peek_raw(offset, _MB)
            if not chunk:
                break
            offset += len(chunk)
            while chunk and not inflater.eof:
                total += len(inflater.decompress(chunk, 16 * _MB))
                if limit and total > limit:
                    return (
                        f"too large: the deflated data set inflates to more than {limit // _MB} MB "
                        "(a deflate bomb?), not read: the limit is a quarter of --max-memory"
                    )
                chunk = inflater.unconsumed_tail
    except zlib.error as exc:
        return f"unreadable DICOM: the deflated data set is corrupt ({exc})"
    if not inflater.eof:
        return f"truncated: the file ends at byte {src.size} inside the deflated data set"
    return None


@contextlib.contextmanager
def _recursion_room() -> Iterator[None]:
    """The same recursion budget for every read, wherever it is called from (workers or in process)."""
    depth, frame = 0, sys._getframe()
    while frame is not None:
        depth, frame = depth + 1, frame.f_back
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(depth + RECURSION_FRAMES)
    try:
        yield
    finally:
        sys.setrecursionlimit(old)


def _inspect(
    ds: Dataset, src: _Source, stream: Any, headers: list[_Header], deflated: bool, messages: list[str]
) -> _Findings:
    """Check that parsing reached the end of the file and that no element runs past it.

    `headers` are the top-level element headers in file order (for a deflated file, rebuilt from
    what pydicom kept). In turn: no data set at all; the last element running past the end; an
    undefined-length value without its delimiter; bytes after the last element (zero padding, a
    cut header, or parsing that stopped early); tags that occur twice.
    """
    found = _Findings()
    end_of_parse = stream.tell()
    if deflated:
        size = stream.seek(0, 2)
        stream.seek(end_of_parse)
        headers = sorted((_header_of(t, e) for t, e in ds._dict.items()), key=lambda h: h.at)
    else:
        size = src.size
    if not headers:
        if not len(ds) and ds.file_meta:
            found.error = (
                f"truncated: the file ends at byte {size}, right after the file meta information: "
                "no data set after the file meta"
            )
        return found
    pixels = next((h.at for h in headers if h.tag in PIXEL_TAGS), None)

    def in_pixels(at: int) -> bool:
        return pixels is not None and at >= pixels

    # Zero bytes after the data set parse as empty (0000,0000) elements: padding, if all zero to the end.
    kept = len(headers)
    while kept and headers[kept - 1].tag == 0 and headers[kept - 1].length == 0:
        kept -= 1
    padding = headers[kept:] if kept else []
    real = headers[:kept] if padding else headers
    last = real[-1]
    if last.end is not None and last.end > size:
        _overrun(found, ds, last, size, in_pixels(last.at))
        return found
    if any(m.startswith("End of file reached before delimiter") for m in messages):
        # pydicom dropped an undefined-length value that has no end; where parsing stopped says nothing more
        open_ended = next((h for h in reversed(headers) if h.length == UNDEFINED), last)
        what = "pixel data" if open_ended.tag in PIXEL_TAGS else "element"
        found.problem(
            f"truncated: {what} {_tag_name(open_ended.tag)} has no end: the file ends at byte {size} before its "
            "delimiter, so it is not indexed",
            in_pixels=in_pixels(open_ended.at),
        )
    else:
        cut = [at for at, asked, got in src.short if 0 < got < asked and at >= last.at] if not deflated else []
        if padding:
            zeros_from: int | None = padding[0].at - 8  # the 8-byte header of the first empty element
        elif last.end is not None:
            zeros_from = last.end
        else:
            zeros_from = cut[0] if cut else None
        if zeros_from is not None and zeros_from < size and _all_zero(stream, zeros_from, size - zeros_from):
            found.warnings.append(f"padding: {size - zeros_from} zero bytes after the data set (ignored)")
            if padding and not any(h.tag == 0 for h in real):
                found.skip.add(0)
        else:
            real, last = headers, headers[-1]  # not padding after all: the empty elements are data
            _leftover(found, last, size, end_of_parse, bool(cut), in_pixels)
    counts: dict[int, int] = {}
    for h in real:
        counts[h.tag] = counts.get(h.tag, 0) + 1
    for tag, n in counts.items():
        if n > 1:
            found.warnings.append(
                f"duplicate: element {_tag_name(tag)} appears {n} times, only the last one is indexed"
            )
    return found


def _overrun(found: _Findings, ds: Dataset, last: _Header, size: int, in_pixels: bool) -> None:
    """The last element declares more bytes than the file has left."""
    if last.tag in PIXEL_TAGS:
        found.warnings.append(
            f"truncated: pixel data {_tag_name(last.tag)} has {max(0, size - last.at)} of its {last.length} bytes, "
            f"the file ends at byte {size}"
        )
        return
    note = ""
    if last.vr is None and ds.original_encoding[0] is False:
        note = " (its VR bytes are not a valid VR, so they were read as part of the length)"
    found.problem(
        f"truncated: the file ends at byte {size} inside element {_tag_name(last.tag)}, whose value of "
        f"{last.length} bytes starts at byte {last.at}{note}",
        in_pixels=in_pixels,
    )


def _leftover(
    found: _Findings, last: _Header, size: int, end_of_parse: int, cut: bool, in_pixels: Callable[[int], bool]
) -> None:
    """Bytes after the last element that are not zero padding: a cut header, or parsing that stopped early."""
    end = last.end
    if end is not None and end < size:
        tail = size - end
        if end_of_parse < size or tail >= 12:  # more than any element header: pydicom stopped, not the file
            found.problem(
                f"stopped: reading ended after element {_tag_name(last.tag)} at byte {end} of {size}, "
                f"the {tail} bytes after it are not indexed",
                in_pixels=in_pixels(end),
            )
        else:
            found.problem(
                f"truncated: the file ends at byte {size} inside the header of an element (after element "
                f"{_tag_name(last.tag)})",
                in_pixels=in_pixels(end),
            )
    elif end is None and end_of_parse < size:
        found.problem(
            f"stopped: reading ended at byte {end_of_parse} of {size}, in or after element {_tag_name(last.tag)}, "
            f"the {size - end_of_parse} bytes after it are not indexed",
            in_pixels=in_pixels(end_of_parse),
        )
    elif end is None and cut:
        found.problem(
            f"truncated: the file ends at byte {size} inside the header of an element (after element "
            f"{_tag_name(last.tag)})",
            in_pixels=in_pixels(last.at),
        )


def _header_of(tag: int, elem: RawDataElement | DataElement) -> _Header:
    """A header from what pydicom kept: raw elements, or the undefined-length sequences it parsed at once."""
    if isinstance(elem, RawDataElement):
        return _Header(int(tag), elem.VR, elem.length, elem.value_tell)
    return _Header(int(tag), elem.VR, UNDEFINED, elem.file_tell or 0)


def _all_zero(stream: Any, offset: int, size: int) -> bool:
    """Whether `size` bytes from `offset` are all zero (read in chunks; the read position is kept)."""
    here = stream.tell()
    try:
        for start in range(offset, offset + size, _MB):
            n = min(_MB, offset + size - start)
            if isinstance(stream, _Source):
                chunk = stream.peek_raw(start, n)
            else:
                stream.seek(start)
                chunk = stream.read(n)
            if len(chunk) < n or chunk.count(0) != n:
                return False
        return True
    finally:
        stream.seek(here)


def _truncation_reason(src: _Source, headers: list[_Header]) -> str | None:
    """After pydicom gave up: a reason naming where the file ends, if it ran out of bytes."""
    if not src.short and not src.beyond:
        return None
    at = src.short[-1][0] if src.short else src.beyond[-1]
    inside = next((h for h in reversed(headers) if h.at <= at), None)
    if inside is None:
        return f"truncated: the file ends at byte {src.size}"
    if inside.end is not None and at >= inside.end:
        return (
            f"truncated: the file ends at byte {src.size} inside the header of an element "
            f"(after element {_tag_name(inside.tag)})"
        )
    if inside.vr == "SQ" or inside.length == UNDEFINED:
        return f"truncated: the file ends at byte {src.size} inside sequence {_tag_name(inside.tag)}, before its end"
    return f"truncated: the file ends at byte {src.size} inside element {_tag_name(inside.tag)}"


def _pydicom_warnings(messages: Iterable[str]) -> list[str]:
    """pydicom's own warnings, once each, without the file name and the link to the standard."""
    out: dict[str, None] = {}
    for message in messages:
        if message.startswith("End of file reached before delimiter"):
            continue  # reported as a truncation
        message = re.sub(r" in file .*$", "", message, flags=re.S)
        message = re.sub(r"\s*Please see <[^>]*> for allowed values for each VR\.", "", message)
        out[f"pydicom: {message}"] = None
    return sorted(out)


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _tag_name(tag: int) -> str:
    text = f"({tag >> 16:04X},{tag & 0xFFFF:04X})"
    keyword = pydicom.datadict.keyword_for_tag(tag)
    return f"{text} {keyword}" if keyword else text


def _site(ds: Dataset, path: bytes, root: str, site_from: str) -> str | None:
    """The site of a file: a tag's value, or a folder level below the root (`level:1`)."""
    if site_from.startswith("level:"):
        return _site_level(path, root, site_from)
    try:
        value = ds.get(site_from)
    except Exception:
        return None
    if value is None:
        return None
    return value_text(value.value if isinstance(value, DataElement) else value) or None


def _site_level(path: bytes, root: str, site_from: str) -> str | None:
    """The folder `level:N` below the root, as the site."""
    rel = os.path.relpath(os.fsdecode(path), root).split(os.sep)
    level = int(site_from.split(":", 1)[1])
    return rel[level - 1] if 0 < level < len(rel) else None


def _not_dicom_reason(head: bytes) -> str:
    if not head:
        return "not DICOM: empty file"
    if 128 < len(head) < 132 and b"DICM".startswith(head[128:]):  # cut short, or a stray preamble
        return f"not DICOM: no DICM marker, and the file ends at byte {len(head)}, inside where the marker would be"
    if not any(head):
        return f"not DICOM: no DICM marker, and the first {len(head):,} bytes are all zero"
    return "not DICOM: no DICM marker, and the first bytes are not a DICOM element"


def _tolerate_nul_in_charset() -> None:
    """A Specific Character Set with a NUL byte makes pydicom raise ValueError (codecs.lookup); warn instead.

    pydicom catches LookupError for unknown names, not the ValueError that codecs raises for an
    embedded NUL, so one such byte would make the whole file unreadable.
    """
    lookup = getattr(pydicom.charset, "_python_encoding_for_corrected_encoding", None)
    if lookup is None or getattr(lookup, "tolerant", False):
        return

    def tolerant(encoding: str) -> str:
        try:
            return lookup(encoding)
        except ValueError:
            warnings.warn(f"Unknown encoding {encoding!r} - using default encoding instead", stacklevel=2)
            return pydicom.charset.default_encoding

    tolerant.tolerant = True  # type: ignore[attr-defined]
    pydicom.charset._python_encoding_for_corrected_encoding = tolerant


_tolerate_nul_in_charset()

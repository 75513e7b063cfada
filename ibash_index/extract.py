"""Turn one DICOM file into plain rows: the hierarchy keys and one tuple per data element.

Runs in worker processes, so everything returned is plain Python data that pickles cheaply.
Values are whatever pydicom decodes (per Specific Character Set, which pydicom tracks into
sequence items); the fidelity tests compare the rows with pydicom element by element.
"""

from __future__ import annotations

import functools
import hashlib
import os
import warnings
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import pydicom
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.multival import MultiValue
from pydicom.tag import BaseTag, Tag

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


@dataclass(frozen=True)
class ExtractOptions:
    """What a worker needs to know besides the path."""

    max_blob: int = 256
    defer_size: int = 64 * 1024
    site_from: str = "InstitutionName"


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


class _Walker:
    """Depth-first walk that numbers elements and remembers where each one sits."""

    def __init__(self, fp: BinaryIO | None, options: ExtractOptions) -> None:
        self.fp = fp
        self.options = options
        self.rows: list[tuple] = []
        self.header: dict[str, Any] = {}

    def walk(self, ds: Dataset, parent: int | None, item: int | None, depth: int, prefix: str) -> None:
        for tag in list(ds.keys()):
            self.element(ds, int(tag), parent, item, depth, prefix)

    def element(self, ds: Dataset, tag: int, parent: int | None, item: int | None, depth: int, prefix: str) -> None:
        raw = ds.get_item(tag, keep_deferred=True)
        length = raw.length if isinstance(raw, RawDataElement) else None
        creator = _private_creator(ds, tag)
        flag = None
        try:
            if isinstance(raw, RawDataElement) and raw.value is None and raw.length and raw.VR in BINARY_VRS:
                elem = None  # a large binary value left in the file: hashed from there, never loaded whole
            else:
                elem = ds[tag]
        except Exception as exc:  # pydicom could not convert it: keep the raw bytes, flagged
            elem = None
            flag = f"{type(exc).__name__}: {exc}"
        seq = len(self.rows)
        name = _path_name(tag)
        path = f"{prefix}{name}" if depth else None
        if elem is None:
            row = self._raw_row(raw, tag, creator, seq, parent, item, depth, path, flag)
        elif elem.VR == "SQ":
            row = (
                seq,
                parent,
                item,
                depth,
                tag,
                creator,
                "SQ",
                len(elem.value),
                None,
                None,
                length,
                None,
                None,
                path,
                None,
            )
        else:
            row = self._value_row(elem, tag, creator, seq, parent, item, depth, path, length)
        self.rows.append(row)
        if depth == 0 and tag in HIERARCHY_TAGS:
            self.header[HIERARCHY_TAGS[tag]] = row[9] if row[9] is not None and tag in NUMBER_TAGS else row[8]
        if elem is not None and elem.VR == "SQ":
            for i, child in enumerate(elem.value):
                self.walk(child, seq, i, depth + 1, f"{prefix}{name}[{i}].")

    def _value_row(
        self,
        elem: DataElement,
        tag: int,
        creator: str | None,
        seq: int,
        parent: int | None,
        item: int | None,
        depth: int,
        path: str | None,
        length: int | None,
    ) -> tuple:
        vr = elem.VR
        value = elem.value
        if vr in BINARY_VRS or isinstance(value, (bytes, bytearray)):
            data = bytes(value) if value is not None else b""
            if isinstance(value, list):  # OB/OW split into fragments by some readers
                data = b"".join(value)
            return (
                seq,
                parent,
                item,
                depth,
                tag,
                creator,
                vr,
                elem.VM,
                None,
                None,
                len(data),
                _sha1(data) if data else None,
                data if len(data) <= self.options.max_blob else None,
                path,
                None,
            )
        vm = elem.VM
        text = value_text(value)
        number = None
        if vm == 1 and vr in NUMERIC_VRS:
            try:
                number = float(value)
            except (TypeError, ValueError, OverflowError):
                number = None
        return (seq, parent, item, depth, tag, creator, vr, vm, text, number, length, None, None, path, None)

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
        vr = getattr(raw, "VR", None) or "UN"
        length = getattr(raw, "length", None)
        data = getattr(raw, "value", None)
        if data is None and length and self.fp is not None:
            if length == UNDEFINED:
                length = _encapsulated_length(self.fp, raw.value_tell)
            if tag not in PIXEL_TAGS:
                data = self._read_deferred(raw.value_tell, length)
        if isinstance(data, (bytes, bytearray)):
            digest = _sha1(data) if data else None
            keep = data if flag or len(data) <= self.options.max_blob else None
            text = data.decode("latin-1") if flag and vr not in BINARY_VRS else None
        else:
            digest = keep = text = None
        vm = 1 if length else 0
        return (seq, parent, item, depth, tag, creator, vr, vm, text, None, length, digest, keep, path, flag)

    def _read_deferred(self, offset: int, length: int) -> bytes:
        assert self.fp is not None
        self.fp.seek(offset)
        return self.fp.read(length)


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
    if isinstance(value, (MultiValue, list)):
        value = value[0] if value else ""
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    return str(value or "").strip()


def _sha1(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


def looks_like_dicom(head: bytes) -> bool:
    """Recognise DICOM by content: the DICM marker, or a plausible first element (no preamble)."""
    if len(head) >= 132 and head[128:132] == b"DICM":
        return True
    if len(head) < 8:
        return False
    for order in ("little", "big"):
        group = int.from_bytes(head[0:2], order)
        elem = int.from_bytes(head[2:4], order)
        if group in (0x0000, 0x0002, 0x0004, 0x0008) and elem <= 0x0100:
            return True
    return False


def read_file(path: bytes, root: str, options: ExtractOptions) -> FileResult:
    """Read one file and extract all its elements; never raises for bad input."""
    result = FileResult(path_bytes=path, root=root, status="error")
    try:
        # A str name (surrogate-escaped if need be) lets pydicom reopen the file for deferred values.
        with open(os.fsdecode(path), "rb") as fp:
            st = os.fstat(fp.fileno())
            result.size, result.mtime_ns = st.st_size, st.st_mtime_ns
            head = fp.read(132)
            if not looks_like_dicom(head):
                result.status, result.reason = "not_dicom", _not_dicom_reason(head)
                return result
            fp.seek(0)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                ds = pydicom.dcmread(fp, defer_size=options.defer_size, force=True)
                walker = _Walker(fp, options)
                walker.walk(ds.file_meta, None, None, 0, "")
                walker.walk(ds, None, None, 0, "")
            if not walker.rows:
                result.status, result.reason = "not_dicom", "no DICOM data elements found"
                return result
    except InvalidDicomError as exc:
        result.status, result.reason = "not_dicom", str(exc)
        return result
    except OSError as exc:
        result.reason = f"cannot read: {exc.strerror or exc}"
        return result
    except Exception as exc:  # pydicom raises many types on broken data
        result.reason = f"unreadable DICOM: {type(exc).__name__}: {exc}"
        return result
    header = walker.header
    header["site"] = _site(ds, path, root, options.site_from)
    result.status, result.header, result.rows = "indexed", header, walker.rows
    messages = sorted({str(w.message) for w in caught})
    if messages:
        result.warning = "; ".join(messages)[:2000]
    return result


def _site(ds: Dataset, path: bytes, root: str, site_from: str) -> str | None:
    """The site of a file: a tag's value, or a folder level below the root (`level:1`)."""
    if site_from.startswith("level:"):
        rel = os.path.relpath(os.fsdecode(path), root).split(os.sep)
        level = int(site_from.split(":", 1)[1])
        return rel[level - 1] if 0 < level < len(rel) else None
    try:
        value = ds.get(site_from)
    except Exception:
        return None
    if value is None:
        return None
    return value_text(value.value if isinstance(value, DataElement) else value) or None


def _not_dicom_reason(head: bytes) -> str:
    if not head:
        return "empty file"
    return "no DICOM marker (DICM) and no recognisable first element"

"""The fast read path (ibash_index.rawread) gives exactly the FileResult of the pydicom path, file by file.

Every file is read twice, fast path off and on, each with its own value cache (a wrong cached value
would otherwise pass from one path to the other). The fast path must also be taken: for every
sample file, and for most of pydicom's and the real scanners' files; the rest fall back to pydicom.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path

import pydicom
import pydicom.data
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence

from ibash_index import extract
from ibash_index.extract import ExtractOptions, read_file

from .conftest import corpora_or_skip
from .hostile import MR, dicom, encode, item, make_hostile, text, ui
from .test_hostile import remove_deep


def differential(paths: Iterable[bytes], root: str, options: ExtractOptions | None = None) -> tuple[int, int]:
    """Compare both paths on every file; return (files read by the fast path, files)."""
    options = options or ExtractOptions()
    caches: dict[bool, tuple[dict, dict]] = {True: ({}, {}), False: ({}, {})}
    creators: dict[bool, dict] = {True: {}, False: {}}
    fell_back = []
    slow_read = extract._read

    def counting_read(*args):
        fell_back.append(args[3])
        return slow_read(*args)

    n = fast = 0
    saved = extract.FAST_READ, extract._KNOWN_VALUES, extract._KNOWN_OLD, extract._CREATORS, extract._read
    try:
        extract._read = counting_read
        for path in paths:
            results = {}
            for on in (False, True):
                extract.FAST_READ, extract._CREATORS = on, creators[on]
                extract._KNOWN_VALUES, extract._KNOWN_OLD = caches[on]
                before = len(fell_back)
                results[on] = read_file(path, root, options)
                caches[on] = extract._KNOWN_VALUES, extract._KNOWN_OLD
                if on and len(fell_back) == before:
                    fast += 1
            slow, quick = results[False], results[True]
            assert quick.status == slow.status and quick.reason == slow.reason, path
            assert quick.warning == slow.warning, path
            assert quick.header == slow.header and list(quick.header) == list(slow.header), path
            assert len(quick.rows) == len(slow.rows), path
            for a, b in zip(slow.rows, quick.rows):
                assert a == b, f"{path!r}\n slow: {a}\n fast: {b}"
            assert quick == slow, path
            n += 1
    finally:
        extract.FAST_READ, extract._KNOWN_VALUES, extract._KNOWN_OLD, extract._CREATORS, extract._read = saved
    return fast, n


def files_under(root: Path) -> list[bytes]:
    return sorted(os.fsencode(p) for p in root.rglob("*") if p.is_file())


def test_sample_files_all_take_the_fast_path(sample) -> None:
    paths = [os.fsencode(f.path) for f in sample.dicom_files]
    fast, n = differential(paths, str(sample.root))
    assert n == len(paths) > 100 and fast == n


def test_pydicom_test_files(capsys: pytest.CaptureFixture[str]) -> None:
    listed = pydicom.data.get_testdata_files() + pydicom.data.get_charset_files() + pydicom.data.get_palette_files()
    paths = sorted(os.fsencode(f) for f in set(listed) if os.path.isfile(f))
    fast, n = differential(paths, "/")
    with capsys.disabled():
        print(f"\npydicom test files: {fast} of {n} on the fast path")
    assert n > 200 and fast >= 0.75 * n  # 217 of 271 with pydicom 3.0.2: big endian, deflated, no preamble fall back


def test_real_scanner_corpora() -> None:
    root = corpora_or_skip()
    fast, n = differential(files_under(root), str(root))
    assert n >= 240 and fast >= 0.9 * n  # 248 of 264: no preamble, big endian, an ambiguous VR fall back


def test_hostile_files() -> None:
    root = Path(tempfile.mkdtemp(prefix="ibash-hostile-fast-"))
    try:
        cases = make_hostile(root, bomb_mb=16)
        paths = [os.path.join(os.fsencode(root), c.path) for c in cases]
        regular = [p for p in paths if os.path.isfile(p) and not os.path.islink(p)]
        fast, n = differential(regular, str(root))
        assert n > 30 and fast > 5
    finally:
        remove_deep(root)
        shutil.rmtree(root, ignore_errors=True)


def nested(charset_in_item: bool) -> Dataset:
    """Sequences in sequences, private blocks at each level, a character set of an item's own."""
    inner = Dataset()
    inner.add_new(0x00091010, "LO", "PRIVATE A")
    inner.add_new(0x00091001, "LO", "creator-less?")
    inner.add_new(0x00091011, "LO", "IN ITEM")
    if charset_in_item:
        inner.SpecificCharacterSet = "ISO_IR 192"
        inner.PatientName = "Yamada^Tarou=山田^太郎"
    inner.ReferencedSOPInstanceUID = "1.2.3.4"
    outer = Dataset()
    outer.ReferencedSeriesSequence = Sequence([inner, Dataset()])
    outer.add_new(0x00110010, "LO", "PRIVATE B")
    outer.add_new(0x00111001, "DS", "1.5\\2")
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.PatientName = "Müller^Jörg"
    ds.SOPInstanceUID = "1.2.3"
    ds.SmallestImagePixelValue = 0  # US or SS in implicit VR: pydicom resolves it, so the file falls back
    ds.ReferencedStudySequence = Sequence([outer])
    ds.add_new(0x00291010, "LO", "SIEMENS CSA HEADER")
    ds.add_new(0x00291020, "OB", b"\x01\x02" * 20)
    ds.PixelRepresentation = 0
    return ds


def file_meta(transfer_syntax: str) -> FileMetaDataset:
    meta = FileMetaDataset()
    meta.TransferSyntaxUID = transfer_syntax
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.4"
    meta.MediaStorageSOPInstanceUID = "1.2.3"
    return meta


@pytest.mark.parametrize("implicit", [False, True])
@pytest.mark.parametrize("undefined", [False, True])
def test_nested_sequences_and_private_blocks(tmp_path: Path, implicit: bool, undefined: bool) -> None:
    """Defined and undefined lengths, implicit and explicit VR, charsets inherited and an item's own."""
    paths = []
    for charset_in_item in (False, True):
        ds = nested(charset_in_item)
        if implicit:
            del ds.SmallestImagePixelValue
        for elem in ds.iterall():
            if elem.VR == "SQ":
                elem.is_undefined_length = undefined
                for item in elem.value:
                    item.is_undefined_length_sequence_item = undefined
        ds.file_meta = file_meta(pydicom.uid.ImplicitVRLittleEndian if implicit else pydicom.uid.ExplicitVRLittleEndian)
        path = tmp_path / f"{charset_in_item}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(os.fsencode(path))
    fast, n = differential(paths, str(tmp_path))
    assert fast == n == 2


def test_an_ambiguous_vr_falls_back(tmp_path: Path) -> None:
    ds = nested(False)
    ds.file_meta = file_meta(pydicom.uid.ImplicitVRLittleEndian)
    ds.save_as(tmp_path / "x.dcm", enforce_file_format=True)
    assert differential([os.fsencode(tmp_path / "x.dcm")], str(tmp_path)) == (0, 1)


def test_small_defer_size_and_blobs(sample) -> None:
    """Values left in the file (defer_size) and kept blobs (max_blob) come out the same."""
    paths = [os.fsencode(f.path) for f in sample.dicom_files[:40]]
    fast, n = differential(paths, str(sample.root), ExtractOptions(defer_size=64, max_blob=4096))
    assert fast == n


def test_off_switch() -> None:
    """IBASH_INDEX_SLOW_READ=1 turns the fast path off."""
    code = "from ibash_index import extract; print(extract.FAST_READ)"
    env = {**os.environ, "IBASH_INDEX_SLOW_READ": "1"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_the_value_cache_stays_bounded(sample, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two generations of at most KNOWN_VALUES_MAX entries, whatever the number of files."""
    monkeypatch.setattr(extract, "KNOWN_VALUES_MAX", 500)
    monkeypatch.setattr(extract, "_KNOWN_VALUES", {})
    monkeypatch.setattr(extract, "_KNOWN_OLD", {})
    for f in sample.dicom_files:
        read_file(os.fsencode(f.path), str(sample.root), ExtractOptions())
        assert len(extract._KNOWN_VALUES) <= 500 and len(extract._KNOWN_OLD) <= 500
    assert extract._KNOWN_OLD  # it did roll over


def test_text_decoded_with_replacement_characters_is_flagged(tmp_path: Path) -> None:
    """Bytes that are not valid in the character set: pydicom's text (U+FFFD), flagged, the bytes kept.

    A real U+FFFD in UTF-8 text is a value like any other. Both read paths agree, also inside a sequence.
    """
    latin1 = text("Caf\xe9^Ren\xe9", "latin-1")  # Latin-1 bytes where the data set says UTF-8
    genuine = text("Caf\ufffd^Ok", "utf-8")
    item_body = encode([(0x00081150, "UI", ui(MR)), (0x00100010, "PN", latin1)])
    cases = {
        "latin1_in_utf8.dcm": {0x00100010: (0x00100010, "PN", latin1)},
        "genuine_fffd.dcm": {0x00100010: (0x00100010, "PN", genuine)},
        "in_a_sequence.dcm": {0x00081140: (0x00081140, "SQ", item(item_body))},
    }
    paths = []
    for n, (name, replace) in enumerate(cases.items()):
        replace[0x00080005] = (0x00080005, "CS", text("ISO_IR 192"))
        (tmp_path / name).write_bytes(dicom(70 + n, replace=replace))
        paths.append(os.fsencode(tmp_path / name))
    assert differential(paths, str(tmp_path)) == (3, 3)
    for path, expect in zip(paths, [1, 0, 1]):
        rows = read_file(path, str(tmp_path), ExtractOptions()).rows
        flagged = [row for row in rows if row[14] is not None]
        assert len(flagged) == expect, path
        for row in flagged:
            assert row[14] == extract.REPLACED and row[4] == 0x00100010
            assert row[8] == "Caf\ufffd^Ren\ufffd" and row[12] == latin1 and row[11] is not None
        (name_row,) = [row for row in rows if row[4] == 0x00100010 and row[3] == 0]
        assert name_row[8] == str(pydicom.dcmread(os.fsdecode(path))[0x00100010].value)  # pydicom's text, as ever

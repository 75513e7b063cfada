"""The fast path's own decoding (extract._decode and the plain binary rows) gives exactly pydicom's values.

Each edge-case value is checked twice: against pydicom's conversion directly (what _remember keeps
of it, NaN and -0.0 included), and in generated files, explicit and implicit VR, read by both
paths with `differential`. _decode may decline a value (pydicom converts it then), never differ.
"""

from __future__ import annotations

import math
import os
import struct
import warnings
import zlib
from pathlib import Path

import pydicom
import pydicom.config
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydicom.charset import default_encoding
from pydicom.datadict import DicomDictionary
from pydicom.dataelem import RawDataElement, convert_raw_data_element
from pydicom.tag import BaseTag

from ibash_index import extract
from ibash_index.outcome import ExtractOptions

from .hostile import EXPLICIT_LE, IMPLICIT_LE, element, meta, uid
from .test_extract_fast import differential

# _decode mirrors one pydicom release and switches itself off on any other (every value then goes
# through pydicom, exact but slower): check it against a new release before adding it here.
pytestmark = pytest.mark.skipif(
    not extract._CHECKED_PYDICOM,
    reason=f"direct decoding is checked against pydicom 3.0 only, not {pydicom.__version__}; it is off",
)


def numbers(code: str, *values: float) -> bytes:
    return struct.pack(f"<{len(values)}{code}", *values)


NAN, INF = float("nan"), float("inf")

# VR -> edge-case values (raw bytes as stored, odd lengths and padding included).
VALUES: dict[str, list[bytes]] = {
    "US": [numbers("H", 0), numbers("H", 1), numbers("H", 65535), numbers("H", 1, 2, 3), b"\x01\x02\x03\x04\x05\x06"],
    "SS": [numbers("h", -1), numbers("h", -32768, 32767), numbers("h", 0)],
    "UL": [numbers("L", 0), numbers("L", 2**32 - 1), numbers("L", 1, 2)],
    "SL": [numbers("l", -(2**31)), numbers("l", 2**31 - 1, -5)],
    "FL": [numbers("f", 0.1), numbers("f", -0.0), numbers("f", INF), numbers("f", 1e-45), numbers("f", 1.5, -2.5),
           numbers("f", NAN, 1.0), numbers("f", NAN)],
    "FD": [numbers("d", 0.1), numbers("d", -0.0), numbers("d", 1e308), numbers("d", 5e-324), numbers("d", -INF),
           numbers("d", 1.0, 2.0, 3.0), numbers("d", NAN)],
    "CS": [b"ORIGINAL\\PRIMARY\\M\\ND ", b"MR", b"ABC", b" MR", b"A\\", b"\\", b"\\\\", b" ", b"\x00", b"A\x00",
           b"A \x00", b"A\x00B", b"caf\xe9", b"caf\xc3\xa9", b"lower case", b"A\\ B ", b"A\\\x00"],
    "DA": [b"20190522", b"2019\\x", b"20190522\\20200101 ", b"2019-05-22", b"20190522\x00", b"  "],
    "TM": [b"134856.123456 ", b"1348", b"13:48:56", b"134856.1234567", b"250000", b"134856\\134857", b"1\\"],
    "UI": [b"1.2.840.10008.1.2.1\x00", b"1.2.3 ", b"1.2.3", b"1.02.3", b"0", b"0.0", b"00.1", b"1..2", b"1.2.",
           b".1", b"1.2\\1.3", b"1.2\\ 1.3 ", b" 1.2", b"\\", b"1.2\\", b"1.2\\\\1.3", b"1." + b"2" * 62,
           b"1." + b"2" * 63, b"1.2\n", b"1.2\x00\x00", b"1.2 \x00", b"1.\xb2", b"\x00"],
    "DS": [b"1e3", b" 5 ", b"-0", b"+1.5", b".5", b"5.", b"1.5\\2", b"1\\ 2 ", b"\\", b"1.5\x00", b"1.5 \x00",
           b"nan", b"inf", b"-Infinity", b"1e999", b"-1e-999", b"1234567890123456", b"12345678901234567", b"1_0",
           b"0x10", b" ", b"\x00", b"1.5\\", b"\\1", b"1e", b"e3", b"\xb3", b"1.5\t", b"\t1.5", b"1.5\\2\\-3.25e-2",
           b"00012", b"1E+03", b"1d3", b"1,5", b"- 1", b"\x001.5"],
    "AE": [b" STORESCP ", b"A\\ B", b"AE"],  # leading spaces go too: left to pydicom
    "IS": [b"1e3", b" 5 ", b"-0", b"+7", b"1.0", b"1.5", b"99999999999", b"999999999999", b"9999999999999",
           b"-99999999999", b"1\\2", b"1\\", b"1_0", b" ", b"12 ", b"007", b"\x00", b"5\x00", b"1\\ 2", b"\xb3",
           b"+-1", b"2147483648", b"\\"],
}  # fmt: skip
# Values _decode must take (the common case); the rest it may decline.
DECODED: dict[str, list[bytes]] = {
    "US": VALUES["US"],
    "FD": VALUES["FD"],
    "CS": [b"ORIGINAL\\PRIMARY\\M\\ND ", b"MR", b"A\\", b" ", b"caf\xe9"],
    "TM": [b"134856.123456 ", b"1348", b"13:48:56"],
    "UI": [b"1.2.840.10008.1.2.1\x00", b"1.2.3 ", b"0.0", b"1.2\\1.3", b"1." + b"2" * 62],
    "DS": [b"1e3", b" 5 ", b"-0", b"+1.5", b".5", b"5.", b"1.5\\2", b"1.5\x00", b"1.5\\2\\-3.25e-2", b"1E+03"],
    "IS": [b" 5", b"-0", b"+7", b"99999999999", b"1\\2", b"007", b"5\x00", b"2147483648"],
}
# Values pydicom cannot convert at all (the file falls back to pydicom, which flags the element).
FAILING: dict[str, list[bytes]] = {
    "US": [b"\x01", b"\x01\x02\x03"],
    "UL": [b"\x00" * 6],
    "FL": [b"\x00" * 6],
    "FD": [b"\x00" * 12],
}
BINARY: dict[str, list[bytes]] = {
    "OB": [b"\x00", b"\x01\x02\x03", bytes(range(256)) * 2, b"\xff\xfe"],
    "OW": [b"\x01\x02\x03", b"\x00\x00", bytes(300)],
    "OF": [numbers("f", 1.5, NAN)],
    "OD": [numbers("d", -0.0)],
}


def pydicom_known(vr: str, tag: int, value: bytes) -> tuple | None:
    """What _remember keeps of pydicom's conversion of an explicit VR value (None: pydicom raises)."""
    raw = RawDataElement(BaseTag(tag), vr, len(value), value, 0, False, True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            elem = convert_raw_data_element(raw, encoding=default_encoding)
        except Exception:
            return None
    saved = extract._KNOWN_VALUES, extract._KNOWN_OLD
    try:  # _remember keeps what it makes: not in the caches of the other tests
        return extract._remember((tag, value), elem, tuple(str(w.message) for w in caught))
    finally:
        extract._KNOWN_VALUES, extract._KNOWN_OLD = saved


def same(a: tuple, b: tuple) -> bool:
    """Equal, NaN equal to NaN, -0.0 not equal to 0.0, 1 not equal to 1.0."""
    return repr(a) == repr(b) and all(
        type(x) is type(y) or (isinstance(x, float) and math.isnan(x)) for x, y in zip(a, b)
    )


def tags_of(vr: str) -> list[int]:
    """Public tags whose dictionary VR is exactly `vr` (ordinary data set groups, no LUT descriptors)."""
    return sorted(
        tag
        for tag, entry in DicomDictionary.items()
        if entry[0] == vr and 0x0008 <= tag >> 16 <= 0x0072 and tag & 0xFFFF
        and tag not in (0x00080005, 0x00080016, 0x00080018) and tag not in extract._LUT_DESCRIPTORS
    )  # fmt: skip


def check(vr: str, tag: int, value: bytes) -> bool:
    """_decode gives what pydicom gives, or declines; whether it decoded the value."""
    got = extract._decode(vr, tag, value)
    if got is None:
        return False
    expected = pydicom_known(vr, tag, value)
    assert expected is not None and not expected[4], value  # taken: pydicom converts it quietly
    assert same(got, expected), f"{vr} {value!r}\n pydicom: {expected}\n decoded: {got}"
    return True


@pytest.mark.parametrize("vr", sorted(VALUES))
def test_decode_agrees_with_pydicom(vr: str) -> None:
    assert extract._direct_decoding()  # with pydicom 3.0 and its default settings
    tag = tags_of(vr)[0]
    declined = [value for value in VALUES[vr] + FAILING.get(vr, []) if not check(vr, tag, value)]
    assert not set(DECODED.get(vr, [])) & set(declined), f"{vr}: declined {declined}"


TEXT_BYTES = st.lists(st.sampled_from(list(b"0123456789.+-eE \\\x00\tAZaz_:\xb2\xe9")), min_size=1, max_size=40).map(
    bytes
)


@settings(max_examples=400, deadline=None)
@given(vr=st.sampled_from(["CS", "DA", "TM", "UI", "DS", "IS"]), value=TEXT_BYTES)
def test_decode_agrees_with_pydicom_on_any_text(vr: str, value: bytes) -> None:
    check(vr, tags_of(vr)[0], value)


@settings(max_examples=300, deadline=None)
@given(vr=st.sampled_from(sorted(extract._NUMBER_VRS)), value=st.binary(min_size=1, max_size=40))
def test_decode_agrees_with_pydicom_on_any_number(vr: str, value: bytes) -> None:
    check(vr, tags_of(vr)[0], value)


def test_lut_descriptors_are_left_to_pydicom() -> None:
    """pydicom fixes the first value of a LUT descriptor; _decode leaves those tags alone."""
    assert extract._decode("SS", 0x00281101, numbers("h", -32768, 0, 16)) is None
    assert extract._decode("US", 0x00283002, numbers("H", 4096)) is None


def write(path: Path, ts: str, elements: list[tuple[int, str, bytes]], *, charset: bytes | None = None) -> bytes:
    """A file of the given elements (implicit VR: their VRs left out), with a file meta group."""
    implicit = ts == IMPLICIT_LE
    sop = uid(zlib.crc32(path.name.encode()))
    body = [(0x00080016, "UI", b"1.2.840.10008.5.1.4.1.1.4\x00"), (0x00080018, "UI", sop.encode() + b"\x00")]
    if charset is not None:
        body.append((0x00080005, "CS", charset))
    data = b"".join(element(tag, None if implicit else vr, value) for tag, vr, value in sorted(body + elements))
    path.write_bytes(meta(ts, sop) + data)
    return os.fsencode(path)


def single_nan(vr: str, value: bytes) -> bool:
    if vr == "DS":
        return value.strip() == b"nan"
    size = {"FL": 4, "FD": 8}.get(vr)
    return len(value) == size and math.isnan(struct.unpack("<f" if size == 4 else "<d", value)[0])


def files_of(tmp_path: Path, values: dict[str, list[bytes]], ts: str, tag: str, nan: bool = True) -> list[bytes]:
    """One or more files per VR, each value in an element of its own."""
    paths = []
    for vr, vs in values.items():
        if not nan:  # a single NaN number compares unequal to itself: rows with one cannot be compared
            vs = [v for v in vs if not single_nan(vr, v)]
        tags = tags_of(vr)
        for n, first in enumerate(range(0, len(vs), len(tags))):
            chunk = vs[first : first + len(tags)]
            paths.append(write(tmp_path / f"{tag}-{vr}-{n}.dcm", ts, [(t, vr, v) for t, v in zip(tags, chunk)]))
    return paths


@pytest.mark.parametrize(
    "options", [ExtractOptions(), ExtractOptions(max_blob=2, defer_size=100)], ids=["default", "small"]
)
@pytest.mark.parametrize("ts", [EXPLICIT_LE, IMPLICIT_LE], ids=["explicit", "implicit"])
def test_files_with_edge_case_values(tmp_path: Path, ts: str, options: ExtractOptions) -> None:
    """Both paths give the same rows; every file is read by the fast path."""
    paths = files_of(tmp_path, {**VALUES, **BINARY}, ts, "edge", nan=False)
    fast, n = differential(paths, str(tmp_path), options)
    assert fast == n == len(paths)


def test_explicit_un_values(tmp_path: Path) -> None:
    """UN is no plain binary VR: pydicom reads a public tag's UN value by its dictionary VR."""
    elements = [(0x00180050, "UN", b"1.5 "), (0x00280010, "UN", numbers("H", 512)), (0x00281050, "UN", b"40\\400"),
                (0x00290010, "LO", b"ACME"), (0x00291001, "UN", b"\x01\x02\x03")]  # fmt: skip
    path = write(tmp_path / "un.dcm", EXPLICIT_LE, elements)
    assert differential([path], str(tmp_path))[1] == 1


@pytest.mark.parametrize("ts", [EXPLICIT_LE, IMPLICIT_LE], ids=["explicit", "implicit"])
def test_files_with_values_pydicom_cannot_convert(tmp_path: Path, ts: str) -> None:
    paths = files_of(tmp_path, FAILING, ts, "failing")
    differential(paths, str(tmp_path))


def test_values_under_a_character_set(tmp_path: Path) -> None:
    """CS, DA, TM and UI are read in the default encoding whatever the Specific Character Set says."""
    elements = [(0x00080008, "CS", b"caf\xc3\xa9\\\xe9"), (0x00080020, "DA", b"2019\xc3\xa9"),
                (0x00080030, "TM", b"1\xe9"), (0x00200052, "UI", b"1.2.3\x00"),
                (0x00100010, "PN", b"M\xc3\xbcller^J\xc3\xb6rg")]  # fmt: skip
    paths = [
        write(tmp_path / f"{cs!r}.dcm", EXPLICIT_LE, elements, charset=cs) for cs in (b"ISO_IR 192", b"ISO_IR 100")
    ]
    assert differential(paths, str(tmp_path)) == (2, 2)


def test_non_default_pydicom_settings_turn_it_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With a setting _decode does not mirror, pydicom converts every value (and the paths still agree)."""
    paths = files_of(tmp_path, {"DA": VALUES["DA"], "TM": VALUES["TM"], "DS": [b"1.5"]}, EXPLICIT_LE, "settings")
    monkeypatch.setattr(pydicom.config, "datetime_conversion", True)
    assert not extract._direct_decoding()

    def refuse(*args: object) -> None:
        raise AssertionError("_decode called with a non-default pydicom setting")

    monkeypatch.setattr(extract, "_decode", refuse)
    differential(paths, str(tmp_path))


NUMBER_TEXT = st.one_of(
    st.integers(-(10**13), 10**13).map(str),
    st.floats(allow_nan=False, width=32).map(repr),
    st.from_regex(r"[+-]?[0-9]{0,8}\.?[0-9]{0,6}([eE][+-]?[0-9]{1,3})?", fullmatch=True),
)
UID_TEXT = st.lists(st.integers(0, 10**20).map(str), min_size=1, max_size=8).map(".".join)


def values_of(items: st.SearchStrategy[str]) -> st.SearchStrategy[bytes]:
    """Backslash-joined values, padded (or not) the ways files pad them."""
    joined = st.lists(items, min_size=1, max_size=4).map("\\".join)
    return st.tuples(st.sampled_from(["", " "]), joined, st.sampled_from(["", " ", "\x00", " \x00"])).map(
        lambda parts: "".join(parts).encode("ascii")
    )


@settings(max_examples=400, deadline=None)
@given(vr=st.sampled_from(["DS", "IS"]), value=values_of(NUMBER_TEXT))
def test_decode_agrees_with_pydicom_on_numbers_as_text(vr: str, value: bytes) -> None:
    check(vr, tags_of(vr)[0], value)


@settings(max_examples=200, deadline=None)
@given(value=values_of(UID_TEXT))
def test_decode_agrees_with_pydicom_on_uids(value: bytes) -> None:
    check("UI", tags_of("UI")[0], value)

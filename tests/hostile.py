"""Hostile inputs for the build, made at test time (nothing binary is committed).

`make_hostile(root)` writes one file (or link, FIFO, folder) per case under `root` and returns
the cases with the outcome each must end in. Most files are encoded here byte by byte, so a
case is exactly the damage it names; `encode()` and `base_elements()` are the small DICOM
writer they share. The readers at the end stand in for files that hang a worker or kill it.
"""

from __future__ import annotations

import os
import struct
import time
import zipfile
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pydicom
import pydicom.data
from pydicom.dataset import Dataset, FileMetaDataset

from ibash_index.extract import ExtractOptions, FileResult, read_file

MR = "1.2.840.10008.5.1.4.1.1.4"
IMPLICIT_LE = "1.2.840.10008.1.2"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
DEFLATED = "1.2.840.10008.1.2.1.99"
EXPLICIT_BE = "1.2.840.10008.1.2.2"
JPEG_BASELINE = "1.2.840.10008.1.2.4.50"
ROOT_UID = "1.2.826.0.1.3680043.10.1234"  # an example root: never a real patient

LONG_VRS = {"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"}
UNDEFINED = 0xFFFFFFFF

# Values that must reach the database as they are and never reach the terminal raw.
SQL_NAME = "Robert'); DROP TABLE files;--^Tables"
SQL_ID = "1' OR '1'='1"
ESCAPE_TEXT = "\x1b[2J\x1b]0;owned\x07\x1b[31mred"
JAPANESE_NAME = "Yamada^Tarou=山田^太郎=やまだ^たろう"
PHI_MARKER = "PHIMARKER"  # in names and values: must never show up in output at default verbosity

Element = tuple[int, str | None, bytes]  # tag, VR (None: implicit), encoded value


@dataclass(frozen=True)
class Case:
    """One hostile input and the outcome it must end in.

    `status` is the files.status to expect; `reason` / `warning` are regular expressions the
    files.reason / files.warning must match (warning None: no warning recorded).
    """

    name: str
    path: bytes  # relative to the root
    status: str
    reason: str | None = None
    warning: str | None = None


def uid(n: int | str) -> str:
    return f"{ROOT_UID}.{n}"


def pad(value: bytes, fill: bytes = b" ") -> bytes:
    return value + fill if len(value) % 2 else value


def text(value: str, encoding: str = "ascii") -> bytes:
    return pad(value.encode(encoding))


def ui(value: str) -> bytes:
    return pad(value.encode(), b"\x00")


def us(*values: int, big: bool = False) -> bytes:
    return struct.pack(f"{'>' if big else '<'}{len(values)}H", *values)


def element(tag: int, vr: str | None, value: bytes, *, big: bool = False, length: int | None = None) -> bytes:
    """One encoded data element: implicit VR when `vr` is None; `length` overrides the true length."""
    order = ">" if big else "<"
    size = len(value) if length is None else length
    head = struct.pack(f"{order}HH", tag >> 16, tag & 0xFFFF)
    if vr is None:
        return head + struct.pack(f"{order}L", size) + value
    if vr in LONG_VRS or size > 0xFFFF:
        return head + vr.encode() + b"\x00\x00" + struct.pack(f"{order}L", size) + value
    return head + vr.encode() + struct.pack(f"{order}H", size) + value


def encode(elements: Iterable[Element], *, big: bool = False) -> bytes:
    return b"".join(element(tag, vr, value, big=big) for tag, vr, value in elements)


def item(body: bytes, *, big: bool = False, undefined: bool = False) -> bytes:
    order = ">" if big else "<"
    if undefined:
        return (
            struct.pack(f"{order}HHL", 0xFFFE, 0xE000, UNDEFINED) + body + struct.pack(f"{order}HHL", 0xFFFE, 0xE00D, 0)
        )
    return struct.pack(f"{order}HHL", 0xFFFE, 0xE000, len(body)) + body


SEQ_DELIMITER = struct.pack("<HHL", 0xFFFE, 0xE0DD, 0)


def meta(ts: str, sop_uid: str, *, preamble: bool = True) -> bytes:
    """Preamble, DICM and the file meta group (always explicit VR little endian)."""
    body = encode(
        [
            (0x00020001, "OB", b"\x00\x01"),
            (0x00020002, "UI", ui(MR)),
            (0x00020003, "UI", ui(sop_uid)),
            (0x00020010, "UI", ui(ts)),
            (0x00020012, "UI", ui(uid("9.1"))),
            (0x00020013, "SH", text("HOSTILE_1")),
        ]
    )
    group = element(0x00020000, "UL", struct.pack("<L", len(body)))
    return (b"\x00" * 128 + b"DICM" if preamble else b"") + group + body


def base_elements(n: int, *, name: str = "Doe^Jane", pixels: bytes | None = None, big: bool = False) -> list[Element]:
    """A small, valid MR header (explicit VR) with unique UIDs for case `n`; pixel data last."""
    pixels = bytes(range(128)) if pixels is None else pixels
    elements: list[Element] = [
        (0x00080016, "UI", ui(MR)),
        (0x00080018, "UI", ui(uid(f"1.{n}"))),
        (0x00080020, "DA", text("20200102")),
        (0x00080060, "CS", text("MR")),
        (0x00080070, "LO", text("Hostile Devices")),
        (0x00080080, "LO", text("Hostile Hospital")),
        (0x0008103E, "LO", text(f"case {n}")),
        (0x00100010, "PN", text(name)),
        (0x00100020, "LO", text(f"H{n:04d}")),
        (0x0020000D, "UI", ui(uid("2.1"))),
        (0x0020000E, "UI", ui(uid(f"3.{n}"))),
        (0x00200011, "IS", text("1")),
        (0x00200013, "IS", text(str(n))),
        (0x00280010, "US", us(8, big=big)),
        (0x00280011, "US", us(8, big=big)),
        (0x00280100, "US", us(16, big=big)),
        (0x7FE00010, "OW", pixels),
    ]
    return elements


def dicom(n: int, *, ts: str = EXPLICIT_LE, replace: dict[int, Element] | None = None, **kwargs) -> bytes:
    """A whole valid file for case `n`, with some elements replaced (or added)."""
    elements = {tag: (tag, vr, value) for tag, vr, value in base_elements(n, **kwargs)}
    elements.update(replace or {})
    return meta(ts, uid(f"1.{n}")) + encode(sorted(elements.values()))


def nested(depth: int, *, undefined: bool) -> bytes:
    """ReferencedImageSequence items, each holding the next sequence, `depth` levels deep."""
    inner = element(0x00081150, "UI", ui(MR))
    for _ in range(depth):
        if undefined:
            seq = item(inner, undefined=True)
            inner = element(0x00081140, "SQ", b"", length=UNDEFINED) + seq + SEQ_DELIMITER
        else:
            inner = element(0x00081140, "SQ", item(inner))
    return inner


def deflate_stream(chunks: Iterable[bytes]) -> bytes:
    z = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    return b"".join(z.compress(c) for c in chunks) + z.flush()


def deflate_bomb(n: int, inflated_mb: int) -> bytes:
    """A deflated data set of a few hundred KB whose private OB value inflates to `inflated_mb` MB of zeros.

    One MB of zeros is deflated once, ended with a full flush (byte-aligned, no back references
    across it), and repeated: a valid stream made in milliseconds instead of seconds.
    """
    size = inflated_mb * 1024 * 1024
    head = encode(base_elements(n)[:-1]) + element(0x00091010, "OB", b"", length=size)
    z = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    first = z.compress(head) + z.flush(zlib.Z_FULL_FLUSH)
    one_mb = z.compress(bytes(1024 * 1024)) + z.flush(zlib.Z_FULL_FLUSH)
    return meta(DEFLATED, uid(f"1.{n}")) + first + one_mb * inflated_mb + z.flush()


def _write(root: Path, rel: str | bytes, data: bytes) -> bytes:
    path = os.path.join(os.fsencode(root), os.fsencode(rel))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as fp:
        fp.write(data)
    return os.fsencode(rel)


def _japanese(n: int) -> bytes:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = EXPLICIT_LE
    ds.file_meta.MediaStorageSOPClassUID = MR
    ds.file_meta.MediaStorageSOPInstanceUID = uid(f"1.{n}")
    ds.SpecificCharacterSet = ["", "ISO 2022 IR 87"]
    ds.SOPClassUID = MR
    ds.SOPInstanceUID = uid(f"1.{n}")
    ds.Modality = "MR"
    ds.PatientName = JAPANESE_NAME
    ds.StudyInstanceUID = uid("2.1")
    ds.SeriesInstanceUID = uid(f"3.{n}")
    from io import BytesIO

    buf = BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def make_hostile(root: Path, *, bomb_mb: int = 600, deep_levels: int = 1000) -> list[Case]:
    """Write every hostile case under `root` (created) and return the expected outcomes."""
    root.mkdir(parents=True, exist_ok=True)
    cases: list[Case] = []

    def add(name: str, data: bytes, status: str, reason: str | None = None, warning: str | None = None) -> None:
        cases.append(Case(name, _write(root, name, data), status, reason, warning))

    good = dicom(1)
    # --- truncation -------------------------------------------------------------------------
    cut = good.index(b"Doe^Jane") + 3
    add(
        "truncated_mid_element.dcm",
        good[:cut],
        "error",
        r"^truncated: the file ends at byte \d+ inside element \(0010,0010\)",
    )
    header = good.index(struct.pack("<HH", 0x0020, 0x000D))
    add(
        "truncated_mid_tag_header.dcm",
        dicom(2)[: header + 3],
        "error",
        r"^truncated: the file ends at byte \d+ inside the header of an element",
    )
    add(
        "truncated_after_meta.dcm",
        meta(EXPLICIT_LE, uid("1.3")),
        "error",
        r"^truncated: .*no data set after the file meta",
    )
    small = dicom(4, pixels=bytes(8192))
    add(
        "truncated_mid_pixel_data.dcm",
        small[:-4000],
        "indexed",
        warning=r"^truncated: pixel data \(7FE0,0010\) PixelData has 4192 of its 8192 bytes",
    )
    large = dicom(5, pixels=bytes(200_000))
    add(
        "truncated_mid_large_pixel_data.dcm",
        large[:-100_000],
        "indexed",
        warning=r"^truncated: pixel data \(7FE0,0010\) PixelData has 100000 of its 200000 bytes",
    )
    # --- odd but valid encodings -------------------------------------------------------------
    add("no_preamble.dcm", meta(EXPLICIT_LE, uid("1.6"), preamble=False) + encode(base_elements(6)), "indexed")
    acr = b"".join(element(t, None, v) for t, _, v in base_elements(7))
    add("acr_nema_implicit_no_meta.dcm", acr, "indexed")
    big_elements = base_elements(8, big=True)
    big_elements[-1] = (0x7FE00010, "OW", us(*range(64), big=True))
    add("explicit_big_endian.dcm", meta(EXPLICIT_BE, uid("1.8")) + encode(big_elements, big=True), "indexed")
    add("deflated.dcm", meta(DEFLATED, uid("1.9")) + deflate_stream([encode(base_elements(9))]), "indexed")
    ends_in_sequence = encode(base_elements(39)[:-1]) + nested(3, undefined=True)
    add(
        "deflated_ending_in_a_sequence.dcm", meta(DEFLATED, uid("1.39")) + deflate_stream([ends_in_sequence]), "indexed"
    )
    cut_deflated = meta(DEFLATED, uid("1.40")) + deflate_stream([encode(base_elements(40))])
    add("deflated_truncated.dcm", cut_deflated[:-20], "error", r"^truncated: .* inside the deflated data set$")
    add(
        "deflate_bomb.dcm",
        deflate_bomb(10, bomb_mb),
        "error",
        r"^too large: the deflated data set inflates to more than \d+ MB",
    )
    # --- lengths and delimiters --------------------------------------------------------------
    beyond = b"".join(
        element(t, None, v, length=0x7FFFFFF0 if t == 0x00100010 else None) for t, _, v in base_elements(11)
    )
    add(
        "length_beyond_end_implicit.dcm",
        beyond,
        "error",
        r"^truncated: .* inside element \(0010,0010\) PatientName, whose value of 2147483632 bytes",
    )
    ob = dicom(12, replace={0x00091010: (0x00091010, "OB", b"")})
    ob = ob.replace(element(0x00091010, "OB", b""), element(0x00091010, "OB", b"", length=1 << 30))
    add(
        "length_beyond_end_ob.dcm",
        ob,
        "error",
        r"^truncated: .* inside element \(0009,1010\), whose value of 1073741824 bytes",
    )
    no_delim = meta(EXPLICIT_LE, uid("1.13")) + encode(base_elements(13)[:-1])
    no_delim += element(0x00400275, "SQ", b"", length=UNDEFINED) + item(element(0x00400007, "LO", text("step")))
    add("undefined_length_sequence_no_delimiter.dcm", no_delim, "error", r"^truncated: .*sequence \(0040,0275\)")
    frag = meta(JPEG_BASELINE, uid("1.14")) + encode(base_elements(14)[:-1])
    frag += element(0x7FE00010, "OB", b"", length=UNDEFINED) + item(b"") + item(b"\xff\xd8\xff\xe0" + bytes(60))
    add(
        "undefined_length_pixel_data_no_delimiter.dcm",
        frag,
        "indexed",
        warning=r"^truncated: pixel data \(7FE0,0010\) PixelData has no end",
    )
    deep = meta(EXPLICIT_LE, uid("1.15")) + encode(base_elements(15)[:-1]) + nested(300, undefined=True)
    add("sequences_nested_300_deep.dcm", deep, "error", r"^too deep: sequences nested")
    deep_defined = meta(EXPLICIT_LE, uid("1.16")) + encode(base_elements(16)[:-1]) + nested(300, undefined=False)
    add("sequences_nested_300_deep_defined_length.dcm", deep_defined, "error", r"^too deep: sequences nested")
    shallow = meta(EXPLICIT_LE, uid("1.37")) + encode(base_elements(37)[:-1]) + nested(50, undefined=True)
    add("sequences_nested_50_deep.dcm", shallow, "indexed")
    # --- character sets ----------------------------------------------------------------------
    add(
        "charset_bogus.dcm",
        dicom(17, replace={0x00080005: (0x00080005, "CS", text("ISO_IR 999"))}),
        "indexed",
        warning=r"Unknown encoding 'ISO_IR 999'",
    )
    add(
        "charset_with_nul.dcm",
        dicom(18, replace={0x00080005: (0x00080005, "CS", b"ISO_IR\x00100 ")}),
        "indexed",
        warning=r"Unknown encoding",
    )
    add("iso2022_japanese.dcm", _japanese(19), "indexed")
    bad_utf8 = {
        0x00080005: (0x00080005, "CS", text("ISO_IR 192")),
        0x00100010: (0x00100010, "PN", b"Bad\xff\xfeName^X"),
    }
    add("invalid_utf8_iso_ir_192.dcm", dicom(20, replace=bad_utf8), "indexed", warning=r"(?i)decode")
    latin = {0x00100010: (0x00100010, "PN", text("Müller^Jürgen", "latin-1"))}
    add("latin1_without_charset.dcm", dicom(21, replace=latin), "indexed")
    # --- values and tags ---------------------------------------------------------------------
    garbage = {
        0x00080020: (0x00080020, "DA", text("20201345")),
        0x00180050: (0x00180050, "DS", text("abc")),
        0x00200013: (0x00200013, "IS", text("1x2")),
    }
    add("garbage_ds_is_da.dcm", dicom(22, replace=garbage), "indexed", warning=r"Invalid value for VR")
    add("private_without_creator.dcm", dicom(23, replace={0x00191010: (0x00191010, "LO", text("orphan"))}), "indexed")
    multi = {0x00190010: (0x00190010, "LO", text("ACME 1\\ACME 2")), 0x00191010: (0x00191010, "LO", text("x"))}
    add("private_creator_multivalued.dcm", dicom(24, replace=multi), "indexed")
    dup = meta(EXPLICIT_LE, uid("1.25")) + encode(base_elements(25, name="First^Name")[:8])
    dup += element(0x00100010, "PN", text("Second^Name")) + encode(base_elements(25)[8:])
    add("duplicate_tags.dcm", dup, "indexed", warning=r"^duplicate: element \(0010,0010\) PatientName appears 2 times")
    add("pn_with_vr_ul.dcm", dicom(26, replace={0x00100010: (0x00100010, "UL", struct.pack("<L", 1234567))}), "indexed")
    bad_vr = dicom(27).replace(element(0x0008103E, "LO", text("case 27")), b"\x08\x00\x3e\x10zz\x08\x00case 27 ")
    add("invalid_vr_bytes.dcm", bad_vr, "error", r"^truncated: .*\(0008,103E\) SeriesDescription.*not a valid VR")
    unknown_vr = dicom(38).replace(element(0x0008103E, "LO", text("case 38")), b"\x08\x00\x3e\x10ZZ\x08\x00case 38 ")
    add("unknown_vr_letters.dcm", unknown_vr, "indexed", warning=r"^undecodable: 1 element could not be decoded")
    add(
        "trailing_zeros.dcm",
        dicom(28) + bytes(1001),
        "indexed",
        warning=r"^padding: 1001 zero bytes after the data set",
    )
    add("trailing_zeros_short.dcm", dicom(41) + bytes(5), "indexed", warning=r"^padding: 5 zero bytes after")
    encapsulated = meta(JPEG_BASELINE, uid("1.42")) + encode(base_elements(42)[:-1])
    encapsulated += element(0x7FE00010, "OB", b"", length=UNDEFINED) + item(b"") + item(b"\xff\xd8" + bytes(62))
    add(
        "trailing_zeros_after_encapsulated_pixels.dcm",
        encapsulated + SEQ_DELIMITER + bytes(21),
        "indexed",
        warning=r"^padding: 21 zero bytes after",
    )
    values = {
        0x00100010: (0x00100010, "PN", text(SQL_NAME)),
        0x00100020: (0x00100020, "LO", text(SQL_ID)),
        0x00081030: (0x00081030, "LO", text(ESCAPE_TEXT)),
    }
    add("sql_and_terminal_escapes.dcm", dicom(29, replace=values), "indexed", warning=r"unknown escape sequence")
    add("same_sop_uid_a.dcm", dicom(30), "indexed")
    add("same_sop_uid_b.dcm", dicom(30), "indexed")
    add("DICOMDIR", Path(pydicom.data.get_testdata_file("DICOMDIR")).read_bytes(), "indexed")
    # --- not DICOM ---------------------------------------------------------------------------
    add("empty.dcm", b"", "not_dicom", r"^not DICOM: empty file$")
    zero = r"^not DICOM: no DICM marker, and the first [\d,]+ bytes are all zero$"
    add("zeros.dcm", bytes(1000), "not_dicom", zero)  # a failed or preallocated copy
    add("cut_in_preamble.dcm", dicom(43)[:50], "not_dicom", zero)
    add("cut_in_dicm.dcm", dicom(44)[:130], "not_dicom", r"^not DICOM: no DICM marker, and the file ends at byte 130,")
    add("text.dcm", b"Patient list\nDoe, Jane\n", "not_dicom", r"^not DICOM")
    add("archive.dcm", _zip(), "not_dicom", r"^not DICOM")
    add(
        "catalog.dcm",
        b'<?xml version="1.0"?><cat:Catalog xmlns:cat="http://nrg.wustl.edu/catalog"/>',
        "not_dicom",
        r"^not DICOM",
    )
    add("series/.DS_Store", b"\x00\x00\x00\x01Bud1" + bytes(range(256)) * 8, "not_dicom", r"^not DICOM")
    add("series/Thumbs.db", bytes.fromhex("d0cf11e0a1b11ae1") + bytes(504), "not_dicom", r"^not DICOM")
    apple = bytes.fromhex("0005160700020000") + b"Mac OS X        " + bytes.fromhex("0002") + bytes(200)
    add("series/._image.dcm", apple, "not_dicom", r"^not DICOM")
    # --- names -------------------------------------------------------------------------------
    for i, name in enumerate(
        [b"caf\xe9_\xff\xfe.dcm", b"esc\x1b[31m\x07.dcm", b"new\nline.dcm", b"x'; DROP TABLE files; --.dcm"]
    ):
        cases.append(Case(f"name {name!r}", _write(root, b"names/" + name, dicom(31 + i)), "indexed"))
    cases.append(
        Case(
            "PHI in the name",
            _write(root, f"{PHI_MARKER}^Patient/{PHI_MARKER}.dcm", dicom(35, name=f"{PHI_MARKER}^Jane")),
            "indexed",
        )
    )
    # --- what a file system can hold ---------------------------------------------------------
    links = os.fsencode(root / "links")
    os.makedirs(links, exist_ok=True)
    os.symlink("loop", os.path.join(links, b"loop"))
    cases.append(Case("symlink loop", b"links/loop", "skipped", r"^symlink loop$"))
    os.symlink("..", os.path.join(links, b"parent"))
    cases.append(Case("symlink to a parent folder", b"links/parent", "skipped", r"inside the roots"))
    os.symlink("/dev/zero", os.path.join(links, b"zero.dcm"))
    cases.append(Case("symlink to /dev/zero", b"links/zero.dcm", "skipped", r"^symlink to outside the roots"))
    os.symlink("no-such-file.dcm", os.path.join(links, b"dangling.dcm"))
    cases.append(Case("dangling symlink", b"links/dangling.dcm", "skipped", r"^dangling symlink$"))
    os.mkfifo(os.path.join(links, b"fifo.dcm"))
    cases.append(Case("FIFO", b"links/fifo.dcm", "skipped", r"^not a regular file \(FIFO\)$"))
    deep_dir = b"deep"
    os.mkdir(os.path.join(os.fsencode(root), deep_dir))
    for _ in range(deep_levels):  # os.makedirs recurses once per level
        deep_dir = os.path.join(deep_dir, b"d")
        os.mkdir(os.path.join(os.fsencode(root), deep_dir))
    cases.append(
        Case(
            f"{deep_levels}-level folder tree",
            _write(root, os.path.join(deep_dir, b"bottom.dcm"), dicom(36)),
            "indexed",
        )
    )
    return cases


def _zip() -> bytes:
    from io import BytesIO

    buf = BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("a.dcm", dicom(99))
    return buf.getvalue()


def copy_corpus(root: Path, count: int, *, seed: int = 0) -> list[Path]:
    """`count` small valid files (a few KB each) with unique UIDs, spread over series folders; fast."""
    paths = []
    for i in range(count):
        n = seed * 1_000_000 + i + 1000
        series = i // 50
        elements = base_elements(n)
        elements = [(t, v, ui(uid(f"3.{seed}.{series}")) if t == 0x0020000E else b) for t, v, b in elements]
        path = root / f"s{seed}-{series:03d}" / f"{i:05d}.dcm"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(meta(EXPLICIT_LE, uid(f"1.{n}")) + encode(elements))
        paths.append(path)
    return paths


def hanging_reader(path: bytes, root: str, options: ExtractOptions) -> FileResult:
    """A Pool reader (module level: it is pickled) like read_file, except that a file named *hang* never ends."""
    if b"hang" in os.path.basename(path):
        time.sleep(3600)
    return read_file(path, root, options)


def pid_reporting_reader(path: bytes, root: str, options: ExtractOptions) -> FileResult:
    """Reads like read_file; on a file named *victim* it writes its pid to $IBASH_TEST_PIDFILE and waits."""
    if b"victim" in os.path.basename(path):
        with open(os.environ["IBASH_TEST_PIDFILE"], "w") as fp:
            fp.write(str(os.getpid()))
        time.sleep(3600)
    return read_file(path, root, options)


def remove_deep(root: Path) -> None:
    """Delete the deep folder tree without recursion (shutil.rmtree, and so pytest, recurse once per level)."""
    top = os.path.join(os.fsencode(root), b"deep")
    if not os.path.isdir(top):
        return
    chain = [top]
    while os.path.isdir(chain[-1]) and os.path.isdir(os.path.join(chain[-1], b"d")):
        chain.append(os.path.join(chain[-1], b"d"))
    for folder in reversed(chain):
        for name in os.listdir(folder):
            path = os.path.join(folder, name)
            if not os.path.isdir(path) or os.path.islink(path):
                os.unlink(path)
        os.rmdir(folder)

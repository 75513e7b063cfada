"""The database holds exactly what pydicom reads: element by element, at every depth.

The reference walk below uses only pydicom's plain API (a full read, no deferred values,
`for elem in ds`), independent of ibash_index.extract, and renders values the documented way:
str() of each value, several values joined by a backslash, NULL for binary VRs and sequences.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from pathlib import Path

import pydicom
import pydicom.data
import pytest
from pydicom.multival import MultiValue
from sqlalchemy import text
from sqlalchemy.engine import Connection

from ibash_index.build import BuildOptions, build
from ibash_index.extract import REPLACED

from .conftest import corpora_or_skip, engine_for
from .test_summaries import assert_summaries_match

BINARY = {"OB", "OW", "OF", "OD", "OL", "OV", "UN", "OB or OW", "US or OW"}
PIXEL = {0x7FE00008, 0x7FE00009, 0x7FE00010}


def render(value) -> str:
    if value is None:
        return ""
    if isinstance(value, (MultiValue, list)):
        return "\\".join("" if v is None else str(v) for v in value)
    return str(value)


def reference_rows(path: str | bytes, force: bool = True) -> list[tuple] | None:
    """(element_path, tag, private_creator, vr, vm, value, length-of-binary, sha1) per element; None if unreadable."""
    try:
        ds = pydicom.dcmread(path, force=force)
    except Exception:
        return None
    rows: list[tuple] = []

    def walk(dataset, prefix: str) -> None:
        for tag in list(dataset.keys()):  # tags; iterating a Dataset converts every element
            try:
                elem = dataset[tag]
            except Exception:
                rows.append((None, int(tag), None, "FLAGGED", None, None, None, None))
                continue
            name = pydicom.datadict.keyword_for_tag(tag) or f"({elem.tag.group:04X},{elem.tag.element:04X})"
            creator = _creator(dataset, int(tag))
            if elem.VR == "SQ":
                rows.append((prefix + name, int(tag), creator, "SQ", len(elem.value), None, None, None))
                for i, item in enumerate(elem.value):
                    walk(item, f"{prefix}{name}[{i}].")
            elif elem.VR in BINARY or isinstance(elem.value, bytes):
                data = elem.value or b""
                digest = None if int(tag) in PIXEL else hashlib.sha1(data).hexdigest() if data else None
                rows.append((prefix + name, int(tag), creator, elem.VR, elem.VM, None, len(data), digest))
            else:
                rows.append((prefix + name, int(tag), creator, elem.VR, elem.VM, render(elem.value), None, None))

    walk(ds.file_meta, "")
    walk(ds, "")
    return rows


def _creator(dataset, tag: int) -> str | None:
    group, elem = tag >> 16, tag & 0xFFFF
    if not group & 1 or elem < 0x1000:
        return None
    block = (group << 16) | (elem >> 8)
    if block not in dataset:
        return ""
    value = dataset[block].value
    if isinstance(value, (MultiValue, list)):
        value = value[0] if value else ""
    return str(value or "").strip()


def database_rows(conn: Connection, path: str | bytes) -> list[tuple] | None:
    """The same tuple per element, read back from element_view (None if the file has no instance)."""
    file_row = conn.execute(text("SELECT id FROM files WHERE path_bytes = :p"), {"p": os.fsencode(path)}).first()
    assert file_row is not None, f"{path} is not in files at all"
    rows = conn.execute(
        text(
            """SELECT v.element_path, t.tag, v.private_creator, v.vr, v.vm, v.value, v.length, v.hash, v.flag
               FROM element_view AS v
               JOIN elements AS e ON e.instance_id = v.instance_id AND e.seq = v.seq
               JOIN tags AS t ON t.id = e.tag_id
               JOIN instances AS i ON i.id = v.instance_id
               WHERE i.file_id = :f ORDER BY v.seq"""
        ),
        {"f": file_row[0]},
    ).all()
    count = conn.execute(text("SELECT element_count FROM instances WHERE file_id = :f"), {"f": file_row[0]}).first()
    if count is None:
        return None
    assert count[0] == len(rows), "element_count disagrees with the rows stored"
    out = []
    for path_, tag, creator, vr, vm, value, length, digest, flag in rows:
        if flag is not None and flag != REPLACED:  # replaced: pydicom's text, compared as any other
            out.append((None, tag, None, "FLAGGED", None, None, None, None))
        elif vr == "SQ":
            out.append((path_, tag, creator, vr, vm, None, None, None))
        elif value is None:  # binary
            out.append((path_, tag, creator, vr, vm, None, length, digest if tag not in PIXEL else None))
        else:
            out.append((path_, tag, creator, vr, vm, value, None, None))
    return out


def file_status(conn: Connection, path: str) -> tuple[str, str | None]:
    row = conn.execute(text("SELECT status, reason FROM files WHERE path_bytes = :p"), {"p": os.fsencode(path)}).one()
    return row[0], row[1]


def assert_same(db: str | Path, files: list[str]) -> tuple[int, int]:
    """Compare every file; return (files compared, elements compared).

    A file with a DICM marker that pydicom reads must be indexed. A file pydicom reads only
    with force=True (no preamble, or not DICOM at all: force "reads" any bytes) must be indexed
    or recorded as not DICOM with a reason; the callers check which files those are.
    """
    engine = engine_for(db)
    try:
        with engine.connect() as conn:
            return _compare(conn, files, postgres=engine.dialect.name == "postgresql")
    finally:
        engine.dispose()


def _compare(conn: Connection, files: list[str], postgres: bool) -> tuple[int, int]:
    n_files = n_elements = 0
    for path in files:
        expected = reference_rows(path)
        got = database_rows(conn, path)
        if expected is None:
            status, reason = file_status(conn, path)
            assert status in ("error", "not_dicom") and reason, f"{path}: pydicom cannot read it, yet {status}"
            continue
        if got is None and reference_rows(path, force=False) is None:
            status, reason = file_status(conn, path)
            assert status == "not_dicom" and reason, f"{path}: {status}"
            continue
        if got is None and file_status(conn, path)[0] == "error":  # pydicom reads what is left of a cut file
            assert (file_status(conn, path)[1] or "").startswith("truncated:"), file_status(conn, path)  # test_hostile
            continue
        assert got is not None, f"{path}: pydicom reads it but it was not indexed"
        if len(expected) != len(got):
            missing = {r[:2] for r in expected} ^ {r[:2] for r in got}
            pytest.fail(f"{path}: {len(expected)} elements in pydicom, {len(got)} in the database; differ: {missing}")
        for e, g in zip(expected, got):
            if e[3] == "FLAGGED" or g[3] == "FLAGGED":
                assert e[1] == g[1] and e[3] == g[3], f"{path}: {e} vs {g}"
                continue
            if postgres and isinstance(e[5], str):  # PostgreSQL text cannot hold NUL: stored as U+2400
                e = (*e[:5], e[5].replace("\x00", "\u2400"), *e[6:])
            assert e == g, f"{path}: element differs\n pydicom:  {e}\n database: {g}"
        n_files += 1
        n_elements += len(got)
    return n_files, n_elements


def test_pydicom_test_files_round_trip(tmp_path: Path, any_db: str) -> None:
    """Every file of pydicom's bundled test set is in the database exactly as pydicom reads it."""
    listed = pydicom.data.get_testdata_files() + pydicom.data.get_charset_files() + pydicom.data.get_palette_files()
    files = sorted(f for f in set(listed) if os.path.isfile(f))
    assert len(files) > 200
    roots = sorted({str(Path(pydicom.data.__file__).parent / d) for d in ("test_files", "charset_files", "palettes")})
    roots += sorted({str(Path(f).parent) for f in files if not any(f.startswith(r + os.sep) for r in roots)})  # -data
    build(roots, any_db, BuildOptions(workers=2))
    n_files, n_elements = assert_same(any_db, files)
    assert n_files > 150 and n_elements > 10_000
    assert_summaries_match(any_db)  # long values, charsets, private and nested elements: tallies equal the SQL
    with engine_for(any_db).connect() as conn:
        not_dicom = {Path(p).name for (p,) in conn.execute(text("SELECT path FROM files WHERE status = 'not_dicom'"))}
    # Text, JSON, ICC, gzip and dumps, plus no_meta.dcm: bytes that do not start with an element.
    assert not_dicom >= {"README.txt", "crayons.icc", "no_meta.dcm", "rtplan.dump", "test1.json", "zipMR.gz"}
    assert all(not n.endswith(".dcm") or n == "no_meta.dcm" for n in not_dicom), not_dicom


def test_sample_round_trips(sample, sample_db: Path) -> None:
    """Every generated sample file is in the database exactly as pydicom reads it."""
    files = [str(f.path) for f in sample.dicom_files]
    n_files, _ = assert_same(sample_db, files)
    assert n_files == len(files)


def test_real_scanner_corpora_round_trip(corpora_db: Path) -> None:
    """Every file of the real multi-vendor corpora (Siemens, GE, Philips, Agfa) is stored exactly."""
    root = corpora_or_skip()
    files = sorted(str(p) for p in root.rglob("*") if p.is_file())
    n_files, n_elements = assert_same(corpora_db, files)
    assert n_files >= 240 and n_elements > 90_000
    assert_summaries_match(str(corpora_db))


def test_real_scanner_corpora_round_trip_on_postgresql(postgres) -> None:
    """The same real files are stored exactly in PostgreSQL too (COPY path, bytea, C collation)."""
    root = corpora_or_skip()
    db = postgres.new_database()
    build([root], db, BuildOptions(workers=2))
    files = sorted(str(p) for p in root.rglob("*") if p.is_file())
    n_files, n_elements = assert_same(db, files)
    assert n_files >= 240 and n_elements > 90_000


def test_elements_after_pixel_data_are_kept(tmp_path: Path) -> None:
    """Elements stored after PixelData are indexed (stop_before_pixels would drop them)."""
    ds = pydicom.dcmread(pydicom.data.get_testdata_file("CT_small.dcm"))
    ds.add_new(0xFFFCFFFC, "OB", b"\x00" * 8)  # DataSetTrailingPadding
    src = tmp_path / "in"
    src.mkdir()
    ds.save_as(src / "x.dcm")
    db = tmp_path / "x.db"
    build([src], str(db), BuildOptions(workers=0))
    con = sqlite3.connect(db)
    tags = [r[0] for r in con.execute("SELECT tag FROM element_view ORDER BY seq")]
    assert tags[-2:] == ["(7FE0,0010)", "(FFFC,FFFC)"]
    pixel_data = con.execute(
        "SELECT e.value, e.length, e.data FROM elements AS e JOIN tags AS t ON t.id = e.tag_id WHERE t.tag = ?",
        (0x7FE00010,),
    ).fetchone()
    assert pixel_data == (None, len(ds.PixelData), None)

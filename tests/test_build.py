"""Building: incremental reruns equal a clean build, parallelism changes nothing, the file is private."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import stat
import threading
from pathlib import Path

import pydicom
import pydicom.data
import pytest
from sqlalchemy import insert, select, text

from ibash_index.build import BuildOptions, build
from ibash_index.errors import BuildLocked
from ibash_index.schema import builds
from ibash_index.store import build_lock

from .conftest import engine_for

SOURCES = ["CT_small.dcm", "MR_small.dcm", "rtplan.dcm", "JPEG2000.dcm", "image_dfl.dcm", "ExplVR_BigEnd.dcm"]


def make_tree(root: Path) -> Path:
    """Two 'sessions' of real pydicom test files plus a stray text file."""
    for i, name in enumerate(SOURCES):
        target = root / f"session{i % 2}" / "DICOM" / f"{i:02d}.dcm"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(pydicom.data.get_testdata_file(name), target)
    (root / "catalog.xml").write_text("<catalog/>")
    return root


def snapshot(db: str | Path) -> dict[str, set]:
    """Every row that matters, keyed by natural keys instead of ids, without times (any engine)."""
    q = {
        "files": "SELECT path, root, size, mtime_ns, status, reason, warning FROM files",
        "studies": "SELECT study_instance_uid, site, patient_id, patient_name, patient_birth_date, patient_sex, "
        "study_date, study_time, study_description, accession_number, dicom_study_id, key_path FROM studies",
        "series": "SELECT st.study_instance_uid, se.series_instance_uid, se.series_number, se.modality, "
        "se.series_description, se.manufacturer, se.key_path "
        "FROM series AS se JOIN studies AS st ON st.id = se.study_id",
        "instances": "SELECT f.path, i.site, i.sop_instance_uid, i.sop_class_uid, i.instance_number, "
        "i.transfer_syntax_uid, i.element_count, se.series_instance_uid FROM instances AS i "
        "JOIN files AS f ON f.id = i.file_id JOIN series AS se ON se.id = i.series_id",
        "elements": "SELECT path, seq, parent_seq, item, depth, tag, private_creator, vr, vm, value, number, length, "
        "hash, flag, element_path FROM element_view",
        "tags": "SELECT tag, private_creator, keyword, name FROM tags",
    }
    engine = engine_for(db)
    try:
        with engine.connect() as con:
            return {name: {tuple(_plain(v) for v in row) for row in con.execute(text(sql))} for name, sql in q.items()}
    finally:
        engine.dispose()


def _plain(value: object) -> object:
    return bytes(value) if isinstance(value, memoryview) else value


def test_rerun_reads_nothing(tmp_path: Path, any_db: str) -> None:
    """A second build with nothing changed reports every file unchanged and writes no element."""
    root = make_tree(tmp_path / "data")
    db = any_db
    first = build([root], str(db), BuildOptions(workers=2))
    assert (first.indexed, first.not_dicom, first.errors) == (len(SOURCES), 1, 0)
    before = snapshot(db)
    second = build([root], str(db), BuildOptions(workers=2))
    assert second.unchanged == len(SOURCES) + 1
    assert (second.indexed, second.elements, second.removed) == (0, 0, 0)
    assert snapshot(db) == before


def test_a_killed_build_is_marked_by_the_next_one(tmp_path: Path, any_db: str) -> None:
    """A build killed with SIGKILL cannot say so; the next build of the same roots, holding the same lock, does."""
    root = make_tree(tmp_path / "data")
    build([root], any_db, BuildOptions(workers=0))
    engine = engine_for(any_db)
    with engine.begin() as conn:  # what kill -9 leaves: the row as the build began it
        conn.execute(text("UPDATE builds SET status = 'running', finished_at = NULL"))
        first = conn.execute(select(builds)).mappings().one()
        other = {**{k: v for k, v in first.items() if k != "id"}, "roots": '["/elsewhere"]'}
        conn.execute(insert(builds).values(other))  # another folder's build: on PostgreSQL it may be running now
    again = build([root], any_db, BuildOptions(workers=0))
    assert again.unchanged == len(SOURCES) + 1
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT roots, status, finished_at IS NULL FROM builds ORDER BY id")).all()
    engine.dispose()
    other = "running" if "://" in any_db else "killed"  # SQLite: one build at a time holds the whole file
    assert [tuple(r) for r in rows] == [
        (json.dumps([str(root.resolve())]), "killed", True),
        ('["/elsewhere"]', other, True),
        (json.dumps([str(root.resolve())]), "complete", False),
    ]


def test_a_sqlite_url_builds_as_its_file(tmp_path: Path) -> None:
    """sqlite:///FILE is FILE: created private, under the build lock, and the same index as the path gives."""
    root = make_tree(tmp_path / "data")
    db = tmp_path / "x.db"
    summary = build([root], f"sqlite:///{db}", BuildOptions(workers=0))
    assert summary.indexed == len(SOURCES) and stat.S_IMODE(db.stat().st_mode) == 0o600
    with build_lock(str(db)), pytest.raises(BuildLocked):
        build([root], f"sqlite:///{db}", BuildOptions(workers=0, full=True))
    assert build([root], str(db), BuildOptions(workers=0)).unchanged == len(SOURCES) + 1


def test_incremental_equals_clean_build(tmp_path: Path, any_db: str) -> None:
    """Adding, changing, deleting and touching files, then rebuilding, gives the rows of a clean build."""
    root = make_tree(tmp_path / "data")
    db = any_db
    build([root], str(db), BuildOptions(workers=2))
    files = sorted(root.rglob("*.dcm"))
    files[0].unlink()  # delete: the first file by path, which fills its study and series rows
    ds = pydicom.dcmread(files[1])
    ds.PatientName = "Changed^Name"
    ds.SeriesDescription = "changed"
    ds.save_as(files[1])  # change
    os.utime(files[2], ns=(1, 1))  # touch: new mtime, same content
    extra = root / "session9" / "DICOM" / "new.dcm"
    extra.parent.mkdir(parents=True)
    shutil.copyfile(pydicom.data.get_testdata_file("MR_small.dcm"), extra)  # add (same SOP UID as 01.dcm)
    summary = build([root], str(db), BuildOptions(workers=2))
    assert (summary.removed, summary.indexed) == (1, 3)
    clean = tmp_path / "clean.db"
    build([root], str(clean), BuildOptions(workers=2))
    assert snapshot(db) == snapshot(clean)


def test_full_rebuild_equals_clean_build(tmp_path: Path, any_db: str) -> None:
    """--full reads every file again and ends where a clean build ends."""
    root = make_tree(tmp_path / "data")
    db = any_db
    build([root], str(db), BuildOptions(workers=1))
    again = build([root], str(db), BuildOptions(workers=1, full=True))
    assert again.indexed == len(SOURCES) and again.unchanged == 0
    clean = tmp_path / "clean.db"
    build([root], str(clean), BuildOptions(workers=1))
    assert snapshot(db) == snapshot(clean)


def test_worker_count_does_not_change_the_result(tmp_path: Path) -> None:
    """In-process, one worker and two workers give identical databases."""
    root = make_tree(tmp_path / "data")
    snaps = []
    for workers in (0, 1, 2):
        db = tmp_path / f"w{workers}.db"
        build([root], str(db), BuildOptions(workers=workers))
        snaps.append(snapshot(db))
    assert snaps[0] == snaps[1] == snaps[2]


def test_other_roots_are_left_alone(tmp_path: Path) -> None:
    """Building one root does not remove the files another root put in the same database."""
    a = make_tree(tmp_path / "a")
    b = make_tree(tmp_path / "b")
    db = tmp_path / "x.db"
    build([a], str(db), BuildOptions(workers=1))
    summary = build([b], str(db), BuildOptions(workers=1))
    assert summary.removed == 0
    con = sqlite3.connect(db)
    assert con.execute("SELECT count(*) FROM instances").fetchone() == (2 * len(SOURCES),)


def test_duplicate_sop_instance_uids_are_all_kept(tmp_path: Path) -> None:
    """The same SOP Instance UID in two files gives two instances, not a crash or a silent drop."""
    root = tmp_path / "d"
    root.mkdir()
    for name in ("a.dcm", "b.dcm"):
        shutil.copyfile(pydicom.data.get_testdata_file("CT_small.dcm"), root / name)
    db = tmp_path / "x.db"
    build([root], str(db), BuildOptions(workers=0))
    con = sqlite3.connect(db)
    rows = con.execute("SELECT sop_instance_uid, count(*) FROM instances GROUP BY 1").fetchall()
    assert len(rows) == 1 and rows[0][1] == 2


def test_site_from_folder_level(tmp_path: Path) -> None:
    """--site-from level:1 names the site after the first folder below the root."""
    root = make_tree(tmp_path / "data")
    db = tmp_path / "x.db"
    build([root], str(db), BuildOptions(workers=0, site_from="level:1"))
    con = sqlite3.connect(db)
    assert {r[0] for r in con.execute("SELECT DISTINCT site FROM instances")} == {"session0", "session1"}


def test_database_and_wal_are_private(tmp_path: Path) -> None:
    """The database and its -wal/-shm files are readable by their owner only (mode 0600)."""
    root = make_tree(tmp_path / "data")
    db = tmp_path / "x.db"
    old = os.umask(0o022)
    try:
        build([root], str(db), BuildOptions(workers=0))
        con = sqlite3.connect(db)  # keep it open so the WAL files exist
        con.execute("SELECT count(*) FROM elements").fetchone()
        for path in (db, Path(f"{db}-wal"), Path(f"{db}-shm")):
            assert path.exists(), path
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        con.close()
    finally:
        os.umask(old)


def test_second_build_on_the_same_database_refuses(tmp_path: Path) -> None:
    """While one build holds the database, another refuses at once with a clear message."""
    root = make_tree(tmp_path / "data")
    db = tmp_path / "x.db"
    build([root], str(db), BuildOptions(workers=0))
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with build_lock(str(db)):
            held.set()
            release.wait(10)

    t = threading.Thread(target=hold)
    t.start()
    held.wait(10)
    try:
        with pytest.raises(BuildLocked, match="another build is writing"):
            build([root], str(db), BuildOptions(workers=0))
    finally:
        release.set()
        t.join()


def test_build_row_records_counts_and_versions(tmp_path: Path) -> None:
    """Each build is recorded with its status, versions, options and counts."""
    root = make_tree(tmp_path / "data")
    db = tmp_path / "x.db"
    build([root], str(db), BuildOptions(workers=0))
    con = sqlite3.connect(db)
    row = con.execute(
        "SELECT status, pydicom_version, indexed, not_dicom, elements, finished_at FROM builds"
    ).fetchone()
    assert row[:4] == ("complete", pydicom.__version__, len(SOURCES), 1)
    assert row[4] == con.execute("SELECT count(*) FROM elements").fetchone()[0]
    assert row[5] is not None


def test_a_database_inside_a_root_is_not_indexed(tmp_path: Path) -> None:
    """`build . --db index.db` from inside the data: the index, its WAL and its spools are not files of the data."""
    root = make_tree(tmp_path / "data")
    db = root / "index.db"
    first = build([root], str(db), BuildOptions(workers=2))
    again = build([root], str(db), BuildOptions(workers=2))
    assert first.files_seen == again.files_seen == len(SOURCES) + 1  # the DICOM files and catalog.xml
    assert (again.unchanged, again.removed, again.indexed) == (len(SOURCES) + 1, 0, 0)
    con = sqlite3.connect(db)
    assert con.execute("SELECT COUNT(*) FROM files WHERE path LIKE '%index.db%'").fetchone()[0] == 0
    con.close()

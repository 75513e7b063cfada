"""The summary_* tables the reports read always equal a recomputation from `elements`.

After a fresh build, after incremental builds that add, change, touch and delete files, after
`--full`, and after builds killed with SIGKILL and run again, on SQLite and PostgreSQL. The
recomputation empties the tables and counts every instance again (summaries.rebuild), in a
transaction that is rolled back; tests/test_reports.py checks what the reports make of them.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pydicom
from sqlalchemy import inspect, select, text

from ibash_index import summaries
from ibash_index.build import BuildOptions, build
from ibash_index.report_tables import SUMMARY_TABLES
from ibash_index.schema import series, tags

from .conftest import engine_for
from .hostile import copy_corpus

REPO = Path(__file__).resolve().parents[1]


def contents(conn: Any) -> dict[str, list[tuple]]:
    return {t.name: sorted(tuple(r) for r in conn.execute(select(t))) for t in SUMMARY_TABLES}


def logical(db: str) -> dict[str, list[tuple]]:
    """The summaries as another build of the same files gives them: ids replaced by what they stand for.

    Series and tags get other ids in another build, and value_key names the instance holding a long value.
    """
    engine = engine_for(db)
    out = {}
    try:
        with engine.connect() as conn:
            for t in SUMMARY_TABLES:
                columns = [c for c in t.columns if c.name not in ("value_key", "series_id", "tag_id")]
                query = select(*columns)
                if "tag_id" in t.c:
                    query = query.add_columns(tags.c.tag, tags.c.private_creator).join(tags, tags.c.id == t.c.tag_id)
                if "series_id" in t.c:
                    query = query.add_columns(series.c.series_instance_uid).join(series, series.c.id == t.c.series_id)
                out[t.name] = sorted(tuple(r) for r in conn.execute(query))
    finally:
        engine.dispose()
    return out


def assert_summaries_match(db: str) -> dict[str, list[tuple]]:
    """The summaries equal what counting every instance from scratch gives; they are returned."""
    engine = engine_for(db)
    try:
        with engine.connect() as conn:
            if "summary_tags" not in inspect(conn).get_table_names():
                return {}  # killed before the schema was committed: nothing to check yet
            kept = contents(conn)
            instances = conn.execute(text("SELECT COUNT(*) FROM instances")).scalar()
            summaries.rebuild(conn)
            recounted = contents(conn)
            conn.rollback()
    finally:
        engine.dispose()
    for name in kept:
        assert kept[name] == recounted[name], name
    assert bool(instances) == bool(kept["summary_tags"])
    return kept


def _edit(path: Path, **values: str) -> None:
    ds = pydicom.dcmread(path)
    for keyword, value in values.items():
        setattr(ds, keyword, value)
    ds.save_as(path)


def test_summaries_follow_incremental_builds(any_db: str, sample: Any, tmp_path: Path) -> None:
    """Fresh, then add, change (values and site), touch, delete, then --full: always equal to a recount."""
    root = tmp_path / "data"
    shutil.copytree(sample.root, root)
    options = BuildOptions(workers=2)
    build([root], any_db, options)
    fresh = assert_summaries_match(any_db)
    assert all(fresh.values()), "every summary has rows on the sample"

    rng = random.Random(5)
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() == ".dcm")
    assert len(files) > 40
    picked = rng.sample(files, 40)
    for path in picked[:10]:  # change values a report shows
        _edit(path, PatientName="Changed^Name", StudyDescription="changed " + path.name)
    for path in picked[10:15]:  # move files to another site
        _edit(path, InstitutionName="Moved Site")
    for path in picked[15:25]:  # touch: same bytes, new mtime
        os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))
    for path in picked[25:35]:
        path.unlink()
    for i, path in enumerate(picked[35:40]):  # add copies (duplicate instances) under new names
        shutil.copy(path, path.with_name(f"copy{i}-{path.name}"))
    summary = build([root], any_db, options)
    assert summary.removed == 10 and summary.indexed >= 25
    after = assert_summaries_match(any_db)
    assert after != fresh
    assert any(r[0] == "Moved Site" for r in after["summary_tags"])

    before_full = logical(any_db)
    build([root], any_db, BuildOptions(workers=2, full=True))
    assert_summaries_match(any_db)
    assert logical(any_db) == before_full

    for path in root.rglob("*"):
        if path.is_file():
            path.unlink()
    build([root], any_db, options)
    assert not any(assert_summaries_match(any_db).values()), "nothing left once every file is gone"


def test_the_workers_count_what_the_sql_counts(sample: Any, tmp_path: Path, monkeypatch: Any) -> None:
    """Workers tally every instance of a build (tally.py), and the tallies give what the SQL gives (--workers 0)."""
    by_sql: list[int] = []
    sql_add = summaries.add

    def spy(conn: Any, ids: Any) -> None:
        ids = list(ids)
        by_sql.extend(ids)
        sql_add(conn, ids)

    monkeypatch.setattr(summaries, "add", spy)
    tallied = tmp_path / "tallied.db"
    assert build([sample.root], str(tallied), BuildOptions(workers=2)).indexed > 1000
    assert by_sql == [], "no instance was left to the SQL"
    counted = tmp_path / "sql.db"
    indexed = build([sample.root], str(counted), BuildOptions(workers=0)).indexed
    assert len(by_sql) == indexed
    assert logical(str(tallied)) == logical(str(counted))
    assert_summaries_match(str(tallied))


def test_summaries_of_a_killed_build(any_db: str, tmp_path: Path) -> None:
    """kill -9 while batches are written: what was committed is counted, and a rerun counts the rest."""
    root = tmp_path / "data"
    copy_corpus(root, 1500)
    is_sqlite = "://" not in any_db
    cli = [sys.executable, "-m", "ibash_index", "build", str(root), "--db", any_db, "--workers", "2", "-q"]
    rng = random.Random(3)
    for attempt in range(3):
        proc = subprocess.Popen([*cli, *(["--full"] if attempt == 2 else [])], cwd=REPO, stderr=subprocess.DEVNULL)
        try:
            proc.wait(timeout=rng.uniform(2.0, 5.0))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        assert_summaries_match(any_db)
        for path in rng.sample(sorted(root.rglob("*.dcm")), 30):  # something to rewrite and remove next time
            if rng.random() < 0.3:
                path.unlink()
            else:
                path.write_bytes(path.read_bytes().replace(b"Doe", b"Roe"))
    assert subprocess.run(cli, cwd=REPO, capture_output=True, timeout=600).returncode == 0
    assert assert_summaries_match(any_db)["summary_tags"]
    if is_sqlite:
        clean = tmp_path / "clean.db"
        build([root], str(clean), BuildOptions(workers=2))
        assert logical(str(clean)) == logical(any_db)


def test_migration_fills_the_summaries_of_an_older_database(sample_db: Path, tmp_path: Path) -> None:
    """A database built before the summaries existed (revision 0002) gets them filled by migration 0003."""
    from ibash_index.store import open_index

    db = tmp_path / "old.db"
    shutil.copy(sample_db, db)
    built = assert_summaries_match(str(db))
    engine = engine_for(db)
    with engine.begin() as conn:
        for table in SUMMARY_TABLES:
            conn.execute(table.delete())
            conn.execute(text(f"DROP TABLE {table.name}"))
        conn.execute(text("UPDATE alembic_version SET version_num = '0002'"))
    engine.dispose()
    open_index(str(db)).dispose()
    assert assert_summaries_match(str(db)) == built


def test_maintenance_files_are_not_reports() -> None:
    """sql/maintenance holds statements with a header, which the report loader does not list."""
    from ibash_index.reports import load_reports

    names = set(load_reports())
    folder = REPO / "sql" / "maintenance"
    files = sorted(folder.glob("*.sql"))
    assert {p.stem for p in files} >= {t.name for t in SUMMARY_TABLES} | {"prune"}
    upserts = sorted((folder / "upsert").glob("*.sql"))
    assert {p.stem for p in upserts} == {t.name for t in SUMMARY_TABLES} == set(summaries.UPSERTS)
    for path in files + upserts:
        assert path.read_text().startswith("-- title: ")
        assert path.stem not in names

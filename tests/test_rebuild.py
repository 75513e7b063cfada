"""The rerun with nothing to do (rebuild.py) and reports on SQLite files (direct.py), through sqlite3 alone.

Each way must give exactly what the full path gives: every scenario below is run twice on
copies of one index, once as a user runs it and once with the sqlite3-only answer turned off,
and the two databases must hold the same rows. The subprocess tests check that the fast
answers really do start without SQLAlchemy, which is their reason to exist.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

import ibash_index.build
import ibash_index.load
import ibash_index.rebuild
from ibash_index.build import BuildInterrupted, BuildOptions, BuildSummary, build, in_shard
from ibash_index.errors import BuildLocked
from ibash_index.reports import load_reports, run_saved_report
from ibash_index.store import build_lock

from .test_build import SOURCES, make_tree

VOLATILE = {"builds": ("started_at", "finished_at", "seconds")}  # clock readings, not content


def dump(db: Path) -> dict[str, list[tuple]]:
    """Every row of every table and the schema's SQL, clock readings left out."""
    conn = sqlite3.connect(db)
    try:
        out: dict[str, list[tuple]] = {
            "schema": sorted(conn.execute("SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'"))
        }
        for (table,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'"):
            columns = [r[1] for r in conn.execute(f'PRAGMA table_info("{table}")')]
            keep = [c for c in columns if c not in VOLATILE.get(table, ())]
            out[table] = sorted(
                conn.execute(f'SELECT {", ".join(map(repr, keep))} FROM "{table}"'.replace("'", '"')),
                key=repr,
            )
        return out
    finally:
        conn.close()


def copy(db: Path, to: Path) -> Path:
    """A consistent copy of a SQLite index, WAL included (the backup API)."""
    with sqlite3.connect(db) as src, sqlite3.connect(to) as dst:
        src.backup(dst)
    os.chmod(to, 0o600)
    return to


@pytest.fixture
def indexed(tmp_path: Path) -> tuple[Path, Path]:
    """A tree of real files and its index, built once (the first build is always the full one)."""
    root = make_tree(tmp_path / "data")
    db = tmp_path / "index.db"
    build([root], str(db), BuildOptions(workers=0))
    return root, db


class Paths:
    """Which way each build took: counts the calls of the full build."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.full = 0
        real = ibash_index.load.load

        def counted(*args, **kwargs) -> BuildSummary:
            self.full += 1
            return real(*args, **kwargs)

        monkeypatch.setattr(ibash_index.load, "load", counted)


def both_ways(
    monkeypatch: pytest.MonkeyPatch, root: Path, db: Path, options: BuildOptions | None = None
) -> tuple[BuildSummary, BuildSummary, int]:
    """Rebuild a copy of `db` as usual and another with the fast answer off; the same rows, or fail."""
    options = options or BuildOptions(workers=0)
    fast_db, full_db = copy(db, db.with_name("fast.db")), copy(db, db.with_name("full.db"))
    paths = Paths(monkeypatch)
    usual = build([root], str(fast_db), options)
    took_full = paths.full
    with monkeypatch.context() as m:
        m.setattr(ibash_index.rebuild, "nothing_changed", lambda *a: None)
        forced = build([root], str(full_db), options)
    assert dump(fast_db) == dump(full_db)
    assert _counts(usual) == _counts(forced)
    return usual, forced, took_full


def _counts(s: BuildSummary) -> tuple:
    return (s.build_id, s.files_seen, s.indexed, s.unchanged, s.not_dicom, s.errors, s.skipped, s.removed, s.elements)


def test_nothing_changed_is_answered_without_the_full_build(
    indexed: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    root, db = indexed
    usual, _, took_full = both_ways(monkeypatch, root, db)
    assert took_full == 0
    assert (usual.files_seen, usual.unchanged, usual.indexed, usual.removed) == (len(SOURCES) + 1,) * 2 + (0, 0)
    assert usual.build_id == 2


def _modify(root: Path, db: Path) -> None:
    path = root / "session0" / "DICOM" / "00.dcm"
    path.write_bytes(path.read_bytes() + b"\0\0")


def _touch(root: Path, db: Path) -> None:
    path = root / "session1" / "DICOM" / "01.dcm"
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


def _add(root: Path, db: Path) -> None:
    (root / "session0" / "DICOM" / "new.dcm").write_bytes((root / "session1" / "DICOM" / "01.dcm").read_bytes())


def _delete(root: Path, db: Path) -> None:
    (root / "session1" / "DICOM" / "03.dcm").unlink()


def _skipped_entry(root: Path, db: Path) -> None:
    os.mkfifo(root / "session0" / "pipe.dcm")


def _dangling_symlink(root: Path, db: Path) -> None:
    (root / "session1" / "gone.dcm").symlink_to(root / "nowhere.dcm")


def _sql(statement: str) -> Callable[[Path, Path], None]:
    def change(root: Path, db: Path) -> None:
        with sqlite3.connect(db) as conn:
            conn.execute(statement)

    return change


FILE_CHANGES = {
    "a file rewritten": _modify,
    "a file touched": _touch,
    "a file added": _add,
    "a file deleted": _delete,
    "a FIFO to record as skipped": _skipped_entry,
    "a dangling symlink": _dangling_symlink,
}
CHANGES = {
    **FILE_CHANGES,
    "a file that ended in an error": _sql("UPDATE files SET status = 'error', reason = 'timed out' WHERE id = 1"),
    "the last build was killed": _sql("UPDATE builds SET status = 'running', finished_at = NULL"),
    "a saved report edited in the index": _sql("UPDATE reports SET sql = sql || ' ' WHERE name = 'sites'"),
    "a report view dropped": _sql("DROP VIEW report_sites"),
    "a stray report view": _sql("CREATE VIEW report_stray AS SELECT 1"),
}


@pytest.mark.parametrize("change", CHANGES, ids=list(CHANGES))
def test_any_change_goes_to_the_full_build(
    change: str, indexed: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the fast answer cannot vouch for is left to the full build, with the same result as without it."""
    root, db = indexed
    CHANGES[change](root, db)
    usual, _, took_full = both_ways(monkeypatch, root, db)
    assert took_full == 1
    if change in FILE_CHANGES:
        assert usual.unchanged < usual.files_seen or usual.removed == 1


def test_an_older_schema_goes_to_the_full_build(indexed: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    root, db = indexed
    monkeypatch.setattr(ibash_index.rebuild, "bundled_head", lambda: "a revision this index is not at")
    paths = Paths(monkeypatch)
    build([root], str(db), BuildOptions(workers=0))
    assert paths.full == 1


def test_full_and_shards_stay_exact(indexed: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """--full always reads again; a shard's rerun counts its own files and leaves the others alone."""
    root, db = indexed
    _, _, took_full = both_ways(monkeypatch, root, db, BuildOptions(workers=0, full=True))
    assert took_full == 1
    files = [os.fsencode(p) for p in root.rglob("*") if p.is_file()]
    n, k = next((n, k) for n in range(2, 9) for k in range(1, n + 1) if 0 < _in(files, root, k, n) < len(files))
    sharded = db.with_name("sharded.db")
    build([root], str(sharded), BuildOptions(workers=0, shard=(k, n)))
    usual, _, took_full = both_ways(monkeypatch, root, sharded, BuildOptions(workers=0, shard=(k, n)))
    assert took_full == 0 and usual.files_seen == usual.unchanged == _in(files, root, k, n)
    other = k % n + 1  # files the index does not hold yet: work
    usual, _, took_full = both_ways(monkeypatch, root, sharded, BuildOptions(workers=0, shard=(other, n)))
    assert took_full == 1 and usual.indexed + usual.not_dicom == _in(files, root, other, n)


def _in(files: list[bytes], root: Path, k: int, n: int) -> int:
    return sum(in_shard(p, str(root), (k, n)) for p in files)


def test_a_database_inside_its_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The index and its -wal/-shm inside the root are not data: the rerun is still nothing to do."""
    root = make_tree(tmp_path / "data")
    db = root / "index.db"
    build([root], str(db), BuildOptions(workers=0))
    paths = Paths(monkeypatch)
    again = build([root], str(db), BuildOptions(workers=0))
    assert paths.full == 0 and again.unchanged == len(SOURCES) + 1


def test_a_running_build_is_refused(indexed: tuple[Path, Path]) -> None:
    root, db = indexed
    with build_lock(str(db)), pytest.raises(BuildLocked, match="another build is writing"):
        build([root], str(db), BuildOptions(workers=0))


def test_the_build_row_says_what_was_asked(indexed: tuple[Path, Path]) -> None:
    root, db = indexed
    options = BuildOptions(workers=3, site_from="level:1", max_blob=64)
    summary = build([root], str(db), options)  # site_from is not in the files' state: still nothing to read
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        row = conn.execute("SELECT * FROM builds WHERE id = ?", (summary.build_id,)).fetchone()
    assert row["status"] == "complete" and row["finished_at"] >= row["started_at"]
    assert json.loads(row["options"])["max_blob"] == 64
    assert json.loads(row["roots"]) == [str(root.resolve())]


FAST_START = """
import sys
from ibash_index.{module} import {function}
result = {call}
print(repr(result), "sqlalchemy" in sys.modules, "pydicom" in sys.modules)
"""


def _fresh_process(module: str, function: str, call: str) -> list[str]:
    code = FAST_START.format(module=module, function=function, call=call)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return out.stdout.split()


def test_a_rerun_with_nothing_changed_starts_without_sqlalchemy(indexed: tuple[Path, Path]) -> None:
    root, db = indexed
    *summary, sqlalchemy, pydicom = _fresh_process("build", "build", f"build([{str(root)!r}], {str(db)!r}).unchanged")
    assert summary == [str(len(SOURCES) + 1)]
    assert (sqlalchemy, pydicom) == ("False", "False")
    _add(root, db)  # work to do: the full build, SQLAlchemy and all
    *summary, sqlalchemy, _ = _fresh_process("build", "build", f"build([{str(root)!r}], {str(db)!r}).indexed")
    assert (summary, sqlalchemy) == (["1"], "True")


def test_reports_on_a_sqlite_file_start_without_sqlalchemy(indexed: tuple[Path, Path]) -> None:
    """The same rows as through SQLAlchemy (a sqlite:/// URL), without importing it."""
    _, db = indexed
    for report in load_reports().values():
        if report.params:
            continue
        via_engine = run_saved_report(f"sqlite:///{db}", report.name, {})
        assert run_saved_report(str(db), report.name, {}) == via_engine
    expected = len(run_saved_report(f"sqlite:///{db}", "sessions", {}).rows)
    *rows, sqlalchemy, pydicom = _fresh_process(
        "reports", "run_saved_report", f"len(run_saved_report({str(db)!r}, 'sessions', {{}}).rows)"
    )
    assert rows == [str(expected)] and (sqlalchemy, pydicom) == ("False", "False")
    *rows, sqlalchemy, _ = _fresh_process("reports", "run_sql", f"run_sql({str(db)!r}, 'SELECT 1 AS one', {{}}).rows")
    assert rows == ["[(1,)]"] and sqlalchemy == "False"


def test_direct_statements_have_headers() -> None:
    """sql/maintenance/direct holds one statement per file, with the header every .sql file has."""
    from ibash_index.migrate import bundled_dir

    folder = bundled_dir("sql") / "maintenance" / "direct"
    used = {"table_names", "schema_revision", "view_names", "stored_reports", "last_build", "file_states"}
    assert used | {"record_build"} == {p.stem for p in folder.glob("*.sql")}
    for path in folder.glob("*.sql"):
        text = path.read_text(encoding="utf-8")
        assert text.startswith("-- title: ") and "\n-- description: " in text
        body = "\n".join(line for line in text.splitlines() if not line.startswith("--"))
        assert body.strip() and ";" not in body.strip().rstrip(";")  # one statement


def test_ctrl_c_while_listing_the_files(indexed: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """Before the full build takes over, Ctrl-C is still one line and exit code 130, and nothing is written."""
    root, db = indexed
    before = dump(db)

    def interrupted(roots: list[str], follow_symlinks: bool):
        yield from ()
        raise KeyboardInterrupt

    monkeypatch.setattr(ibash_index.build, "crawl", interrupted)
    with pytest.raises(BuildInterrupted, match="while it listed the files") as caught:
        build([root], str(db), BuildOptions(workers=0))
    assert caught.value.exit_code == 130
    assert dump(db) == before

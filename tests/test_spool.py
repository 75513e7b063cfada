"""Workers hand element rows over through spool files: the result equals rows sent in memory, and nothing is left."""

from __future__ import annotations

import functools
import os
import shutil
import signal
import sqlite3
import stat
from pathlib import Path

import pytest

import ibash_index.pool
import ibash_index.spool
from ibash_index.build import BuildOptions, build
from ibash_index.extract import ExtractOptions, FileResult, read_file
from ibash_index.pool import Pool
from ibash_index.spool import SpoolWriter, spools_for

from .test_build import make_tree, snapshot


def spool_folders(db: Path) -> list[Path]:
    return sorted(db.parent.glob(f".{db.name}.spool-*"))


def test_rows_taken_by_a_spool_come_back_unchanged(tmp_path: Path) -> None:
    """take() moves a result's rows to the spool, reports each tag key once, and read() gives the rows back."""
    root = make_tree(tmp_path / "data")
    paths = sorted(root.rglob("*.dcm"))
    with spools_for(str(tmp_path / "x.db"), 1) as spools:
        writer = spools.writer(0)
        reported: list[tuple[int, str]] = []
        for path in paths:
            result = read_file(os.fsencode(path), str(root), ExtractOptions())
            if result.status != "indexed":
                continue
            rows = list(result.rows)
            writer.take(result)
            assert result.rows == [] and result.spooled is not None
            assert result.element_count == len(rows)
            assert spools.read(result.spooled) == rows
            assert set(result.new_tags).isdisjoint(reported)
            reported += result.new_tags
            assert {(r[4], r[5] or "") for r in rows} <= set(reported)
        writer.close()
    assert not spool_folders(tmp_path / "x.db"), "the spool folder is removed afterwards"


def test_a_failing_spool_turns_the_file_into_an_error(tmp_path: Path) -> None:
    """A spool that cannot be written (disk full) gives an error for the file, with a reason, and keeps no rows."""
    root = make_tree(tmp_path / "data")
    path = next(root.rglob("*.dcm"))
    with spools_for(str(tmp_path / "x.db"), 1) as spools:
        writer = spools.writer(0)
        writer.conn.close()  # every write now fails
        result = read_file(os.fsencode(path), str(root), ExtractOptions())
        writer.take(result)
    assert (result.status, result.rows, result.spooled) == ("error", [], None)
    assert result.reason is not None and result.reason.startswith("cannot spool: ")


def test_spool_folder_is_private_and_removed(tmp_path: Path) -> None:
    """The spool holds patient data: its folder is 0700 while it exists, and a killed build's folder is cleaned up."""
    db = tmp_path / "x.db"
    with spools_for(str(db), 2) as spools:
        assert stat.S_IMODE(os.stat(spools.folder).st_mode) == 0o700
        assert len(spools.paths) == 2
    stale = tmp_path / f".{db.name}.spool-left-by-a-killed-build"
    stale.mkdir()
    (stale / "0.db").write_bytes(b"rows")
    root = make_tree(tmp_path / "data")
    build([root], str(db), BuildOptions(workers=2))
    assert not spool_folders(db)


def test_workers_sharing_a_slot_give_the_same_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """More workers than spool slots (SQLite attaches at most 10 files) share slots, and lose nothing."""
    root = make_tree(tmp_path / "data")
    build([root], str(tmp_path / "memory.db"), BuildOptions(workers=0))
    monkeypatch.setattr(ibash_index.spool, "MAX_SLOTS", 1)
    build([root], str(tmp_path / "shared.db"), BuildOptions(workers=2))
    assert snapshot(tmp_path / "memory.db") == snapshot(tmp_path / "shared.db")


def spooling_then_dying_reader(path: bytes, root: str, options: ExtractOptions) -> FileResult:
    """Reads normally; on victim.dcm it leaves the rows in its spool and is killed before it can send the result."""
    result = read_file(path, root, options)
    if path.endswith(b"victim.dcm"):
        (spool,) = Path(os.environ["IBASH_TEST_DB"]).parent.glob(".x.db.spool-*/0.db")
        SpoolWriter(str(spool), 0).put(result.rows)
        os.kill(os.getpid(), signal.SIGKILL)
    return result


def test_rows_a_killed_worker_left_are_never_copied(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows in a spool that no result points at (a worker killed mid-file) stay out of the index."""
    root = make_tree(tmp_path / "data")
    build([root], str(tmp_path / "clean.db"), BuildOptions(workers=0))
    shutil.copyfile(next(root.rglob("*.dcm")), root / "victim.dcm")
    db = tmp_path / "x.db"
    monkeypatch.setenv("IBASH_TEST_DB", str(db))
    monkeypatch.setattr(ibash_index.pool, "Pool", functools.partial(Pool, reader=spooling_then_dying_reader))
    summary = build([root], str(db), BuildOptions(workers=1))
    assert summary.errors == 1
    con = sqlite3.connect(db)
    assert (
        con.execute("SELECT SUM(element_count) FROM instances").fetchone()[0]
        == con.execute("SELECT COUNT(*) FROM elements").fetchone()[0]
    )
    con.close()
    without_victim = snapshot(db)
    without_victim["files"] = {row for row in without_victim["files"] if not row[0].endswith("victim.dcm")}
    assert without_victim == snapshot(tmp_path / "clean.db")

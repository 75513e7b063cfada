"""Workers hand element rows over through spool files: the result equals rows sent in memory, and nothing is left."""

from __future__ import annotations

import functools
import os
import shutil
import signal
import sqlite3
import stat
from itertools import pairwise
from pathlib import Path

import pytest
from sqlalchemy import insert

import ibash_index.pool
import ibash_index.spool
from ibash_index.build import BuildOptions, build
from ibash_index.extract import ExtractOptions, FileResult, read_file
from ibash_index.pool import Pool, read_serial
from ibash_index.schema import builds
from ibash_index.spool import SpoolWriter, spools_for
from ibash_index.store import Writer, open_index

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
            writer.take([result])
            assert result.rows == [] and result.spooled is not None
            assert result.element_count == len(rows)
            assert spools.read(result.spooled) == rows
            assert set(result.new_tags).isdisjoint(reported)
            reported += result.new_tags
            assert {(r[4], r[5] or "") for r in rows} <= set(reported)
        writer.close()
    assert not spool_folders(tmp_path / "x.db"), "the spool folder is removed afterwards"


def test_a_batch_is_taken_in_one_transaction(tmp_path: Path) -> None:
    """take() of a batch: each file gets its own range, its rows back, and the keys no file before it reported."""
    root = make_tree(tmp_path / "data")
    results = indexed(root)
    rows = [list(result.rows) for result in results]
    with spools_for(str(tmp_path / "x.db"), 1) as spools:
        writer = spools.writer(0)
        writer.take(results)
        reported: set[tuple[int, str]] = set()
        for result, file_rows in zip(results, rows):
            assert result.rows == [] and result.spooled is not None
            assert spools.read(result.spooled) == file_rows
            assert reported.isdisjoint(result.new_tags)
            reported |= set(result.new_tags)
            assert keys_of(file_rows) <= reported, "a file reports the keys it is the first to use"
        ranges = [(r.spooled.first, r.spooled.last) for r in results if r.spooled is not None]
        assert all(a[1] + 1 == b[0] for a, b in pairwise(ranges)), "one range after another"
        writer.close()


def test_a_failing_batch_turns_each_file_into_an_error(tmp_path: Path) -> None:
    """A spool write that fails fails every file of the batch: none keeps rows or a range."""
    root = make_tree(tmp_path / "data")
    results = indexed(root)[:3]
    with spools_for(str(tmp_path / "x.db"), 1) as spools:
        writer = spools.writer(0)
        writer.conn.close()  # every write now fails
        writer.take(results)
    assert [(r.status, r.rows, r.spooled) for r in results] == [("error", [], None)] * len(results)
    assert all((r.reason or "").startswith("cannot spool: ") for r in results)


def test_a_failing_spool_turns_the_file_into_an_error(tmp_path: Path) -> None:
    """A spool that cannot be written (disk full) gives an error for the file, with a reason, and keeps no rows."""
    root = make_tree(tmp_path / "data")
    path = next(root.rglob("*.dcm"))
    with spools_for(str(tmp_path / "x.db"), 1) as spools:
        writer = spools.writer(0)
        writer.conn.close()  # every write now fails
        result = read_file(os.fsencode(path), str(root), ExtractOptions())
        writer.take([result])
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
        SpoolWriter(str(spool), 0).put([result.rows])
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


# Rows with every optional column set, seq not the row's place, creators None and '', odd values.
ODD_ROWS = [
    (0, None, None, 0, 0x00080016, None, "UI", 1, "1.2.840.10008.5.1.4.1.1.4", None, 26, None, None, None, None),
    (1, None, None, 0, 0x00291010, "SIEMENS CSA HEADER", "OB", 1, None, None, 9, "ab" * 20, b"\x00\x01", None, None),
    (2, None, None, 0, 0x00291010, "", "OB", 1, None, None, 0, None, None, None, "ValueError: odd"),
    (3, None, None, 0, 0x00280030, None, "DS", 2, "0.5\\0.5", None, 8, None, None, None, None),
    (4, None, None, 0, 0x00200013, None, "IS", 1, "-7", -7.0, 2, None, None, None, None),
    (5, None, None, 0, 0x00081140, None, "SQ", 2, None, None, None, None, None, None, None),
    (6, 5, 0, 1, 0x00081150, None, "UI", 1, "1.2.3", None, 6, None, None, "ReferencedImageSequence[0].X", None),
    (7, 5, 1, 1, 0x00081150, None, "UI", 1, "1.2.4", None, 2**40, None, None, "ReferencedImageSequence[1].X", None),
    (9, 5, 1, 1, 0x00081155, None, "UN", 1, None, None, 3, "cd" * 20, b"\xff" * 3, "S[1].Y", "ValueError: odd"),
    (8, None, None, 0, 0x7FE00010, None, "OW", 1, "text", 1e300, 0, "ef" * 20, b"", None, "flagged"),
]


def test_rows_with_every_column_set_come_back_unchanged(tmp_path: Path) -> None:
    """Rare columns, seq out of order, None and '' creators, the same key at another depth: read() gives them back."""
    with spools_for(str(tmp_path / "x.db"), 1) as spools:
        writer = spools.writer(0)
        for rows in (ODD_ROWS, ODD_ROWS[::-1], ODD_ROWS[:1]):
            result = FileResult(b"x.dcm", "", "indexed", rows=list(rows))
            writer.take([result])
            assert result.spooled is not None and result.spooled.count == len(rows)
            assert spools.read(result.spooled) == list(rows)
        writer.close()


def odd_reader(path: bytes, root: str, options: ExtractOptions) -> FileResult:
    """Reads normally, then sets every optional column on some rows, and numbers some rows out of place."""
    result = read_file(path, root, options)
    rows = []
    for i, row in enumerate(result.rows):
        row = list(row)
        if i % 7 == 3 and row[3] == 0:  # a top-level row with what only nested, binary or flagged rows have
            row[1], row[2], row[11], row[12], row[13], row[14] = 0, i, "h" * 40, bytes([i % 256]) * 3, f"P[{i}]", "odd"
        if i % 11 == 5:
            row[0] = 100_000 + i  # seq is not the row's place: kept as it is
        rows.append(tuple(row))
    result.rows = rows
    return result


def test_odd_rows_spooled_equal_rows_in_memory(
    tmp_path: Path, any_db: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows with every column set pass through spools (SQLite copy; PostgreSQL read) as they pass in memory."""
    root = make_tree(tmp_path / "data")
    monkeypatch.setattr(ibash_index.pool, "Pool", functools.partial(Pool, reader=odd_reader))
    monkeypatch.setattr(ibash_index.pool, "read_serial", functools.partial(read_serial, reader=odd_reader))
    memory = request.getfixturevalue("postgres").new_database() if "://" in any_db else str(tmp_path / "memory.db")
    build([root], memory, BuildOptions(workers=0))
    build([root], any_db, BuildOptions(workers=2))
    expected = snapshot(memory)
    assert any(row[1] >= 100_000 for row in expected["elements"]), "the odd reader was used"
    assert snapshot(any_db) == expected


def indexed(root: Path) -> list[FileResult]:
    results = [read_file(os.fsencode(p), str(root), ExtractOptions()) for p in sorted(root.rglob("*.dcm"))]
    return [r for r in results if r.status == "indexed"]


def keys_of(rows: list[tuple]) -> set[tuple[int, str]]:
    return {(row[4], row[5] or "") for row in rows}


def test_workers_sharing_a_slot_share_its_codes(tmp_path: Path) -> None:
    """Two writers on one slot: each key gets one code, each file's rows come back, each writer reports its keys."""
    root = make_tree(tmp_path / "data")
    results = indexed(root) + indexed(root)  # the same keys again, through the other writer
    with spools_for(str(tmp_path / "x.db"), 1) as spools:
        writers = [spools.writer(0), spools.writer(0)]
        reported: list[set[tuple[int, str]]] = [set(), set()]
        for i, result in enumerate(results):
            rows, w = list(result.rows), i % 2
            writers[w].take([result])
            assert result.spooled is not None and spools.read(result.spooled) == rows
            assert reported[w].isdisjoint(result.new_tags), "a writer reports a key once"
            reported[w] |= set(result.new_tags)
            assert keys_of(rows) <= reported[w], "a writer reports every key its rows use"
        con = sqlite3.connect(spools.paths[0])
        codes = con.execute("SELECT code, depth, tag, private_creator, vr FROM codes ORDER BY code").fetchall()
        con.close()
        assert [c[0] for c in codes] == list(range(1, len(codes) + 1))
        assert len({c[1:] for c in codes}) == len(codes), "no key has two codes"
        for w in writers:
            w.close()


def test_a_failed_put_forgets_its_codes(tmp_path: Path) -> None:
    """A spool write that fails rolls back the codes it added: they are made again, and their keys reported."""
    row = ODD_ROWS[1]
    with spools_for(str(tmp_path / "x.db"), 1) as spools:
        writer, other = spools.writer(0), spools.writer(0)
        bad = FileResult(b"bad.dcm", "", "indexed", rows=[(*row[:8], object(), *row[9:])])  # cannot be bound
        writer.take([bad])
        assert bad.status == "error" and bad.reason is not None and bad.reason.startswith("cannot spool: ")
        first = FileResult(b"other.dcm", "", "indexed", rows=[ODD_ROWS[0]])
        other.take([first])  # takes the code number the failed write had used
        rows = [row, ODD_ROWS[0]]
        good = FileResult(b"good.dcm", "", "indexed", rows=list(rows))
        writer.take([good])
        assert good.spooled is not None and spools.read(good.spooled) == rows
        assert set(good.new_tags) == keys_of(rows), "the failed write reported nothing"
        writer.close()
        other.close()


def test_a_code_whose_tag_row_comes_later_is_mapped_then(tmp_path: Path) -> None:
    """The writer maps a code to a tag id as soon as the tag row exists, however late, even if it saw the code before.

    Here a worker killed after spooling left a code no result reported; a later file uses it.
    """
    root = make_tree(tmp_path / "data")
    first, second = indexed(root)[:2]
    key = sorted({row[3:7] for row in second.rows} - {row[3:7] for row in first.rows})[0]
    db = str(tmp_path / "x.db")
    engine = open_index(db)
    try:
        with engine.begin() as conn:
            build_id = conn.execute(
                insert(builds)
                .values(started_at="", status="running", tool_version="", pydicom_version="", roots="[]", options="{}")
                .returning(builds.c.id)
            ).scalar_one()
        with spools_for(db, 1) as spools:
            killed, worker = spools.writer(0), spools.writer(0)
            killed.put([[(0, None, None, *key, 1, "left behind", None, 11, None, None, None, None)]])
            expected = {r.path_bytes: list(r.rows) for r in (first, second)}
            writer = Writer(engine, build_id, {}, spools)
            for result in (first, second):  # the first batch maps the left code before its tag row exists
                worker.take([result])
                writer.write([result])
            writer.close()
            killed.close()
            worker.close()
        with engine.connect() as conn:
            got = conn.exec_driver_sql(
                "SELECT f.path, e.seq, e.parent_seq, e.item, e.depth, t.tag, t.private_creator, e.vr, e.vm, e.value, "
                "e.number, e.length, e.hash, e.data, e.element_path, e.flag FROM elements e "
                "JOIN instances i ON i.id = e.instance_id JOIN files f ON f.id = i.file_id "
                "JOIN tags t ON t.id = e.tag_id ORDER BY f.path, e.seq"
            ).fetchall()
    finally:
        engine.dispose()
    want = sorted((os.fsdecode(p), *r[:5], r[5] or "", *r[6:]) for p, rows in expected.items() for r in rows)
    assert [tuple(r) for r in got] == want

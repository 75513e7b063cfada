"""Several builders, one database: shards split the files stably and add up to one build."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ibash_index.build import BuildOptions, build, in_shard

from .hostile import copy_corpus
from .test_build import make_tree, snapshot


def test_shards_partition_the_files() -> None:
    """Every path falls in exactly one of N shards, the same on every machine (relative to its root)."""
    paths = [f"/data/s{i}/DICOM/{j}.dcm".encode() for i in range(20) for j in range(10)]
    for n in (1, 2, 3, 7):
        owners = [[k for k in range(1, n + 1) if in_shard(p, "/data", (k, n))] for p in paths]
        assert all(len(o) == 1 for o in owners)
    moved = [p.replace(b"/data", b"/mnt/other") for p in paths]
    assert [in_shard(p, "/data", (1, 3)) for p in paths] == [in_shard(p, "/mnt/other", (1, 3)) for p in moved]


def test_sharded_builds_add_up_to_one_build(tmp_path: Path, any_db: str) -> None:
    """Shard 1/2 and 2/2 into one database give the rows of one build over everything."""
    root = make_tree(tmp_path / "data")
    for k in (1, 2):
        build([root], any_db, BuildOptions(workers=1, shard=(k, 2)))
    whole = str(tmp_path / "whole.db")
    build([root], whole, BuildOptions(workers=1))
    assert snapshot(any_db) == snapshot(whole)


def test_a_shard_rerun_touches_only_its_files(tmp_path: Path) -> None:
    """Rerunning one shard leaves the other shard's files alone, even when they vanished."""
    root = tmp_path / "data"
    copy_corpus(root, 40)
    db = str(tmp_path / "x.db")
    for k in (1, 2):
        build([root], db, BuildOptions(workers=0, shard=(k, 2)))
    theirs = [p for p in root.rglob("*") if p.is_file() and not in_shard(bytes(p), str(root), (1, 2))]
    assert theirs
    theirs[0].unlink()
    again = build([root], db, BuildOptions(workers=0, shard=(1, 2)))
    assert again.removed == 0 and again.indexed == 0
    assert again.unchanged == sum(1 for p in root.rglob("*") if p.is_file() and in_shard(bytes(p), str(root), (1, 2)))


def test_two_concurrent_builders_on_postgresql(tmp_path: Path, postgres) -> None:
    """Two builder processes on disjoint shards, at the same time, into one PostgreSQL equal one build."""
    root = tmp_path / "data"
    copy_corpus(root, 400)
    db = postgres.new_database()
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ibash_index",
                "build",
                str(root),
                "--db",
                db,
                "--shard",
                f"{k}/2",
                "--workers",
                "1",
                "--quiet",
            ],
            stderr=subprocess.PIPE,
            text=True,
        )
        for k in (1, 2)
    ]
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err
    whole = str(tmp_path / "whole.db")
    build([root], whole, BuildOptions(workers=2))
    assert snapshot(db) == snapshot(whole)


@pytest.mark.parametrize("text", ["0/2", "3/2", "a/b", "2"])
def test_bad_shard_is_a_user_error(text: str, tmp_path: Path) -> None:
    """--shard outside 1..N is refused with one line."""
    from typer.testing import CliRunner

    from ibash_index.cli import app

    result = CliRunner().invoke(app, ["build", str(tmp_path), "--db", str(tmp_path / "x.db"), "--shard", text])
    assert result.exit_code == 1 and "--shard takes K/N" in result.stderr

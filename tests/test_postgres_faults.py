"""The crash tests of test_faults.py, on PostgreSQL: kill -9 and Ctrl-C leave whole instances only."""

from __future__ import annotations

import random
import signal
import subprocess
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from ibash_index.build import BuildOptions, build

from .conftest import engine_for
from .hostile import copy_corpus
from .test_build import snapshot
from .test_faults import REPO, cli, mutate


def consistency(db: str) -> tuple[int, int]:
    """(files rows, builds left running); asserts every instance has exactly its element_count elements."""
    engine = engine_for(db)
    try:
        with engine.connect() as conn:
            if not conn.execute(text("SELECT to_regclass('files')")).scalar():
                return 0, 0  # killed before the schema was committed
            short = conn.execute(
                text(
                    "SELECT count(*) FROM instances AS i "
                    "WHERE element_count != (SELECT count(*) FROM elements AS e WHERE e.instance_id = i.id)"
                )
            ).scalar()
            assert short == 0, f"{short} instances without all their elements"
            unindexed = conn.execute(
                text(
                    "SELECT count(*) FROM instances AS i JOIN files AS f ON f.id = i.file_id "
                    "WHERE f.status != 'indexed'"
                )
            ).scalar()
            assert unindexed == 0
            files = conn.execute(text("SELECT count(*) FROM files")).scalar()
            running = conn.execute(text("SELECT count(*) FROM builds WHERE status = 'running'")).scalar()
            return files, running
    finally:
        engine.dispose()


@pytest.mark.slow
def test_kill_9_on_postgresql_never_leaves_half_an_instance(tmp_path: Path, postgres) -> None:
    """kill -9 of a build writing to PostgreSQL, 20 times: whole instances only, and a rerun equals a clean build."""
    rng = random.Random(20261127)
    root = tmp_path / "data"
    copy_corpus(root, 2000)
    db = postgres.new_database()
    removed: dict[Path, bytes] = {}
    kills = mid_write = 0
    for _ in range(90):
        if kills >= 20 and mid_write >= 5:
            break
        proc = subprocess.Popen(cli(root, "--db", db, "--workers", "2", "-q"), cwd=REPO, stderr=subprocess.PIPE)
        moment = rng.uniform(0.5, 5.0) if mid_write >= 5 else rng.uniform(1.5, 6.0)  # as in test_faults
        try:
            proc.wait(timeout=moment)
            assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            kills += 1
        finally:
            if proc.stderr:
                proc.stderr.close()
        files, running = consistency(db)
        mid_write += bool(files and running)
        mutate(rng, root, removed)
    assert kills >= 20 and mid_write >= 5, (kills, mid_write)
    final = subprocess.run(cli(root, "--db", db, "--workers", "2"), cwd=REPO, capture_output=True, timeout=600)
    assert final.returncode == 0, final.stderr
    consistency(db)
    clean = str(tmp_path / "clean.db")
    build([root], clean, BuildOptions(workers=2))
    assert snapshot(db) == snapshot(clean)


def test_ctrl_c_on_postgresql_keeps_committed_work(tmp_path: Path, postgres) -> None:
    """Ctrl-C during a PostgreSQL build exits 130 with one line; committed files stay and the rerun finishes."""
    root = tmp_path / "data"
    copy_corpus(root, 1500)
    db = postgres.new_database()
    proc = subprocess.Popen(cli(root, "--db", db, "--workers", "2", "-q"), cwd=REPO, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while consistency(db)[0] == 0 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    if proc.returncode == 0:
        pytest.skip("the build finished before Ctrl-C arrived")
    assert proc.returncode == 130, err
    assert len(err.strip().splitlines()) == 1 and "run the same command again" in err
    committed, _ = consistency(db)
    assert committed > 0
    again = subprocess.run([*cli(root, "--db", db), "--quiet"], cwd=REPO, capture_output=True, timeout=600)
    assert again.returncode == 0 and consistency(db)[0] == 1500

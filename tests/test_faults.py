"""Faults: hangs, memory hogs, killed workers, kill -9, Ctrl-C, SIGTERM, a reader, a second build, a full disk.

After each, the database passes SQLite's integrity check, every instance has all its elements,
what was committed is kept, and the next build ends where a clean build ends. Builds that must
be killed or signalled run as `python -m ibash_index build` subprocesses.
"""

from __future__ import annotations

import functools
import os
import random
import re
import resource
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import alembic.command
import pytest

import ibash_index.build
import ibash_index.migrate
import ibash_index.pool
from ibash_index.build import BuildInterrupted, BuildOptions, build
from ibash_index.crawl import Candidate, Skipped
from ibash_index.errors import IbashError
from ibash_index.extract import ExtractOptions
from ibash_index.pool import Limits, Pool
from ibash_index.store import Writer

from .hostile import copy_corpus, deflate_bomb, dicom, hanging_reader, pid_reporting_reader
from .test_build import snapshot
from .test_summaries import assert_summaries_match

REPO = Path(__file__).resolve().parents[1]


def cli(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "ibash_index", "build", *(str(a) for a in args)]


def status_of(db: Path) -> dict[str, tuple[str, str | None]]:
    """File name -> (status, reason)."""
    con = sqlite3.connect(db)
    try:
        return {Path(p).name: (s, r) for p, s, r in con.execute("SELECT path, status, reason FROM files")}
    finally:
        con.close()


def assert_consistent(db: Path) -> int:
    """SQLite's integrity check passes and every instance has exactly its element_count elements; the file count."""
    con = sqlite3.connect(db)
    try:
        assert con.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert con.execute("PRAGMA foreign_key_check").fetchall() == []
        if not con.execute("SELECT name FROM sqlite_master WHERE name = 'files'").fetchall():
            assert con.execute("SELECT count(*) FROM sqlite_master").fetchone() == (0,), "half a schema"
            return 0  # killed before the schema was committed: an empty database, which the next build fills
        short = con.execute(
            "SELECT count(*) FROM instances AS i "
            "WHERE element_count != (SELECT count(*) FROM elements AS e WHERE e.instance_id = i.id)"
        ).fetchone()[0]
        assert short == 0, f"{short} instances without all their elements"
        stray = con.execute("SELECT count(*) FROM elements WHERE instance_id NOT IN (SELECT id FROM instances)")
        assert stray.fetchone()[0] == 0
        unindexed = con.execute(
            "SELECT count(*) FROM instances AS i JOIN files AS f ON f.id = i.file_id WHERE f.status != 'indexed'"
        )
        assert unindexed.fetchone()[0] == 0
        return con.execute("SELECT count(*) FROM files").fetchone()[0]
    finally:
        con.close()


def wait_for_rows(db: Path, proc: subprocess.Popen, at_least: int = 1, timeout: float = 120) -> int:
    """Wait until a running build has committed `at_least` files rows (read as a WAL reader would)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the build ended before it could be interrupted"
        if db.exists():
            try:
                con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
                try:
                    n = con.execute("SELECT count(*) FROM files").fetchone()[0]
                finally:
                    con.close()
                if n >= at_least:
                    return n
            except sqlite3.OperationalError:
                pass  # no schema yet
        time.sleep(0.05)
    raise AssertionError("the build committed nothing in time")


def test_a_hanging_file_costs_one_timeout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file whose reading never ends is an error after --timeout; its worker is replaced and the rest is read."""
    root = tmp_path / "data"
    copy_corpus(root, 30)
    (root / "s0-000" / "hang.dcm").write_bytes(dicom(900))
    monkeypatch.setattr(ibash_index.pool, "Pool", functools.partial(Pool, reader=hanging_reader))
    started = time.monotonic()
    summary = build([root], str(tmp_path / "x.db"), BuildOptions(workers=1, timeout=2))
    assert time.monotonic() - started < 60
    assert (summary.indexed, summary.errors) == (30, 1)
    assert status_of(tmp_path / "x.db")["hang.dcm"] == (
        "error",
        "timed out: reading took longer than 2 s (see --timeout)",
    )


def test_a_memory_hog_is_stopped_by_the_memory_limit(tmp_path: Path) -> None:
    """A file that needs more memory than a worker may use is an error naming the limit; the next files are read."""
    paths = copy_corpus(tmp_path, 6)
    bomb = tmp_path / "bomb.dcm"
    bomb.write_bytes(deflate_bomb(901, 400))  # inflates to 400 MB: more than the 200 MB allowed
    order = [*paths[:3], bomb, *paths[3:]]
    candidates = [Candidate(os.fsencode(p), str(tmp_path), p.stat().st_size, p.stat().st_mtime_ns) for p in order]
    # max_inflated=0 turns off the check that refuses bombs before inflating: the address-space limit must hold.
    pool = Pool(1, ExtractOptions(max_inflated=0), Limits(timeout=120, memory_mb=200))
    results = {Path(os.fsdecode(r.path_bytes)).name: r for r in pool.run(candidates)}
    assert results["bomb.dcm"].status == "error"
    assert results["bomb.dcm"].reason == (
        "out of memory: reading it needs more than the 200 MB a worker may use (see --max-memory)"
    )
    assert [r.status for n, r in results.items() if n != "bomb.dcm"] == ["indexed"] * 6


def test_a_deflate_bomb_is_refused_before_it_is_inflated(tmp_path: Path) -> None:
    """A deflated data set that would inflate past a quarter of --max-memory is an error, found without holding it."""
    root = tmp_path / "data"
    root.mkdir()
    (root / "bomb.dcm").write_bytes(deflate_bomb(902, 100))
    (root / "ok.dcm").write_bytes(dicom(903))
    build([root], str(tmp_path / "x.db"), BuildOptions(workers=1, max_memory_mb=256))
    status, reason = status_of(tmp_path / "x.db")["bomb.dcm"]
    assert status == "error" and reason.startswith("too large: the deflated data set inflates to more than 64 MB")
    assert status_of(tmp_path / "x.db")["ok.dcm"][0] == "indexed"


def test_a_worker_killed_mid_build_costs_one_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker killed with SIGKILL (as the OOM killer does) makes its file an error; the build reads the rest."""
    root = tmp_path / "data"
    copy_corpus(root, 40)
    (root / "s0-000" / "victim.dcm").write_bytes(dicom(904))
    pidfile = tmp_path / "pid"
    monkeypatch.setenv("IBASH_TEST_PIDFILE", str(pidfile))
    monkeypatch.setattr(ibash_index.pool, "Pool", functools.partial(Pool, reader=pid_reporting_reader))

    def kill_the_victim_reader() -> None:
        deadline = time.monotonic() + 60
        while not pidfile.exists() or not pidfile.read_text():
            if time.monotonic() > deadline:
                return
            time.sleep(0.05)
        os.kill(int(pidfile.read_text()), signal.SIGKILL)

    killer = threading.Thread(target=kill_the_victim_reader)
    killer.start()
    summary = build([root], str(tmp_path / "x.db"), BuildOptions(workers=2))
    killer.join()
    assert (summary.indexed, summary.errors) == (40, 1)
    assert status_of(tmp_path / "x.db")["victim.dcm"] == (
        "error",
        "worker killed: the worker reading it was killed by SIGKILL (out of memory?)",
    )
    assert_summaries_match(str(tmp_path / "x.db"))  # its batch's other files were counted without a tally


def mutate(rng: random.Random, root: Path, removed: dict[Path, bytes]) -> None:
    """Change, delete and restore some files, so that every build has reading and rewriting to do."""
    present = sorted(root.rglob("*.dcm"))
    for path in rng.sample(present, min(250, len(present))):
        data = path.read_bytes()
        path.write_bytes(
            data.replace(b"Doe^Jane", b"Roe^Jane") if b"Doe^Jane" in data else data.replace(b"Roe", b"Doe")
        )
    for path in rng.sample(present, 10):
        if path.exists():
            removed[path] = path.read_bytes()
            path.unlink()
    for path in rng.sample(sorted(removed), min(len(removed), 8)):
        path.write_bytes(removed.pop(path))


def _killed_after_a_commit(db: Path) -> bool:
    """Whether the last (killed) build had committed a batch: the kill came in the middle of writing."""
    if not db.exists():
        return False
    con = sqlite3.connect(db)
    try:
        last = con.execute("SELECT id, status FROM builds ORDER BY id DESC LIMIT 1").fetchone()
        return bool(
            last
            and last[1] == "running"
            and con.execute("SELECT count(*) FROM files WHERE build_id = ?", (last[0],)).fetchone()[0]
        )
    except sqlite3.OperationalError:
        return False  # no schema yet
    finally:
        con.close()


@pytest.mark.slow
def test_kill_9_at_random_moments_never_corrupts(tmp_path: Path) -> None:
    """kill -9 of the build at 20+ random moments: the database stays whole, and a rerun equals a clean build."""
    rng = random.Random(20261126)
    root = tmp_path / "data"
    copy_corpus(root, 3000)
    db = tmp_path / "x.db"
    removed: dict[Path, bytes] = {}
    kills = finished = mid_write = 0
    for attempt in range(90):
        if kills >= 20 and mid_write >= 5:
            break
        full = ["--full"] if attempt % 5 == 4 else []
        proc = subprocess.Popen(cli(root, "--db", db, "--workers", "2", "-q", *full), cwd=REPO, stderr=subprocess.PIPE)
        # Random moments; until enough kills have landed between two batches, later ones, since
        # on a loaded machine start-up alone can take longer than the early moments.
        moment = rng.uniform(0.3, 4.0) if mid_write >= 5 else rng.uniform(1.0, 6.0)
        try:
            proc.wait(timeout=moment)
            assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""
            finished += 1
        except subprocess.TimeoutExpired:
            proc.kill()  # SIGKILL to the build process only, as `kill -9 PID` does
            proc.wait()
            kills += 1
            mid_write += _killed_after_a_commit(db)
        finally:
            if proc.stderr:
                proc.stderr.close()
        assert_consistent(db)
        mutate(rng, root, removed)
    assert kills >= 20, f"only {kills} of the builds could be killed ({finished} finished first)"
    assert mid_write >= 5, f"only {mid_write} kills came between two batches"
    final = subprocess.run(cli(root, "--db", db, "--workers", "2"), cwd=REPO, capture_output=True, timeout=600)
    assert final.returncode == 0, final.stderr
    assert_consistent(db)
    clean = tmp_path / "clean.db"
    build([root], str(clean), BuildOptions(workers=2))
    assert snapshot(db) == snapshot(clean)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("how", "code", "what"),
    [
        ("SIGINT", 130, "interrupted (Ctrl-C)"),
        ("SIGINT to the process group", 130, "interrupted (Ctrl-C)"),
        ("SIGTERM", 143, "stopped by SIGTERM"),
    ],
)
def test_ctrl_c_and_sigterm_keep_committed_work(tmp_path: Path, how: str, code: int, what: str) -> None:
    """Ctrl-C (130) and SIGTERM (143) end the build with one line saying so and how to resume; committed work stays."""
    root = tmp_path / "data"
    copy_corpus(root, 1200)
    db = tmp_path / "x.db"
    proc = subprocess.Popen(
        cli(root, "--db", db, "--workers", "2"),
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,  # a process group of its own, like a job in a terminal
        # with Ctrl-C as a terminal's job has it: a shell's background job (CI, nohup) inherits SIGINT ignored
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        wait_for_rows(db, proc)
        if how == "SIGINT to the process group":  # what Ctrl-C in a terminal does: the workers get it too
            os.killpg(proc.pid, signal.SIGINT)
        else:
            proc.send_signal(getattr(signal, how))
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == code, err
    lines = err.decode().splitlines()
    assert len(lines) == 1, lines
    match = re.fullmatch(
        rf"Error: build {re.escape(what)}: the (\d+) files written so far are kept and the batch being written "
        r"was rolled back; run the same command again to finish \(files already written are not read again\)",
        lines[0],
    )
    assert match, lines[0]
    assert out == b""
    committed = assert_consistent(db)
    assert committed == int(match[1]) > 0
    con = sqlite3.connect(db)
    assert con.execute("SELECT status FROM builds ORDER BY id DESC").fetchone() == ("interrupted",)
    con.close()
    again = subprocess.run(cli(root, "--db", db, "--workers", "2"), cwd=REPO, capture_output=True, timeout=600)
    assert again.returncode == 0, again.stderr
    assert f"{committed} unchanged" in again.stdout.decode()
    assert assert_consistent(db) == 1200


def test_a_reader_holding_the_database_does_not_block_a_build(tmp_path: Path) -> None:
    """A SQLite browser with an open read transaction neither blocks a build nor sees half of it (WAL)."""
    root = tmp_path / "data"
    copy_corpus(root, 100)
    db = tmp_path / "x.db"
    build([root], str(db), BuildOptions(workers=0))
    reader = sqlite3.connect(db, isolation_level=None)
    reader.execute("BEGIN")
    assert reader.execute("SELECT count(*) FROM files").fetchone() == (100,)
    copy_corpus(root, 100, seed=1)
    started = time.monotonic()
    summary = build([root], str(db), BuildOptions(workers=0))
    assert summary.indexed == 100
    assert time.monotonic() - started < 25  # the busy timeout is 30 s: a blocked build would take longer or fail
    assert reader.execute("SELECT count(*) FROM files").fetchone() == (100,)  # its snapshot, not half a build
    reader.execute("COMMIT")
    assert reader.execute("SELECT count(*) FROM files").fetchone() == (200,)
    reader.close()


@pytest.mark.slow
def test_a_second_build_refuses_at_once_and_writes_nothing(tmp_path: Path) -> None:
    """While one build runs, a second `ibash-index build` on its database exits 1 at once; the first is unharmed."""
    root = tmp_path / "data"
    copy_corpus(root, 2000)
    db = tmp_path / "x.db"
    first = subprocess.Popen(cli(root, "--db", db, "--workers", "2", "-q"), cwd=REPO, stderr=subprocess.PIPE)
    try:
        wait_for_rows(db, first)
        os.kill(first.pid, signal.SIGSTOP)  # paused mid-build, lock held: the second build cannot race past its end
        assert first.poll() is None, "the first build ended before the second could start"
        started = time.monotonic()
        second = subprocess.run(cli(root, "--db", db, "--workers", "1"), cwd=REPO, capture_output=True, timeout=60)
        assert time.monotonic() - started < 15
        assert second.returncode == 1
        assert second.stderr.decode().strip() == f"Error: another build is writing to {db}; wait for it to finish"
        os.kill(first.pid, signal.SIGCONT)
        assert first.wait(timeout=600) == 0
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
        if first.stderr:
            first.stderr.close()
    assert assert_consistent(db) == 2000
    con = sqlite3.connect(db)
    assert con.execute("SELECT count(*), min(status) FROM builds").fetchone() == (1, "complete")
    con.close()


def _file_size_limit(limit: int) -> None:
    """In the child: files may not grow past `limit` bytes (Python ignores SIGXFSZ, so writes fail with EFBIG)."""
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


@pytest.mark.slow
def test_a_full_disk_is_a_clear_error_and_keeps_what_was_committed(tmp_path: Path) -> None:
    """When the database cannot grow, the build exits 1 naming it; committed data stays and a rerun finishes."""
    root = tmp_path / "data"
    copy_corpus(root, 300)
    db = tmp_path / "x.db"
    build([root], str(db), BuildOptions(workers=0))
    before = snapshot(db)
    copy_corpus(root, 1500, seed=1)
    size = db.stat().st_size + (Path(f"{db}-wal").stat().st_size if Path(f"{db}-wal").exists() else 0)
    full = subprocess.run(
        cli(root, "--db", db, "--workers", "2"),
        cwd=REPO,
        capture_output=True,
        timeout=600,
        preexec_fn=functools.partial(_file_size_limit, size + 1_500_000),
    )
    assert full.returncode == 1, full.stderr
    lines = full.stderr.decode().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"Error: cannot write to the database {db}: "), lines[0]
    assert "full" in lines[0] and "run the same command again" in lines[0], lines[0]
    committed = assert_consistent(db)
    assert 300 <= committed < 1800
    kept = snapshot(db)
    assert before["elements"] <= kept["elements"] and before["instances"] <= kept["instances"]
    again = subprocess.run(cli(root, "--db", db, "--workers", "2"), cwd=REPO, capture_output=True, timeout=600)
    assert again.returncode == 0, again.stderr
    clean = tmp_path / "clean.db"
    build([root], str(clean), BuildOptions(workers=2))
    assert snapshot(db) == snapshot(clean)


def test_files_changed_between_listing_and_reading_are_recorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Files deleted, cut short or replaced (by a FIFO, a folder, a file) after listing are recorded, not fatal."""
    root = tmp_path / "data"
    copy_corpus(root, 20)
    for name in ("gone", "cut", "fifo", "folder", "replaced"):
        (root / f"{name}.dcm").write_bytes(dicom(910 + len(name)))
    real_crawl = ibash_index.build.crawl

    def crawl_then_change(roots: list[str], follow_symlinks: bool) -> Iterator[Candidate | Skipped]:
        listed = list(real_crawl(roots, follow_symlinks))
        (root / "gone.dcm").unlink()
        data = (root / "cut.dcm").read_bytes()
        (root / "cut.dcm").write_bytes(data[: len(data) // 3])
        (root / "fifo.dcm").unlink()
        os.mkfifo(root / "fifo.dcm")
        (root / "folder.dcm").unlink()
        (root / "folder.dcm").mkdir()
        (root / "replaced.dcm").write_bytes(dicom(999, name="Other^Person"))
        yield from listed

    monkeypatch.setattr(ibash_index.build, "crawl", crawl_then_change)
    db = tmp_path / "x.db"
    summary = build([root], str(db), BuildOptions(workers=2, timeout=30))
    got = status_of(db)
    assert got["gone.dcm"] == ("error", "vanished: the file was deleted or moved after it was listed")
    assert got["cut.dcm"][0] == "error" and got["cut.dcm"][1].startswith("truncated: the file ends at byte")
    assert got["fifo.dcm"] == ("skipped", "not a regular file (FIFO)")
    assert got["folder.dcm"] == ("skipped", "not a regular file (folder)")
    assert got["replaced.dcm"] == ("indexed", None)
    assert summary.indexed == 21
    con = sqlite3.connect(db)
    name = con.execute(
        "SELECT value FROM element_view WHERE path = ? AND element_path = 'PatientName'", (str(root / "replaced.dcm"),)
    ).fetchone()
    assert name == ("Other^Person",)
    con.close()
    monkeypatch.undo()
    build([root], str(db), BuildOptions(workers=2))
    clean = tmp_path / "clean.db"
    build([root], str(clean), BuildOptions(workers=2))
    assert snapshot(db) == snapshot(clean)


def test_a_build_stopped_before_tidying_up_is_tidied_by_the_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Studies, series and tags left stale by a build stopped after its last batch are put right by the next build."""
    root = tmp_path / "data"
    paths = copy_corpus(root, 120)
    db = tmp_path / "x.db"
    build([root], str(db), BuildOptions(workers=0))
    paths[0].unlink()  # the first file by path: its values fill its series and the study
    paths[50].write_bytes(paths[50].read_bytes().replace(b"Doe^Jane", b"Roe^Jane"))  # first of the next series

    def stop(self: Writer, everything: bool = False) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(Writer, "refresh_hierarchy", stop)
    with pytest.raises(BuildInterrupted):
        build([root], str(db), BuildOptions(workers=0))
    monkeypatch.undo()
    con = sqlite3.connect(db)
    stale = con.execute("SELECT count(*) FROM series WHERE key_path = ?", (str(paths[0]),)).fetchone()
    con.close()
    assert stale == (1,)  # the stopped build could not put it right
    summary = build([root], str(db), BuildOptions(workers=0))
    assert summary.indexed == 0  # nothing to read again, yet everything is tidied
    clean = tmp_path / "clean.db"
    build([root], str(clean), BuildOptions(workers=0))
    assert snapshot(db) == snapshot(clean)


def test_a_build_stopped_while_creating_the_schema_leaves_no_half_schema(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stopped after the schema's tables were made but before commit, a new database is left empty and usable."""
    root = tmp_path / "data"
    copy_corpus(root, 5)
    db = tmp_path / "x.db"
    real_upgrade = alembic.command.upgrade

    def upgrade_then_stop(*args: object, **kwargs: object) -> None:
        real_upgrade(*args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(alembic.command, "upgrade", upgrade_then_stop)
    with pytest.raises(KeyboardInterrupt):
        build([root], str(db), BuildOptions(workers=0))
    monkeypatch.undo()
    con = sqlite3.connect(db)
    assert con.execute("SELECT name FROM sqlite_master").fetchall() == []
    con.close()
    assert build([root], str(db), BuildOptions(workers=0)).indexed == 5


def test_deleting_the_only_file_of_the_first_series_refills_its_study(tmp_path: Path) -> None:
    """When the file that filled a study vanishes with its whole series, the study is filled from the next file."""
    root = tmp_path / "data"
    root.mkdir()
    (root / "a.dcm").write_bytes(dicom(920, name="First^Patient"))  # alone in its series; first by path
    (root / "b.dcm").write_bytes(dicom(921, name="Second^Patient"))
    db = tmp_path / "x.db"
    build([root], str(db), BuildOptions(workers=0))
    (root / "a.dcm").unlink()
    build([root], str(db), BuildOptions(workers=0))
    con = sqlite3.connect(db)
    assert con.execute("SELECT patient_name, key_path FROM studies").fetchall() == [
        ("Second^Patient", str(root / "b.dcm"))
    ]
    con.close()
    clean = tmp_path / "clean.db"
    build([root], str(clean), BuildOptions(workers=0))
    assert snapshot(db) == snapshot(clean)


BROKEN_WORKER = """
import os

if os.getpid() != int(os.environ["IBASH_TEST_PARENT"]):  # in a worker: fail as a broken install would
    raise ImportError("this worker cannot start")


def reader(path, root, options):
    raise AssertionError("never called")
"""


def test_workers_that_cannot_start_stop_the_build_with_one_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Workers dying before they are ready end the build with one clear error; no file is blamed for it."""
    (tmp_path / "broken_worker_module.py").write_text(BROKEN_WORKER)
    monkeypatch.syspath_prepend(str(tmp_path))  # the spawned workers get the same sys.path
    monkeypatch.setenv("IBASH_TEST_PARENT", str(os.getpid()))
    import broken_worker_module

    root = tmp_path / "data"
    copy_corpus(root, 20)
    monkeypatch.setattr(ibash_index.pool, "Pool", functools.partial(Pool, reader=broken_worker_module.reader))
    db = tmp_path / "x.db"
    with pytest.raises(IbashError, match=r"^worker processes cannot start \(the last one ended with code 1\)"):
        build([root], str(db), BuildOptions(workers=2))
    assert status_of(db) == {}  # nothing recorded as an error that was not the files' doing

"""What each process imports: the costs that made start-up slow stay away from where they are not needed.

Workers read files with pydicom and count tallies; importing SQLAlchemy cost each of them
about 0.3 CPU-seconds at every start. Measured reasons are in the modules' docstrings.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pty
import shutil
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pydicom.data

WORKER = """
import sys
from ibash_index import pool, spool  # what a worker unpickles
from ibash_index.extract import read_file
from ibash_index.outcome import ExtractOptions
from ibash_index.tally import Profile, Tally

profile = Profile((("(0010,0010)", "00100010", "Z"),))
for path in {paths!r}:
    result = read_file(path.encode(), "/", ExtractOptions())
    assert result.status == "indexed", result.reason
    Tally(profile).count(result, result.rows)
print(sorted(m for m in ("sqlalchemy", "alembic", "typer") if m in sys.modules))
"""


def test_a_worker_reads_and_counts_without_sqlalchemy() -> None:
    paths = [pydicom.data.get_testdata_file(name) for name in ("MR_small.dcm", "rtplan.dcm", "CT_small.dcm")]
    out = subprocess.run([sys.executable, "-c", WORKER.format(paths=paths)], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


CLI = """
import sys
from ibash_index.cli import app
try:
    app({args!r}, prog_name="ibash-index")
except SystemExit as exc:
    assert not exc.code, exc.code
print("tqdm" in sys.modules)
"""


def _three_files(tmp_path: Path) -> Path:
    root = tmp_path / "in"
    root.mkdir()
    for name in ("MR_small.dcm", "rtplan.dcm", "CT_small.dcm"):
        shutil.copy(pydicom.data.get_testdata_file(name), root / name)
    return root


def test_without_a_terminal_reruns_and_reports_never_import_tqdm(tmp_path: Path) -> None:
    """tqdm costs a few hundredths of a second at every start; only a progress bar needs it."""
    db = str(tmp_path / "x.db")
    build = ["build", str(_three_files(tmp_path)), "--db", db, "--workers", "0"]
    report = ["report", "sessions", "--db", db, "--format", "csv"]
    runs = [(build, "3 indexed", None), (build, "3 unchanged", "False"), (report, "4MR1", "False")]
    for args, says, imports in runs:
        out = subprocess.run([sys.executable, "-c", CLI.format(args=args)], capture_output=True, text=True, check=True)
        *printed, imported = out.stdout.splitlines()
        assert says in "\n".join(printed) and imports in (None, imported)


def test_on_a_terminal_the_build_shows_a_progress_bar(tmp_path: Path) -> None:
    args = ["build", str(_three_files(tmp_path)), "--db", str(tmp_path / "x.db"), "--workers", "0"]
    env = {k: v for k, v in os.environ.items() if k != "CI"}  # the bar stays off under CI
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a bar needs columns
    with subprocess.Popen(
        [sys.executable, "-c", CLI.format(args=args)], stdout=subprocess.PIPE, stderr=follower, env=env, text=True
    ) as process:
        os.close(follower)
        stdout, _ = process.communicate(timeout=120)
    terminal = b""
    with contextlib.suppress(OSError):  # EIO once the process has closed its end
        while chunk := os.read(leader, 65536):
            terminal += chunk
    os.close(leader)
    assert process.returncode == 0
    assert stdout.splitlines()[-1] == "True"
    assert b"100%" in terminal and b"3/3" in terminal

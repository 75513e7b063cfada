"""The command line: help with examples everywhere, clean one-line errors, scriptable exit codes."""

from __future__ import annotations

import os
import shutil
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pydicom.data
import pytest
import typer
from typer.testing import CliRunner

from ibash_index import __version__
from ibash_index.cli import app

from .test_build import SOURCES, make_tree

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()
COMMANDS = sorted(typer.main.get_command(app).commands)  # type: ignore[attr-defined]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_an_example(command: str) -> None:
    """`ibash-index COMMAND --help` works and shows an example."""
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Example" in result.stdout and f"ibash-index {command}" in result.stdout


@pytest.mark.parametrize("command", COMMANDS)
def test_readme_documents_every_command(command: str) -> None:
    """The README mentions every command."""
    assert f"ibash-index {command}" in (REPO / "README.md").read_text()


def test_version() -> None:
    """--version prints the tool and pydicom versions."""
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and __version__ in result.stdout and "pydicom" in result.stdout


def test_build_then_rebuild(tmp_path: Path) -> None:
    """build prints one summary line; a rerun reports every file unchanged."""
    root = make_tree(tmp_path / "data")
    db = tmp_path / "x.db"
    first = runner.invoke(app, ["build", str(root), "--db", str(db), "--workers", "1"])
    assert first.exit_code == 0, first.output
    assert f"{len(SOURCES) + 1} files seen: {len(SOURCES)} indexed, 0 unchanged, 1 not DICOM, 0 errors" in first.stdout
    second = runner.invoke(app, ["build", str(root), "--db", str(db)])
    assert second.exit_code == 0
    assert f"0 indexed, {len(SOURCES) + 1} unchanged" in second.stdout
    quiet = runner.invoke(app, ["build", str(root), "--db", str(db), "--quiet"])
    assert quiet.exit_code == 0 and quiet.stdout == "" and quiet.stderr == ""


def test_sample_command(tmp_path: Path) -> None:
    """sample writes the data set and says how many files."""
    result = runner.invoke(app, ["sample", str(tmp_path / "s")])
    assert result.exit_code == 0, result.output
    assert "DICOM files" in result.stdout
    again = runner.invoke(app, ["sample", str(tmp_path / "s")])
    assert again.exit_code == 1 and again.stderr.startswith("Error: ") and "Traceback" not in again.output


def user_error(args: list[str], match: str, quiet_stdout: bool = True) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 1, result.output
    assert result.stdout == "" or not quiet_stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and match in lines[0], result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit)


class TestUserErrors:
    """Errors a user can cause: one line on stderr, exit code 1, no traceback."""

    def test_missing_folder(self, tmp_path: Path) -> None:
        """A root that does not exist is named."""
        user_error(["build", str(tmp_path / "nope"), "--db", str(tmp_path / "x.db")], "nope: no such file or folder")

    def test_database_is_a_folder(self, tmp_path: Path) -> None:
        """--db pointing at a folder is refused."""
        user_error(["build", str(tmp_path), "--db", str(tmp_path)], "is a folder")

    def test_database_is_not_sqlite(self, tmp_path: Path) -> None:
        """A --db file that is not SQLite is left untouched."""
        db = tmp_path / "notes.txt"
        db.write_text("my notes")
        user_error(["build", str(make_tree(tmp_path / "d")), "--db", str(db)], "is not a SQLite database")
        assert db.read_text() == "my notes"

    def test_database_of_another_program(self, tmp_path: Path) -> None:
        """A SQLite file of another program is refused."""
        db = tmp_path / "other.db"
        sqlite3.connect(db).execute("CREATE TABLE t (x)").connection.close()
        user_error(["build", str(make_tree(tmp_path / "d")), "--db", str(db)], "another program")

    @pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
    def test_unwritable_database(self, tmp_path: Path) -> None:
        """A database in a folder we cannot write is refused with the reason."""
        locked = tmp_path / "ro"
        locked.mkdir(mode=0o500)
        user_error(["build", str(make_tree(tmp_path / "d")), "--db", str(locked / "x.db")], "cannot create")

    def test_unwritable_database_as_root(self, tmp_path: Path) -> None:
        """A database path under a regular file cannot be created, whoever runs it."""
        (tmp_path / "file").write_text("")
        user_error(["build", str(make_tree(tmp_path / "d")), "--db", str(tmp_path / "file" / "x.db")], "cannot create")

    def test_nothing_indexable(self, tmp_path: Path) -> None:
        """A folder with files but no DICOM exits 1 so scripts notice."""
        (tmp_path / "d").mkdir()
        (tmp_path / "d" / "a.txt").write_text("hello")
        user_error(["build", str(tmp_path / "d"), "--db", str(tmp_path / "x.db")], "no DICOM file", quiet_stdout=False)


class TestMoreUserErrors:
    """Paths, URLs and options that cannot work: one line and exit 1, never a traceback, before anything is written."""

    @pytest.fixture(scope="class")
    def db(self, tmp_path_factory: pytest.TempPathFactory) -> str:
        root = make_tree(tmp_path_factory.mktemp("tree") / "d")
        db = str(root.parent / "x.db")
        assert runner.invoke(app, ["build", str(root), "--db", db, "--workers", "0"]).exit_code == 0
        return db

    def test_outputs_that_cannot_be_written(self, db: str, tmp_path: Path) -> None:
        (tmp_path / "file").write_text("")
        user_error(["compare", "--db", db, "-o", str(tmp_path / "no" / "x.html")], "x.html: No such file", False)
        user_error(["export", str(tmp_path / "file"), "--db", db, "-f", "csv"], "file: File exists")
        user_error(["sample", str(tmp_path / "file" / "s")], "cannot use")

    def test_database_urls_that_cannot_be_used(self, tmp_path: Path) -> None:
        root = str(make_tree(tmp_path / "d"))
        refused = "postgresql+psycopg://me:secret@127.0.0.1:1/ibash"  # nothing listens on port 1
        for args in (["build", root, "--db", refused], ["report", "sites", "--db", refused]):
            result = runner.invoke(app, args)
            assert result.exit_code == 1 and "secret" not in result.output, result.output
            assert result.stderr.startswith("Error: cannot connect to the database: ")
            assert len(result.stderr.splitlines()) == 1
        user_error(["report", "sites", "--db", "mysql://u:p@localhost/x"], "not mysql")
        user_error(["report", "sites", "--db", "postgresql://u:p@localhost:port/x"], "not a database URL")

    @pytest.mark.parametrize(
        ("option", "match"),
        [
            (["--site-from", "level:abc"], "level:N takes a folder level"),
            (["--site-from", "level:0"], "level:N takes a folder level"),
            (["--site-from", "Nonsense"], "takes a DICOM keyword"),
            (["--timeout", "0"], "--timeout must be above 0"),
            (["--workers", "-5"], "cannot be negative"),
            (["--max-blob", "-1"], "cannot be negative"),
        ],
    )
    def test_options_are_checked_first(self, tmp_path: Path, option: list[str], match: str) -> None:
        db = tmp_path / "x.db"
        user_error(["build", str(make_tree(tmp_path / "d")), "--db", str(db), *option], match)
        assert not db.exists()

    def test_an_empty_folder(self, tmp_path: Path) -> None:
        """A folder with no files at all (a wrong path, a copy not done yet) is an error too; an empty shard is not."""
        (tmp_path / "empty").mkdir()
        user_error(["build", str(tmp_path / "empty"), "--db", str(tmp_path / "x.db")], "no files found under", False)
        (tmp_path / "one").mkdir()
        shutil.copy(pydicom.data.get_testdata_file("MR_small.dcm"), tmp_path / "one" / "a.dcm")
        for k in (1, 2, 3):  # one of the three shards has the file, the others nothing to do
            args = ["build", str(tmp_path / "one"), "--db", str(tmp_path / "s.db"), "--shard", f"{k}/3"]
            result = runner.invoke(app, args)
            assert result.exit_code == 0, result.output


def test_files_holding_patient_data_are_private(tmp_path: Path) -> None:
    """An empty file given as --db becomes a 0600 index; a readable one is warned about; exports are 0700."""
    root = str(make_tree(tmp_path / "d"))
    db = tmp_path / "touched.db"
    db.touch(mode=0o644)
    os.chmod(db, 0o644)
    assert runner.invoke(app, ["build", root, "--db", str(db), "--workers", "0"]).exit_code == 0
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    os.chmod(db, 0o644)  # the owner's choice is kept, and named
    result = runner.invoke(app, ["build", root, "--db", str(db)])
    assert result.exit_code == 0 and "warning: other users can read" in result.stderr
    assert stat.S_IMODE(db.stat().st_mode) == 0o644
    assert runner.invoke(app, ["export", str(tmp_path / "out"), "--db", str(db), "-f", "csv"]).exit_code == 0
    assert stat.S_IMODE((tmp_path / "out").stat().st_mode) == 0o700
    assert runner.invoke(app, ["export", str(tmp_path), "--db", str(db)]).exit_code == 0  # parquet, an open folder
    for out in (tmp_path / "out").iterdir(), tmp_path.glob("*.parquet"):
        modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in out}
        assert "elements.csv" in modes or "elements.parquet" in modes
        assert set(modes.values()) == {0o600}, modes
    page = tmp_path / "compare.html"
    assert runner.invoke(app, ["compare", "--db", str(db), "-o", str(page)]).exit_code == 0
    assert stat.S_IMODE(page.stat().st_mode) == 0o600


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    """--debug lets the exception through for a bug report."""
    result = runner.invoke(app, ["--debug", "build", str(tmp_path / "nope"), "--db", str(tmp_path / "x.db")])
    assert result.exit_code == 1 and result.exception is not None and not isinstance(result.exception, SystemExit)


def test_python_dash_m_entry_point() -> None:
    """`python -m ibash_index --help` runs the real entry point."""
    result = subprocess.run([sys.executable, "-m", "ibash_index", "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "build" in result.stdout and "Usage: ibash-index" in result.stdout

"""The migrations create exactly the schema the code describes, and the version is checked."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine

from ibash_index import migrate
from ibash_index.errors import NotAnIndex, SchemaTooNew
from ibash_index.store import open_index


def test_migrations_match_the_models() -> None:
    """Upgrading an empty database to head leaves nothing for autogenerate to add or change."""
    engine = create_engine("sqlite://")
    with engine.begin() as conn:
        migrate.upgrade(conn)
        migrate.check(conn)  # raises if schema.py and migrations/ disagree
        assert migrate.current(conn) == migrate.head()
        assert migrate.is_current(conn)


def test_the_quick_head_check_agrees_with_alembic() -> None:
    """Opening an up-to-date index skips Alembic by reading the newest revision from the files: it must be Alembic's."""
    assert migrate.bundled_head() == migrate.head()
    engine = create_engine("sqlite://")
    with engine.begin() as conn:
        assert not migrate.is_current(conn)  # no alembic_version table yet


def test_database_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    """A database at a revision this version does not know is refused with an upgrade hint."""
    db = tmp_path / "x.db"
    open_index(str(db)).dispose()
    con = sqlite3.connect(db)
    con.execute("UPDATE alembic_version SET version_num = 'ffff_future'")
    con.commit()
    con.close()
    with pytest.raises(SchemaTooNew, match="upgrade ibash-index"):
        open_index(str(db))


def test_database_of_another_program_is_refused(tmp_path: Path) -> None:
    """A SQLite file with other tables is not touched."""
    db = tmp_path / "other.db"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE accounts (id INTEGER)")
    con.close()
    with pytest.raises(NotAnIndex, match="another program"):
        open_index(str(db))
    con = sqlite3.connect(db)
    assert [r[0] for r in con.execute("SELECT name FROM sqlite_master")] == ["accounts"]


def test_alembic_first_imported_under_a_swapped_stdout_still_works() -> None:
    """Alembic binds sys.stdout when it is first imported; a check later must use the current one."""
    code = (
        "import io, sys\n"
        "from sqlalchemy import create_engine\n"
        "from ibash_index import migrate\n"
        "real, sys.stdout = sys.stdout, io.StringIO()\n"
        "import alembic.config\n"
        "sys.stdout.close()\n"
        "sys.stdout = real\n"
        "with create_engine('sqlite://').begin() as conn:\n"
        "    migrate.upgrade(conn)\n"
        "    migrate.check(conn)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr

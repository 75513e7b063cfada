"""Schema migrations with Alembic, run from code on the caller's connection (no ini file)."""

from __future__ import annotations

import re
import sys
from functools import cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import SchemaTooNew

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.script import ScriptDirectory
    from sqlalchemy.engine import Connection

# Alembic is imported only when the schema must change: opening an up-to-date index (every
# report, every rebuild) reads one row and compares it with the newest migration file's name.
# SQLAlchemy is imported only by the functions that take a connection: reports on a SQLite
# file read bundled_dir and bundled_head through sqlite3 alone (direct.py).
_REVISION = re.compile(r"""^(revision|down_revision)\s*=\s*["']([^"']+)["']""", re.M)


def bundled_dir(name: str) -> Path:
    """Where `sql/` or `migrations/` is: inside the wheel when installed, beside the package in a checkout."""
    packaged = Path(str(resources.files("ibash_index"))) / name
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent / name


@cache
def bundled_head() -> str:
    """The newest revision in migrations/, read from the files' `revision = ...` lines (Alembic agrees: tested)."""
    revisions, parents = set(), set()
    for path in (bundled_dir("migrations") / "versions").glob("*.py"):
        found = dict(_REVISION.findall(path.read_text(encoding="utf-8")))
        revisions.add(found["revision"])
        if "down_revision" in found:
            parents.add(found["down_revision"])
    heads = revisions - parents
    if len(heads) != 1:
        return head()  # branches: let Alembic decide
    return heads.pop()


def is_current(connection: Connection) -> bool:
    """Whether the database is at the newest revision, without loading Alembic."""
    from sqlalchemy import inspect, text

    if not inspect(connection).has_table("alembic_version"):  # (a failed SELECT would abort a PostgreSQL transaction)
        return False
    return connection.execute(text("SELECT version_num FROM alembic_version")).scalar() == bundled_head()


def _config(connection: Connection | None = None) -> Config:
    from alembic.config import Config

    # Alembic's default stdout is sys.stdout as it was when alembic was first imported (lazily here,
    # perhaps while a caller had swapped it, e.g. pytest's capture): give it today's.
    cfg = Config(stdout=sys.stdout)
    cfg.set_main_option("script_location", str(bundled_dir("migrations")))
    cfg.attributes["connection"] = connection
    return cfg


def head() -> str:
    """The newest revision this version knows."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_config()).get_current_head() or ""


def current(connection: Connection) -> str | None:
    """The revision the database is at; None for a database without migrations."""
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()


def upgrade(connection: Connection) -> None:
    """Bring the schema to head; refuse a database from a newer ibash-index."""
    if is_current(connection):
        return
    from alembic import command
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(_config())
    rev = current(connection)
    if rev is not None and not _known(script, rev):
        raise SchemaTooNew(
            f"the database is at schema revision {rev}, which this ibash-index does not know "
            f"(it knows up to {head()}); upgrade ibash-index"
        )
    if rev != head():
        from .reports import drop_report_views

        # SQLite batch migrations rebuild tables, which views that read them would block;
        # the views are made again from sql/ when the database is opened for writing.
        drop_report_views(connection)
    command.upgrade(_config(connection), "head")


def _known(script: ScriptDirectory, rev: str) -> bool:
    try:
        return script.get_revision(rev) is not None
    except Exception:
        return False


def check(connection: Connection) -> None:
    """Raise if the models in schema.py differ from what the migrations create."""
    from alembic import command

    command.check(_config(connection))


def _revision(message: str) -> None:
    """Autogenerate a revision against a scratch database at head."""
    from alembic import command
    from sqlalchemy import create_engine

    engine = create_engine("sqlite://")
    with engine.begin() as conn:
        upgrade(conn)
        command.revision(_config(conn), message=message, autogenerate=True)


if __name__ == "__main__":  # python -m ibash_index.migrate revision "message"
    if len(sys.argv) == 3 and sys.argv[1] == "revision":
        _revision(sys.argv[2])
    else:
        sys.exit('usage: python -m ibash_index.migrate revision "message"')

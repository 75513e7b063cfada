"""A SQLite index through the sqlite3 driver alone, for what must start in a blink.

Importing SQLAlchemy, the schema and the writer takes longer than a report on ten thousand
instances, or than seeing that nothing changed since the last build. So a saved report or a
query on a SQLite file, and a rebuild that finds nothing to do (`rebuild.py`), open the file
here; everything that writes goes through SQLAlchemy (`store.py`). The checks on a path are here
too, so that both ways refuse a wrong file with the same words.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import sqlite3
from collections.abc import Iterator
from functools import cache

from .errors import BuildLocked, IbashError, NotAnIndex

SQLITE_MAGIC = b"SQLite format 3\x00"
BUSY_TIMEOUT_MS = 30_000


def is_url(db: str) -> bool:
    return "://" in db


def as_path(db: str) -> str:
    """A sqlite:///FILE URL as FILE, so a build of it gets a file's lock and private mode; anything else as it is."""
    prefix = "sqlite:///"
    if db.startswith(prefix) and len(db) > len(prefix) and "?" not in db:
        return db[len(prefix) :]
    return db


def check_path(db: str, *, create: bool) -> str:
    """The absolute path of a SQLite index; refuse a folder, a missing file (unless `create`), or another format."""
    path = os.path.abspath(db)
    if os.path.isdir(path):
        raise IbashError(f"{db}: is a folder; give a database file such as {os.path.join(db, 'index.db')}")
    if not os.path.exists(path):
        if not create:
            raise NotAnIndex(f"{db}: no such database; create it with `ibash-index build ROOT --db {db}`")
        return path
    try:
        with open(path, "rb") as fp:
            head = fp.read(16)
    except OSError as exc:
        raise IbashError(f"cannot open the database {db}: {exc.strerror}") from None
    if head and head != SQLITE_MAGIC:
        raise NotAnIndex(f"{db}: is not a SQLite database; give a new file name with --db")
    return path


def connect_readonly(path: str) -> sqlite3.Connection:
    """A read-only connection (mode=ro); the driver's own, so SQLAlchemy can wrap it too."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    return conn


def check_index(names: set[str], db: str) -> None:
    """Refuse a database that ibash-index did not make, given its table names."""
    if "alembic_version" in names:
        return
    if names:
        raise NotAnIndex(f"{db}: is a database of another program (no ibash-index tables); give another --db")
    raise NotAnIndex(f"{db}: has not been built yet; run `ibash-index build ROOT --db {db}`")


def not_a_database(exc: Exception, db: str) -> NotAnIndex | None:
    """The error to raise when SQLite finds a file that is not a database in the end, else None."""
    if "file is not a database" in str(exc) or "file is encrypted" in str(exc):
        return NotAnIndex(f"{db}: is not a SQLite database; give a new file name with --db")
    return None


@contextlib.contextmanager
def open_readonly(db: str) -> Iterator[sqlite3.Connection]:
    """A SQLite index opened read-only, writes refused twice over (mode=ro and query_only)."""
    conn = connect_readonly(check_path(db, create=False))
    try:
        try:
            check_index(table_names(conn), db)
        except sqlite3.DatabaseError as exc:
            raise not_a_database(exc, db) or exc from None
        conn.execute("PRAGMA query_only = ON")
        yield conn
    finally:
        conn.close()


def table_names(conn: sqlite3.Connection) -> set[str]:
    return {name for (name,) in conn.execute(statement("table_names"))}


def schema_revision(conn: sqlite3.Connection) -> str | None:
    """The Alembic revision the database is at (None before the first migration)."""
    if "alembic_version" not in table_names(conn):
        return None
    row = conn.execute(statement("schema_revision")).fetchone()
    return row[0] if row else None


@cache
def statement(name: str) -> str:
    """sql/maintenance/direct/<name>.sql: one statement this module runs."""
    from .migrate import bundled_dir

    return (bundled_dir("sql") / "maintenance" / "direct" / f"{name}.sql").read_text(encoding="utf-8")


@contextlib.contextmanager
def build_lock(path: str, shown: str) -> Iterator[None]:
    """Hold an exclusive flock() on a SQLite index for one build; refuse at once if another build holds it.

    flock() is separate from the POSIX locks SQLite itself uses, so it cannot upset SQLite as
    long as the descriptor stays open until the engine is gone.
    """
    fd = os.open(path, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise BuildLocked(f"another build is writing to {shown}; wait for it to finish") from None
            raise
        yield
    finally:
        os.close(fd)

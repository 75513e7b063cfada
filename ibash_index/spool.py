"""Spools: scratch SQLite files where workers leave element rows for the writer to copy.

Sending ~200 element tuples per file through a pipe and binding them one by one in the writer
made the single writer the bottleneck of a build (pickling, unpickling and `executemany` at a
few microseconds a row, all on one core). Instead each worker appends its rows to a spool file
of its own with `executemany` (in parallel with the other workers) and sends back only where
they are; the writer then copies a whole batch with `INSERT ... SELECT` inside SQLite.

A spool is plain scratch: WAL, no fsync, removed when the build ends. Rows of a file whose
result never reached the writer (a worker killed mid-file) are simply never copied. The files
hold patient data like the index itself, so the folder is private (0700) and sits beside the
database; a killed build's folder is removed by the next build of the same database.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import (
    Column,
    Float,
    Integer,
    LargeBinary,
    MetaData,
    Table,
    Text,
    and_,
    bindparam,
    delete,
    func,
    insert,
    literal_column,
    select,
)
from sqlalchemy.dialects import sqlite
from sqlalchemy.schema import CreateTable

from .schema import elements, tags

if TYPE_CHECKING:
    from .outcome import FileResult

MAX_SLOTS = 8  # SQLite attaches at most 10 databases to one connection; workers beyond this share slots
SCHEMA = "spool"  # a placeholder: copy_sql() names each attached slot instead

_metadata = MetaData()
# The element row of outcome.ROW_FIELDS, plus `n` (the rowid) that results point at.
spooled = Table(
    "rows",
    _metadata,
    Column("n", Integer, primary_key=True),
    Column("seq", Integer),
    Column("parent_seq", Integer),
    Column("item", Integer),
    Column("depth", Integer),
    Column("tag", Integer),
    Column("private_creator", Text),
    Column("vr", Text),
    Column("vm", Integer),
    Column("value", Text),
    Column("number", Float),
    Column("length", Integer),
    Column("hash", Text),
    Column("data", LargeBinary),
    Column("element_path", Text),
    Column("flag", Text),
    schema=SCHEMA,
)
_local = spooled.to_metadata(MetaData(), schema=None)  # the same table, as a worker sees its own file
_CREATE = str(CreateTable(_local, if_not_exists=True).compile(dialect=sqlite.dialect()))
_INSERT = str(insert(_local).compile(dialect=sqlite.dialect(), column_keys=[c.name for c in _local.columns][1:]))
CHUNK = 32  # rows per INSERT statement
_ONE_ROW = _INSERT[_INSERT.index(" VALUES ") + len(" VALUES ") :]  # "(?, ?, ...)"
_INSERT_CHUNK = _INSERT.replace(_ONE_ROW, ", ".join([_ONE_ROW] * CHUNK))
_LAST = str(select(func.max(_local.c.n)).compile(dialect=sqlite.dialect()))
_DELETE = str(
    delete(_local).where(_local.c.n.between(bindparam("a"), bindparam("b"))).compile(dialect=sqlite.dialect())
)
_READ = str(
    select(*_local.columns[1:])
    .where(_local.c.n.between(bindparam("a"), bindparam("b")))
    .order_by(_local.c.n)
    .compile(dialect=sqlite.dialect())
)
RELEASE_ROWS = 500_000  # copied rows a spool collects before they are deleted: few lock waits, a bounded file


@dataclass(frozen=True)
class Spooled:
    """Where one file's element rows are: spool slot and the rowid range [first, last]."""

    slot: int
    first: int
    last: int

    @property
    def count(self) -> int:
        return self.last - self.first + 1


def slot_alias(slot: int) -> str:
    return f"spool_{slot}"


def _open(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout = 60000")
    conn.execute("PRAGMA journal_mode = WAL")  # the writer reads while the worker appends
    conn.execute("PRAGMA synchronous = OFF")  # scratch: a crash loses nothing the index holds
    return conn


class SpoolWriter:
    """A worker's end: append one file's rows in one transaction, return where they are."""

    def __init__(self, path: str, slot: int) -> None:
        self.slot = slot
        self.conn = _open(path)
        self.seen: set[tuple[int, str]] = set()  # (tag, creator) keys already reported to the writer

    def take(self, result: FileResult) -> None:
        """Move a result's rows into the spool, and tell the writer which tag keys it has not been told of."""
        if not result.rows:
            return
        keys = {(row[4], row[5] or "") for row in result.rows}
        try:
            result.spooled = self.put(result.rows)
        except (sqlite3.Error, OSError) as exc:  # the disk beside the database, most likely full
            result.status, result.header = "error", {}
            result.reason = f"cannot spool: writing its rows to the scratch folder failed ({exc})"
        else:
            result.new_tags = sorted(keys - self.seen)
            self.seen |= keys
        result.rows = []

    def put(self, rows: list[tuple]) -> Spooled | None:
        if not rows:
            return None
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")  # slots shared by several workers: the range must be ours alone
        try:
            first = (conn.execute(_LAST).fetchone()[0] or 0) + 1
            whole = len(rows) - len(rows) % CHUNK
            if whole:  # several rows per statement: fewer statement steps, in the order given (rowids ascend)
                conn.executemany(
                    _INSERT_CHUNK, [list(chain.from_iterable(rows[i : i + CHUNK])) for i in range(0, whole, CHUNK)]
                )
            conn.executemany(_INSERT, rows[whole:])
            last = first + len(rows) - 1  # SQLite gives each new row max(rowid) + 1; the copy checks the count
            conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise
        return Spooled(self.slot, first, last)

    def close(self) -> None:
        self.conn.close()


class Spools:
    """The build's spool files, one per slot, in a private folder beside the database."""

    def __init__(self, folder: Path, slots: int) -> None:
        self.folder = folder
        self.paths = [str(folder / f"{slot}.db") for slot in range(max(1, min(slots, MAX_SLOTS)))]
        self._conns: dict[int, sqlite3.Connection] = {}
        self._copied: list[Spooled] = []
        for path in self.paths:  # created here, so the writer can attach them before any worker starts
            conn = _open(path)
            conn.execute(_CREATE)
            conn.close()

    def __getstate__(self) -> dict:
        return {"folder": self.folder, "paths": self.paths}  # workers get the paths, not the writer's connections

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state, _conns={}, _copied=[])

    def release(self, copied: Iterable[Spooled]) -> None:
        """Delete rows the index now holds, once enough have been copied, so spools stay small however large the build.

        Rarely and in merged ranges: each delete takes the spool's write lock, which its worker then waits for.
        """
        self._copied.extend(copied)
        if sum(where.count for where in self._copied) < RELEASE_ROWS:
            return
        by_slot: dict[int, list[tuple[int, int]]] = {}
        for where in sorted(self._copied, key=lambda w: (w.slot, w.first)):
            ranges = by_slot.setdefault(where.slot, [])
            if ranges and ranges[-1][1] + 1 == where.first:
                ranges[-1] = (ranges[-1][0], where.last)
            else:
                ranges.append((where.first, where.last))
        self._copied.clear()
        for slot, ranges in sorted(by_slot.items()):
            conn = self._conn(slot)
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(_DELETE, ranges)
            conn.execute("COMMIT")

    def _conn(self, slot: int) -> sqlite3.Connection:
        """The writer's own connection to a slot (workers have theirs)."""
        if slot not in self._conns:
            self._conns[slot] = _open(self.paths[slot])
        return self._conns[slot]

    def close(self) -> None:
        for conn in self._conns.values():
            conn.close()
        self._conns.clear()

    def slot_for(self, worker: int) -> int:
        return worker % len(self.paths)

    def writer(self, slot: int) -> SpoolWriter:
        return SpoolWriter(self.paths[slot], slot)

    def read(self, where: Spooled) -> list[tuple]:
        """One file's rows, as the reader made them (for databases that cannot attach a spool)."""
        return self._conn(where.slot).execute(_READ, (where.first, where.last)).fetchall()


def copy_sql(slot: int) -> str:
    """INSERT INTO elements SELECT ... one file's rows from an attached slot, tag ids joined in (named params)."""
    r = spooled.to_metadata(MetaData(), schema=slot_alias(slot))
    creator = func.coalesce(r.c.private_creator, literal_column("''"))
    source = r.outerjoin(tags, and_(tags.c.tag == r.c.tag, tags.c.private_creator == creator))
    query = (
        select(
            bindparam("instance_id", type_=Integer),
            r.c.seq,
            r.c.parent_seq,
            r.c.item,
            r.c.depth,
            tags.c.id,
            r.c.vr,
            r.c.vm,
            r.c.value,
            r.c.number,
            r.c.length,
            r.c.hash,
            r.c.data,
            r.c.element_path,
            r.c.flag,
        )
        .select_from(source)
        .where(r.c.n.between(bindparam("first"), bindparam("last")))
        .order_by(r.c.n)
    )
    statement = insert(elements).from_select([c.name for c in elements.columns], query)
    return str(statement.compile(dialect=sqlite.dialect(paramstyle="named")))


@contextlib.contextmanager
def spools_for(db: str | None, slots: int) -> Iterator[Spools]:
    """A fresh spool folder for one build, removed afterwards (and any left by a killed build of `db`)."""
    parent, prefix = None, "ibash-index-spool-"
    if db is not None:
        path = Path(os.path.abspath(db))
        parent, prefix = str(path.parent), f".{path.name}.spool-"
        for stale in path.parent.glob(f"{prefix}*"):  # the build lock is held: no other build uses these
            shutil.rmtree(stale, ignore_errors=True)
    folder = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))  # mode 0700
    spools = None
    try:
        spools = Spools(folder, slots)
        yield spools
    finally:
        if spools is not None:
            spools.close()
        shutil.rmtree(folder, ignore_errors=True)

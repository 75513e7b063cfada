"""Spools: scratch SQLite files where workers leave element rows for the writer to copy.

Sending ~200 element tuples per file through a pipe and binding them one by one in the writer
made the single writer the bottleneck of a build (pickling, unpickling and `executemany` at a
few microseconds a row, all on one core). Instead each worker appends its rows to a spool file
of its own with `executemany` (in parallel with the other workers) and sends back only where
they are; the writer then copies a whole batch with `INSERT ... SELECT` inside SQLite.

Binding costs about the same for every parameter, NULL or not, so a spooled row binds as few as
it can: most bind six (rowid, code, vm, value, number, length). seq is a row's place in its
file's rowid range; depth, tag, creator and VR are a small code from the spool's `codes` table
(which the writer maps to tag ids once, so its copy joins one integer, not text); the columns
most rows leave NULL are bound only by the rows that have them. Rows live in one table,
whatever they bind, so the copy is one plain range scan.

A spool is plain scratch: WAL, no fsync, removed when the build ends. Rows of a file whose
result never reached the writer (a worker killed mid-file) are simply never copied. The files
hold patient data like the index itself, so the folder is private (0700) and sits beside the
database; a killed build's folder is removed by the next build of the same database.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import sqlite3
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy import Select, Table

    from .outcome import FileResult

MAX_SLOTS = 8  # SQLite attaches at most 10 databases to one connection; workers beyond this share slots
SCHEMA = "spool"  # a placeholder: the writer's statements name each attached slot instead
CHUNK = 32  # rows per INSERT statement
RELEASE_ROWS = 500_000  # copied rows a spool collects before they are deleted: few lock waits, a bounded file


@functools.cache
def _tables() -> tuple[Table, Table]:
    """The spool's two tables, (rows, codes), made on first use: workers never need them (see SpoolSQL)."""
    from sqlalchemy import Column, Float, Integer, LargeBinary, MetaData, Table, Text

    metadata = MetaData()
    # Element rows: one file's take rowids first..last, in ROW_FIELDS order, so seq is a row's place in that range.
    spooled = Table(
        "rows",
        metadata,
        Column("n", Integer, primary_key=True),
        Column("code", Integer),  # -> codes: depth, tag, private_creator, vr
        Column("vm", Integer),
        Column("value", Text),
        Column("number", Float),
        Column("length", Integer),
        # The columns most rows leave NULL, bound only for the rows that have them (in sequences, binary, flagged).
        Column("seq", Integer),  # only where it is not the row's place (readers number rows in order)
        Column("parent_seq", Integer),
        Column("item", Integer),
        Column("hash", Text),
        Column("data", LargeBinary),
        Column("element_path", Text),
        Column("flag", Text),
        schema=SCHEMA,
    )
    # What many rows share, once per spool under a small integer code.
    codes = Table(
        "codes",
        metadata,
        Column("code", Integer, primary_key=True),
        Column("depth", Integer),
        Column("tag", Integer),
        Column("private_creator", Text),
        Column("vr", Text),
        schema=SCHEMA,
    )
    return spooled, codes


def _sql(statement: Any, **kwargs: Any) -> str:
    from sqlalchemy.dialects import sqlite

    return str(statement.compile(dialect=sqlite.dialect(**kwargs)))


def _inserts(table: Table, columns: int) -> tuple[str, str, int]:
    """INSERTs of the first `columns` columns: of one row, and of CHUNK rows; and that width."""
    from sqlalchemy import insert
    from sqlalchemy.dialects import sqlite

    keys = [c.name for c in table.columns][:columns]
    one = str(insert(table).compile(dialect=sqlite.dialect(), column_keys=keys))
    values = one[one.index(" VALUES ") + len(" VALUES ") :]  # "(?, ?, ...)"
    return one, one.replace(values, ", ".join([values] * CHUNK)), columns


@dataclass(frozen=True)
class SpoolSQL:
    """The statements on one spool file, compiled from `_tables` in the parent and pickled to the workers.

    A worker appends with plain sqlite3 and these strings, so it never imports SQLAlchemy: that
    was a quarter of a CPU second for every worker started.
    """

    create: tuple[str, ...]  # the tables, made by the parent before any worker starts
    plain: tuple[str, str, int]  # n, code, vm, value, number, length (see _inserts)
    full: tuple[str, str, int]  # every column
    insert_code: str
    codes_after: str  # codes above :after
    last: str  # the highest rowid
    delete: str  # rows :a to :b (the writer's, once copied)
    read: str  # one file's rows in ROW_FIELDS order, :first to :last (the writer's, see Spools.read)


@functools.cache
def spool_sql() -> SpoolSQL:
    """The statements on a spool, as a worker sees its own file (no schema)."""
    from sqlalchemy import MetaData, bindparam, delete, func, insert, select
    from sqlalchemy.schema import CreateTable

    rows, codes = (t.to_metadata(MetaData(), schema=None) for t in _tables())
    return SpoolSQL(
        create=tuple(_sql(CreateTable(t, if_not_exists=True)) for t in (rows, codes)),
        plain=_inserts(rows, 6),
        full=_inserts(rows, len(rows.columns)),
        insert_code=_sql(insert(codes)),
        codes_after=_sql(select(*codes.columns).where(codes.c.code > bindparam("after"))),
        last=_sql(select(func.max(rows.c.n))),
        delete=_sql(delete(rows).where(rows.c.n.between(bindparam("a"), bindparam("b")))),
        read=_sql(_row_query(rows, codes, [codes.c.tag, codes.c.private_creator], []), paramstyle="named"),
    )


def _row_query(r: Table, c: Table, tag: list[Any], lead: list[Any]) -> Select:
    """One file's rows in ROW_FIELDS order after `lead`, tag columns `tag` from c (a codes table); :first, :last."""
    from sqlalchemy import Integer, bindparam, func, select

    first = bindparam("first", type_=Integer)
    return (
        select(
            *lead,
            func.coalesce(r.c.seq, r.c.n - first),
            r.c.parent_seq,
            r.c.item,
            c.c.depth,
            *tag,
            c.c.vr,
            r.c.vm,
            r.c.value,
            r.c.number,
            r.c.length,
            r.c.hash,
            r.c.data,
            r.c.element_path,
            r.c.flag,
        )
        .select_from(r.outerjoin(c, c.c.code == r.c.code))  # outer: the rowid range drives the loop
        .where(r.c.n.between(first, bindparam("last", type_=Integer)))
        .order_by(r.c.n)
    )


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
    """A worker's end: append a batch of files' rows in one transaction, say where each file's are.

    Binding a parameter costs about as much as anything else a row does, so most rows bind six:
    rowid, code, vm, value, number, length. seq is a row's place in its rowid range; the columns
    most rows leave NULL are bound only for the rows that have them.
    """

    def __init__(self, path: str, slot: int, sql: SpoolSQL | None = None) -> None:
        self.slot = slot
        self.sql = sql or spool_sql()
        self.conn = _open(path)
        self.seen: set[tuple[int, str]] = set()  # (tag, creator) keys already reported to the writer
        # Codes of (depth, tag, creator, vr) keys: those this writer's rows have used (their tag keys are in
        # seen), and every one read from or added to the spool (a shared slot's are other workers' too).
        self._used: dict[tuple, int] = {}
        self._codes: dict[tuple, int] = {}
        self._loaded = 0  # the highest of them: codes are numbered 1, 2, ... under the spool's write lock

    def take(self, results: list[FileResult]) -> None:
        """Move results' rows into the spool, and tell the writer which tag keys each has that it has not been told of.

        All in one transaction (a worker sends a batch's results together): a transaction per
        file cost three statements and a commit each, and left more rows to single-row INSERTs.
        """
        files = [result for result in results if result.rows]
        if not files:
            return
        try:
            placed = self.put([result.rows for result in files])
        except (sqlite3.Error, OSError) as exc:  # the disk beside the database, most likely full
            for result in files:
                result.status, result.header, result.rows = "error", {}, []
                result.reason = f"cannot spool: writing its rows to the scratch folder failed ({exc})"
            return
        for result, (where, new) in zip(files, placed):
            result.spooled, result.new_tags, result.rows = where, sorted(new), []

    def put(self, files: list[list[tuple]]) -> list[tuple[Spooled, list[tuple[int, str]]]]:
        """Append each file's rows (none empty); where each file's are, and the tag keys it used first."""
        conn, used, sql = self.conn, self._used, self.sql
        new: list[tuple[int, str]] = []  # tag keys first used here
        placed = []
        conn.execute("BEGIN IMMEDIATE")  # slots shared by several workers: the range and codes must be ours alone
        try:
            first = (conn.execute(sql.last).fetchone()[0] or 0) + 1
            plain: list = []  # n, code, vm, value, number, length of the rows with nothing else, one after another
            full: list = []  # every column of the others
            for rows in files:
                before = len(new)
                for i, row in enumerate(rows):
                    seq, parent, item, depth, tag, creator, vr, vm, value, number, length, hash_, data, path, flag = row
                    code = used.get((depth, tag, creator, vr))
                    if code is None:
                        code = self._use((depth, tag, creator, vr), new)
                    if (
                        parent is None
                        and path is None
                        and hash_ is None
                        and data is None
                        and flag is None
                        and item is None
                        and seq == i
                    ):
                        plain += (first + i, code, vm, value, number, length)
                    else:
                        seq = None if seq == i else seq
                        full += (first + i, code, vm, value, number, length, seq, parent, item, hash_, data, path, flag)
                placed.append((Spooled(self.slot, first, first + len(rows) - 1), new[before:]))
                first += len(rows)
            _insert(conn, sql.plain, plain)
            _insert(conn, sql.full, full)
            conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            self.seen.difference_update(new)  # not reported after all
            self._used.clear()  # codes added by this transaction are gone: learn them again from the spool
            self._codes.clear()
            self._loaded = 0
            raise
        return placed

    def _use(self, key: tuple, new: list[tuple[int, str]]) -> int:
        """The code of a key this writer has not used yet: one the spool has (another worker's), else a new one."""
        code = self._codes.get(key)
        if code is None:
            for known, *rest in self.conn.execute(self.sql.codes_after, (self._loaded,)):
                self._codes[tuple(rest)] = known
                self._loaded = max(self._loaded, known)
            code = self._codes.get(key)
        if code is None:
            code = self._loaded + 1
            self.conn.execute(self.sql.insert_code, (code, *key))
            self._codes[key] = self._loaded = code
        self._used[key] = code
        tag_key = (key[1], key[2] or "")
        if tag_key not in self.seen:
            self.seen.add(tag_key)
            new.append(tag_key)
        return code

    def close(self) -> None:
        self.conn.close()


def _insert(conn: sqlite3.Connection, statements: tuple[str, str, int], values: list) -> None:
    """Rows given one after another in `values`, CHUNK to a statement: fewer statement steps."""
    one, chunk, width = statements
    step = CHUNK * width
    whole = len(values) - len(values) % step
    if whole:
        conn.executemany(chunk, [values[j : j + step] for j in range(0, whole, step)])
    if whole < len(values):
        conn.executemany(one, [values[j : j + width] for j in range(whole, len(values), width)])


class Spools:
    """The build's spool files, one per slot, in a private folder beside the database."""

    def __init__(self, folder: Path, slots: int) -> None:
        self.folder = folder
        self.paths = [str(folder / f"{slot}.db") for slot in range(max(1, min(slots, MAX_SLOTS)))]
        self.sql = spool_sql()
        self._conns: dict[int, sqlite3.Connection] = {}
        self._copied: list[Spooled] = []
        for path in self.paths:  # created here, so the writer can attach them before any worker starts
            conn = _open(path)
            for create in self.sql.create:
                conn.execute(create)
            conn.close()

    def __getstate__(self) -> dict:
        # workers get the paths and the statements, not the writer's connections
        return {"folder": self.folder, "paths": self.paths, "sql": self.sql}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state, _conns={}, _copied=[])

    def release(self, copied: Iterable[Spooled]) -> None:
        """Delete rows the index now holds, once enough have been copied, so spools stay small however large the build.

        Rarely and in merged ranges: each delete takes the spool's write lock, which its worker then waits for.
        Codes stay: there are few, and rows yet to come use them.
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
            conn.executemany(self.sql.delete, ranges)
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
        return SpoolWriter(self.paths[slot], slot, self.sql)

    def read(self, where: Spooled) -> list[tuple]:
        """One file's rows, as the reader made them (for databases that cannot attach a spool)."""
        return self._conn(where.slot).execute(self.sql.read, {"first": where.first, "last": where.last}).fetchall()


@dataclass(frozen=True)
class SlotSQL:
    """The writer's statements for one attached slot (SQLite).

    The writer keeps a map from the slot's codes to tag ids in a temporary table of its own
    connection, so the copy joins one integer per row, not (tag, creator) text. The map is
    written inside the writer's transaction and so is rolled back with it.
    """

    setup: list[str]  # once, after attaching: create the empty map
    sync: list[str]  # before each copy: map codes added since, and codes whose tag rows now exist
    copy: str  # INSERT INTO elements SELECT ... one file's rows (named params instance_id, first, last)


def slot_sql(slot: int) -> SlotSQL:
    from sqlalchemy import (
        Column,
        Index,
        Integer,
        MetaData,
        Table,
        Text,
        and_,
        bindparam,
        func,
        insert,
        literal_column,
        select,
        update,
    )
    from sqlalchemy.schema import CreateIndex, CreateTable, DropTable

    from .schema import elements, tags

    alias = slot_alias(slot)
    r, c = (t.to_metadata(MetaData(), schema=alias) for t in _tables())
    m = Table(
        f"{alias}_codes",
        MetaData(),
        Column("code", Integer, primary_key=True),
        Column("depth", Integer),
        Column("tag_id", Integer),  # NULL until the writer has made the tag row (copying a row then fails)
        Column("vr", Text),
        schema="temp",
    )
    unmapped = Index(f"{alias}_codes_unmapped", m.c.code, sqlite_where=m.c.tag_id.is_(None))
    creator = func.coalesce(c.c.private_creator, literal_column("''"))
    tag_of = and_(tags.c.tag == c.c.tag, tags.c.private_creator == creator)
    added = (
        select(c.c.code, c.c.depth, tags.c.id, c.c.vr)
        .select_from(c.outerjoin(tags, tag_of))
        .where(c.c.code > select(func.coalesce(func.max(m.c.code), literal_column("0"))).scalar_subquery())
    )
    tag_id = select(tags.c.id).select_from(c.join(tags, tag_of)).where(c.c.code == m.c.code).scalar_subquery()
    resolve = update(m).where(m.c.tag_id.is_(None)).values(tag_id=tag_id)
    query = _row_query(r, m, [m.c.tag_id], [bindparam("instance_id", type_=Integer)])
    copy = insert(elements).from_select([col.name for col in elements.columns], query)
    return SlotSQL(
        setup=[_sql(DropTable(m, if_exists=True)), _sql(CreateTable(m)), _sql(CreateIndex(unmapped))],
        sync=[_sql(insert(m).from_select(["code", "depth", "tag_id", "vr"], added)), _sql(resolve)],
        copy=_sql(copy, paramstyle="named"),
    )


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

"""The database: opening it safely, and the single writer that stores what workers extracted.

A plain path means SQLite (the default); anything with `://` is a SQLAlchemy URL. SQLite runs in
WAL mode so a browser reading the file never blocks a build, and the file is created 0600
because it holds patient data (SQLite gives its -wal and -shm files the same mode).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import create_engine, delete, event, func, insert, inspect, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from . import migrate, summaries
from .dictionary import tag_values
from .direct import BUSY_TIMEOUT_MS, check_index, check_path, connect_readonly, is_url, not_a_database
from .direct import build_lock as direct_build_lock
from .errors import BuildLocked, IbashError
from .reports import install_reports
from .schema import elements, files, instances, metadata, series, studies, tags
from .spool import Spooled, Spools, slot_alias, slot_sql

if TYPE_CHECKING:  # pydicom (through extract) is imported only by what reads files: reports start faster
    from .outcome import FileResult

STUDY_COLUMNS = (
    "site",
    "patient_id",
    "patient_name",
    "patient_birth_date",
    "patient_sex",
    "study_date",
    "study_time",
    "study_description",
    "accession_number",
    "dicom_study_id",
)
SERIES_COLUMNS = (
    "series_number",
    "modality",
    "series_description",
    "protocol_name",
    "manufacturer",
    "manufacturer_model_name",
    "software_versions",
    "magnetic_field_strength",
    "institution_name",
    "station_name",
    "series_date",
    "series_time",
)
INSTANCE_COLUMNS = (
    "site",
    "sop_instance_uid",
    "sop_class_uid",
    "instance_number",
    "transfer_syntax_uid",
    "acquisition_time",
)


def connect(db: str, *, create: bool = True, readonly: bool = False) -> Engine:
    """An engine for `db`, a path or a SQLAlchemy URL, checking that a path is usable first."""
    if is_url(db):
        try:
            backend = make_url(db).get_backend_name()
        except Exception:  # ArgumentError, or ValueError for a port that is not a number
            raise IbashError("not a database URL: give a SQLite file's path or postgresql+psycopg://…") from None
        if backend not in ("postgresql", "sqlite"):
            raise IbashError(
                f"an index lives in a SQLite file or a PostgreSQL database (postgresql+psycopg://…), not {backend}"
            )
        return create_engine(db)
    path = check_path(db, create=create)
    if not os.path.exists(path):
        _create_private(path, db)
    if readonly:
        engine = create_engine("sqlite://", creator=lambda: connect_readonly(path))
    else:
        engine = create_engine(f"sqlite:///{path}")
    event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _create_private(path: str, shown: str) -> None:
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except FileExistsError:
        pass
    except OSError as exc:
        raise IbashError(f"cannot create the database {shown}: {exc.strerror}") from None


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    with contextlib.suppress(Exception):  # read-only connections cannot change the journal mode
        cursor.execute("PRAGMA journal_mode = WAL")
    cursor.execute("PRAGMA synchronous = NORMAL")
    cursor.close()


def open_index(db: str, *, create: bool = True, readonly: bool = False) -> Engine:
    """Open an ibash-index database; when writable, create or upgrade it and install the saved reports."""
    engine = connect(db, create=create, readonly=readonly)
    try:
        try:
            conn = engine.connect()
        except (OperationalError, InterfaceError) as exc:  # a server that refuses, a wrong password: say why
            raise IbashError(f"cannot connect to the database: {_first_line(exc.orig)}") from None
        with conn:
            names = set(inspect(conn).get_table_names())
        if names or readonly:
            check_index(names, db)
        if readonly:
            return engine
        with _schema_lock(engine):
            with engine.begin() as conn:
                if conn.dialect.name == "sqlite":
                    # pysqlite runs DDL outside any transaction: without this, a build killed while it
                    # creates the schema leaves half a schema that no later build can open.
                    conn.exec_driver_sql("BEGIN")
                migrate.upgrade(conn)
            install_reports(engine)
    except IbashError:
        engine.dispose()
        raise
    except Exception as exc:
        engine.dispose()
        problem = not_a_database(exc, db)
        if problem is not None:
            raise problem from None
        if "readonly" in str(exc) or "unable to open" in str(exc):
            raise IbashError(f"cannot write to the database {db}: {exc.__cause__ or exc}") from None
        raise
    return engine


@contextlib.contextmanager
def _schema_lock(engine: Engine) -> Iterator[None]:
    """On PostgreSQL, one builder at a time creates or upgrades the schema and installs the reports."""
    if engine.dialect.name != "postgresql":
        yield
        return
    key = _lock_key("ibash-index schema")
    with engine.connect() as conn:
        conn.execute(select(func.pg_advisory_lock(key)))
        conn.commit()
        try:
            yield
        finally:
            conn.execute(select(func.pg_advisory_unlock(key)))
            conn.commit()


def _lock_key(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big", signed=True)


@contextlib.contextmanager
def build_lock(db: str, scope: str = "") -> Iterator[None]:
    """Hold an exclusive lock for one build; refuse at once if another build holds it.

    SQLite: the whole file, with flock() (see direct.build_lock).
    PostgreSQL: an advisory lock on `scope` (the roots and shard), so builders of other roots
    or shards write into the same database at the same time.
    """
    if is_url(db):
        with _advisory_lock(db, scope):
            yield
        return
    with direct_build_lock(os.path.abspath(db), db):
        yield


@contextlib.contextmanager
def _advisory_lock(db: str, scope: str) -> Iterator[None]:
    engine = create_engine(db)
    if engine.dialect.name != "postgresql":
        engine.dispose()
        yield
        return
    key = _lock_key(f"ibash-index build {scope}")
    try:
        with engine.connect() as conn:
            if not conn.execute(select(func.pg_try_advisory_lock(key))).scalar():
                raise BuildLocked(
                    f"another build of the same roots is writing to {engine.url!r}; wait for it to finish"
                )
            try:
                yield
            finally:
                conn.execute(select(func.pg_advisory_unlock(key)))
    finally:
        engine.dispose()


@dataclass
class FileState:
    """What the database knows of a file from an earlier build."""

    id: int
    size: int | None
    mtime_ns: int | None
    status: str
    instance_id: int | None
    root: str = ""


def load_file_states(conn: Connection) -> dict[bytes, FileState]:
    query = select(
        files.c.path_bytes, files.c.id, files.c.size, files.c.mtime_ns, files.c.status, instances.c.id, files.c.root
    ).outerjoin(instances, instances.c.file_id == files.c.id)
    return {bytes(row[0]): FileState(*row[1:]) for row in conn.execute(query)}


def display_path(path: bytes) -> str:
    """Readable text for a path: UTF-8 where it is, \\xNN escapes for the rest."""
    return path.decode("utf-8", "backslashreplace")


@dataclass
class _Pending:
    """What a batch changes in the writer's memory, applied only once the batch has committed."""

    states: dict[bytes, FileState] = field(default_factory=dict)
    rows: dict[tuple, tuple[int, str]] = field(default_factory=dict)
    tag_ids: dict[tuple[int, str], int] = field(default_factory=dict)
    dirty_series: set[int] = field(default_factory=set)
    elements: int = 0


class Writer:
    """The writer of one build: each `write()` is one transaction, so an instance and its elements land together.

    Ids of studies, series and tags are remembered between batches. Changes to that memory are
    applied only after a commit, so a batch retried after a deadlock (several builders writing
    to one PostgreSQL) starts again from what the database really holds. Rows are created in
    key order, which keeps concurrent builders from deadlocking in the first place.
    """

    def __init__(
        self, engine: Engine, build_id: int, states: dict[bytes, FileState], spools: Spools | None = None
    ) -> None:
        self.engine = engine
        self.build_id = build_id
        self.states = states
        self.elements_written = 0
        self.dirty_series: set[int] = set()
        self.rows: dict[tuple, tuple[int, str]] = {}
        self.tag_ids: dict[tuple[int, str], int] = {}
        self.postgres = engine.dialect.name == "postgresql"
        self._insert_elements_sql = str(insert(elements).compile(dialect=engine.dialect))
        self.spools = spools
        self.spool_keys: set[tuple[int, str]] = set()  # every (tag, creator) the workers reported
        self._attached: Connection | None = None  # SQLite: one connection with every spool attached
        if spools is not None and not self.postgres:
            self._attached = engine.connect()
            self._slot_sql = [slot_sql(slot) for slot in range(len(spools.paths))]
            for slot, path in enumerate(spools.paths):
                self._attached.exec_driver_sql(f"ATTACH DATABASE ? AS {slot_alias(slot)}", (path,))
                for statement in self._slot_sql[slot].setup:  # its codes -> tag ids map, a temporary table
                    self._attached.exec_driver_sql(statement)
            self._attached.commit()
        with engine.connect() as conn:
            self._load_tags(conn)

    def close(self) -> None:
        if self._attached is not None:
            self._attached.close()
            self._attached = None

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[Connection]:
        if self._attached is None:
            with self.engine.begin() as conn:
                yield conn
        else:
            with self._attached.begin():
                yield self._attached

    def _load_tags(self, conn: Connection) -> None:
        self.tag_ids = {(t, c): i for t, c, i in conn.execute(select(tags.c.tag, tags.c.private_creator, tags.c.id))}

    def write(self, results: list[FileResult]) -> None:
        """Store a batch of results in one transaction (retried if the database asks for it)."""
        pending = _Pending()

        for r in results:
            self.spool_keys.update(r.new_tags)

        def attempt() -> None:
            nonlocal pending
            pending = _Pending()
            try:
                with self._transaction() as conn:
                    self._write(conn, results, pending)
            except DBAPIError:
                self.rows.clear()  # another builder may have removed a study, series or tag we remembered
                with self.engine.connect() as conn:
                    self._load_tags(conn)
                raise

        _retrying(attempt)
        if self.spools is not None:
            self.spools.release(r.spooled for r in results if r.spooled is not None)
        self.states.update(pending.states)
        self.rows.update(pending.rows)
        self.tag_ids.update(pending.tag_ids)
        self.dirty_series |= pending.dirty_series
        self.elements_written += pending.elements

    def remove(self, paths: Iterable[bytes]) -> int:
        """Delete files that vanished, with their instances and elements."""
        paths = [p for p in paths if p in self.states]
        if not paths:
            return 0
        pending = _Pending()
        with self.engine.begin() as conn:
            self._forget(conn, [self.states[p] for p in paths], pending)
            for chunk in _chunks([self.states[p].id for p in paths], 500):
                conn.execute(delete(files).where(files.c.id.in_(chunk)))
        self.dirty_series |= pending.dirty_series
        for p in paths:
            del self.states[p]
        return len(paths)

    def _write(self, conn: Connection, results: list[FileResult], pending: _Pending) -> None:
        self._forget(conn, [self.states[r.path_bytes] for r in results if r.path_bytes in self.states], pending)
        file_ids = self._upsert_files(conn, results, pending)
        indexed = [(r, fid) for r, fid in zip(results, file_ids) if r.status == "indexed"]
        if not indexed:
            return
        series_ids = self._series_ids(conn, [r for r, _ in indexed], pending)
        # Spooled rows may use any key a worker has reported; rows in memory are looked at directly.
        keys = self.spool_keys | {(row[4], row[5] or "") for r, _ in indexed for row in r.rows}
        tag_ids = self._tag_ids(conn, keys, pending)
        rows = []
        for (r, fid), sid in zip(indexed, series_ids):
            row = {c: r.header.get(c) for c in INSTANCE_COLUMNS}
            row["sop_instance_uid"] = r.header.get("sop_instance_uid") or ""
            row["instance_number"] = _int(r.header.get("instance_number"))
            row.update(file_id=fid, series_id=sid, element_count=r.element_count)
            rows.append(row)
        result = conn.execute(insert(instances).returning(instances.c.id, sort_by_parameter_order=True), rows)
        element_rows = []
        spooled: dict[int, list[dict[str, int]]] = {}
        for (r, _), (iid,) in zip(indexed, result.all()):
            pending.states[r.path_bytes].instance_id = iid
            if r.spooled is not None:
                spooled.setdefault(r.spooled.slot, []).append(
                    {"instance_id": iid, "first": r.spooled.first, "last": r.spooled.last}
                )
            element_rows.extend(_element_row(iid, row, tag_ids) for row in r.rows)
        self._insert_elements(conn, element_rows)
        self._copy_spooled(conn, spooled, tag_ids)
        self._count(conn, results, indexed, series_ids, tag_ids, pending)
        pending.elements += sum(r.element_count for r, _ in indexed)

    def _count(self, conn: Connection, results: list[FileResult], indexed: list[tuple[FileResult, int]],
               series_ids: list[int], tag_ids: dict, pending: _Pending) -> None:  # fmt: skip
        """Add the batch to the summaries: what workers counted for whole groups in it, the rest with SQL."""
        here = {r.path_bytes for r in results}
        tallies = {id(r.tally): r.tally for r in results if r.tally is not None}
        usable = [t for t in tallies.values() if here.issuperset(t.paths)]
        ids = {r.path_bytes: pending.states[r.path_bytes].instance_id for r, _ in indexed}
        contexts = {
            (r.header.get("site") or "", r.header.get("study_instance_uid") or "",
             r.header.get("series_instance_uid") or ""): sid
            for (r, _), sid in zip(indexed, series_ids)
        }  # fmt: skip
        summaries.add_tallies(conn, usable, ids, contexts, tag_ids, _pg_safe if self.postgres else None)
        covered = {p for t in usable for p in t.paths}
        summaries.add(conn, [i for p, i in ids.items() if p not in covered])

    def _copy_spooled(self, conn: Connection, spooled: dict[int, list[dict[str, int]]], tag_ids: dict) -> None:
        """Copy the rows workers left in their spools: inside SQLite when it can attach them, else through here."""
        for slot, copies in sorted(spooled.items()):
            if self._attached is None:
                assert self.spools is not None
                for f in copies:
                    where = Spooled(slot, f["first"], f["last"])
                    rows = [_element_row(f["instance_id"], row, tag_ids) for row in self.spools.read(where)]
                    self._insert_elements(conn, rows)
                continue
            cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
            for statement in self._slot_sql[slot].sync:  # the codes these rows use, mapped to the tag rows just made
                cursor.execute(statement)
            cursor.executemany(self._slot_sql[slot].copy, copies)
            expected = sum(f["last"] - f["first"] + 1 for f in copies)
            if cursor.rowcount != expected:  # the batch rolls back: nothing half-copied is kept
                raise IbashError(f"internal error: {cursor.rowcount} element rows copied from a spool, not {expected}")

    def _insert_elements(self, conn: Connection, rows: list[tuple]) -> None:
        if not rows:
            return
        if self.postgres:
            _copy(conn, elements, [tuple(_pg_safe(v) for v in row) for row in rows])
        else:
            conn.exec_driver_sql(self._insert_elements_sql, rows)

    def _forget(self, conn: Connection, states: list[FileState], pending: _Pending) -> None:
        """Drop the instances (and elements) of files about to be rewritten or removed."""
        ids = [s.instance_id for s in states if s.instance_id is not None]
        for chunk in _chunks(ids, 500):
            rows = conn.execute(select(instances.c.series_id).where(instances.c.id.in_(chunk)).distinct())
            pending.dirty_series.update(r[0] for r in rows)
            summaries.subtract(conn, chunk)
            conn.execute(delete(elements).where(elements.c.instance_id.in_(chunk)))
            conn.execute(delete(instances).where(instances.c.id.in_(chunk)))

    def _upsert_files(self, conn: Connection, results: list[FileResult], pending: _Pending) -> list[int]:
        ids: list[int] = []
        new: list[tuple[int, FileResult]] = []
        for i, r in enumerate(results):
            state = self.states.get(r.path_bytes)
            if state is None:
                new.append((i, r))
                ids.append(0)
                continue
            conn.execute(update(files).where(files.c.id == state.id).values(**self._file_values(r)))
            pending.states[r.path_bytes] = FileState(state.id, r.size, r.mtime_ns, r.status, None, r.root)
            ids.append(state.id)
        if new:
            rows = [{"path_bytes": r.path_bytes, **self._file_values(r)} for _, r in new]
            result = conn.execute(insert(files).returning(files.c.id, sort_by_parameter_order=True), rows)
            for (i, r), (fid,) in zip(new, result.all()):
                ids[i] = fid
                pending.states[r.path_bytes] = FileState(fid, r.size, r.mtime_ns, r.status, None, r.root)
        return ids

    def _file_values(self, r: FileResult) -> dict[str, Any]:
        values = {"path": display_path(r.path_bytes), "root": r.root, "size": r.size, "mtime_ns": r.mtime_ns,
                  "status": r.status, "reason": r.reason, "warning": r.warning, "build_id": self.build_id}  # fmt: skip
        return {k: _pg_safe(v) for k, v in values.items()} if self.postgres else values

    def _series_ids(self, conn: Connection, results: list[FileResult], pending: _Pending) -> list[int]:
        """Each result's series id; studies and series are filled from their first file by path."""
        ordered = sorted(results, key=lambda r: r.path_bytes)
        first_of_study: dict[str, FileResult] = {}
        for r in ordered:
            first_of_study.setdefault(r.header.get("study_instance_uid") or "", r)
        study_ids = {
            uid: self._row_id(conn, studies, {"study_instance_uid": uid}, _values(r, STUDY_COLUMNS), r, pending)
            for uid, r in sorted(first_of_study.items())
        }
        first_of_series: dict[tuple[int, str], FileResult] = {}
        for r in ordered:
            key = (study_ids[r.header.get("study_instance_uid") or ""], r.header.get("series_instance_uid") or "")
            first_of_series.setdefault(key, r)
        series_ids = {
            key: self._row_id(conn, series, {"study_id": key[0], "series_instance_uid": key[1]},
                              _values(r, SERIES_COLUMNS), r, pending)
            for key, r in sorted(first_of_series.items())
        }  # fmt: skip
        return [
            series_ids[(study_ids[r.header.get("study_instance_uid") or ""], r.header.get("series_instance_uid") or "")]
            for r in results
        ]

    def _row_id(self, conn: Connection, table: Any, key: dict[str, Any], values: dict[str, Any],
                r: FileResult, pending: _Pending) -> int:  # fmt: skip
        """A study or series id: from memory, unless this file comes before the one that filled the row."""
        path = display_path(r.path_bytes)
        cache_key = (table.name, *key.values())
        hit = pending.rows.get(cache_key) or self.rows.get(cache_key)
        if hit is not None and path > hit[1]:
            return hit[0]
        if self.postgres:
            values = {k: _pg_safe(v) for k, v in values.items()}
        pending.rows[cache_key] = _get_or_create(conn, table, key, values, path)
        return pending.rows[cache_key][0]

    def _tag_ids(self, conn: Connection, keys: set[tuple[int, str]], pending: _Pending) -> dict[tuple[int, str], int]:
        for key in sorted(k for k in keys if k not in self.tag_ids):
            values = tag_values(key[0], key[1])
            pending.tag_ids[key] = _get_or_create(conn, tags, {"tag": key[0], "private_creator": key[1]}, values)[0]
        return {**self.tag_ids, **pending.tag_ids}

    def refresh_hierarchy(self, everything: bool = False) -> None:
        """Keep studies and series deterministic after files changed or vanished.

        Their values come from the first file by path (as a clean build gives): rows whose
        files were rewritten or removed are filled again from the first remaining file, and
        series, studies and tags left without instances or elements are deleted.
        `everything`: check every series and study, not only those this build touched, for
        after a build that was killed between its last batch and this step.
        """
        if not self.dirty_series and not everything:
            return  # nothing was rewritten or removed: new rows were filled by the first-path rule
        _retrying(lambda: self._refresh(everything))
        self.dirty_series.clear()

    def _refresh(self, everything: bool) -> None:
        self.rows.clear()
        with self.engine.begin() as conn:
            dirty = set(self.dirty_series)
            if everything:
                dirty |= _stale(conn, series, series.c.id)
            dirty_studies: set[int] = set()
            for chunk in _chunks(sorted(dirty), 500):  # before orphans go: their studies need a refill too
                dirty_studies.update(conn.execute(select(series.c.study_id).where(series.c.id.in_(chunk))).scalars())
            if everything:
                dirty_studies |= _stale(conn, studies, series.c.study_id)
            conn.execute(delete(series).where(~series.c.id.in_(select(instances.c.series_id))))
            conn.execute(delete(studies).where(~studies.c.id.in_(select(series.c.study_id))))
            conn.execute(delete(tags).where(~tags.c.id.in_(select(elements.c.tag_id))))
            for chunk in _chunks(sorted(dirty), 500):
                _refill(conn, series, SERIES_COLUMNS, series.c.id, chunk)
            for chunk in _chunks(sorted(dirty_studies), 500):
                _refill(conn, studies, STUDY_COLUMNS, series.c.study_id, chunk)
            self._load_tags(conn)


def defer_element_indexes(engine: Engine) -> None:
    """Drop the secondary indexes of an empty `elements` table on SQLite; `restore_element_indexes` builds them.

    Building an index once after a bulk load is much cheaper than keeping it up to date row by
    row (about a quarter of the insert time). Every build restores them first, so a build killed
    before its end leaves them missing only until the next run.
    """
    if engine.dialect.name != "sqlite":
        return  # PostgreSQL: other builders may be writing at the same time
    with engine.begin() as conn:
        if conn.execute(select(elements.c.instance_id).limit(1)).first() is None:
            for index in elements.indexes:
                index.drop(conn, checkfirst=True)


def refresh_statistics(engine: Engine) -> None:
    """PostgreSQL plans on table statistics: after a bulk load, without ANALYZE, it plans for empty tables.

    (autovacuum analyses later, too late for the build's own queries; SQLite needs none of this.)
    Only the index's tables: the database may hold others'.
    """
    if engine.dialect.name == "postgresql":
        preparer = engine.dialect.identifier_preparer
        names = ", ".join(preparer.quote(t.name) for t in metadata.sorted_tables)
        with engine.begin() as conn:
            conn.execute(text(f"ANALYZE {names}"))


def _first_line(error: BaseException) -> str:
    """What a driver says first (never the password: drivers do not repeat it)."""
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def restore_element_indexes(engine: Engine) -> None:
    with engine.begin() as conn:
        for index in sorted(elements.indexes, key=lambda ix: ix.name or ""):
            index.create(conn, checkfirst=True)


def _stale(conn: Connection, table: Any, owner: Any) -> set[int]:
    """Series or studies whose key_path is not the first path of their files (or that have no files left)."""
    first = (
        select(owner.label("owner"), func.min(files.c.path).label("path"))
        .select_from(
            instances.join(files, files.c.id == instances.c.file_id).join(series, series.c.id == instances.c.series_id)
        )
        .group_by(owner)
        .subquery()
    )
    query = (
        select(table.c.id)
        .outerjoin(first, first.c.owner == table.c.id)
        .where(or_(first.c.path.is_(None), table.c.key_path.is_(None), table.c.key_path != first.c.path))
    )
    return set(conn.execute(query).scalars())


def _values(r: FileResult, columns: tuple[str, ...]) -> dict[str, Any]:
    values = {c: r.header.get(c) for c in columns}
    if "series_number" in values:
        values["series_number"] = _int(values["series_number"])
    return values


def _refill(conn: Connection, table: Any, columns: tuple[str, ...], group: Any, ids: list[int]) -> None:
    """Fill rows again from the first remaining file by path."""
    first = (
        select(group, func.min(files.c.path))
        .select_from(
            instances.join(files, files.c.id == instances.c.file_id).join(series, series.c.id == instances.c.series_id)
        )
        .where(group.in_(ids))
        .group_by(group)
    )
    for row_id, path in conn.execute(first).all():
        header = _header_of(conn, path)
        values = {c: header.get(c) for c in columns}
        if "series_number" in values:
            values["series_number"] = _int(values["series_number"])
        conn.execute(update(table).where(table.c.id == row_id).values(key_path=path, **values))


def _header_of(conn: Connection, path: str) -> dict[str, Any]:
    """The hierarchy values of one indexed file, read back from its top-level elements."""
    from .extract import HIERARCHY_TAGS, NUMBER_TAGS

    of_file = select(instances.c.id, instances.c.site).join(files, files.c.id == instances.c.file_id)
    instance = conn.execute(of_file.where(files.c.path == path)).first()
    if instance is None:
        return {"site": None}
    # By instance id, not joined to files by path: PostgreSQL, planning on statistics from before a bulk
    # load, ran that join for minutes.
    query = (
        select(tags.c.tag, elements.c.value, elements.c.number)
        .select_from(elements.join(tags, tags.c.id == elements.c.tag_id))
        .where(elements.c.instance_id == instance.id, elements.c.depth == 0, tags.c.tag.in_(list(HIERARCHY_TAGS)))
    )
    header: dict[str, Any] = {}
    for tag, value, number in conn.execute(query):
        header[HIERARCHY_TAGS[tag]] = number if tag in NUMBER_TAGS and number is not None else value
    header["site"] = instance.site
    return header


def _get_or_create(
    conn: Connection, table: Any, key: dict[str, Any], values: dict[str, Any], path: str | None = None
) -> tuple[int, str]:
    """(id, key_path) of the row with `key`, created if needed, safely under concurrent writers.

    With `path`, the row keeps the values of the first file by path: a file that sorts before
    the one that filled it replaces its values (the comparison happens in the UPDATE, so two
    builders cannot both win).
    """
    extra = {"key_path": path} if path else {}
    dialect_insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    statement = dialect_insert(table).values(**key, **values, **extra).on_conflict_do_nothing()
    created = conn.execute(statement.returning(table.c.id)).first()
    if created is not None:
        return created[0], path or ""
    where = [table.c[k] == v for k, v in key.items()]
    if not path:
        return conn.execute(select(table.c.id).where(*where)).scalar_one(), ""
    row_id, key_path = conn.execute(select(table.c.id, table.c.key_path).where(*where)).one()
    if key_path is None or path <= key_path:
        done = conn.execute(
            update(table)
            .where(table.c.id == row_id, or_(table.c.key_path.is_(None), table.c.key_path >= path))
            .values(key_path=path, **values)
        )
        if done.rowcount:
            return row_id, path
        key_path = conn.execute(select(table.c.key_path).where(table.c.id == row_id)).scalar_one()
    return row_id, key_path


def _element_row(instance_id: int, row: tuple, tag_ids: dict[tuple[int, str], int]) -> tuple:
    """An `elements` row from a reader's row (outcome.ROW_FIELDS): instance id first, the tag id for tag and creator."""
    return (instance_id, *row[:4], tag_ids[(row[4], row[5] or "")], *row[6:])


def _copy(conn: Connection, table: Any, rows: list[tuple]) -> None:
    """Bulk load with PostgreSQL's COPY (psycopg 3), many times faster than INSERT."""
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    columns = ", ".join(c.name for c in table.columns)
    with cursor.copy(f"COPY {table.name} ({columns}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def _pg_safe(value: Any) -> Any:
    """PostgreSQL text cannot hold NUL: show it as U+2400 (SQLite keeps it as it is)."""
    return value.replace("\x00", "\u2400") if isinstance(value, str) and "\x00" in value else value


def _retrying(work: Callable[[], None], attempts: int = 6) -> None:
    """Run a transaction again when the database says a retry will pass (see _retryable)."""
    for attempt in range(attempts):
        try:
            return work()
        except DBAPIError as exc:
            if attempt == attempts - 1 or not _retryable(exc):
                raise
            time.sleep(0.05 * 2**attempt)


def _retryable(exc: DBAPIError) -> bool:
    """Deadlocks and serialization failures (PostgreSQL) and a busy database (SQLite) pass when retried."""
    code = getattr(exc.orig, "sqlstate", None)
    # 23503: a row another builder just removed (an emptied series, an unused tag) was referenced.
    return code in ("40P01", "40001", "23503") or "database is locked" in str(exc.orig)


def _int(value: Any) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _chunks(items: list, size: int) -> Iterator[list]:
    for i in range(0, len(items), size):
        yield items[i : i + size]

"""The database: opening it safely, and the single writer that stores what workers extracted.

A plain path means SQLite (the default); anything with `://` is a SQLAlchemy URL. SQLite runs in
WAL mode so a browser reading the file never blocks a build, and the file is created 0600
because it holds patient data (SQLite gives its -wal and -shm files the same mode).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import pydicom.datadict as dd
from sqlalchemy import bindparam, create_engine, delete, event, func, insert, inspect, select, update
from sqlalchemy.engine import Connection, Engine

from . import migrate
from .errors import BuildLocked, IbashError, NotAnIndex
from .extract import HIERARCHY_TAGS, NUMBER_TAGS, FileResult
from .schema import elements, files, instances, series, studies, tags

SQLITE_MAGIC = b"SQLite format 3\x00"

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
_ELEMENT_COLUMNS = [c.name for c in elements.columns]


def is_url(db: str) -> bool:
    return "://" in db


def connect(db: str, *, create: bool = True, readonly: bool = False) -> Engine:
    """An engine for `db`, a path or a SQLAlchemy URL, checking that a path is usable first."""
    if is_url(db):
        return create_engine(db)
    path = os.path.abspath(db)
    if os.path.isdir(path):
        raise IbashError(f"{db}: is a folder; give a database file such as {os.path.join(db, 'index.db')}")
    if not os.path.exists(path):
        if not create:
            raise NotAnIndex(f"{db}: no such database; create it with `ibash-index build ROOT --db {db}`")
        _create_private(path, db)
    else:
        _check_sqlite_file(path, db)
    if readonly:
        engine = create_engine("sqlite://", creator=lambda: _sqlite_readonly(path))
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


def _check_sqlite_file(path: str, shown: str) -> None:
    try:
        with open(path, "rb") as fp:
            head = fp.read(16)
    except OSError as exc:
        raise IbashError(f"cannot open the database {shown}: {exc.strerror}") from None
    if head and head != SQLITE_MAGIC:
        raise NotAnIndex(f"{shown}: is not a SQLite database; give a new file name with --db")


def _sqlite_readonly(path: str) -> Any:
    import sqlite3

    return sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout = 30000")
    with contextlib.suppress(Exception):  # read-only connections cannot change the journal mode
        cursor.execute("PRAGMA journal_mode = WAL")
    cursor.execute("PRAGMA synchronous = NORMAL")
    cursor.close()


def open_index(db: str, *, create: bool = True, readonly: bool = False) -> Engine:
    """Open (and, when writable, create or upgrade) an ibash-index database."""
    engine = connect(db, create=create, readonly=readonly)
    try:
        with engine.connect() as conn:
            names = set(inspect(conn).get_table_names())
        if names and "alembic_version" not in names:
            raise NotAnIndex(f"{db}: is a database of another program (no ibash-index tables); give another --db")
        if readonly:
            if "alembic_version" not in names:
                raise NotAnIndex(f"{db}: has not been built yet; run `ibash-index build ROOT --db {db}`")
            return engine
        with engine.begin() as conn:
            migrate.upgrade(conn)
    except IbashError:
        engine.dispose()
        raise
    except Exception as exc:
        engine.dispose()
        if "file is not a database" in str(exc) or "file is encrypted" in str(exc):
            raise NotAnIndex(f"{db}: is not a SQLite database; give a new file name with --db") from None
        if "readonly" in str(exc) or "unable to open" in str(exc):
            raise IbashError(f"cannot write to the database {db}: {exc.__cause__ or exc}") from None
        raise
    return engine


@contextlib.contextmanager
def build_lock(db: str) -> Iterator[None]:
    """Hold an exclusive lock on the database for one build; refuse at once if another holds it.

    flock() locks are separate from the POSIX locks SQLite uses, so this cannot upset SQLite
    as long as the descriptor stays open until the engine is gone (closing it last).
    """
    if is_url(db):
        yield
        return
    fd = os.open(os.path.abspath(db), os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise BuildLocked(f"another build is writing to {db}; wait for it to finish") from None
            raise
        yield
    finally:
        os.close(fd)


@dataclass
class FileState:
    """What the database knows of a file from an earlier build."""

    id: int
    size: int | None
    mtime_ns: int | None
    status: str
    instance_id: int | None


def load_file_states(conn: Connection) -> dict[bytes, FileState]:
    query = select(
        files.c.path_bytes, files.c.id, files.c.size, files.c.mtime_ns, files.c.status, instances.c.id
    ).outerjoin(instances, instances.c.file_id == files.c.id)
    return {bytes(row[0]): FileState(*row[1:]) for row in conn.execute(query)}


def display_path(path: bytes) -> str:
    """Readable text for a path: UTF-8 where it is, \\xNN escapes for the rest."""
    return path.decode("utf-8", "backslashreplace")


class Writer:
    """The one writer: each `write()` is one transaction, so an instance and its elements land together."""

    def __init__(self, engine: Engine, build_id: int, states: dict[bytes, FileState]) -> None:
        self.engine = engine
        self.build_id = build_id
        self.states = states
        self.tag_ids: dict[tuple[int, str], int] = {}
        self.elements_written = 0
        self._insert_elements = str(insert(elements).compile(dialect=engine.dialect))
        self.dirty_series: set[int] = set()
        self._rows: dict[tuple, tuple[int, str]] = {}
        self.dirty_studies: set[int] = set()
        with engine.connect() as conn:
            self._load_tags(conn)

    def _load_tags(self, conn: Connection) -> None:
        self.tag_ids = {(t, c): i for t, c, i in conn.execute(select(tags.c.tag, tags.c.private_creator, tags.c.id))}

    def write(self, results: list[FileResult]) -> None:
        with self.engine.begin() as conn:
            self._forget(conn, [self.states[r.path_bytes] for r in results if r.path_bytes in self.states])
            file_ids = self._upsert_files(conn, results)
            indexed = [(r, fid) for r, fid in zip(results, file_ids) if r.status == "indexed"]
            if indexed:
                self._insert_instances(conn, indexed)

    def remove(self, paths: Iterable[bytes]) -> int:
        """Delete files that vanished, with their instances and elements."""
        gone = [self.states.pop(p) for p in paths if p in self.states]
        if gone:
            with self.engine.begin() as conn:
                self._forget(conn, gone)
                conn.execute(
                    delete(files).where(files.c.id.in_(bindparam("ids", expanding=True))), {"ids": [s.id for s in gone]}
                )
        return len(gone)

    def _forget(self, conn: Connection, states: list[FileState]) -> None:
        """Drop the instances (and elements) of files about to be rewritten or removed."""
        ids = [s.instance_id for s in states if s.instance_id is not None]
        if not ids:
            return
        for chunk in _chunks(ids, 500):
            rows = conn.execute(select(instances.c.series_id).where(instances.c.id.in_(chunk)).distinct())
            self.dirty_series.update(r[0] for r in rows)
            conn.execute(delete(elements).where(elements.c.instance_id.in_(chunk)))
            conn.execute(delete(instances).where(instances.c.id.in_(chunk)))
        for s in states:
            s.instance_id = None

    def _upsert_files(self, conn: Connection, results: list[FileResult]) -> list[int]:
        ids: list[int] = []
        new: list[tuple[int, FileResult]] = []
        for i, r in enumerate(results):
            values = {
                "path": display_path(r.path_bytes),
                "root": r.root,
                "size": r.size,
                "mtime_ns": r.mtime_ns,
                "status": r.status,
                "reason": r.reason,
                "warning": r.warning,
                "build_id": self.build_id,
            }
            state = self.states.get(r.path_bytes)
            if state is None:
                new.append((i, r))
                ids.append(0)
                continue
            conn.execute(update(files).where(files.c.id == state.id).values(**values))
            state.size, state.mtime_ns, state.status = r.size, r.mtime_ns, r.status
            ids.append(state.id)
        if new:
            rows = [
                {
                    "path_bytes": r.path_bytes,
                    "path": display_path(r.path_bytes),
                    "root": r.root,
                    "size": r.size,
                    "mtime_ns": r.mtime_ns,
                    "status": r.status,
                    "reason": r.reason,
                    "warning": r.warning,
                    "build_id": self.build_id,
                }
                for _, r in new
            ]
            result = conn.execute(insert(files).returning(files.c.id, sort_by_parameter_order=True), rows)
            for (i, r), (fid,) in zip(new, result.all()):
                ids[i] = fid
                self.states[r.path_bytes] = FileState(fid, r.size, r.mtime_ns, r.status, None)
        return ids

    def _insert_instances(self, conn: Connection, indexed: list[tuple[FileResult, int]]) -> None:
        series_ids = [self._series_id(conn, r) for r, _ in indexed]
        rows = []
        for (r, fid), sid in zip(indexed, series_ids):
            h = r.header
            row = {c: h.get(c) for c in INSTANCE_COLUMNS}
            row["sop_instance_uid"] = h.get("sop_instance_uid") or ""
            row["instance_number"] = _int(h.get("instance_number"))
            row.update(file_id=fid, series_id=sid, element_count=len(r.rows))
            rows.append(row)
        result = conn.execute(insert(instances).returning(instances.c.id, sort_by_parameter_order=True), rows)
        element_rows = []
        for (r, _), (iid,) in zip(indexed, result.all()):
            self.states[r.path_bytes].instance_id = iid
            for row in r.rows:
                tag_id = self._tag_id(conn, row[4], row[5])
                element_rows.append((iid, *row[:4], tag_id, *row[6:]))
        conn.exec_driver_sql(self._insert_elements, element_rows)
        self.elements_written += len(element_rows)

    def _series_id(self, conn: Connection, r: FileResult) -> int:
        h = r.header
        path = display_path(r.path_bytes)
        study_values = {c: h.get(c) for c in STUDY_COLUMNS}
        study_id = self._row_id(
            conn, studies, {"study_instance_uid": h.get("study_instance_uid") or ""}, study_values, path
        )
        series_values = {c: h.get(c) for c in SERIES_COLUMNS}
        series_values["series_number"] = _int(series_values["series_number"])
        return self._row_id(
            conn,
            series,
            {"study_id": study_id, "series_instance_uid": h.get("series_instance_uid") or ""},
            series_values,
            path,
        )

    def _row_id(self, conn: Connection, table: Any, key: dict[str, Any], values: dict[str, Any], path: str) -> int:
        """Study or series id, from memory unless this file comes before the one that filled the row."""
        cache_key = (table.name, *key.values())
        hit = self._rows.get(cache_key)
        if hit is not None and path > hit[1]:
            return hit[0]
        row_id, key_path = _get_or_create(conn, table, key, values, path)
        self._rows[cache_key] = (row_id, key_path or path)
        return row_id

    def _tag_id(self, conn: Connection, tag: int, creator: str | None) -> int:
        key = (tag, creator or "")
        tag_id = self.tag_ids.get(key)
        if tag_id is None:
            tag_id = _get_or_create(conn, tags, {"tag": tag, "private_creator": key[1]}, tag_values(tag, creator))[0]
            self.tag_ids[key] = tag_id
        return tag_id

    def refresh_hierarchy(self) -> None:
        """Keep studies and series deterministic after files changed or vanished.

        Their values come from the first file by path (as a clean build gives): rows whose
        files were rewritten or removed are filled again from the first remaining file, and
        series and studies left without instances are deleted.
        """
        if not self.dirty_series:
            return  # nothing was rewritten or removed: new rows were filled by the first-path rule
        self._rows.clear()
        with self.engine.begin() as conn:
            conn.execute(delete(series).where(~series.c.id.in_(select(instances.c.series_id))))
            conn.execute(delete(studies).where(~studies.c.id.in_(select(series.c.study_id))))
            conn.execute(delete(tags).where(~tags.c.id.in_(select(elements.c.tag_id))))
            self._load_tags(conn)
            for chunk in _chunks(sorted(self.dirty_series), 500):
                study_ids = conn.execute(select(series.c.study_id).where(series.c.id.in_(chunk)).distinct())
                self._refill(conn, series, SERIES_COLUMNS, series.c.id, chunk)
                self._refill(conn, studies, STUDY_COLUMNS, series.c.study_id, [r[0] for r in study_ids])
            self.dirty_series.clear()

    def _refill(self, conn: Connection, table: Any, columns: tuple[str, ...], group: Any, ids: list[int]) -> None:
        first = (
            select(group, func.min(files.c.path))
            .select_from(
                instances.join(files, files.c.id == instances.c.file_id).join(
                    series, series.c.id == instances.c.series_id
                )
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
    query = (
        select(tags.c.tag, elements.c.value, elements.c.number)
        .select_from(elements.join(tags, tags.c.id == elements.c.tag_id))
        .join(instances, instances.c.id == elements.c.instance_id)
        .join(files, files.c.id == instances.c.file_id)
        .where(files.c.path == path, elements.c.depth == 0, tags.c.tag.in_(list(HIERARCHY_TAGS)))
    )
    header: dict[str, Any] = {}
    for tag, value, number in conn.execute(query):
        header[HIERARCHY_TAGS[tag]] = number if tag in NUMBER_TAGS and number is not None else value
    site = select(instances.c.site).join(files, files.c.id == instances.c.file_id).where(files.c.path == path)
    header["site"] = conn.execute(site).scalar()
    return header


def _get_or_create(
    conn: Connection, table: Any, key: dict[str, Any], values: dict[str, Any], path: str | None = None
) -> tuple[int, str | None]:
    """(id, key_path) of the row with `key`, inserting it if needed; with `path`, the first file by path wins."""
    where = [table.c[k] == v for k, v in key.items()]
    row = conn.execute(select(table.c.id, *([table.c.key_path] if path else [])).where(*where)).first()
    if row is None:
        extra = {"key_path": path} if path else {}
        return conn.execute(insert(table).values(**key, **values, **extra).returning(table.c.id)).scalar_one(), path
    if path and (row[1] is None or path <= row[1]):
        conn.execute(update(table).where(table.c.id == row[0]).values(key_path=path, **values))
        return row[0], path
    return row[0], row[1] if path else None


def tag_values(tag: int, creator: str | None) -> dict[str, Any]:
    """Dictionary facts for a tag row: names from pydicom's public or private dictionary."""
    group, elem = tag >> 16, tag & 0xFFFF
    values: dict[str, Any] = {
        "tag_text": f"({group:04X},{elem:04X})",
        "tag_hex": f"{group:04X}{elem:04X}",
        "private_tag": None,
        "keyword": "",
        "name": "",
        "dictionary_vr": None,
        "dictionary_vm": None,
        "retired": 0,
    }
    if group & 1:
        if 0x0010 <= elem <= 0x00FF:
            values["name"] = "Private Creator"
        elif elem >= 0x1000:
            values["private_tag"] = f"({group:04X},xx{elem & 0xFF:02X})"
            with contextlib.suppress(KeyError, ValueError):
                vr, vm, name, retired = dd.get_private_entry(tag, creator or "")
                values.update(name=name, dictionary_vr=vr, dictionary_vm=vm, retired=int(bool(retired)))
        return values
    with contextlib.suppress(KeyError):
        vr, vm, name, retired, keyword = dd.get_entry(tag)
        values.update(keyword=keyword, name=name, dictionary_vr=vr, dictionary_vm=vm, retired=int(bool(retired)))
    return values


def _int(value: Any) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _chunks(items: list, size: int) -> Iterator[list]:
    for i in range(0, len(items), size):
        yield items[i : i + size]

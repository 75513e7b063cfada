"""Keep the `summary_*` tables (report_tables.py) equal to what `elements` holds.

The build calls `add` after a batch's elements are inserted and `subtract` before instances are
deleted, inside the batch's transaction, so a killed build leaves the summaries consistent with
the elements. The statements live in sql/maintenance/*.sql (see its README): set-based
INSERT … SELECT … GROUP BY … ON CONFLICT DO UPDATE over the instances given, on SQLite and
PostgreSQL alike.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from operator import itemgetter
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, text
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import TextClause

from .migrate import bundled_dir

if TYPE_CHECKING:
    from .tally import Context, Tally

CHUNK = 500


def _statements(path: str) -> list[str]:
    """The statements of one maintenance file: `;`-separated, `--` comment lines dropped."""
    code = "\n".join(line for line in path.splitlines() if not line.lstrip().startswith("--"))
    return [s.strip() for s in code.split(";") if s.strip()]


@functools.cache
def _maintenance() -> tuple[list[tuple[TextClause, frozenset[str]]], list[TextClause]]:
    """(statements with the parameters each takes, prunes): read and compiled once per process.

    Statements run in file-name order: batch_*.sql fill temporary tables from the instances'
    elements, summary_*.sql count those (or the elements themselves) into the summaries.
    """
    folder = bundled_dir("sql") / "maintenance"
    statements = []
    for path in sorted(folder.glob("*.sql")):
        if path.name == "prune.sql":
            continue
        for sql in _statements(path.read_text(encoding="utf-8")):
            params = frozenset(p for p in ("ids", "sign") if f":{p}" in sql)
            clause = text(sql).bindparams(bindparam("ids", expanding=True)) if "ids" in params else text(sql)
            statements.append((clause, params))
    prunes = [text(s) for s in _statements((folder / "prune.sql").read_text(encoding="utf-8"))]
    return statements, prunes


def add(conn: Connection, instance_ids: Iterable[int]) -> None:
    """Count these instances (their elements already inserted) into the summaries."""
    _apply(conn, sorted(instance_ids), 1)


def subtract(conn: Connection, instance_ids: Iterable[int]) -> None:
    """Take these instances (their elements not yet deleted) out of the summaries."""
    ids = sorted(instance_ids)
    if ids:
        _apply(conn, ids, -1)
        for statement in _maintenance()[1]:
            conn.execute(statement)


def _apply(conn: Connection, ids: Sequence[int], sign: int) -> None:
    statements = _maintenance()[0]
    for start in range(0, len(ids), CHUNK):
        values = {"ids": list(ids[start : start + CHUNK]), "sign": sign}
        for statement, params in statements:
            conn.execute(statement, {p: values[p] for p in params})


def rebuild(conn: Connection) -> None:
    """Empty the summaries and count every instance again (migration 0003, and repairs)."""
    from .report_tables import SUMMARY_TABLES

    for table in SUMMARY_TABLES:
        conn.execute(table.delete())
    ids = list(conn.execute(text("SELECT id FROM instances ORDER BY id")).scalars())
    _apply(conn, ids, 1)


def profile_rows(conn: Connection) -> tuple[tuple[str, str, str], ...]:
    """PS3.15 Table E.1-1 as the database holds it, for the workers' `tally.Profile`."""
    rows = conn.execute(text("SELECT tag, tag_hex, basic_profile FROM ps315_attributes ORDER BY tag"))
    return tuple((tag, tag_hex, action) for tag, tag_hex, action in rows)


# Each summary table's key columns and the columns added up; sql/maintenance/upsert/<table>.sql
# binds them in this order. `value` and `number` ride along with the key (see _Sums.add).
UPSERTS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "summary_tags": (("site", "tag_id"), ("instances", "non_empty")),
    "summary_values": (("site", "tag_id", "value_key"), ("value", "elements")),
    "summary_series_values": (("series_id", "tag_id", "vr", "value_key"), ("value", "number", "elements")),
    "summary_phi_groups": (
        ("site", "tag", "name", "private_creator", "category", "action"),
        ("instances", "top_elements", "nested_elements"),
    ),
    "summary_phi_values": (
        ("site", "tag", "name", "private_creator", "category", "action", "value_key"),
        ("value", "elements"),
    ),
    "summary_phi_shown": (("site", "tag", "private_creator", "value_key"), ("value", "instances")),
    "summary_private": (("series_id", "site", "private_creator", "private_group"), ("elements", "instances")),
}


class _Sums:
    """The rows a batch adds, per table and key, merged across its tallies before they reach SQL."""

    def __init__(self) -> None:
        self.rows: dict[str, dict[tuple, list]] = {name: {} for name in UPSERTS}

    def add(self, table: str, key: tuple, *counts: int) -> None:
        row = self.rows[table].get(key)
        if row is None:
            self.rows[table][key] = list(counts)
        else:
            for i, n in enumerate(counts):
                row[i] += n

    def value(self, table: str, key: tuple, value: str, n: int) -> None:
        """A row whose key ends with the value's key: [value, count]."""
        row = self.rows[table].get(key)
        if row is None:
            self.rows[table][key] = [value, n]
        else:
            row[1] += n

    def series(self, key: tuple, value: str, number: float | None, n: int) -> None:
        """[value, smallest number, count], as MIN(number) and SUM(elements) in the SQL."""
        row = self.rows["summary_series_values"].get(key)
        if row is None:
            self.rows["summary_series_values"][key] = [value, number, n]
            return
        if number is not None and (row[1] is None or number < row[1]):
            row[1] = number
        row[2] += n


def add_tallies(
    conn: Connection,
    tallies: Iterable[Tally],
    instance_ids: dict[bytes, int],
    series_ids: dict[Context, int],
    tag_ids: dict[tuple[int, str], int],
    safe: Callable[[Any], Any] | None = None,
) -> None:
    """Add what workers counted (tally.py) for instances just written: the sums `add` would give.

    `series_ids` maps each (site, study UID, series UID) to its series id; `safe` makes text
    storable the way the elements' text was stored (NUL on PostgreSQL).
    """
    sums = _Sums()
    for tally in tallies:
        ids = [instance_ids[p] for p in tally.paths]
        tag_id = _TagIds(tally, tag_ids)
        for context, c in tally.contexts.items():
            _add_context(sums, c, context[0], series_ids[context], tag_id, ids)
    for table, rows in sums.rows.items():
        key, counts = UPSERTS[table]
        _run(conn, _upserts()[table], rows, key + counts, safe)


class _TagIds(dict):
    """A tally's keys (tally.Key) to tag ids."""

    def __init__(self, tally: Tally, tag_ids: dict[tuple[int, str], int]) -> None:
        self.tally, self.tag_ids = tally, tag_ids

    def __missing__(self, key: int) -> int:
        self[key] = self.tag_ids[self.tally.tag_key(key)]
        return self[key]


def _add_context(sums: _Sums, c: Any, site: str, sid: int, tag_ids: _TagIds, ids: list[int]) -> None:
    """One tally's counts of one (site, study, series), by database keys."""
    for key, n in c.tags.items():
        sums.add("summary_tags", (site, tag_ids[key]), n, c.filled.get(key, 0))
    for (key, value), n in c.values.items():
        sums.value("summary_values", (site, tag_ids[key], value), value, n)
    numbers = c.numbers
    for k, n in c.series.items():
        key, vr, value = k
        sums.series((sid, tag_ids[key], vr, value), value, numbers.get(k), n)
    for group, n in c.phi.items():
        sums.add("summary_phi_groups", (site, *group), n, c.phi_top.get(group, 0), c.phi_nested.get(group, 0))
    for (group, value), n in c.phi_values.items():
        sums.value("summary_phi_values", (site, *group, value), value, n)
    for (tag, creator, value), n in c.phi_shown.items():
        sums.value("summary_phi_shown", (site, tag, creator, value), value, n)
    for (creator, group), n in c.private.items():
        sums.add("summary_private", (sid, site, creator, group), n, c.private_instances[(creator, group)])
    for table, *rest, path_index, seq in c.long:  # keyed by the instance and the element that holds the value
        value = rest[-2] if table == "series" else rest[-1]
        value_key = f"{value[:200]}#{ids[path_index]}.{seq}"
        if table == "series":
            key, vr, value, number = rest
            sums.series((sid, tag_ids[key], vr, value_key), value, number, 1)
        elif table == "values":
            sums.value("summary_values", (site, tag_ids[rest[0]], value_key), value, 1)
        elif table == "phi_values":
            sums.value("summary_phi_values", (site, *rest[0], value_key), value, 1)
        else:  # phi_shown: one per instance and value, keyed by the first element holding it
            tag, creator, _ = rest
            sums.value("summary_phi_shown", (site, tag, creator, value_key), value, 1)


@functools.cache
def _upserts() -> dict[str, TextClause]:
    """sql/maintenance/upsert/<table>.sql: add one row of counts to a summary table."""
    folder = bundled_dir("sql") / "maintenance" / "upsert"
    return {path.stem: text(_statements(path.read_text(encoding="utf-8"))[0]) for path in folder.glob("*.sql")}


def _run(conn: Connection, statement: TextClause, rows: dict[tuple, list], names: tuple[str, ...],
         safe: Callable[[Any], Any] | None) -> None:  # fmt: skip
    """Upsert in key order, as the SQL does, so that concurrent PostgreSQL builders lock rows in one order.

    Straight through the driver: SQLAlchemy's handling of each parameter set cost more than the upsert.
    """
    if not rows:
        return
    sql, order = _compiled(statement, conn.dialect, names)
    params = [(*k, *rows[k]) for k in sorted(rows)]
    if safe is not None:
        params = [tuple(safe(v) for v in p) for p in params]
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    if order is None:
        cursor.executemany(sql, [dict(zip(names, p)) for p in params])
    else:
        cursor.executemany(sql, list(map(itemgetter(*order), params)))


_COMPILED: dict[tuple[int, str], tuple[str, list[int] | None]] = {}


def _compiled(statement: TextClause, dialect: Any, names: tuple[str, ...]) -> tuple[str, list[int] | None]:
    """The driver's SQL for a statement, and for positional drivers the order in which it binds `names`."""
    cache_key = (id(statement), dialect.name)
    if cache_key not in _COMPILED:
        compiled = statement.compile(dialect=dialect)
        order = [names.index(n) for n in compiled.positiontup] if compiled.positional else None
        _COMPILED[cache_key] = (str(compiled), order)
    return _COMPILED[cache_key]

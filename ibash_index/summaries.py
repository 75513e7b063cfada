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


@functools.cache
def _upserts() -> dict[str, TextClause]:
    """sql/maintenance/upsert/<table>.sql: add one row of counts to a summary table."""
    folder = bundled_dir("sql") / "maintenance" / "upsert"
    return {path.stem: text(_statements(path.read_text(encoding="utf-8"))[0]) for path in folder.glob("*.sql")}


def add_tallies(
    conn: Connection,
    tallies: Iterable[Tally],
    instance_ids: dict[bytes, int],
    series_ids: dict[Context, int],
    tag_ids: dict[tuple[int, str], int],
    safe: Callable[[Any], Any] = lambda v: v,
) -> None:
    """Add what workers counted (tally.py) for instances just written; the same sums `add` gives.

    `series_ids` maps each (site, study UID, series UID) to its series id; `safe` makes text
    storable the way the elements' text was stored (NUL on PostgreSQL).
    """
    tags: dict[tuple, list] = {}
    values: dict[tuple, list] = {}
    series: dict[tuple, list] = {}
    groups: dict[tuple, list] = {}
    phi_values: dict[tuple, list] = {}
    shown: dict[tuple, list] = {}
    private: dict[tuple, list] = {}

    def add(table: dict[tuple, list], key: tuple, counts: tuple) -> None:
        old = table.get(key)
        if old is None:
            table[key] = list(counts)
        else:
            for i, n in enumerate(counts):
                old[i] += n

    def long_key(value: str, path_index: int, seq: int) -> str:
        return f"{value[:200]}#{ids[path_index]}.{seq}"

    for tally in tallies:
        ids = [instance_ids[p] for p in tally.paths]
        for context, c in tally.contexts.items():
            site, sid = safe(context[0]), series_ids[context]
            for key, n in c.tags.items():
                add(tags, (site, tag_ids[key]), (n, c.filled.get(key, 0)))
            for (key, value), n in c.values.items():
                value = safe(value)
                _add_value(values, (site, tag_ids[key], value), value, n)
            for (key, vr, value), n in c.series.items():
                _add_series(series, (sid, tag_ids[key], vr, safe(value)), safe(value), c.numbers.get((key, vr, value)), n)
            for group, n in c.phi.items():
                add(groups, (site, *map(safe, group)), (n, c.phi_top.get(group, 0), c.phi_nested.get(group, 0)))
            for (group, value), n in c.phi_values.items():
                value = safe(value)
                _add_value(phi_values, (site, *map(safe, group), value), value, n)
            for (tag, creator, value), n in c.phi_shown.items():
                value = safe(value)
                _add_value(shown, (site, tag, safe(creator), value), value, n)
            for (creator, group), n in c.private.items():
                add(private, (sid, site, safe(creator), group), (n, c.private_instances[(creator, group)]))
            for entry in c.long:
                table, *rest, path_index, seq = entry
                if table == "series":
                    key, vr, value, number = rest
                    value = safe(value)
                    _add_series(series, (sid, tag_ids[key], vr, long_key(value, path_index, seq)), value, number, 1)
                elif table == "values":
                    key, value = rest
                    value = safe(value)
                    _add_value(values, (site, tag_ids[key], long_key(value, path_index, seq)), value, 1)
                elif table == "phi_values":
                    group, value = rest
                    value = safe(value)
                    key = (site, *map(safe, group), long_key(value, path_index, seq))
                    _add_value(phi_values, key, value, 1)
                else:  # phi_shown: one row per instance, keyed by the first element holding the value
                    tag, creator, value = rest
                    value = safe(value)
                    _add_value(shown, (site, tag, safe(creator), long_key(value, path_index, seq)), value, 1)
    upsert = _upserts()
    _run(conn, upsert["summary_tags"], tags, ("site", "tag_id"), ("instances", "non_empty"))
    _run(conn, upsert["summary_values"], values, ("site", "tag_id", "value_key"), ("value", "elements"))
    series_columns = ("series_id", "tag_id", "vr", "value_key")
    _run(conn, upsert["summary_series_values"], series, series_columns, ("value", "number", "elements"))
    group_columns = ("site", "tag", "name", "private_creator", "category", "action")
    _run(conn, upsert["summary_phi_groups"], groups, group_columns, ("instances", "top_elements", "nested_elements"))
    _run(conn, upsert["summary_phi_values"], phi_values, (*group_columns, "value_key"), ("value", "elements"))
    shown_columns = ("site", "tag", "private_creator", "value_key")
    _run(conn, upsert["summary_phi_shown"], shown, shown_columns, ("value", "instances"))
    private_columns = ("series_id", "site", "private_creator", "private_group")
    _run(conn, upsert["summary_private"], private, private_columns, ("elements", "instances"))


def _add_value(table: dict[tuple, list], key: tuple, value: str, n: int) -> None:
    """A keyed value row: [value, count]; the key ends with the value key."""
    old = table.get(key)
    if old is None:
        table[key] = [value, n]
    else:
        old[1] += n


def _add_series(table: dict[tuple, list], key: tuple, value: str, number: float | None, n: int) -> None:
    """[value, smallest number, count], as MIN(number) and SUM(elements) in the SQL."""
    old = table.get(key)
    if old is None:
        table[key] = [value, number, n]
        return
    if number is not None and (old[1] is None or number < old[1]):
        old[1] = number
    old[2] += n


def _run(conn: Connection, statement: TextClause, rows: dict[tuple, list], key: tuple[str, ...],
         counts: tuple[str, ...]) -> None:  # fmt: skip
    """Upsert in key order, as the SQL does, so that concurrent PostgreSQL builders lock rows in one order.

    Straight through the driver: SQLAlchemy's handling of each parameter set cost more than the upsert.
    """
    if not rows:
        return
    sql, order = _compiled(statement, conn.dialect, key + counts)
    params = [(*k, *rows[k]) for k in sorted(rows)]
    if order is not None:
        params = [tuple(p[i] for i in order) for p in params] if order != sorted(order) else params
        conn.connection.driver_connection.cursor().executemany(sql, params)  # type: ignore[union-attr]
    else:
        names = key + counts
        conn.connection.driver_connection.cursor().executemany(sql, [dict(zip(names, p)) for p in params])  # type: ignore[union-attr]


_COMPILED: dict[tuple[int, str], tuple[str, list[int] | None]] = {}


def _compiled(statement: TextClause, dialect: Any, names: tuple[str, ...]) -> tuple[str, list[int] | None]:
    """The driver's SQL for a statement, and for positional drivers the order of `names` it binds."""
    cache_key = (id(statement), dialect.name)
    if cache_key not in _COMPILED:
        compiled = statement.compile(dialect=dialect)
        order = [names.index(n) for n in compiled.positiontup] if compiled.positional else None
        _COMPILED[cache_key] = (str(compiled), order)
    return _COMPILED[cache_key]

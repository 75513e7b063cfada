"""Keep the `summary_*` tables (report_tables.py) equal to what `elements` holds.

The build calls `add` after a batch's elements are inserted and `subtract` before instances are
deleted, inside the batch's transaction, so a killed build leaves the summaries consistent with
the elements. The statements live in sql/maintenance/*.sql (see its README): set-based
INSERT … SELECT … GROUP BY … ON CONFLICT DO UPDATE over the instances given, on SQLite and
PostgreSQL alike.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence

from sqlalchemy import bindparam, text
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import TextClause

from .migrate import bundled_dir

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

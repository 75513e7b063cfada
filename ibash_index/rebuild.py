"""A rerun that finds nothing to do, answered through sqlite3 alone.

"Reruns must be instant": a build of unchanged folders used to spend most of a second importing
SQLAlchemy, the schema and the writer before it found there was no work. Here the crawl is
compared with the `files` table directly. Only when the full build would change nothing but
its own `builds` row is the answer given here, and that row is the same one it would write:

- the schema is at the newest revision and the saved reports are installed as this version has them;
- the last build completed (after a killed one, the full build checks every study and series);
- every file crawled is one the index holds unchanged (`Candidate.unchanged`, the rule the full
  build plans with), none is to be recorded as skipped, and none the index holds under these
  roots (and shard) has gone.

Anything else, or any error, is left to the full build, which decides again from the start.
tests/test_rebuild.py checks both ways give the same database.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import asdict

from . import __version__, direct
from .build import BuildOptions, BuildSummary, in_shard, now, own_files, owned, pydicom_version
from .crawl import Candidate, Skipped
from .migrate import bundled_head
from .reports import VIEW_PREFIX, installed, load_reports


def nothing_changed(
    roots: list[str], db: str, options: BuildOptions, items: Sequence[Candidate | Skipped], started: float
) -> BuildSummary | None:
    """Record and return the build of unchanged `items` in the SQLite index `db`; None if there is work to do."""
    own = own_files(db)
    mine = [item for item in items if in_shard(item.path, item.root, options.shard) and not own(item.path)]
    if any(isinstance(item, Skipped) for item in mine):
        return None  # the full build records them again
    path = direct.check_path(db, create=False)
    started_at = now()
    with direct.build_lock(path, db):
        conn = sqlite3.connect(path, isolation_level=None)  # transactions are explicit below
        try:
            conn.execute(f"PRAGMA busy_timeout = {direct.BUSY_TIMEOUT_MS}")
            conn.execute("BEGIN IMMEDIATE")
            summary = _unchanged(conn, roots, options, mine)
            if summary is not None:
                summary.seconds = round(time.monotonic() - started, 3)
                _record(conn, roots, options, summary, started_at)
            conn.execute("COMMIT")
            return summary
        except sqlite3.Error:
            return None  # the full build says what is wrong (or finds it was a passing lock)
        finally:
            conn.close()  # rolls back what was not committed


def _unchanged(
    conn: sqlite3.Connection, roots: list[str], options: BuildOptions, mine: list[Candidate]
) -> BuildSummary | None:
    if direct.schema_revision(conn) != bundled_head() or not _reports_installed(conn):
        return None
    last = conn.execute(direct.statement("last_build")).fetchone()
    if last is not None and last[0] != "complete":
        return None
    states = {bytes(row[0]): row[1:] for row in conn.execute(direct.statement("file_states"))}
    for item in mine:
        state = states.get(item.path)
        if state is None or not item.unchanged(*state[:3]):
            return None
    seen = {item.path for item in mine}
    if any(p not in seen and owned(p, root, roots, options.shard) for p, (*_, root) in states.items()):
        return None  # files gone: the full build removes them
    return BuildSummary(files_seen=len(mine), unchanged=len(mine))


def _reports_installed(conn: sqlite3.Connection) -> bool:
    rows, views = installed(load_reports())
    stored = conn.execute(direct.statement("stored_reports")).fetchall()
    if stored != [tuple(row.values()) for row in rows]:
        return False
    names = {name for (name,) in conn.execute(direct.statement("view_names"))}
    return {n for n in names if n.startswith(VIEW_PREFIX)} == views


def _record(
    conn: sqlite3.Connection, roots: list[str], options: BuildOptions, summary: BuildSummary, started_at: str
) -> None:
    row = {
        "started_at": started_at,
        "finished_at": now(),
        "status": "complete",
        "tool_version": __version__,
        "pydicom_version": pydicom_version(),
        "roots": json.dumps(roots),
        "options": json.dumps(asdict(options)),
        **summary.stored(),
    }
    summary.build_id = conn.execute(direct.statement("record_build"), row).lastrowid or 0

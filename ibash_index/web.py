"""Browse the index in Datasette, with every saved report as a canned query.

The Datasette metadata is generated from `sql/` and from the schema's comments each time, so
the `.sql` headers stay the one source of titles, descriptions and parameters.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from .errors import IbashError
from .reports import Report, load_reports
from .schema import metadata

log = logging.getLogger(__name__)

PHI_NOTE = "This database holds patient data from DICOM headers: names, dates, addresses, UIDs."


def datasette_metadata(db_name: str, reports: dict[str, Report] | None = None) -> dict[str, Any]:
    """Datasette metadata: canned queries from the saved reports, descriptions from the schema."""
    reports = load_reports() if reports is None else reports
    queries = {
        r.cli_name: {
            "title": r.title,
            "description": r.description,
            "sql": r.body,
            "params": list(r.params),
        }
        for r in reports.values()
    }
    tables = {
        t.name: {
            "description": t.comment or "",
            "columns": {c.name: c.comment for c in t.columns if c.comment},
        }
        for t in metadata.sorted_tables
    }
    tables["element_view"] = {"description": "One row per element at every depth, with names instead of ids."}
    return {
        "title": "ibash-index",
        "description": PHI_NOTE,
        "databases": {db_name: {"queries": queries, "tables": tables}},
    }


def serve(db: str, host: str = "127.0.0.1", port: int = 8001, extra_args: list[str] | None = None) -> int:
    """Run Datasette on `db` (read-only, immutable) until it is stopped; return its exit code."""
    try:
        import datasette  # noqa: F401
    except ImportError:
        raise IbashError("serve needs Datasette: pip install 'ibash-index[web]'") from None
    if "://" in db:
        raise IbashError("serve works on a SQLite file; export a PostgreSQL index with `ibash-index export` first")
    path = Path(db)
    if not path.is_file():
        raise IbashError(f"{db}: no such database; create it with `ibash-index build ROOT --db {db}`")
    if not _is_loopback(host):
        log.warning("serving on %s: anyone who can reach this address can read the patient data in %s", host, db)
    meta = datasette_metadata(path.stem)
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fp:
        json.dump(meta, fp)
    try:
        command = [sys.executable, "-m", "datasette", "serve", "-i", str(path), "-m", fp.name,
                   "--host", host, "--port", str(port), *(extra_args or [])]  # fmt: skip
        child = subprocess.Popen(command)
        try:
            previous = signal.signal(signal.SIGTERM, lambda *_: child.terminate())  # stopping us stops Datasette
        except ValueError:  # not the main thread: the caller handles signals
            previous = None
        try:
            code = child.wait()
            return 128 - code if code < 0 else code  # killed by signal N: 128 + N, as shells report it
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
            if child.poll() is None:
                child.terminate()
                child.wait(10)
    finally:
        os.unlink(fp.name)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False

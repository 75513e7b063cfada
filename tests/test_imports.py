"""What each process imports: the costs that made start-up slow stay away from where they are not needed.

Workers read files with pydicom and count tallies; importing SQLAlchemy cost each of them
about 0.3 CPU-seconds at every start. Measured reasons are in the modules' docstrings.
"""

from __future__ import annotations

import subprocess
import sys

import pydicom.data

WORKER = """
import sys
from ibash_index import pool, spool  # what a worker unpickles
from ibash_index.extract import read_file
from ibash_index.outcome import ExtractOptions
from ibash_index.tally import Profile, Tally

profile = Profile((("(0010,0010)", "00100010", "Z"),))
for path in {paths!r}:
    result = read_file(path.encode(), "/", ExtractOptions())
    assert result.status == "indexed", result.reason
    Tally(profile).count(result, result.rows)
print(sorted(m for m in ("sqlalchemy", "alembic", "typer") if m in sys.modules))
"""


def test_a_worker_reads_and_counts_without_sqlalchemy() -> None:
    paths = [pydicom.data.get_testdata_file(name) for name in ("MR_small.dcm", "rtplan.dcm", "CT_small.dcm")]
    out = subprocess.run([sys.executable, "-c", WORKER.format(paths=paths)], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"

"""Parquet and CSV export: every table and element_view, explicit types, readable by DuckDB."""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path

import pytest
from sqlalchemy import text

from ibash_index.build import BuildOptions, build
from ibash_index.errors import IbashError
from ibash_index.export import export
from ibash_index.reports import find_report
from ibash_index.schema import metadata

from .conftest import engine_for
from .test_build import make_tree

duckdb = pytest.importorskip("duckdb", reason="duckdb not installed (it is in the dev dependency group)")
pytest.importorskip("pyarrow", reason="pyarrow not installed (pip install '.[parquet]')")

NAMES = [t.name for t in metadata.sorted_tables] + ["element_view"]


@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory) -> str:
    base = tmp_path_factory.mktemp("export")
    db = str(base / "x.db")
    build([make_tree(base / "data")], db, BuildOptions(workers=1))
    return db


def counts(db: str) -> dict[str, int]:
    engine = engine_for(db)
    with engine.connect() as conn:
        result = {name: conn.execute(text(f"SELECT count(*) FROM {name}")).scalar_one() for name in NAMES}
    engine.dispose()
    return result


def test_parquet_round_trip_through_duckdb(indexed: str, tmp_path: Path) -> None:
    """DuckDB reads every exported table with the database's row counts and answers queries and a report alike."""
    engine = engine_for(indexed)
    written = export(indexed, tmp_path, "parquet")
    assert written == counts(indexed)
    con = duckdb.connect()
    for name in NAMES:
        con.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet('{tmp_path / name}.parquet')")
        assert con.execute(f"SELECT count(*) FROM {name}").fetchone()[0] == written[name]
    question = (
        "SELECT keyword, vr, count(*) AS n, sum(length) AS bytes FROM element_view "
        "GROUP BY keyword, vr ORDER BY keyword, vr"
    )
    with engine.connect() as conn:
        expected = [tuple(r) for r in conn.execute(text(question))]
    assert con.execute(question).fetchall() == expected
    sites = find_report("sites")  # a saved report, run unchanged on the Parquet files
    with engine.connect() as conn:
        expected = [tuple(r) for r in conn.execute(text(sites.body))]
    assert con.execute(sites.body).fetchall() == expected and expected
    types = dict(con.execute("SELECT column_name, data_type FROM information_schema.columns "
                             "WHERE table_name = 'elements'").fetchall())  # fmt: skip
    assert types["number"] == "DOUBLE" and types["data"] == "BLOB" and types["vm"] == "BIGINT"


def test_csv_export_has_headers_and_every_row(indexed: str, tmp_path: Path) -> None:
    """CSV export writes a header row and one line per row; binary values as hex."""
    written = export(indexed, tmp_path, "csv")
    assert written == counts(indexed)
    with open(tmp_path / "elements.csv", newline="") as fp:
        rows = list(csv.reader(fp))
    assert rows[0][:3] == ["instance_id", "seq", "parent_seq"] and len(rows) == written["elements"] + 1


def test_without_pyarrow_parquet_export_says_how_and_writes_nothing(
    indexed: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Parquet is the default format, and pyarrow an extra: say which, before making the folder."""
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "pyarrow" else find_spec(name))
    with pytest.raises(IbashError, match=r"pip install 'ibash-index\[parquet\]'"):
        export(indexed, tmp_path / "out")
    assert not (tmp_path / "out").exists()

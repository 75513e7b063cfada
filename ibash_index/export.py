"""Export the index as Parquet (for DuckDB, Spark, BigQuery) or CSV, one file per table.

Rows stream from the database in chunks and go out as row groups, so memory stays flat however
large the index is. Column types are explicit, taken from the schema, never guessed from data.
"""

from __future__ import annotations

import csv
import importlib.util
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import BigInteger, Float, Integer, LargeBinary, column, select, table
from sqlalchemy.engine import Engine
from sqlalchemy.types import TypeEngine

from .errors import IbashError
from .private import open_private
from .schema import elements, files, instances, metadata, series, studies, tags

CHUNK = 50_000

# element_view's columns and where each comes from (the view itself is SQL in migration 0001).
ELEMENT_VIEW = {
    "path": files.c.path, "site": instances.c.site, "study_uid": studies.c.study_instance_uid,
    "series_uid": series.c.series_instance_uid, "sop_uid": instances.c.sop_instance_uid, "tag": tags.c.tag_text,
    "keyword": tags.c.keyword, "name": tags.c.name, "vr": elements.c.vr, "vm": elements.c.vm,
    "value": elements.c.value, "number": elements.c.number, "private_creator": tags.c.private_creator,
    "element_path": elements.c.element_path, "depth": elements.c.depth, "item": elements.c.item,
    "length": elements.c.length, "hash": elements.c.hash, "flag": elements.c.flag,
    "instance_id": elements.c.instance_id, "seq": elements.c.seq, "parent_seq": elements.c.parent_seq,
}  # fmt: skip

FORMATS = ("parquet", "csv")


def export(
    db: str, out: Path, fmt: str = "parquet", progress: Callable[[str, int], None] | None = None
) -> dict[str, int]:
    """Write every table and element_view of `db` to `out/<name>.<fmt>`; return rows written per name."""
    from .store import open_index

    if fmt not in FORMATS:
        raise IbashError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if fmt == "parquet" and importlib.util.find_spec("pyarrow") is None:  # before anything is written
        raise IbashError("Parquet export needs pyarrow: pip install 'ibash-index[parquet]' (or use --format csv)")
    engine = open_index(db, create=False, readonly=True)
    try:
        return _export(engine, out, _parquet if fmt == "parquet" else _csv, fmt, progress)
    finally:
        engine.dispose()


def _export(
    engine: Engine, out: Path, writer: Callable, fmt: str, progress: Callable[[str, int], None] | None
) -> dict[str, int]:
    out.mkdir(mode=0o700, parents=True, exist_ok=True)  # a new folder and every file are private: patient data
    sources = {t.name: {c.name: c for c in t.columns} for t in metadata.sorted_tables}
    sources["element_view"] = ELEMENT_VIEW
    counts = {}
    with engine.connect() as conn:
        for name, columns in sources.items():
            query = select(*[column(c) for c in columns]).select_from(table(name))
            result = conn.execution_options(stream_results=True, yield_per=CHUNK).execute(query)
            counts[name] = writer(out / f"{name}.{fmt}", columns, result.partitions(CHUNK))
            if progress:
                progress(name, counts[name])
    return counts


def _arrow_type(sql_type: TypeEngine) -> Any:
    import pyarrow as pa

    if isinstance(sql_type, (Integer, BigInteger)):
        return pa.int64()
    if isinstance(sql_type, Float):
        return pa.float64()
    if isinstance(sql_type, LargeBinary):
        return pa.binary()
    return pa.string()


def _parquet(path: Path, columns: dict[str, Any], chunks: Iterator[list]) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([pa.field(name, _arrow_type(col.type)) for name, col in columns.items()])
    rows = 0
    with open_private(path, "wb") as fp, pq.ParquetWriter(fp, schema, compression="zstd") as writer:
        for chunk in chunks:
            arrays = [pa.array([_plain(row[i]) for row in chunk], type=field.type) for i, field in enumerate(schema)]
            writer.write_batch(pa.RecordBatch.from_arrays(arrays, schema=schema))
            rows += len(chunk)
    return rows


def _csv(path: Path, columns: dict[str, Any], chunks: Iterator[list]) -> int:
    rows = 0
    with open_private(path, "w", newline="", encoding="utf-8") as fp:
        out = csv.writer(fp)
        out.writerow(columns)
        for chunk in chunks:
            out.writerows([[_csv_value(v) for v in row] for row in chunk])
            rows += len(chunk)
    return rows


def _plain(value: Any) -> Any:
    return bytes(value) if isinstance(value, memoryview) else value


def _csv_value(value: Any) -> Any:
    if isinstance(value, (bytes, memoryview)):
        return bytes(value).hex()
    return value

"""Smoke test of the issue-5 benchmark harness: it runs end to end on a tiny corpus and its numbers add up.

Not a timing test: only that `benchmarks/run.py` produces every field, that the naive walk visits
exactly the elements the database holds (file by file), and that the database it reports on is real.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "benchmarks"
QUICK_REPORTS = ("sites", "tag_values", "tag-values")


def _tiny_corpus(sample, dest: Path) -> Path:
    """One file per series of the sample (about 70), plus its non-DICOM strays, hard-linked when possible."""
    picked = {}
    for f in sample.dicom_files:
        picked.setdefault(f.path.parent, f.path)
    paths = [*picked.values(), *(f.path for f in sample.other_files)]
    for src in paths:
        target = dest / src.relative_to(sample.root)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(src, target)
        except OSError:
            shutil.copy2(src, target)
    return dest


@pytest.fixture(scope="module")
def bench(sample, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    """Run the benchmark once, 1 repetition, on the tiny corpus; keep its work folder to inspect."""
    tmp = tmp_path_factory.mktemp("bench")
    corpus = _tiny_corpus(sample, tmp / "corpus")
    out = tmp / "result.json"
    # Two reports through the CLI keep this quick (each CLI run starts Python); all of them is the benchmark's job.
    present = [name for name in QUICK_REPORTS if (REPO / "sql" / f"{name}.sql").exists()]
    proc = subprocess.run(
        [
            sys.executable,
            str(BENCH / "run.py"),
            "--corpus",
            str(corpus),
            "--repeat",
            "1",
            "--json",
            str(out),
            "--workdir",
            str(tmp / "work"),
            *(["--reports", ",".join(present)] if present else []),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["table"] in proc.stdout
    return result, corpus


def test_json_has_every_measure(bench: tuple[dict, Path]) -> None:
    """Each measure of issue 5 is present, with one run each and positive times."""
    result, corpus = bench
    assert {"meta", "corpus", "main", "database", "reports", "targets", "table"} <= result.keys()
    main = result["main"]
    for name in ("naive", "build", "rebuild"):
        assert len(main[name]["seconds"]) == 1 and main[name]["median"] > 0, name
        assert main[name]["peak_rss_max_bytes"] > 10 * 1024 * 1024, name  # a Python process tree
    if shutil.which("dcmdump"):
        assert main["dcmdump"]["median"] > 0
    else:
        assert "skipped" in main["dcmdump"]
    assert set(main["ratios"]) == {"build_over_naive", "build_over_dcmdump", "rebuild_over_build"}
    assert main["ratios"]["build_over_naive"] > 0 and main["ratios"]["rebuild_over_build"] > 0
    assert set(main["throughput"]) >= {"build_files_per_s", "build_elements_per_s"}
    assert result["corpus"]["files"] == sum(1 for p in corpus.rglob("*") if p.is_file())
    measures = [t["measure"] for t in result["targets"]]
    assert measures[:4] == [
        "build / naive",
        "build / dcmdump (2 processes)",
        "rebuild (nothing changed) / build",
        "peak memory, whole tree (build), MB",
    ]
    assert all(t["met"] in {"met", "missed", "n/a", "—"} for t in result["targets"])


def test_database_numbers_are_the_databases(bench: tuple[dict, Path]) -> None:
    """Counts and bytes per element in the JSON are those of the database file left behind."""
    result, _ = bench
    db = result["database"]
    conn = sqlite3.connect(f"file:{db['path']}?mode=ro", uri=True)
    try:
        elements = conn.execute("SELECT count(*) FROM elements").fetchone()[0]
        instances = conn.execute("SELECT count(*) FROM instances").fetchone()[0]
    finally:
        conn.close()
    assert (db["elements"], db["instances"]) == (elements, instances)
    assert db["bytes"] >= Path(db["path"]).stat().st_size
    assert db["bytes_per_element"] == pytest.approx(db["bytes"] / elements, abs=0.01)
    assert instances >= result["corpus"]["dicom_files"]


def test_naive_visits_every_element_the_database_holds(bench: tuple[dict, Path]) -> None:
    """The naive walk sees as many elements as the database holds, in total and file by file."""
    result, corpus = bench
    check = result["main"]["naive_check"]
    assert check["equal"], check
    assert check["naive_files"] == result["corpus"]["dicom_files"]
    sys.path.insert(0, str(BENCH))
    try:
        import naive
    finally:
        sys.path.remove(str(BENCH))
    walked = naive.walk(corpus, per_file=True)
    assert walked.elements == check["naive_elements"]
    assert {Path(p).name for p in walked.unreadable} == {"catalog.xml", ".DS_Store"}
    conn = sqlite3.connect(f"file:{result['database']['path']}?mode=ro", uri=True)
    try:
        in_db = dict(
            conn.execute("SELECT f.path, i.element_count FROM files f JOIN instances i ON i.file_id = f.id").fetchall()
        )
    finally:
        conn.close()
    assert walked.per_file == {p: in_db[p] for p in walked.per_file}


def test_reports_timed_or_skipped_with_a_reason(bench: tuple[dict, Path]) -> None:
    """The reports asked for get a latency through the CLI and as SQL alone, or the step says why not."""
    result, _ = bench
    reports = result["reports"]
    files = sorted(p.stem for p in (REPO / "sql").glob("*.sql"))
    if not files:
        assert "skipped" in reports
        return
    present = sorted(name for name in QUICK_REPORTS if name in files)
    assert sorted(reports["reports"]) == (present or files)
    assert reports["cli_startup_median"] > 0
    for name, entry in reports["reports"].items():
        assert entry["error"] is None and entry["cli_median"] > 0, (name, entry["error"])
        assert entry.get("sql_error") is None and entry["sql_median"] is not None, name
        assert entry["rows"] > 0, name  # the sample has sites and field strengths

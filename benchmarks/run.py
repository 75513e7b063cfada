"""Issue 5's benchmark: `ibash-index build` side by side with a naive pydicom walk and DCMTK's dcmdump.

Everything that is compared is measured in the same run, alternating (ABAB...), as ratios of
medians: the machines here are shared and noisy, so absolute seconds mean little from one run
to the next while ratios from one run hold. Each command runs as a subprocess (as a user runs
it) while a thread sums the RSS of its whole process tree from /proc every ~50 ms.

    python benchmarks/run.py                          # >= 8,000 generated files, 3 runs each
    python benchmarks/run.py --scale-up 4             # ... and the build again at 4x the files
    python benchmarks/run.py --reports-only --files 100000   # report latency on ~100,000 files

See benchmarks/README.md for what each number means and the targets it is held to.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import math
import os
import platform
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
NAIVE = Path(__file__).resolve().with_name("naive.py")
SQL_DIR = REPO / "sql"
# DICOM files make_sample writes per unit of scale; only a first guess (checked after generating).
FILES_PER_SCALE_GUESS = 1641
# Values for report parameters the benchmark knows; other parameters keep the report's default.
KNOWN_PARAMS = {"tag": "MagneticFieldStrength"}
SAMPLE_INTERVAL = 0.05
MB = 1024 * 1024


# --------------------------------------------------------------------------------------------
# measuring one command


class TreeSampler(threading.Thread):
    """Peak of the summed RSS of a process and all its descendants, sampled from /proc.

    `resource.getrusage(RUSAGE_CHILDREN).ru_maxrss` is the largest single child, not the sum of
    a writer and its workers alive at the same time, which is what the memory target is about.
    RSS counts pages shared between forked workers once per process, so this errs high.
    """

    def __init__(self, pid: int, interval: float = SAMPLE_INTERVAL) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.interval = interval
        self.peak = 0
        self.peak_processes = 0
        self.samples = 0
        self.available = os.path.isdir("/proc/self")
        self._stop_event = threading.Event()
        self._page = os.sysconf("SC_PAGE_SIZE") if self.available else 0

    def run(self) -> None:
        if not self.available:
            return
        while not self._stop_event.is_set():
            self.sample()
            self._stop_event.wait(self.interval)

    def stop(self) -> None:
        self._stop_event.set()
        self.join()

    def sample(self) -> None:
        rss, count = self._tree_rss()
        self.samples += 1
        if rss > self.peak:
            self.peak, self.peak_processes = rss, count

    def _tree_rss(self) -> tuple[int, int]:
        children: dict[int, list[int]] = {}
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            try:
                with open(f"/proc/{name}/stat", "rb") as fp:
                    stat = fp.read()
                ppid = int(stat[stat.rindex(b")") + 2 :].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(name))
        total = count = 0
        stack = [self.pid]
        while stack:
            pid = stack.pop()
            try:
                with open(f"/proc/{pid}/statm", "rb") as fp:
                    total += int(fp.read().split()[1]) * self._page
                count += 1
            except (OSError, ValueError, IndexError):
                continue
            stack.extend(children.get(pid, ()))
        return total, count


@dataclass
class Run:
    """One timed command: wall seconds, peak tree RSS in bytes (None without /proc), output."""

    seconds: float
    peak_rss: int | None
    returncode: int
    stdout: str
    stderr: str
    load: float | None = None  # 1-minute load average when it ended: how busy the machine was
    code: str | None = None  # digest of the package's source when it started (see code_digest)


def measure(cmd: Sequence[str], stdin_path: str | None = None, env: dict[str, str] | None = None) -> Run:
    """Run `cmd` to completion; time it from spawn to exit while sampling its process tree's memory."""
    with (
        tempfile.TemporaryFile() as out,
        tempfile.TemporaryFile() as err,
        open(stdin_path or os.devnull, "rb") as stdin,
    ):
        code = code_digest()
        started = time.perf_counter()
        proc = subprocess.Popen(list(cmd), stdin=stdin, stdout=out, stderr=err, env=env)
        sampler = TreeSampler(proc.pid)
        sampler.start()
        proc.wait()
        seconds = time.perf_counter() - started
        sampler.stop()
        out.seek(0)
        err.seek(0)
        return Run(
            seconds=seconds,
            peak_rss=sampler.peak if sampler.available else None,
            returncode=proc.returncode,
            stdout=out.read().decode(errors="replace"),
            stderr=err.read().decode(errors="replace"),
            load=_load1(),
            code=code,
        )


def checked(name: str, run: Run) -> Run:
    """Stop the benchmark with the command's own error when a run that must succeed fails."""
    if run.returncode != 0:
        tail = "\n".join((run.stderr or run.stdout).strip().splitlines()[-15:])
        raise SystemExit(f"{name} failed (exit {run.returncode}):\n{tail}")
    return run


# --------------------------------------------------------------------------------------------
# the commands


def cli() -> list[str]:
    """`ibash-index` as a user runs it: the console script next to this Python, else `python -m`."""
    script = Path(sys.executable).with_name("ibash-index")
    if script.exists():
        return [str(script)]
    found = shutil.which("ibash-index")
    return [found] if found else [sys.executable, "-m", "ibash_index"]


def build_cmd(corpus: Path, db: Path) -> list[str]:
    return [*cli(), "build", str(corpus), "--db", str(db)]


def remove_db(db: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal", ".lock"):
        with contextlib.suppress(FileNotFoundError):
            Path(f"{db}{suffix}").unlink()


def db_bytes(db: Path) -> int:
    return sum(Path(f"{db}{s}").stat().st_size for s in ("", "-wal") if Path(f"{db}{s}").exists())


def dcmdump_path() -> str | None:
    return shutil.which("dcmdump")


def write_file_list(files: list[str], path: Path) -> None:
    """NUL-separated list for `xargs -0` (paths can hold any byte but NUL)."""
    path.write_bytes(b"".join(os.fsencode(f) + b"\0" for f in files))


def dcmdump_cmd(dcmdump: str, n_files: int) -> list[str]:
    """Two dcmdump processes at a time, each given about half the files (xargs splits further if too long)."""
    per_process = max(1, math.ceil(n_files / 2))
    return ["xargs", "-0", "-P", "2", "-n", str(per_process), "-s", "1000000", dcmdump]


# --------------------------------------------------------------------------------------------
# the corpus


@dataclass
class Corpus:
    root: Path
    files: list[str]  # every regular file, DICOM or not
    dicom_files: int
    scale: int | None
    seed: int | None
    generated_seconds: float | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "root": str(self.root),
            "files": len(self.files),
            "dicom_files": self.dicom_files,
            "bytes": sum(os.path.getsize(f) for f in self.files),
            "scale": self.scale,
            "seed": self.seed,
            "generated_seconds": self.generated_seconds,
        }


def files_per_scale() -> int:
    """DICOM files make_sample writes at scale 1, from its tables (falls back to a measured constant)."""
    try:
        from ibash_index import sample

        return sum(sample._KINDS[k].images for s in sample._SESSION_TABLE for k in s.kinds)
    except Exception:
        return FILES_PER_SCALE_GUESS


def scale_for(files: int) -> int:
    return max(1, math.ceil(files / files_per_scale()))


def list_files(root: Path) -> list[str]:
    from naive import iter_files  # benchmarks/ is on sys.path when run as a script

    return list(iter_files(root))


def generated_corpus(workdir: Path, scale: int, seed: int) -> Corpus:
    """The sample data set at `scale`, reused from `workdir` when one was finished by the same generator."""
    from ibash_index import sample as sample_module
    from ibash_index.sample import make_sample

    generator = hashlib.sha1(Path(sample_module.__file__).read_bytes()).hexdigest()[:12]
    root = workdir / f"corpus-x{scale}-seed{seed}"
    done = workdir / f"corpus-x{scale}-seed{seed}.json"  # beside the corpus, not in it: it would be crawled
    if done.exists() and root.is_dir():
        info = json.loads(done.read_text())
        if info.get("generator") == generator:
            log(f"reusing the corpus in {root} ({info['dicom_files']:,} DICOM files)")
            root = root.resolve()
            return Corpus(root, list_files(root), info["dicom_files"], scale, seed, info.get("generated_seconds"))
        log(f"the sample generator changed since {root} was written: generating it again")
    if root.exists():
        shutil.rmtree(root)
    log(f"generating the sample corpus at scale {scale} (about {scale * files_per_scale():,} files) in {root}")
    started = time.perf_counter()
    sample = make_sample(root, scale=scale, seed=seed)
    seconds = round(time.perf_counter() - started, 1)
    dicom = len(sample.dicom_files)
    done.write_text(json.dumps({"dicom_files": dicom, "generated_seconds": seconds, "generator": generator}))
    log(f"generated {dicom:,} DICOM files in {seconds:.0f} s")
    return Corpus(root.resolve(), list_files(root.resolve()), dicom, scale, seed, seconds)


def corpus_for(args: argparse.Namespace, workdir: Path) -> Corpus:
    if args.corpus:
        root = args.corpus.resolve()
        if not root.exists():
            raise SystemExit(f"--corpus {args.corpus}: no such folder")
        files = list_files(root)
        return Corpus(root, files, sum(1 for f in files if _looks_dicom(f)), None, None)
    scale = args.scale or scale_for(args.files)
    corpus = generated_corpus(workdir, scale, args.seed)
    if corpus.dicom_files < args.files and not args.scale:
        per = max(1, corpus.dicom_files // scale)
        corpus = generated_corpus(workdir, math.ceil(args.files / per), args.seed)
    return corpus


def _looks_dicom(path: str) -> bool:
    try:
        with open(path, "rb") as fp:
            return fp.read(132)[128:132] == b"DICM"
    except OSError:
        return False


# --------------------------------------------------------------------------------------------
# the database


def db_stats(db: Path) -> dict[str, Any]:
    """Sizes and counts of a built index, read directly with sqlite3 (read-only)."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        one = lambda sql: conn.execute(sql).fetchone()[0]  # noqa: E731
        instances = one("SELECT count(*) FROM instances")
        elements = one("SELECT count(*) FROM elements")
        size = db_bytes(db)
        statuses = dict(conn.execute("SELECT status, count(*) FROM files GROUP BY status").fetchall())
    finally:
        conn.close()
    return {
        "path": str(db),
        "bytes": size,
        "instances": instances,
        "elements": elements,
        "files_by_status": statuses,
        "bytes_per_instance": round(size / instances, 1) if instances else None,
        "bytes_per_element": round(size / elements, 2) if elements else None,
        "elements_per_instance": round(elements / instances, 1) if instances else None,
    }


def element_counts(db: Path, paths: Sequence[str]) -> int:
    """Elements the database holds for the files at `paths` (0 for files it did not index)."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        total = 0
        for path in paths:
            row = conn.execute(
                "SELECT sum(i.element_count) FROM files f JOIN instances i ON i.file_id = f.id WHERE f.path = ?",
                (path,),
            ).fetchone()
            total += row[0] or 0
        return total
    finally:
        conn.close()


def naive_check(naive_json: dict[str, Any], db: Path, stats: dict[str, Any]) -> dict[str, Any]:
    """Does the naive walk visit as many elements as the database holds (over the files both read)?"""
    unreadable = naive_json["unreadable"]
    db_only = element_counts(db, unreadable)
    compared = stats["elements"] - db_only
    return {
        "naive_files": naive_json["files"],
        "naive_elements": naive_json["elements"],
        "db_elements": stats["elements"],
        "naive_unreadable_files": unreadable,
        "db_elements_in_files_naive_could_not_read": db_only,
        "equal": naive_json["elements"] == compared,
    }


# --------------------------------------------------------------------------------------------
# saved reports


@dataclass
class Report:
    name: str
    path: Path
    sql: str
    params: dict[str, str] = field(default_factory=dict)  # passed as -p NAME=VALUE
    unknown: list[str] = field(default_factory=list)  # left to the report's default
    defaults: dict[str, Any] = field(default_factory=dict)  # from the header, for the SQL-alone timing
    cli_name: str = ""


def strip_sql_comments(sql: str) -> str:
    sql = re.sub(r"/\*.*?\*/", " ", sql, flags=re.S)
    return re.sub(r"--[^\n]*", " ", sql)


def find_reports(extra: dict[str, str], only: Sequence[str] = ()) -> list[Report]:
    """Every `sql/*.sql` (or those named in `only`), with values for the parameters the benchmark knows."""
    known = {**KNOWN_PARAMS, **extra}
    reports = []
    for path in sorted(SQL_DIR.glob("*.sql")):
        if only and path.stem not in only:
            continue
        sql = path.read_text(encoding="utf-8")
        names = sorted(set(re.findall(r"(?<![:\w]):([A-Za-z_]\w*)", strip_sql_comments(sql))))
        reports.append(
            Report(
                path.stem,
                path,
                sql,
                {n: known[n] for n in names if n in known},
                [n for n in names if n not in known],
                header_defaults(sql),
                path.stem,
            )
        )
    return reports


def header_defaults(sql: str) -> dict[str, Any]:
    """`-- param NAME: help [default: VALUE]` lines of a report's header, as values to bind."""
    defaults: dict[str, Any] = {}
    for m in re.finditer(r"^--\s*param\s+(\w+)\s*:.*\[default:\s*(.*?)\]\s*$", sql, flags=re.M):
        text = m[2].strip()
        if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
            defaults[m[1]] = text[1:-1]
        elif re.fullmatch(r"-?\d+", text):
            defaults[m[1]] = int(text)
        else:
            defaults[m[1]] = text
    return defaults


def report_cmd(report: Report, db: Path) -> list[str]:
    cmd = [*cli(), "report", report.cli_name, "--db", str(db)]
    for name, value in report.params.items():
        cmd += ["-p", f"{name}={value}"]
    return cmd


def time_sql(report: Report, db: Path) -> tuple[float, int]:
    """The report's SELECT alone, through sqlite3 in this process: the query's own cost, no start-up."""
    params: dict[str, Any] = {name: report.defaults.get(name) for name in report.unknown}
    params.update(report.params)
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        started = time.perf_counter()
        rows = conn.execute(report.sql, params).fetchall()
        return time.perf_counter() - started, len(rows)
    finally:
        conn.close()


def time_reports(db: Path, repeat: int, extra_params: dict[str, str], only: Sequence[str] = ()) -> dict[str, Any]:
    """Each saved report's latency: the CLI as a user runs it, and its SQL alone; alternating."""
    reports = find_reports(extra_params, only)
    if not reports:
        log(f"reports: skipped — no saved reports in {SQL_DIR} (sql/*.sql not written yet)")
        return {"skipped": f"no sql/*.sql in {SQL_DIR}"}
    probe = subprocess.run([*cli(), "report", "--help"], capture_output=True, text=True)
    has_cli = probe.returncode == 0
    if not has_cli:
        log("reports: the `ibash-index report` command is missing; timing the SQL only")
    startup = [measure([*cli(), "--help"]).seconds for _ in range(repeat)]
    results: dict[str, dict[str, Any]] = {
        r.name: {"params": r.params, "defaulted": r.unknown, "cli": [], "sql": [], "rows": None, "error": None}
        for r in reports
    }
    for round_ in range(repeat):
        for r in reports:
            entry = results[r.name]
            if has_cli and entry["error"] is None:
                run = measure(report_cmd(r, db))
                if run.returncode != 0 and not entry["cli"] and "_" in r.cli_name:
                    r.cli_name = r.cli_name.replace("_", "-")  # the file is tag_values.sql, the report tag-values?
                    run = measure(report_cmd(r, db))
                if run.returncode != 0:
                    entry["error"] = f"CLI exit {run.returncode}: " + (run.stderr.strip().splitlines() or [""])[-1]
                else:
                    entry["cli"].append(run.seconds)
            try:
                seconds, rows = time_sql(r, db)
                entry["sql"].append(seconds)
                entry["rows"] = rows
            except sqlite3.Error as exc:
                entry["sql_error"] = f"{type(exc).__name__}: {exc}"
        log(f"reports round {round_ + 1}/{repeat} done")
    for entry in results.values():
        entry["cli_median"] = median(entry["cli"])
        entry["sql_median"] = median(entry["sql"])
    return {"cli_startup_median": median(startup), "cli_startup": startup, "reports": results}


# --------------------------------------------------------------------------------------------
# the phases


def median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def peak(runs: Sequence[Run]) -> int | None:
    peaks = [r.peak_rss for r in runs if r.peak_rss is not None]
    return max(peaks) if peaks else None


def summarize(runs: Sequence[Run]) -> dict[str, Any]:
    return {
        "seconds": [round(r.seconds, 3) for r in runs],
        "load": [r.load for r in runs],
        "code": [r.code for r in runs],
        "median": median([r.seconds for r in runs]),
        "peak_rss_bytes": [r.peak_rss for r in runs],
        "peak_rss_max_bytes": peak(runs),
    }


def main_phase(corpus: Corpus, workdir: Path, repeat: int) -> dict[str, Any]:
    """naive, dcmdump, build, rebuild — in that order, `repeat` rounds (ABAB...)."""
    dcmdump = dcmdump_path()
    file_list = workdir / "files.nul"
    write_file_list(corpus.files, file_list)
    if dcmdump is None:
        log("dcmdump: skipped — DCMTK's dcmdump is not on PATH (apt-get install dcmtk)")
    runs: dict[str, list[Run]] = {"naive": [], "dcmdump": [], "build": [], "rebuild": []}
    naive_json: dict[str, Any] = {}
    db = workdir / "build-0.db"
    for round_ in range(1, repeat + 1):
        run = checked("naive", measure([sys.executable, str(NAIVE), str(corpus.root)]))
        naive_json = json.loads(run.stdout)
        runs["naive"].append(run)
        log(f"[{round_}/{repeat}] naive    {run.seconds:8.2f} s  {mb(run.peak_rss)}")
        if dcmdump:
            run = measure(dcmdump_cmd(dcmdump, len(corpus.files)), stdin_path=str(file_list))
            if run.returncode not in (0, 123):  # 123: some file was not DICOM (catalog.xml...)
                checked("dcmdump", run)
            runs["dcmdump"].append(run)
            log(f"[{round_}/{repeat}] dcmdump  {run.seconds:8.2f} s  {mb(run.peak_rss)}")
        remove_db(db)
        db = workdir / f"build-{round_}.db"
        remove_db(db)
        run = checked("build", measure(build_cmd(corpus.root, db)))
        runs["build"].append(run)
        log(f"[{round_}/{repeat}] build    {run.seconds:8.2f} s  {mb(run.peak_rss)}  {last_line(run.stdout)}")
        run = checked("rebuild", measure(build_cmd(corpus.root, db)))
        runs["rebuild"].append(run)
        log(f"[{round_}/{repeat}] rebuild  {run.seconds:8.2f} s  {mb(run.peak_rss)}  {last_line(run.stdout)}")
    stats = db_stats(db)
    check = naive_check(naive_json, db, stats)
    if not check["equal"]:
        log(
            f"WARNING: the naive walk saw {check['naive_elements']:,} elements, "
            f"the database holds {stats['elements']:,}"
        )
    result: dict[str, Any] = {name: summarize(rs) for name, rs in runs.items()}
    if dcmdump is None:
        result["dcmdump"] = {"skipped": "dcmdump not on PATH (apt-get install dcmtk)"}
    else:
        result["dcmdump"]["version"] = _dcmdump_version(dcmdump)
        result["dcmdump"]["errors_last_run"] = runs["dcmdump"][-1].stderr.count("E: ")
    naive_chars = naive_json.get("chars")
    build_s = result["build"]["median"]
    result.update(
        database=stats,
        naive_check=check,
        naive_chars=naive_chars,
        ratios={
            "build_over_naive": ratio(build_s, result["naive"]["median"]),
            "build_over_dcmdump": ratio(build_s, result["dcmdump"].get("median")),
            "rebuild_over_build": ratio(result["rebuild"]["median"], build_s),
        },
        throughput=throughput(corpus.dicom_files, stats["elements"], build_s, result["naive"]["median"]),
    )
    return result


def throughput(files: int, elements: int, build_s: float | None, naive_s: float | None) -> dict[str, Any]:
    return {
        "build_files_per_s": ratio(files, build_s),
        "build_elements_per_s": ratio(elements, build_s),
        "naive_files_per_s": ratio(files, naive_s),
        "naive_elements_per_s": ratio(elements, naive_s),
    }


def scale_up_phase(small: Corpus, workdir: Path, factor: int, repeat: int) -> dict[str, Any]:
    """build at 1x and at `factor`x, alternating, fresh databases: is time per file and memory flat?"""
    if small.scale is None:
        raise SystemExit("--scale-up needs a generated corpus (not --corpus)")
    big = generated_corpus(workdir, small.scale * factor, small.seed or 0)
    runs: dict[str, list[Run]] = {"build_1x": [], "build_nx": [], "rebuild_nx": []}
    db1, dbn = workdir / "scale-1x.db", workdir / f"scale-{factor}x.db"
    for round_ in range(1, repeat + 1):
        remove_db(db1)
        run = checked("build 1x", measure(build_cmd(small.root, db1)))
        runs["build_1x"].append(run)
        log(f"[{round_}/{repeat}] build 1x  {run.seconds:8.2f} s  {mb(run.peak_rss)}")
        remove_db(dbn)
        run = checked(f"build {factor}x", measure(build_cmd(big.root, dbn)))
        runs["build_nx"].append(run)
        log(f"[{round_}/{repeat}] build {factor}x  {run.seconds:8.2f} s  {mb(run.peak_rss)}  {last_line(run.stdout)}")
        run = checked(f"rebuild {factor}x", measure(build_cmd(big.root, dbn)))
        runs["rebuild_nx"].append(run)
        log(f"[{round_}/{repeat}] rebuild {factor}x {run.seconds:7.2f} s  {mb(run.peak_rss)}")
    stats_n = db_stats(dbn)
    remove_db(db1)
    one, n = summarize(runs["build_1x"]), summarize(runs["build_nx"])
    per_file_1 = ratio(one["median"], small.dicom_files)
    per_file_n = ratio(n["median"], big.dicom_files)
    return {
        "factor": factor,
        "corpus": big.as_json(),
        "build_1x": one,
        "build_nx": n,
        "rebuild_nx": summarize(runs["rebuild_nx"]),
        "database_nx": stats_n,
        "seconds_per_file_1x": per_file_1,
        "seconds_per_file_nx": per_file_n,
        "time_per_file_ratio": ratio(per_file_n, per_file_1),
        "peak_rss_ratio": ratio(n["peak_rss_max_bytes"], one["peak_rss_max_bytes"]),
        "rebuild_over_build_nx": ratio(summarize(runs["rebuild_nx"])["median"], n["median"]),
        "throughput_nx": throughput(big.dicom_files, stats_n["elements"], n["median"], None),
    }


def reports_only_phase(corpus: Corpus, workdir: Path) -> dict[str, Any]:
    """Build once (timed, for the record), then the reports are timed on the result."""
    db = workdir / "reports.db"
    remove_db(db)
    run = checked("build", measure(build_cmd(corpus.root, db)))
    log(f"build {run.seconds:.1f} s  {mb(run.peak_rss)}  {last_line(run.stdout)}")
    stats = db_stats(db)
    return {
        "build": summarize([run]),
        "database": stats,
        "throughput": throughput(corpus.dicom_files, stats["elements"], run.seconds, None),
    }


# --------------------------------------------------------------------------------------------
# targets and printing


@dataclass
class Target:
    measure: str
    target: str
    moonshot: str
    value: str
    met: str
    moonshot_met: str


def judge(measure: str, value: float | None, target: float | None, moonshot: float | None, fmt: str) -> Target:
    """One row of the targets table: lower is better for every measure of issue 5."""

    def verdict(limit: float | None) -> str:
        if limit is None:
            return "—"
        if value is None:
            return "n/a"
        return "met" if value <= limit else "missed"

    shown = "n/a" if value is None else fmt.format(value)
    return Target(
        measure,
        "—" if target is None else f"≤ {fmt.format(target)}",
        "—" if moonshot is None else f"≤ {fmt.format(moonshot)}",
        shown,
        verdict(target),
        verdict(moonshot),
    )


def report_limits(instances: int) -> tuple[float, float]:
    """Issue 5: ≤ 1 s (moonshot 0.2 s) at 10,000 instances, ≤ 10 s (2 s) at 100,000."""
    return (10.0, 2.0) if instances >= 50_000 else (1.0, 0.2)


def targets(result: dict[str, Any]) -> list[Target]:
    rows: list[Target] = []
    main = result.get("main")
    if main:
        r = main["ratios"]
        rows.append(judge("build / naive", r["build_over_naive"], 0.25, 0.15, "{:.3f}"))
        rows.append(judge("build / dcmdump (2 processes)", r["build_over_dcmdump"], 1.5, 1.0, "{:.3f}"))
        rows.append(judge("rebuild (nothing changed) / build", r["rebuild_over_build"], 0.03, 0.01, "{:.4f}"))
        peaks = [p for p in (main["build"]["peak_rss_max_bytes"], main["rebuild"]["peak_rss_max_bytes"]) if p]
        rows.append(
            judge("peak memory, whole tree (build), MB", max(peaks) / MB if peaks else None, 400, 250, "{:.0f}")
        )
    up = result.get("scale_up")
    if up:
        f = up["factor"]
        peak_n = up["build_nx"]["peak_rss_max_bytes"]
        rows.append(judge(f"peak memory at {f}× the files, MB", peak_n / MB if peak_n else None, 400, 250, "{:.0f}"))
        rows.append(judge(f"peak memory {f}× / 1×", up["peak_rss_ratio"], 1.2, None, "{:.2f}"))
        rows.append(judge(f"time per file {f}× / 1×", up["time_per_file_ratio"], 1.2, 1.05, "{:.2f}"))
    reports = result.get("reports", {})
    if "reports" in reports:
        instances = result["database"]["instances"]
        limit, moon = report_limits(instances)
        entries = reports["reports"].values()
        cli_worst = [e["cli_median"] for e in entries if e["cli_median"] is not None]
        sql_worst = [e["sql_median"] for e in entries if e["sql_median"] is not None]
        failed = [name for name, e in reports["reports"].items() if e["error"] or e.get("sql_error")]
        label = f"each report, {instances:,} instances"
        rows.append(judge(f"{label}: CLI wall, slowest (s)", max(cli_worst, default=None), limit, moon, "{:.2f}"))
        rows.append(judge(f"{label}: SQL alone, slowest (s)", max(sql_worst, default=None), limit, moon, "{:.3f}"))
        if failed:
            rows.append(Target("reports that failed", "none", "none", ", ".join(failed), "missed", "missed"))
    return rows


def md_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(c) for c in header], *[[("" if c is None else str(c)) for c in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |" for r in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def s(x: float | None, digits: int = 2) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def mb(x: int | float | None) -> str:
    return "n/a" if x is None else f"{x / MB:.0f} MB"


def n(x: float | None) -> str:
    return "n/a" if x is None else f"{x:,.0f}"


def render(result: dict[str, Any]) -> str:
    out: list[str] = []
    meta, corpus = result["meta"], result["corpus"]
    out.append(
        f"ibash-index benchmark ({result['mode']}) — {corpus['dicom_files']:,} DICOM files "
        f"({corpus['files']:,} files, {corpus['bytes'] / MB:.0f} MB"
        + (f", sample scale {corpus['scale']}" if corpus["scale"] else "")
        + f"); {meta['cpus']} CPUs; load {meta['loadavg_start']} → {meta['loadavg_end']}; "
        f"git {meta['git']['commit'][:10]}{' +uncommitted changes' if meta['git']['dirty'] else ''}; "
        f"{result['repeat']} runs each, medians"
    )
    if len(meta.get("code_versions", [])) > 1:
        out.append(
            f"WARNING: the measured code changed during this run ({len(meta['code_versions'])} versions: "
            f"{', '.join(meta['code_versions'])}); see `code` per run in the JSON"
        )
    main = result.get("main")
    if main:
        files, elements = corpus["dicom_files"], main["database"]["elements"]
        rows = []
        for name, label in (
            ("naive", "naive (pydicom, 1 process)"),
            ("dcmdump", "dcmdump (2 processes)"),
            ("build", "build (fresh database)"),
            ("rebuild", "rebuild (nothing changed)"),
        ):
            m = main[name]
            if "skipped" in m:
                rows.append([label, "skipped", m["skipped"], "", "", ""])
                continue
            rows.append(
                [
                    label,
                    s(m["median"]),
                    " ".join(s(x) for x in m["seconds"]),
                    mb(m["peak_rss_max_bytes"]),
                    n(ratio(files, m["median"])),
                    n(ratio(elements, m["median"])),
                ]
            )
        out += ["", md_table(["run", "median s", "runs s", "peak RSS, tree", "files/s", "elements/s"], rows)]
        r, db = main["ratios"], main["database"]
        check = main["naive_check"]
        out += [
            "",
            md_table(
                ["measure", "value"],
                [
                    ["build / naive", s(r["build_over_naive"], 3)],
                    ["build / dcmdump (2 processes)", s(r["build_over_dcmdump"], 3)],
                    ["rebuild / build", s(r["rebuild_over_build"], 4)],
                    ["peak memory, whole tree (build)", mb(main["build"]["peak_rss_max_bytes"])],
                    ["peak memory, whole tree (rebuild)", mb(main["rebuild"]["peak_rss_max_bytes"])],
                    [
                        "database",
                        f"{db['bytes'] / MB:.1f} MB ({db['instances']:,} instances, {db['elements']:,} elements)",
                    ],
                    ["database bytes / instance", n(db["bytes_per_instance"])],
                    ["database bytes / element", s(db["bytes_per_element"], 1)],
                    ["elements / instance", s(db["elements_per_instance"], 1)],
                    ["build files/s", n(main["throughput"]["build_files_per_s"])],
                    ["build elements/s", n(main["throughput"]["build_elements_per_s"])],
                    [
                        "naive elements = database elements",
                        f"{'yes' if check['equal'] else 'NO'} ({check['naive_elements']:,} vs "
                        f"{check['db_elements']:,}; {len(check['naive_unreadable_files'])} files pydicom refused "
                        f"hold {check['db_elements_in_files_naive_could_not_read']} elements in the database)",
                    ],
                ],
            ),
        ]
    up = result.get("scale_up")
    if up:
        f = up["factor"]
        one, big = up["build_1x"], up["build_nx"]
        out += [
            "",
            f"scale-up: {up['corpus']['dicom_files']:,} DICOM files ({f}×), builds alternating 1× / {f}×",
            "",
            md_table(
                ["run", "median s", "runs s", "peak RSS, tree", "ms / file", "files/s"],
                [
                    [
                        "build 1×",
                        s(one["median"]),
                        " ".join(s(x) for x in one["seconds"]),
                        mb(one["peak_rss_max_bytes"]),
                        s(up["seconds_per_file_1x"] * 1000 if up["seconds_per_file_1x"] else None),
                        n(ratio(1, up["seconds_per_file_1x"])),
                    ],
                    [
                        f"build {f}×",
                        s(big["median"]),
                        " ".join(s(x) for x in big["seconds"]),
                        mb(big["peak_rss_max_bytes"]),
                        s(up["seconds_per_file_nx"] * 1000 if up["seconds_per_file_nx"] else None),
                        n(ratio(1, up["seconds_per_file_nx"])),
                    ],
                    [
                        f"rebuild {f}×",
                        s(up["rebuild_nx"]["median"]),
                        " ".join(s(x) for x in up["rebuild_nx"]["seconds"]),
                        mb(up["rebuild_nx"]["peak_rss_max_bytes"]),
                        "",
                        "",
                    ],
                ],
            ),
            "",
            f"time per file {f}×/1×: {s(up['time_per_file_ratio'])}; peak memory {f}×/1×: "
            f"{s(up['peak_rss_ratio'])}; rebuild/build at {f}×: {s(up['rebuild_over_build_nx'], 4)}; "
            f"database at {f}×: {up['database_nx']['bytes'] / MB:.0f} MB, "
            f"{s(up['database_nx']['bytes_per_element'], 1)} bytes/element",
        ]
    ro = result.get("reports_only")
    if ro:
        db = ro["database"]
        out += [
            "",
            f"build (once): {s(ro['build']['median'], 1)} s, peak RSS {mb(ro['build']['peak_rss_max_bytes'])}, "
            f"{n(ro['throughput']['build_files_per_s'])} files/s; database {db['bytes'] / MB:.0f} MB, "
            f"{db['instances']:,} instances, {db['elements']:,} elements, "
            f"{s(db['bytes_per_element'], 1)} bytes/element",
        ]
    reports = result.get("reports", {})
    if "skipped" in reports:
        out += ["", f"reports: skipped — {reports['skipped']}"]
    elif reports:
        rows = []
        for name, e in reports["reports"].items():
            params = " ".join(f"{k}={v}" for k, v in e["params"].items())
            rows.append(
                [
                    name + (f" ({params})" if params else ""),
                    s(e["cli_median"]),
                    s(e["sql_median"], 3),
                    e["rows"],
                    e["error"] or e.get("sql_error") or "",
                ]
            )
        out += [
            "",
            f"reports on {result['database']['instances']:,} instances "
            f"(CLI start-up alone, `ibash-index --help`: {s(reports['cli_startup_median'])} s)",
            "",
            md_table(["report", "CLI wall s", "SQL alone s", "rows", "note"], rows),
        ]
    rows = [[t.measure, t.target, t.moonshot, t.value, t.met, t.moonshot_met] for t in targets(result)]
    out += [
        "",
        "targets (issue 5)",
        "",
        md_table(["measure", "target", "moonshot", "value", "target", "moonshot"], rows),
    ]
    return "\n".join(out)


# --------------------------------------------------------------------------------------------
# bookkeeping


def log(message: str) -> None:
    print(f"{datetime.now():%H:%M:%S} {message}", file=sys.stderr, flush=True)


def last_line(text: str) -> str:
    """The build's summary line (the one that counts files), else its last line."""
    lines = text.strip().splitlines()
    return next((line for line in lines if "files seen" in line), lines[-1] if lines else "")


def _dcmdump_version(dcmdump: str) -> str:
    out = subprocess.run([dcmdump, "--version"], capture_output=True, text=True).stdout
    return out.strip().splitlines()[0] if out.strip() else "?"


def git_state() -> dict[str, Any]:
    """The commit, and a digest of uncommitted changes to the package, so a result names the code it measured."""

    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=True).stdout
        except (OSError, subprocess.CalledProcessError):
            return ""

    diff = git("diff", "HEAD", "--", "ibash_index", "migrations", "sql")
    untracked = git("ls-files", "--others", "--exclude-standard", "--", "ibash_index", "migrations", "sql")
    return {
        "commit": git("rev-parse", "HEAD").strip() or "unknown",
        "dirty": bool(diff or untracked),
        "diff_sha1": hashlib.sha1((diff + untracked).encode()).hexdigest() if diff or untracked else None,
    }


def meta() -> dict[str, Any]:
    import pydicom

    import ibash_index

    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "cpus": os.cpu_count(),
        "loadavg_start": _load(),
        "machine": platform.platform(),
        "python": platform.python_version(),
        "ibash_index": ibash_index.__version__,
        "pydicom": pydicom.__version__,
        "sqlite": sqlite3.sqlite_version,
        "git": git_state(),
    }


def code_versions(result: dict[str, Any]) -> list[str]:
    """The distinct code digests the runs saw, in the order they were first seen."""
    seen: list[str] = []

    def visit(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "code" and isinstance(value, list):
                    seen.extend(v for v in value if v and v not in seen)
                else:
                    visit(value)

    visit({k: result.get(k) for k in ("main", "scale_up", "reports_only")})
    return seen


def _load1() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def code_digest() -> str:
    """SHA-1 of the measured code (ibash_index/, migrations/, sql/): others may edit it while a run goes on."""
    digest = hashlib.sha1()
    for folder in ("ibash_index", "migrations", "sql"):
        for path in sorted((REPO / folder).rglob("*")):
            if path.suffix in (".py", ".sql") and "__pycache__" not in path.parts:
                digest.update(str(path.relative_to(REPO)).encode())
                with contextlib.suppress(OSError):
                    digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def _load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


@contextlib.contextmanager
def working_dir(path: Path | None, keep: bool) -> Iterator[Path]:
    if path is not None:
        path.mkdir(parents=True, exist_ok=True)
        yield path.resolve()
        return
    tmp = Path(tempfile.mkdtemp(prefix="ibash-bench-"))
    try:
        yield tmp
    finally:
        if keep:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def parse_params(values: Sequence[str]) -> dict[str, str]:
    params = {}
    for value in values:
        name, sep, text = value.partition("=")
        if not sep:
            raise SystemExit(f"--param {value}: give NAME=VALUE")
        params[name] = text
    return params


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Benchmark `ibash-index build` against a naive pydicom walk and dcmdump (issue 5).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    where = p.add_mutually_exclusive_group()
    where.add_argument("--corpus", type=Path, help="benchmark this folder instead of a generated one")
    where.add_argument("--files", type=int, default=8000, help="generate at least this many DICOM files")
    where.add_argument("--scale", type=int, help="generate the sample at exactly this scale")
    p.add_argument("--seed", type=int, default=0, help="sample generator seed")
    p.add_argument("--repeat", type=int, default=3, help="runs of each measure (medians are reported)")
    p.add_argument("--scale-up", type=int, default=0, metavar="N", help="also build at N× the files (e.g. 4)")
    p.add_argument(
        "--reports-only", action="store_true", help="generate, build once and time the saved reports (no naive etc.)"
    )
    p.add_argument("--no-reports", action="store_true", help="do not time the saved reports")
    p.add_argument("--reports", metavar="NAME,...", help="time only these reports (file names without .sql)")
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE", help="a report parameter value")
    p.add_argument("--json", type=Path, help="write the results here (default: benchmarks/results/<date>.json)")
    p.add_argument("--workdir", type=Path, help="keep corpora and databases here (reused across runs)")
    p.add_argument("--keep", action="store_true", help="keep the temporary work folder")
    args = p.parse_args(argv)
    if args.repeat < 1:
        p.error("--repeat must be at least 1")
    if args.reports_only and args.scale_up:
        p.error("--reports-only and --scale-up are separate runs")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    sys.path.insert(0, str(NAIVE.parent))
    result: dict[str, Any] = {"mode": "reports-only" if args.reports_only else "full", "repeat": args.repeat}
    result["meta"] = meta()
    with working_dir(args.workdir, args.keep) as workdir:
        corpus = corpus_for(args, workdir)
        result["corpus"] = corpus.as_json()
        if args.reports_only:
            ro = reports_only_phase(corpus, workdir)
            result["reports_only"] = ro
            result["database"] = ro["database"]
        else:
            main_result = main_phase(corpus, workdir, args.repeat)
            result["main"] = main_result
            result["database"] = main_result["database"]
        if not args.no_reports:
            result["reports"] = time_reports(
                Path(result["database"]["path"]),
                args.repeat,
                parse_params(args.param),
                [name for name in (args.reports or "").split(",") if name],
            )
        if args.scale_up:
            result["scale_up"] = scale_up_phase(corpus, workdir, args.scale_up, args.repeat)
        result["meta"]["loadavg_end"] = _load()
        result["meta"]["code_versions"] = code_versions(result)
        result["targets"] = [t.__dict__ for t in targets(result)]
        text = render(result)
        result["table"] = text
        out = args.json or REPO / "benchmarks" / "results" / f"{datetime.now():%Y%m%d-%H%M%S}-{result['mode']}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2, default=str) + "\n")
        print(text)
        log(f"results written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""PostgreSQL build throughput with 1 and 2 concurrent builders, beside SQLite, in one run.

    python benchmarks/postgres.py [--corpus DIR | --scale N] [--repeat 2] [--json out.json]

Starts a throwaway PostgreSQL cluster (as tests do; needs the Debian `postgresql` package and,
as root, a `postgres` user), or uses `--url` of a server you have. Two builders split the files
with `--shard 1/2` and `--shard 2/2`, one worker each, so the two runs use the same CPUs.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def timed(commands: list[list[str]]) -> float:
    """Wall time of running the commands at the same time."""
    start = time.monotonic()
    procs = [subprocess.Popen(c) for c in commands]
    if any(p.wait() != 0 for p in procs):
        raise SystemExit("a build failed")
    return time.monotonic() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, help="folder to index (default: a generated sample)")
    parser.add_argument("--scale", type=int, default=1, help="sample scale when generating (1 = 1,643 files)")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument(
        "--url", help="an empty PostgreSQL database's SQLAlchemy URL prefix (…/), else a throwaway server"
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="ibash-pgbench-"))
    server = None
    try:
        corpus = args.corpus
        if corpus is None:
            from ibash_index.sample import make_sample

            corpus = make_sample(work / "corpus", scale=args.scale).root
        files = sum(1 for p in Path(corpus).rglob("*") if p.is_file())
        if args.url:
            new_db = _databases_at(args.url)
        else:
            from tests.conftest import PostgresServer

            base = Path(tempfile.mkdtemp(prefix="ibash-pg-"))
            server = PostgresServer(base)
            new_db = server.new_database
        build = [sys.executable, "-m", "ibash_index", "build", str(corpus), "--quiet"]
        runs: dict[str, list[float]] = {
            "sqlite, 1 builder": [],
            "postgresql, 1 builder": [],
            "postgresql, 2 builders": [],
        }
        for i in range(args.repeat):  # alternating, so a slow minute hits every measure
            runs["sqlite, 1 builder"].append(timed([[*build, "--db", str(work / f"s{i}.db")]]))
            runs["postgresql, 1 builder"].append(timed([[*build, "--db", new_db()]]))
            db = new_db()
            shards = [[*build, "--db", db, "--shard", f"{k}/2", "--workers", "1"] for k in (1, 2)]
            runs["postgresql, 2 builders"].append(timed(shards))
        result = {
            "files": files,
            "runs": runs,
            "median_seconds": {k: statistics.median(v) for k, v in runs.items()},
            "files_per_second": {k: round(files / statistics.median(v), 1) for k, v in runs.items()},
        }
        print(f"{files} files, median of {args.repeat}:")
        print(f"| {'setup':<24} | seconds | files/s |\n|{'-' * 26}|--------:|--------:|")
        for k in runs:
            print(f"| {k:<24} | {result['median_seconds'][k]:7.1f} | {result['files_per_second'][k]:7.1f} |")
        if args.json:
            args.json.write_text(json.dumps(result, indent=1))
    finally:
        if server is not None:
            server.stop()
            shutil.rmtree(server.base, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)


def _databases_at(url: str):
    """New empty databases on a server you run: CREATE DATABASE through psycopg."""
    import psycopg
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    counter = iter(range(1_000_000))

    def new() -> str:
        name = f"ibash_bench_{int(time.time())}_{next(counter)}"
        dsn = parsed.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return parsed.set(database=name).render_as_string(hide_password=False)

    return new


if __name__ == "__main__":
    main()

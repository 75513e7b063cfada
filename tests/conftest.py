"""Shared fixtures: the sample data set and its index are built once per test session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ibash_index.build import BuildOptions, build

REPO = Path(__file__).resolve().parents[1]
# Real multi-vendor scanner data lives beside the project, never inside it (see its README).
CORPORA = (REPO.parent / "shared" / "corpora").resolve()


def corpora_or_skip() -> Path:
    if not CORPORA.is_dir():
        pytest.skip(f"real scanner corpora not found at {CORPORA}")
    return CORPORA


@pytest.fixture(scope="session")
def sample(tmp_path_factory: pytest.TempPathFactory):
    """The default IBASH-like sample data set (scale 1, seed 0)."""
    from ibash_index.sample import make_sample

    return make_sample(tmp_path_factory.mktemp("sample") / "ibash")


@pytest.fixture(scope="session")
def sample_db(sample, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database built from the sample data set; treat it as read-only."""
    db = tmp_path_factory.mktemp("db") / "sample.db"
    build([sample.root], str(db), BuildOptions(workers=2))
    return db


@pytest.fixture(scope="session")
def corpora_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database built from ../shared/corpora (skipped when absent)."""
    root = corpora_or_skip()
    db = tmp_path_factory.mktemp("corpora") / "corpora.db"
    build([root], str(db), BuildOptions(workers=2))
    return db


class PostgresServer:
    """A throwaway PostgreSQL cluster in a temporary folder, on a Unix socket only."""

    def __init__(self, base: Path) -> None:
        import glob
        import shutil

        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        initdb = bins[-1] if bins else shutil.which("initdb")
        if not initdb:
            pytest.skip("PostgreSQL server not installed (apt-get install postgresql; `python3 dev.py test` does it)")
        self.bin = Path(initdb).parent
        self.base = base
        self.data = base / "data"
        self.socket = base / "sock"
        self.socket.mkdir()
        self.user = self._unprivileged_user()
        if self.user:
            shutil.chown(base, self.user)
            shutil.chown(self.socket, self.user)
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--locale=C.UTF-8")
        options = f"-k {self.socket} -c listen_addresses='' -c fsync=off -c max_connections=50"
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(base / "log"), "-w", "start")
        self.counter = 0

    @staticmethod
    def _unprivileged_user() -> str | None:
        import pwd

        if os.geteuid() != 0:
            return None
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and no 'postgres' user to run the PostgreSQL server as")
        return "postgres"

    def _run(self, program: str, *args: str) -> None:
        import subprocess

        command = [str(self.bin / program), *args]
        if self.user:
            command = ["runuser", "-u", self.user, "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    def url(self, dbname: str) -> str:
        return f"postgresql+psycopg://postgres@/{dbname}?host={self.socket}"

    def new_database(self) -> str:
        """A fresh, empty database; its SQLAlchemy URL."""
        import psycopg

        self.counter += 1
        name = f"t{self.counter}"
        with psycopg.connect(f"host={self.socket} user=postgres dbname=postgres", autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "stop")


@pytest.fixture(scope="session")
def postgres():
    """A PostgreSQL server for this test session (skipped, with the reason, where none can run)."""
    pytest.importorskip("psycopg", reason="psycopg not installed (pip install '.[postgres]')")
    import shutil
    import tempfile

    # Not under pytest's tmp folder: that is private to root, and the server runs as 'postgres'.
    base = Path(tempfile.mkdtemp(prefix="ibash-pg-"))
    try:
        server = PostgresServer(base)
        yield server
        server.stop()
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def any_db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A new database on each engine: a SQLite path, or a PostgreSQL URL."""
    if request.param == "sqlite":
        return str(tmp_path / "index.db")
    return request.getfixturevalue("postgres").new_database()


def engine_for(db: str | Path):
    """A SQLAlchemy engine for a database path or URL, for tests that read what a build wrote."""
    from sqlalchemy import create_engine

    db = str(db)
    return create_engine(db if "://" in db else f"sqlite:///{db}")

"""Shared fixtures: the sample data set and its index are built once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

from ibash_index.build import BuildOptions, build

REPO = Path(__file__).resolve().parents[1]
# Real multi-vendor scanner data lives beside the project, never inside it (see its README).
CORPORA = REPO.parent / "shared" / "corpora"


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

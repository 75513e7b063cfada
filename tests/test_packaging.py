"""A non-editable install works: the wheel carries sql/ and migrations/ and finds them."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(REPO)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return next(out.glob("ibash_index-*.whl"))


def test_wheel_ships_migrations_and_reports(wheel: Path) -> None:
    """The wheel holds every migration and every saved report inside the package."""
    names = set(zipfile.ZipFile(wheel).namelist())
    for path in (REPO / "migrations").rglob("*.py"):
        assert f"ibash_index/migrations/{path.relative_to(REPO / 'migrations')}" in names
    for path in (REPO / "sql").glob("*.sql"):
        assert f"ibash_index/sql/{path.name}" in names
    assert "ibash_index/migrations/script.py.mako" in names


def test_installed_wheel_creates_a_database(wheel: Path, tmp_path: Path) -> None:
    """Imported from the unpacked wheel (not the checkout), the package migrates a new database."""
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    code = (
        "import ibash_index, ibash_index.migrate as m, ibash_index.store as s;"
        f"assert ibash_index.__file__.startswith({str(site)!r}), ibash_index.__file__;"
        f"assert str(m.bundled_dir('migrations')).startswith({str(site)!r});"
        "s.open_index('x.db').dispose(); print('ok')"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr

"""A non-editable install works: the wheel carries sql/ and migrations/ and finds them."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pydicom.data
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
    for path in (REPO / "sql").rglob("*.sql"):  # the reports, and the statements in sql/maintenance/
        assert f"ibash_index/sql/{path.relative_to(REPO / 'sql')}" in names
    assert "ibash_index/migrations/script.py.mako" in names


def test_installed_wheel_creates_a_database(wheel: Path, tmp_path: Path) -> None:
    """Imported from the unpacked wheel (not the checkout), the package builds, reruns and reports.

    The rerun with nothing changed and the report read their SQL from the wheel through sqlite3 alone.
    """
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    data = tmp_path / "data"
    data.mkdir()
    shutil.copyfile(pydicom.data.get_testdata_file("MR_small.dcm"), data / "mr.dcm")
    code = (
        "import sys, ibash_index, ibash_index.migrate as m;"
        "from ibash_index.build import BuildOptions, build;"
        "from ibash_index.reports import run_saved_report;"
        f"assert ibash_index.__file__.startswith({str(site)!r}), ibash_index.__file__;"
        f"assert str(m.bundled_dir('migrations')).startswith({str(site)!r});"
        f"assert build([{str(data)!r}], 'x.db', BuildOptions(workers=1)).indexed == 1;"
        "sys.modules.pop('ibash_index.load');"
        f"assert build([{str(data)!r}], 'x.db').unchanged == 1 and 'ibash_index.load' not in sys.modules;"
        "assert len(run_saved_report('x.db', 'sessions', {}).rows) == 1; print('ok')"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr

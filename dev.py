#!/usr/bin/env python3
"""Quick start and test runner that needs nothing but python3: it makes its own .venv.

python3 dev.py demo    # sample data set -> sample.db -> a first look at it
python3 dev.py test    # lint and the whole test suite (what CI runs)
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = Path(os.environ.get("IBASH_VENV", ROOT / ".venv"))
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / "python"


def run(*args: str | Path, **kwargs) -> None:
    print("+", " ".join(str(a) for a in args), flush=True)
    subprocess.run([str(a) for a in args], check=True, **kwargs)


def ensure_venv(dev: bool) -> None:
    """Create .venv and install the project into it, again only when pyproject.toml changed."""
    if not PY.exists():
        venv.create(VENV, with_pip=True)
        run(PY, "-m", "pip", "install", "-q", "--upgrade", "pip")
    stamp = VENV / (".installed-dev" if dev else ".installed")
    key = (ROOT / "pyproject.toml").read_text()
    if not stamp.exists() or stamp.read_text() != key:
        extras = "[postgres,parquet,web]" if dev else ""
        run(PY, "-m", "pip", "install", "-q", "-e", f"{ROOT}{extras}")
        if dev:
            run(PY, "-m", "pip", "install", "-q", "--group", f"{ROOT / 'pyproject.toml'}:dev")
        stamp.write_text(key)


def demo() -> None:
    ensure_venv(dev=False)
    cli = BIN / "ibash-index"
    sample, db = ROOT / "sample", ROOT / "sample.db"
    if not sample.exists():
        run(cli, "sample", sample)
    run(cli, "build", sample, "--db", db)
    run(cli, "report", "sites", "--db", db)
    run(cli, "report", "tag-values", "-p", "tag=MagneticFieldStrength", "--db", db)
    print(f"\nOpen {db} in any SQLite browser, or try: {cli} reports")


# System services some tests need; installed here where we may (root with apt-get), else those tests skip.
SYSTEM_PACKAGES = {"postgresql": "/usr/lib/postgresql/*/bin/initdb", "chromium": "/usr/bin/chromium"}


def ensure_system_packages() -> None:
    missing = [name for name, probe in SYSTEM_PACKAGES.items() if not glob.glob(probe)]
    if not missing:
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        print(f"note: {', '.join(missing)} not installed and cannot be installed here; their tests will skip")
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        run("apt-get", "update", "-qq", env=env)
        run("apt-get", "install", "-y", "-qq", *missing, env=env, stdout=subprocess.DEVNULL)
    except subprocess.CalledProcessError:
        print(f"note: installing {', '.join(missing)} failed; their tests will skip")


def test(args: list[str]) -> int:
    ensure_venv(dev=True)
    ensure_system_packages()
    run(PY, "-m", "ruff", "check", ROOT, cwd=ROOT)
    run(PY, "-m", "ruff", "format", "--check", ROOT, cwd=ROOT)
    return subprocess.run([str(PY), "-m", "pytest", "-n", "2", *args], cwd=ROOT).returncode


def main() -> int:
    if len(sys.argv) < 2 or sys.argv[1] not in ("demo", "test"):
        print(__doc__)
        return 2
    try:
        if sys.argv[1] == "demo":
            demo()
            return 0
        return test(sys.argv[2:])
    except subprocess.CalledProcessError as exc:
        return exc.returncode or 1


if __name__ == "__main__":
    sys.exit(main())

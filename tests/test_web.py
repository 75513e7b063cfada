"""Datasette browsing and the one-file site comparison, checked in a real headless Chromium."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from ibash_index.compare import compare
from ibash_index.errors import IbashError
from ibash_index.reports import load_reports
from ibash_index.sample import EMPTY_AT_ONE_SITE, SITES
from ibash_index.web import _is_loopback, datasette_metadata, serve

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]  # fmt: skip


@pytest.fixture(scope="module")
def browser():
    """A headless Chromium driven by Playwright (skipped with the reason when either is missing)."""
    playwright = pytest.importorskip("playwright.sync_api", reason="playwright not installed (dev dependency)")
    if CHROMIUM is None:
        pytest.skip("chromium not installed (apt-get install chromium; `python3 dev.py test` does it)")
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


def test_metadata_comes_from_the_sql_files() -> None:
    """Every saved report is a canned query with the title, description, parameters and SQL of its file."""
    reports = load_reports()
    meta = datasette_metadata("sample", reports)
    queries = meta["databases"]["sample"]["queries"]
    assert set(queries) == {r.cli_name for r in reports.values()}
    for r in reports.values():
        q = queries[r.cli_name]
        assert (q["title"], q["description"], q["sql"], q["params"]) == (r.title, r.description, r.body, list(r.params))
    tables = meta["databases"]["sample"]["tables"]
    assert tables["elements"]["columns"]["vm"].startswith("value multiplicity")


def test_serve_refuses_a_missing_database(tmp_path: Path) -> None:
    """serve names a database that does not exist and says how to make it."""
    pytest.importorskip("datasette")
    with pytest.raises(IbashError, match="no such database"):
        serve(str(tmp_path / "nope.db"))


def test_serve_warns_when_not_on_loopback(sample_db: Path, monkeypatch, caplog) -> None:
    """Binding to another address than loopback logs a PHI warning (the server itself is not started)."""
    pytest.importorskip("datasette")
    calls = []

    class NotStarted:
        def __init__(self, command: list[str]) -> None:
            calls.append(command)

        def wait(self) -> int:
            return 0

        def poll(self) -> int:
            return 0

    monkeypatch.setattr(subprocess, "Popen", NotStarted)
    assert serve(str(sample_db), host="0.0.0.0", port=9) == 0
    assert "patient data" in caplog.text
    assert calls and "-i" in calls[0] and "0.0.0.0" in calls[0]
    assert _is_loopback("127.0.0.1") and _is_loopback("::1") and _is_loopback("localhost")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(sample_db: Path):
    """`ibash-index serve` on the sample database, on a free local port."""
    pytest.importorskip("datasette", reason="datasette not installed (pip install '.[web]')")
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "ibash_index", "serve", "--db", str(sample_db), "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(url, timeout=2)
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"serve did not start: {process.stdout.read().decode(errors='replace')}")
            time.sleep(0.3)
    yield url
    process.terminate()
    process.wait(10)
    assert _listening(port) is False, "Datasette kept running after serve was stopped"


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_browse_reports_and_run_tag_values(server: str, browser, sample_db: Path) -> None:
    """In Chromium: the report list shows every report; tag-values with InstitutionName shows the three sites."""
    page = browser.new_page()
    page.goto(f"{server}/{sample_db.stem}")
    listed = page.inner_text("body")
    for r in load_reports().values():
        assert r.title in listed
    page.set_default_timeout(120_000)  # a loaded 2-core machine (CI, a benchmark alongside) is slow to render
    page.locator("a", has_text=load_reports()["tag_values"].title).first.click()  # the link, not other text
    page.fill("input[name=tag]", "InstitutionName")
    page.click("input[type=submit]")
    page.wait_for_selector("table.rows-and-columns")
    shown = page.inner_text("table.rows-and-columns")
    for site in SITES:
        assert site in shown
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "serve-tag-values.png"), full_page=True)
    page.close()


def test_compare_page_in_a_browser(sample_db: Path, browser, tmp_path: Path) -> None:
    """The comparison page renders offline with every section, and the heatmap shows the tag one site leaves empty."""
    out = compare(str(sample_db), tmp_path / "compare.html")
    page = browser.new_page()
    page.route("**/*", lambda route: route.abort() if not route.request.url.startswith("file:") else route.continue_())
    page.goto(out.as_uri())
    for section in ("sites", "tag_presence", "private_creators", "phi", "acquisition"):
        assert page.locator(f"section#{section} table").count() >= 1, section
    heat = page.locator("#heatmap")
    header = heat.locator("tr").first.inner_text()
    assert all(site in header for site in SITES)
    keyword, empty_site = EMPTY_AT_ONE_SITE
    row = heat.locator("tr", has_text=keyword).first.inner_text().split("\t")
    columns = header.split("\t")
    assert row[columns.index(empty_site)].strip() == "0%"
    assert all(row[columns.index(s)].strip() == "100%" for s in SITES if s != empty_site)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "compare.png"), full_page=False)
    page.close()

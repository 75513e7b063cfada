"""Hostile input: every broken, odd or malicious file ends in a stated outcome and the build goes on.

The files are made at test time by tests/hostile.py; each `Case` there states its outcome:
indexed, indexed with a warning, an error with a reason a person understands, not DICOM, or
skipped. The real files of pydicom, pydicom-data and ../shared/corpora are held to the same.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import sqlite3
import stat
import subprocess
import sys
import tempfile
import traceback
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pydicom.data
import pytest
from typer.testing import CliRunner

from ibash_index.build import REASON_GROUPS, BuildOptions, BuildSummary, build, reason_group
from ibash_index.cli import app

from .conftest import corpora_or_skip
from .hostile import (
    ESCAPE_TEXT,
    JAPANESE_NAME,
    PHI_MARKER,
    SQL_ID,
    SQL_NAME,
    Case,
    dicom,
    make_hostile,
    remove_deep,
)
from .test_build import snapshot

REPO = Path(__file__).resolve().parents[1]
# Characters a terminal acts on; none may reach stdout or stderr from a file name or value.
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\x80-\x9f]")
Hostile = tuple[Path, list[Case], Path, BuildSummary]  # root, cases, database, summary
KNOWN_GROUPS = REASON_GROUPS | {"empty file", "no DICM marker or element", "no data elements", "rejected by pydicom"}


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hostile]:
    """The hostile tree and a database built from it with two workers: (root, cases, db, summary)."""
    # Not under pytest's tmp folder: its clean-up recurses once per folder level, and the tree is 1,000 deep.
    root = Path(tempfile.mkdtemp(prefix="ibash-hostile-"))
    try:
        cases = make_hostile(root)
        db = tmp_path_factory.mktemp("hostile") / "hostile.db"
        summary = build([root], str(db), BuildOptions(workers=2, timeout=60))
        yield root, cases, db, summary
    finally:
        remove_deep(root)
        shutil.rmtree(root, ignore_errors=True)


def rows_by_path(db: Path) -> dict[bytes, tuple[str, str | None, str | None]]:
    con = sqlite3.connect(db)
    try:
        return {
            bytes(p): (s, r, w) for p, s, r, w in con.execute("SELECT path_bytes, status, reason, warning FROM files")
        }
    finally:
        con.close()


def outcome_errors(root: Path, cases: list[Case], db: Path) -> list[str]:
    """Every way the database differs from the stated outcomes, one line each."""
    got = rows_by_path(db)
    problems = []
    for case in cases:
        path = os.path.join(os.fsencode(root), case.path)
        if path not in got:
            problems.append(f"{case.name}: not in files at all")
            continue
        status, reason, warning = got[path]
        if status != case.status:
            problems.append(f"{case.name}: {status} ({reason or warning}), expected {case.status}")
        if case.reason and not re.search(case.reason, reason or ""):
            problems.append(f"{case.name}: reason {reason!r} does not match {case.reason!r}")
        if case.status in ("error", "not_dicom", "skipped") and not reason:
            problems.append(f"{case.name}: {status} without a reason")
        if case.warning is None and status == "indexed" and warning:
            problems.append(f"{case.name}: unexpected warning {warning!r}")
        if case.warning and not re.search(case.warning, warning or ""):
            problems.append(f"{case.name}: warning {warning!r} does not match {case.warning!r}")
    unexpected = set(got) - {os.path.join(os.fsencode(root), c.path) for c in cases}
    problems += [f"{p!r}: in files but not a case" for p in sorted(unexpected)]
    return problems


def test_every_hostile_input_ends_in_its_stated_outcome(hostile: Hostile) -> None:
    """Each hostile file is indexed, indexed with a warning, an error with a reason, not DICOM or skipped, as stated."""
    root, cases, db, summary = hostile
    assert not outcome_errors(root, cases, db), "\n".join(outcome_errors(root, cases, db))
    statuses = Counter(c.status for c in cases)
    assert (summary.indexed, summary.errors, summary.not_dicom, summary.skipped) == (
        statuses["indexed"],
        statuses["error"],
        statuses["not_dicom"],
        statuses["skipped"],
    )


def test_reasons_are_sentences_not_python_reprs(hostile: Hostile) -> None:
    """Every reason and warning starts with a known category and shows no Python exception repr."""
    _, _, db, _ = hostile
    for path, (status, reason, warning) in rows_by_path(db).items():
        for text in [reason] if status != "indexed" else (warning or "").split("; ") if warning else []:
            assert reason_group(text) in KNOWN_GROUPS - {"other"}, (path, text)
            assert not re.search(r"Error\(|Exception|Traceback|<[a-z_.]+ object", text), (path, text)


def test_in_process_reading_gives_the_same_database(hostile: Hostile, tmp_path: Path) -> None:
    """Reading in the build process (--workers 0) gives the same rows as worker processes: limits are deterministic."""
    root, cases, db, _ = hostile
    serial = tmp_path / "serial.db"
    build([root], str(serial), BuildOptions(workers=0))
    assert not outcome_errors(root, cases, serial), "\n".join(outcome_errors(root, cases, serial))
    assert snapshot(serial) == snapshot(db)


def test_rerun_reads_errors_again_and_changes_nothing(hostile: Hostile, tmp_path: Path) -> None:
    """A second build reads the errors again (their cause may be gone), skips the rest, and ends with the same rows."""
    root, cases, db, _ = hostile
    copy = tmp_path / "again.db"
    shutil.copyfile(db, copy)
    before = snapshot(copy)
    again = build([root], str(copy), BuildOptions(workers=2))
    errors = sum(1 for c in cases if c.status == "error")
    assert again.errors == errors and again.indexed == 0
    assert again.unchanged == sum(1 for c in cases if c.status in ("indexed", "not_dicom"))
    assert snapshot(copy) == before


def element_value(con: sqlite3.Connection, root: Path, name: str, keyword: str) -> str | None:
    path = os.fsdecode(os.path.join(os.fsencode(root), os.fsencode(name)))
    row = con.execute("SELECT value FROM element_view WHERE path = ? AND element_path = ?", (path, keyword)).fetchone()
    return None if row is None else row[0]


def test_values_reach_the_database_exactly(hostile: Hostile) -> None:
    """SQL-shaped, terminal-escape, ISO 2022 Japanese and Latin-1 values are stored exactly as pydicom decodes them."""
    root, _, db, _ = hostile
    con = sqlite3.connect(db)
    assert element_value(con, root, "sql_and_terminal_escapes.dcm", "PatientName") == SQL_NAME
    assert element_value(con, root, "sql_and_terminal_escapes.dcm", "PatientID") == SQL_ID
    assert element_value(con, root, "sql_and_terminal_escapes.dcm", "StudyDescription") == ESCAPE_TEXT
    assert element_value(con, root, "iso2022_japanese.dcm", "PatientName") == JAPANESE_NAME
    assert element_value(con, root, "latin1_without_charset.dcm", "PatientName") == "Müller^Jürgen"
    assert "\ufffd" in element_value(con, root, "invalid_utf8_iso_ir_192.dcm", "PatientName")
    assert element_value(con, root, "pn_with_vr_ul.dcm", "PatientName") == "1234567"
    assert element_value(con, root, "garbage_ds_is_da.dcm", "SliceThickness") == "abc"
    assert element_value(con, root, "duplicate_tags.dcm", "PatientName") == "Second^Name"
    con.close()


def test_sql_shaped_values_and_parameters_stay_data(hostile: Hostile) -> None:
    """SQL-shaped values and query parameters are bound, never run: every table is still there, they match as text."""
    _, _, db, _ = hostile
    con = sqlite3.connect(db)
    tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"files", "studies", "series", "instances", "elements", "tags", "builds"} <= tables
    by_value = "SELECT count(*) FROM element_view WHERE element_path = ? AND value = ?"
    assert con.execute(by_value, ("PatientID", SQL_ID)).fetchone() == (1,)
    assert con.execute(by_value, ("PatientName", SQL_NAME)).fetchone() == (1,)
    assert con.execute("SELECT count(*) FROM files WHERE path LIKE ?", ("%DROP TABLE files%",)).fetchone() == (1,)
    assert con.execute("SELECT count(*) FROM instances WHERE sop_instance_uid = ?", ("1' OR '1'='1",)).fetchone() == (
        0,
    )
    con.close()


def test_reports_and_queries_bind_parameters_and_print_escapes_escaped(hostile: Hostile) -> None:
    """`report` and `query` over hostile values bind SQL-shaped parameters and never print a raw control character."""
    _, _, db, _ = hostile
    runner = CliRunner()
    runs = [
        ["report", "errors"],
        ["report", "tag-values", "-p", "tag=StudyDescription"],
        ["report", "tag-values", "-p", "tag=PatientName'; DROP TABLE files; --"],
        ["query", "SELECT value FROM element_view WHERE value = :v", "-p", f"v={ESCAPE_TEXT}"],
        ["query", "SELECT count(*) AS n FROM element_view WHERE value = :v", "-p", f"v={SQL_NAME}"],
    ]
    outputs = []
    for args in runs:
        result = runner.invoke(app, [*args, "--db", str(db)])
        assert result.exit_code == 0, (args, result.output)
        assert not CONTROL.search(result.output), (args, result.output)
        outputs.append(result.stdout)
    assert "\\x1b[2J\\x1b]0;owned\\x07" in outputs[3]
    assert outputs[4].split()[-1] == "1"
    con = sqlite3.connect(db)
    assert con.execute("SELECT count(*) FROM files").fetchone()[0] > 50  # still there
    con.close()


def test_paths_are_stored_losslessly(hostile: Hostile) -> None:
    """Names that are not UTF-8 or hold escapes and newlines keep their bytes; the display path escapes bad bytes."""
    root, _, db, _ = hostile
    con = sqlite3.connect(db)
    names = [b"caf\xe9_\xff\xfe.dcm", b"esc\x1b[31m\x07.dcm", b"new\nline.dcm", b"x'; DROP TABLE files; --.dcm"]
    for name in names:
        raw = os.path.join(os.fsencode(root), b"names", name)
        row = con.execute("SELECT path, status FROM files WHERE path_bytes = ?", (raw,)).fetchone()
        assert row is not None and row[1] == "indexed", name
        assert row[0] == raw.decode("utf-8", "backslashreplace"), name
        with open(raw, "rb") as fp:  # the stored bytes open the very file
            assert fp.read(132)[128:] == b"DICM"
    bad = con.execute("SELECT path FROM files WHERE path LIKE '%caf%'").fetchone()[0]
    assert bad.endswith("caf\\xe9_\\xff\\xfe.dcm")
    con.close()


def test_private_elements_without_or_with_many_creators(hostile: Hostile) -> None:
    """A private element without its creator gets creator '', one under a multi-valued creator gets the first value."""
    root, _, db, _ = hostile
    con = sqlite3.connect(db)
    query = (
        "SELECT t.private_creator FROM elements e JOIN tags t ON t.id = e.tag_id "
        "JOIN instances i ON i.id = e.instance_id JOIN files f ON f.id = i.file_id WHERE f.path = ? AND t.tag = ?"
    )
    orphan = os.fsdecode(root / "private_without_creator.dcm")
    multi = os.fsdecode(root / "private_creator_multivalued.dcm")
    assert con.execute(query, (orphan, 0x00191010)).fetchone() == ("",)
    assert con.execute(query, (multi, 0x00191010)).fetchone() == ("ACME 1",)
    con.close()


def test_same_sop_instance_uid_twice_gives_two_instances(hostile: Hostile) -> None:
    """Two files with one SOP Instance UID are both indexed as instances."""
    _, _, db, _ = hostile
    con = sqlite3.connect(db)
    uid = "1.2.826.0.1.3680043.10.1234.1.30"
    assert con.execute("SELECT count(*) FROM instances WHERE sop_instance_uid = ?", (uid,)).fetchone() == (2,)
    con.close()


def test_truncated_header_is_never_indexed_and_cut_pixels_say_so(hostile: Hostile) -> None:
    """No file cut inside its header has an instance; a file cut in its pixel data keeps every header element."""
    root, _, db, _ = hostile
    con = sqlite3.connect(db)
    instances = {r[0] for r in con.execute("SELECT f.path FROM instances i JOIN files f ON f.id = i.file_id")}
    for name in ("truncated_mid_element.dcm", "truncated_mid_tag_header.dcm", "truncated_after_meta.dcm"):
        assert os.fsdecode(root / name) not in instances
    whole = {
        r[0]
        for r in con.execute(
            "SELECT element_path FROM element_view WHERE path = ?", (os.fsdecode(root / "deflated.dcm"),)
        )
    }
    cut = {
        r[0]
        for r in con.execute(
            "SELECT element_path FROM element_view WHERE path = ?",
            (os.fsdecode(root / "truncated_mid_pixel_data.dcm"),),
        )
    }
    assert cut == whole
    con.close()


def test_symlinks_out_of_the_roots_are_followed_only_when_asked(tmp_path: Path) -> None:
    """A symlink to a file outside the roots is skipped, and indexed with follow_symlinks; /dev/zero is never read."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "real.dcm").write_bytes(dicom(500))
    (outside / "sub").mkdir()
    (outside / "sub" / "deeper.dcm").write_bytes(dicom(501))
    root = tmp_path / "root"
    root.mkdir()
    (root / "link.dcm").symlink_to(outside / "real.dcm")
    (root / "linked_folder").symlink_to(outside / "sub")
    (root / "zero.dcm").symlink_to("/dev/zero")
    plain = tmp_path / "plain.db"
    build([root], str(plain), BuildOptions(workers=0))
    got = rows_by_path(plain)
    for name in ("link.dcm", "linked_folder", "zero.dcm"):
        status, reason, _ = got[os.fsencode(root / name)]
        assert status == "skipped" and reason.startswith("symlink to outside the roots (use --follow-symlinks"), name
    followed = tmp_path / "followed.db"
    build([root], str(followed), BuildOptions(workers=0, follow_symlinks=True))
    got = rows_by_path(followed)
    assert got[os.fsencode(root / "link.dcm")][0] == "indexed"
    assert got[os.fsencode(root / "linked_folder" / "deeper.dcm")][0] == "indexed"
    assert got[os.fsencode(root / "zero.dcm")][:2] == ("skipped", "not a regular file (character device)")


def test_cli_output_shows_no_phi_and_no_control_characters(hostile: Hostile, tmp_path: Path) -> None:
    """`ibash-index build` over the hostile tree prints counts and reason groups only: no names, values or escapes."""
    root, _, _, _ = hostile
    result = subprocess.run(
        [sys.executable, "-m", "ibash_index", "build", str(root), "--db", str(tmp_path / "cli.db"), "--workers", "2"],
        capture_output=True,
        timeout=300,
        cwd=REPO,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    text = output.decode("utf-8", "replace")
    assert PHI_MARKER not in text and "Doe^Jane" not in text and "Hostile Hospital" not in text, text
    assert "caf" not in text and "DROP TABLE" not in text, text
    assert not CONTROL.search(text), repr(text)
    assert re.search(r"^  errors: \d+ truncated", text, re.M), text
    assert re.search(r"^  skipped: .*symlink loop", text, re.M), text


def test_database_files_are_private_even_with_umask_0(tmp_path: Path) -> None:
    """With umask 000 the database and its -wal and -shm files are still readable by their owner only."""
    root = tmp_path / "data"
    root.mkdir()
    (root / "a.dcm").write_bytes(dicom(600))
    db = tmp_path / "x.db"
    old = os.umask(0)
    try:
        build([root], str(db), BuildOptions(workers=0))
        con = sqlite3.connect(db)  # keeps the WAL files in place
        con.execute("SELECT count(*) FROM files").fetchone()
        for path in (db, Path(f"{db}-wal"), Path(f"{db}-shm")):
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        con.close()
    finally:
        os.umask(old)


def _as_nobody(root: Path, db: Path, log: Path) -> int:
    """Build as the user nobody in a forked child (in process: nobody cannot run this venv's Python)."""
    nobody = pwd.getpwnam("nobody")
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through its exit code and the log
        code = 1
        try:
            os.setgroups([])
            os.setgid(nobody.pw_gid)
            os.setuid(nobody.pw_uid)
            build([root], str(db), BuildOptions(workers=0))
            code = 0
        except BaseException:
            log.write_text(traceback.format_exc())
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork() to drop privileges in a child")
def test_unreadable_file_and_folder_as_an_unprivileged_user() -> None:
    """Run as nobody, an unreadable file and an unreadable folder are errors with the reason; the rest is indexed."""
    if os.geteuid() != 0:
        pytest.skip("needs root to switch to the user nobody (an unprivileged run would test the same as nobody)")
    try:
        pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no user nobody on this machine")
    # Not under pytest's tmp folder: it is private to root, and nobody must reach the files.
    base = Path(tempfile.mkdtemp(prefix="ibash-nobody-"))
    try:
        base.chmod(0o755)
        root = base / "data"
        (root / "locked").mkdir(parents=True)
        (root / "ok.dcm").write_bytes(dicom(700))
        (root / "secret.dcm").write_bytes(dicom(701))
        (root / "locked" / "inner.dcm").write_bytes(dicom(702))
        (root / "secret.dcm").chmod(0)
        (root / "locked").chmod(0)
        out = base / "db"
        out.mkdir()
        shutil.chown(out, "nobody")
        warm = base / "warm"  # import everything while still root: nobody cannot read this venv
        warm.mkdir()
        (warm / "w.dcm").write_bytes(dicom(703))
        build([warm], str(base / "warm.db"), BuildOptions(workers=0))
        code = _as_nobody(root, out / "x.db", out / "log")
        assert code == 0, (out / "log").read_text() if (out / "log").exists() else code
        got = rows_by_path(out / "x.db")
        assert got[os.fsencode(root / "ok.dcm")][0] == "indexed"
        assert got[os.fsencode(root / "secret.dcm")][:2] == ("error", "cannot read: Permission denied")
        assert got[os.fsencode(root / "locked")][:2] == ("error", "cannot list folder: Permission denied")
        assert (out / "x.db").stat().st_uid == pwd.getpwnam("nobody").pw_uid
        assert stat.S_IMODE((out / "x.db").stat().st_mode) == 0o600
        as_root = base / "root.db"  # root reads everything, which is why this test drops privileges
        build([root], str(as_root), BuildOptions(workers=0))
        assert {s for s, _, _ in rows_by_path(as_root).values()} == {"indexed"}
    finally:
        for path in (base / "data" / "locked", base / "data" / "secret.dcm"):
            if path.exists():
                path.chmod(0o700)
        shutil.rmtree(base, ignore_errors=True)


def outcome_counts(db: Path) -> Counter[tuple[str, str]]:
    """(status, reason group) -> files, with warnings counted as ('indexed with warning', group)."""
    counts: Counter[tuple[str, str]] = Counter()
    for _, (status, reason, warning) in rows_by_path(db).items():
        if status == "indexed" and warning:
            for group in sorted({reason_group(w) for w in warning.split("; ")}):
                counts["indexed with warning", group] += 1
        elif status == "indexed":
            counts["indexed", ""] += 1
        else:
            counts[status, reason_group(reason or "")] += 1
    return counts


def assert_stated(counts: Counter[tuple[str, str]]) -> None:
    unknown = {k: n for k, n in counts.items() if k[1] == "other" or (k[1] and k[1] not in KNOWN_GROUPS)}
    assert not unknown, f"outcomes without a stated reason group: {unknown}"


def test_pydicom_test_files_end_in_stated_outcomes(tmp_path: Path) -> None:
    """pydicom's own test files (and pydicom-data's, when installed) all end in an outcome with a known reason group."""
    base = Path(pydicom.data.__file__).parent
    roots = [str(base / d) for d in ("test_files", "charset_files", "palettes")]
    try:
        from data_store import DataStore  # pydicom-data: the files ship inside the wheel

        roots.append(str(DataStore().data_path))
    except ImportError:
        pass
    db = tmp_path / "pydicom.db"
    build(roots, str(db), BuildOptions(workers=2))
    counts = outcome_counts(db)
    assert_stated(counts)
    got = {Path(os.fsdecode(p)).name: v for p, v in rows_by_path(db).items()}
    status, reason, _ = got["rtplan_truncated.dcm"]  # pydicom reads it without a word; its BeamSequence is cut
    assert status == "error" and reason.startswith("truncated: the file ends at byte 2129 inside element (300A,00B0)")
    status, _, warning = got["MR_truncated.dcm"]
    assert status == "indexed" and warning.startswith("truncated: pixel data (7FE0,0010) PixelData has 8130 of")
    assert counts["indexed", ""] + sum(n for (s, _), n in counts.items() if s == "indexed with warning") > 180


def test_real_corpora_end_in_stated_outcomes(corpora_db: Path) -> None:
    """Every file of ../shared/corpora is indexed (with its warnings) or, for LICENSE, JSON or NIfTI, not DICOM."""
    root = corpora_or_skip()
    got = rows_by_path(corpora_db)
    on_disk = {os.fsencode(p) for p in root.rglob("*") if p.is_file()}
    assert set(got) == on_disk
    counts = outcome_counts(corpora_db)
    assert_stated(counts)
    not_dicom = {
        Path(os.fsdecode(p)).suffix or Path(os.fsdecode(p)).name for p, v in got.items() if v[0] == "not_dicom"
    }
    assert not_dicom <= {"LICENSE", ".md", ".json", ".gz", ".mat"}, not_dicom
    assert {s for s, _, _ in got.values()} <= {"indexed", "not_dicom"}

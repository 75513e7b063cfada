"""Saved reports and ad-hoc queries: right answers on the sample, read-only, clean errors.

Every report's answer on the sample is checked against an oracle computed without the
database: what the sample generator says it wrote (Sample.files) and every element pydicom
reads from those files, walked here with pydicom's plain API.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import re
import shutil
import sqlite3
import stat
import unicodedata
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from typer.testing import CliRunner

from ibash_index.build import BuildOptions, build
from ibash_index.cli import app
from ibash_index.errors import BadReportParams, IbashError, ReportNotFound
from ibash_index.reports import (
    BadQuery,
    ReportFormatError,
    find_report,
    install_reports,
    load_reports,
    parse_report,
    run_saved_report,
    run_sql,
)
from ibash_index.sample import EMPTY_AT_ONE_SITE, SITES, Sample
from ibash_index.store import open_index

REPO = Path(__file__).resolve().parents[1]
SQL = REPO / "sql"
REPORT_FILES = sorted(SQL.glob("*.sql"))
runner = CliRunner()

ISSUE_REPORTS = {
    "sites", "sessions", "tag_presence", "tag_values", "site_differences", "private_creators", "phi",
    "acquisition", "study_times", "series_variation", "duplicates", "errors",
}  # fmt: skip
BINARY = {"OB", "OW", "OF", "OD", "OL", "OV", "UN"}
NUMERIC = {"DS", "IS", "FL", "FD", "SL", "SS", "UL", "US", "SV", "UV"}
EXAMPLE_PARAMS = {"tag_values": {"tag": "MagneticFieldStrength"}, "phi": {"show_values": "1"}}
PARAM_SETS = {
    "tag_values": [{"tag": "MagneticFieldStrength"}, {"tag": "(2005,xx81)"}, {"tag": "CodeValue"}],
    "phi": [{}, {"show_values": "1"}],
}


# --------------------------------------------------------------------------
# the oracle: every element of every sample file, as pydicom reads it


@dataclass(frozen=True, slots=True)
class Element:
    """One data element of one sample file."""

    site: str
    session: str
    series_number: int
    sop: str
    tag: int
    key: str  # (GGGG,EEEE), or (GGGG,xxEE) for a private data element
    creator: str
    vr: str
    vm: int
    value: Any  # text; bytes for binary values; None for sequences
    depth: int


def _render(value: Any) -> str:
    if isinstance(value, (MultiValue, list)):
        return "\\".join("" if v is None else str(v) for v in value)
    return "" if value is None else str(value)


def _creator(dataset: Dataset, tag: int) -> str:
    block = ((tag >> 16) << 16) | ((tag & 0xFFFF) >> 8)
    if block not in dataset:
        return ""
    value = dataset[block].value
    if isinstance(value, (MultiValue, list)):
        value = value[0] if value else ""
    return str(value or "").strip()


def _walk(dataset: Dataset, depth: int) -> Iterator[tuple[int, str, str, str, int, Any, int]]:
    """(tag, key, creator, vr, vm, value, depth) for every element, sequences entered."""
    for elem in dataset:
        tag, group, number = int(elem.tag), elem.tag.group, elem.tag.element
        if group & 1 and number >= 0x1000:
            key, creator = f"({group:04X},xx{number & 0xFF:02X})", _creator(dataset, tag)
        else:
            key, creator = f"({group:04X},{number:04X})", ""
        if elem.VR == "SQ":
            yield tag, key, creator, "SQ", len(elem.value), None, depth
            for item in elem.value:
                yield from _walk(item, depth + 1)
        elif elem.VR in BINARY or isinstance(elem.value, bytes):
            yield tag, key, creator, elem.VR, elem.VM, bytes(elem.value or b""), depth
        else:
            yield tag, key, creator, elem.VR, elem.VM, _render(elem.value), depth


@pytest.fixture(scope="module")
def oracle(sample: Sample) -> list[Element]:
    """Every element (file meta included, at every depth) of every DICOM file the sample wrote."""
    out = []
    for f in sample.dicom_files:
        ds = pydicom.dcmread(f.path)
        for source in (ds.file_meta, ds):
            for tag, key, creator, vr, vm, value, depth in _walk(source, 0):
                out.append(
                    Element(f.site, f.session, f.series_number, f.sop_instance_uid, tag, key, creator, vr, vm, value,
                            depth)
                )  # fmt: skip
    return out


@pytest.fixture(scope="module")
def headers(oracle: list[Element]) -> dict[str, dict[str, Any]]:
    """Top-level values by SOP Instance UID, then by keyword."""
    out: dict[str, dict[str, Any]] = defaultdict(dict)
    for e in oracle:
        if e.depth == 0 and not e.creator:
            keyword = pydicom.datadict.keyword_for_tag(e.tag)
            if keyword:
                out[e.sop][keyword] = e.value
    return out


def _site_instances(sample: Sample) -> dict[str, int]:
    out: dict[str, int] = defaultdict(int)
    for f in sample.dicom_files:
        out[f.site] += 1
    return out


# --------------------------------------------------------------------------
# databases


@pytest.fixture(scope="module")
def db(sample_db: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A copy of the sample database with the reports installed (the shared one stays untouched)."""
    copy = tmp_path_factory.mktemp("reports") / "sample.db"
    source, target = sqlite3.connect(sample_db), sqlite3.connect(copy)
    source.backup(target)
    source.close()
    target.close()
    engine = open_index(str(copy))
    install_reports(engine)
    engine.dispose()
    return str(copy)


def rows_of(db: str, name: str, **params: str) -> list[dict[str, Any]]:
    result = run_saved_report(db, name, params)
    return [dict(zip(result.columns, row)) for row in result.rows]


def pick(rows: Iterable[dict[str, Any]], *columns: str) -> list[tuple[Any, ...]]:
    return sorted(tuple(r[c] for c in columns) for r in rows)


# --------------------------------------------------------------------------
# the files themselves


def test_every_report_of_the_issue_is_there() -> None:
    """sql/ holds the twelve reports the issue asks for, and `reports` loads them all."""
    assert {p.stem for p in REPORT_FILES} >= ISSUE_REPORTS
    assert set(load_reports()) == {p.stem for p in REPORT_FILES}


def _declared(path: Path) -> set[str]:
    return {m.group(1) for m in re.finditer(r"^-- param (\w+):", path.read_text(), re.M)}


def _used(path: Path) -> set[str]:
    """Like Datasette's named_parameters: drop comments and string literals, then find :name."""
    sql = re.sub(r"--[^\n]*|'(?:[^']|'')*'", " ", path.read_text())
    return set(re.findall(r"(?<![:\w]):(\w+)", sql))


@pytest.mark.parametrize("path", REPORT_FILES, ids=lambda p: p.stem)
def test_header_declares_exactly_the_parameters_used(path: Path) -> None:
    """Each .sql file's header declares exactly the :params its SQL uses, and parses strictly."""
    assert _declared(path) == _used(path)
    report = parse_report(path)
    assert report.title and report.description and set(report.params) == _declared(path)
    assert report.body.lstrip().upper().startswith(("SELECT", "WITH"))


@pytest.mark.parametrize("path", REPORT_FILES, ids=lambda p: p.stem)
def test_sql_is_portable(path: Path) -> None:
    """No SQLite-only (or PostgreSQL-only) functions: the same file runs on both."""
    body = re.sub(r"--[^\n]*", " ", path.read_text()).lower()
    for word in ("printf(", "group_concat(", "string_agg(", "instr(", "ifnull(", "strftime(", "iif(", "::"):
        assert word not in body, f"{path.name} uses {word}"


GOOD_HEADER = "-- title: T\n-- description: D\n--   more of D\n"


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("-- title: T\n-- descripton: D\nSELECT 1", "unknown header key 'descripton'"),
        ("-- description: D\nSELECT 1", "needs a '-- title:' line"),
        ("-- title: T\nSELECT 1", "needs a '-- description:' line"),
        ("-- title: T\n-- title: U\n-- description: D\nSELECT 1", "title is given twice"),
        ("-- title: T\n--   more\n-- description: D\nSELECT 1", "continues only"),
        ("-- title T\n-- description: D\nSELECT 1", "expected '-- key: text'"),
        (GOOD_HEADER + "-- param a: A\nSELECT :a, :b", "declares :a but the SQL uses :a, :b"),
        (GOOD_HEADER + "-- param a: A\n-- param a: A\nSELECT :a", "each parameter once"),
        (GOOD_HEADER + "DELETE FROM files", "only SELECT"),
        (GOOD_HEADER + "SELECT 1; SELECT 2", "one statement"),
        (GOOD_HEADER, "empty"),
    ],
)
def test_header_parser_is_strict(tmp_path: Path, text: str, match: str) -> None:
    """A header with an unknown key, a missing or repeated key, or the wrong params is refused."""
    path = tmp_path / "bad_report.sql"
    path.write_text(text)
    with pytest.raises(ReportFormatError, match=re.escape(match)):
        parse_report(path)


def test_header_parser_reads_defaults_and_continuations(tmp_path: Path) -> None:
    """Continuation lines join the description; `[default: '']` makes a parameter optional."""
    path = tmp_path / "ok_report.sql"
    path.write_text(GOOD_HEADER + "-- param a: first [default: '']\n-- param b: second\nSELECT :a, ':c', :b -- :d\n")
    report = parse_report(path)
    assert report.description == "D more of D"
    assert (report.params["a"].default, report.params["b"].default) == ("", None)
    assert report.cli_name == "ok-report"


def test_later_folders_override_earlier_ones(tmp_path: Path) -> None:
    """A user's report folder can replace a bundled report of the same name."""
    (tmp_path / "sites.sql").write_text("-- title: Mine\n-- description: mine\nSELECT 1 AS one\n")
    reports = load_reports([SQL, tmp_path])
    assert reports["sites"].title == "Mine" and "tag_values" in reports


# --------------------------------------------------------------------------
# answers on the sample, against the oracle


def test_sites(db: str, sample: Sample, headers: dict[str, dict[str, Any]]) -> None:
    """sites: three sites with their session, patient, series and instance counts and their scanner."""
    by_site: dict[str, list[Any]] = defaultdict(list)
    for f in sample.dicom_files:
        by_site[f.site].append(f)
    expected = []
    for site, files in by_site.items():
        h = [headers[f.sop_instance_uid] for f in files]
        scanners = {
            (x["Modality"], x["Manufacturer"], x["ManufacturerModelName"], x["SoftwareVersions"],
             float(x["MagneticFieldStrength"]))
            for x in h
        }  # fmt: skip
        assert len(scanners) == 1  # one scanner per site in the sample
        expected.append(
            (site, len({f.session for f in files}), len({x["PatientID"] for x in h}),
             len({(f.session, f.series_number) for f in files}), len(files),
             min(x["StudyDate"] for x in h), max(x["StudyDate"] for x in h), *scanners.pop(),
             len({(f.session, f.series_number) for f in files}), len(files))
        )  # fmt: skip
    got = pick(
        rows_of(db, "sites"), "site", "sessions", "patients", "series", "instances", "first_study_date",
        "last_study_date", "modality", "manufacturer", "model", "software_versions", "field_strength",
        "scanner_series", "scanner_instances",
    )  # fmt: skip
    assert got == sorted(expected)
    assert {row[0] for row in got} == set(SITES)


def test_sessions(db: str, sample: Sample, headers: dict[str, dict[str, Any]]) -> None:
    """sessions: every session's series with number, description, protocol, modality and count."""
    counts: dict[tuple[str, str, int], list[str]] = defaultdict(list)
    for f in sample.dicom_files:
        counts[(f.site, f.session, f.series_number)].append(f.sop_instance_uid)
    expected = []
    for (site, session, number), sops in counts.items():
        h = headers[sops[0]]
        expected.append(
            (site, session, h["PatientID"], h["StudyDate"], number, h["SeriesDescription"], h["ProtocolName"],
             h["Modality"], len(sops))
        )  # fmt: skip
    got = pick(
        rows_of(db, "sessions"), "site", "session", "patient_id", "study_date", "series_number",
        "series_description", "protocol_name", "modality", "instances",
    )  # fmt: skip
    assert got == sorted(expected)


def _presence(oracle: list[Element]) -> dict[tuple[str, str, str], tuple[int, int]]:
    """(key, creator, site) -> (instances holding it, instances holding it with a value)."""
    present: dict[tuple[str, str, str], set[str]] = defaultdict(set)
    filled: dict[tuple[str, str, str], set[str]] = defaultdict(set)
    for e in oracle:
        present[(e.key, e.creator, e.site)].add(e.sop)
        if e.vm > 0:
            filled[(e.key, e.creator, e.site)].add(e.sop)
    return {k: (len(v), len(filled.get(k, ()))) for k, v in present.items()}


def test_tag_presence(db: str, sample: Sample, oracle: list[Element]) -> None:
    """tag-presence: the full tag x site matrix; the sample's empty-at-one-site tag shows as present, not filled."""
    presence = _presence(oracle)
    site_instances = _site_instances(sample)
    tags = {(key, creator) for key, creator, _ in presence}
    expected = sorted(
        (key, creator, site, site_instances[site], *presence.get((key, creator, site), (0, 0)))
        for key, creator in tags
        for site in SITES
    )
    rows = rows_of(db, "tag-presence")
    assert pick(rows, "tag", "private_creator", "site", "instances", "present", "non_empty") == expected
    keyword, empty_site = EMPTY_AT_ONE_SITE
    station = {r["site"]: (r["present"], r["non_empty"]) for r in rows if r["name"] == keyword}
    for site in SITES:
        n = site_instances[site]
        assert station[site] == ((n, 0) if site == empty_site else (n, n))


def test_tag_values_field_strength(db: str, sample: Sample, headers: dict[str, dict[str, Any]]) -> None:
    """tag-values -p tag=MagneticFieldStrength: each site's field strength, with instance counts."""
    expected: dict[tuple[str, str], int] = defaultdict(int)
    for f in sample.dicom_files:
        expected[(f.site, headers[f.sop_instance_uid]["MagneticFieldStrength"])] += 1
    spellings = ("MagneticFieldStrength", "magneticfieldstrength", "(0018,0087)", "(0018, 0087)", "0018,0087")
    for spelling in (*spellings, "00180087", "(0018,0087)".lower()):
        rows = rows_of(db, "tag-values", tag=spelling)
        assert pick(rows, "site", "value", "instances", "occurrences") == sorted(
            (site, value, n, n) for (site, value), n in expected.items()
        )
    one_site = rows_of(db, "tag-values", tag="MagneticFieldStrength", site=SITES[1])
    assert {r["site"] for r in one_site} == {SITES[1]}


def test_tag_values_inside_sequences_and_private(db: str, oracle: list[Element]) -> None:
    """tag-values counts values inside sequences, and finds a private tag by (GGGG,xxEE)."""
    for tag, key in (("CodeValue", "(0008,0100)"), ("(2005,xx81)", "(2005,xx81)"), ("2005, XX81", "(2005,xx81)")):
        expected: dict[tuple[str, str, str], set[str]] = defaultdict(set)
        occurrences: dict[tuple[str, str, str], int] = defaultdict(int)
        for e in oracle:
            if e.key == key:
                expected[(e.site, e.creator, e.value)].add(e.sop)
                occurrences[(e.site, e.creator, e.value)] += 1
        got = pick(rows_of(db, "tag-values", tag=tag), "site", "private_creator", "value", "instances", "occurrences")
        assert got == sorted((*k, len(v), occurrences[k]) for k, v in expected.items())
        assert any(e.depth > 0 for e in oracle if e.key == key)


def _comparable(e: Element) -> bool:
    return e.vm > 0 and isinstance(e.value, str) and e.vr not in ("UI", "DA", "DT", "TM")


def test_site_differences(db: str, oracle: list[Element]) -> None:
    """site-differences: tags absent or always empty at another site, and value sets that never meet."""
    presence = _presence(oracle)
    values: dict[tuple[str, str, str], set[str]] = defaultdict(set)
    for e in oracle:
        if _comparable(e):
            values[(e.key, e.creator, e.site)].add(e.value)
    expected = []
    for (key, creator, site), (_, filled) in presence.items():
        if not filled:
            continue
        for other in SITES:
            present, other_filled = presence.get((key, creator, other), (0, 0))
            if other != site and not other_filled:
                expected.append((key, creator, site, other, "absent" if not present else "always empty", filled,
                                 present))  # fmt: skip
    for (key, creator, site), mine in values.items():
        for other in SITES:
            theirs = values.get((key, creator, other))
            if other > site and theirs and not mine & theirs:
                expected.append((key, creator, site, other, "no value in common", presence[(key, creator, site)][1],
                                 presence[(key, creator, other)][0]))  # fmt: skip
    rows = rows_of(db, "site-differences")
    got = pick(rows, "tag", "private_creator", "site", "other_site", "difference", "site_instances", "other_instances")
    assert got == sorted(expected)
    for r in rows:
        mine = values.get((r["tag"], r["private_creator"], r["site"]))
        assert r["site_example"] == (min(mine) if mine else None)
    keyword, empty_site = EMPTY_AT_ONE_SITE
    assert {
        (r["site"], r["other_site"]) for r in rows if r["name"] == keyword and r["difference"] == "always empty"
    } == {(site, empty_site) for site in SITES if site != empty_site}
    assert any(r["name"] == "Manufacturer" and r["difference"] == "no value in common" for r in rows)


def test_private_creators(db: str, oracle: list[Element], headers: dict[str, dict[str, Any]]) -> None:
    """private-creators: the Siemens, GE and Philips creators at their sites, with groups and counts."""
    elements: dict[tuple[str, str, str, str], int] = defaultdict(int)
    instances: dict[tuple[str, str, str, str], set[str]] = defaultdict(set)
    for e in oracle:
        if e.creator:
            k = (e.site, headers[e.sop]["Manufacturer"], e.creator, f"{e.tag >> 16:04X}")
            elements[k] += 1
            instances[k].add(e.sop)
    rows = rows_of(db, "private-creators")
    got = pick(rows, "site", "manufacturer", "private_creator", "private_group", "elements", "instances")
    assert got == sorted((*k, n, len(instances[k])) for k, n in elements.items())
    vendors: dict[str, set[str]] = defaultdict(set)
    for r in rows:
        vendors[r["manufacturer"]].add(r["private_creator"])
    assert "SIEMENS CSA HEADER" in vendors["SIEMENS"]
    assert any(c.startswith("GEMS_") for c in vendors["GE MEDICAL SYSTEMS"])
    assert "Philips MR Imaging DD 001" in vendors["Philips"]


def _ps315() -> dict[str, str]:
    """The Table E.1-1 rows shipped in migration 0002: tag (with xx wildcards) -> action code."""
    path = next((REPO / "migrations" / "versions").glob("0002_*.py"))
    spec = importlib.util.spec_from_file_location("m0002", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return {tag: action for tag, _, _, action in module.PS315_E1_1}


def _action(table: dict[str, str], tag: int) -> str | None:
    group, element = tag >> 16, tag & 0xFFFF
    if group & 1:
        return None
    for pattern in (
        f"({group:04X},{element:04X})",
        f"({group >> 8:02X}xx,{element:04X})",
        f"({group >> 8:02X}xx,xxxx)",
    ):
        if pattern in table:
            return table[pattern]
    return None


def test_ps315_table_is_the_real_list() -> None:
    """The shipped PS3.15 Table E.1-1 is the full list with Basic Profile action codes, not a toy subset."""
    table = _ps315()
    assert len(table) > 600
    assert set(table.values()) == {"D", "Z", "X", "U", "Z/D", "X/Z", "X/D", "X/Z/D", "X/Z/U*"}
    assert table["(0010,0010)"] == "Z" and table["(0010,1040)"] == "X" and table["(0008,0018)"] == "U"
    assert table["(60xx,3000)"] == "X" and table["(0008,0080)"] == "X/Z/D"


def _phi_expected(oracle: list[Element], show_values: bool) -> list[tuple[Any, ...]]:
    table = _ps315()
    groups: dict[tuple[str, str, str, str, str], list[Element]] = defaultdict(list)
    for e in oracle:
        if e.vm == 0:
            continue
        action = _action(table, e.tag)
        if action:
            category = "PS3.15 E.1-1"
        elif e.vr == "PN":
            category = "person name"
        elif e.vr in ("DA", "DT", "TM"):
            category = "date or time"
        elif e.vr == "UI":
            category = "UID"
        elif "xx" in e.key and e.vr in ("LO", "LT", "SH", "ST", "UC", "UT"):
            category = "private text"
        else:
            continue
        groups[(e.site, e.key, e.creator, category, action or "")].append(e)
    out = []
    for (site, key, creator, category, action), found in groups.items():
        depths = {e.depth for e in found}
        where = "top level" if depths == {0} else "sequences" if 0 not in depths else "both"
        texts = {e.value for e in found if isinstance(e.value, str)}
        head = (site, key, creator, category, action, where, len({e.sop for e in found}), len(texts))
        if not show_values or not texts:
            out.append((*head, None, None))
        for value in sorted(texts) if show_values else ():
            out.append((*head, value, len({e.sop for e in found if e.value == value})))
    return sorted(out, key=repr)


@pytest.mark.parametrize(
    ("show_values", "shown"),
    [("", False), ("1", True), ("0", False), ("no", False), ("false", False), ("yes", True), ("TRUE", True)],
)
def test_phi(db: str, oracle: list[Element], headers: dict[str, dict[str, Any]], show_values: str, shown: bool) -> None:
    """phi: every identifying element per site with its action code and counts; values only when asked."""
    rows = rows_of(db, "phi", show_values=show_values)
    columns = ("site", "tag", "private_creator", "category", "action", "found_in", "instances", "distinct_values",
               "value", "value_instances")  # fmt: skip
    got = sorted((tuple(r[c] for c in columns) for r in rows), key=repr)
    assert got == _phi_expected(oracle, shown)
    if not shown:
        assert all(r["value"] is None for r in rows)
        return
    for keyword in ("PatientName", "PatientBirthDate", "PatientAddress", "InstitutionAddress"):
        for site in SITES:
            want = {str(h[keyword]) for h in headers.values() if h["InstitutionName"] == site}
            have = {r["value"] for r in rows if r["name"] == keyword and r["site"] == site}
            assert have == want and all(r["category"] == "PS3.15 E.1-1" for r in rows if r["name"] == keyword)


def test_phi_for_one_site(db: str) -> None:
    """phi -p site=… keeps to that site."""
    rows = rows_of(db, "phi", site=SITES[2])
    assert rows and {r["site"] for r in rows} == {SITES[2]}


ACQUISITION = {
    "tr_ms": "RepetitionTime", "te_ms": "EchoTime", "ti_ms": "InversionTime", "flip_deg": "FlipAngle",
    "field_t": "MagneticFieldStrength", "slice_mm": "SliceThickness", "pixel_spacing_mm": "PixelSpacing",
    "matrix": "AcquisitionMatrix", "sequence_name": "SequenceName",
}  # fmt: skip


def test_acquisition(db: str, oracle: list[Element], headers: dict[str, dict[str, Any]]) -> None:
    """acquisition: TR, TE, TI, flip, field, slice, spacing, matrix and sequence per site and description."""
    keywords = {pydicom.datadict.tag_for_keyword(k): k for k in ACQUISITION.values()}
    values: dict[tuple[str, str, str], set[str]] = defaultdict(set)
    series: dict[tuple[str, str], set[tuple[str, int]]] = defaultdict(set)
    instances: dict[tuple[str, str], set[str]] = defaultdict(set)
    for e in oracle:
        description = headers[e.sop]["SeriesDescription"]
        series[(e.site, description)].add((e.session, e.series_number))
        instances[(e.site, description)].add(e.sop)
        if e.tag in keywords and e.vm > 0:
            values[(e.site, description, keywords[e.tag])].add(e.value)
    assert all(len(v) == 1 for v in values.values())  # the sample's protocols never vary within a group
    expected = [
        (site, description, len(series[(site, description)]), len(instances[(site, description)]),
         *(next(iter(values[(site, description, k)]), None) if values[(site, description, k)] else None
           for k in ACQUISITION.values()))
        for site, description in series
    ]  # fmt: skip
    got = pick(rows_of(db, "acquisition"), "site", "series_description", "series", "instances", *ACQUISITION)
    assert got == sorted(expected)


def test_study_times(db: str, sample: Sample, headers: dict[str, dict[str, Any]]) -> None:
    """study-times: study date and time, series date and time and the acquisition time range per series."""
    groups: dict[tuple[str, str, int], list[dict[str, Any]]] = defaultdict(list)
    for f in sample.dicom_files:
        groups[(f.site, f.session, f.series_number)].append(headers[f.sop_instance_uid])
    expected = [
        (site, session, h[0]["StudyDate"], h[0]["StudyTime"], number, h[0]["SeriesDescription"], h[0]["SeriesDate"],
         h[0]["SeriesTime"], min(x["AcquisitionTime"] for x in h), max(x["AcquisitionTime"] for x in h), len(h))
        for (site, session, number), h in groups.items()
    ]  # fmt: skip
    got = pick(
        rows_of(db, "study-times"), "site", "session", "study_date", "study_time", "series_number",
        "series_description", "series_date", "series_time", "first_acquisition_time", "last_acquisition_time",
        "instances",
    )  # fmt: skip
    assert got == sorted(expected)


def test_series_variation(db: str, sample: Sample, oracle: list[Element]) -> None:
    """series-variation: per series exactly the top-level tags whose value is not the same in every instance."""
    size: dict[tuple[str, int], int] = defaultdict(int)
    for f in sample.dicom_files:
        size[(f.session, f.series_number)] += 1
    seen: dict[tuple[str, str, int, str, str], dict[Any, set[str]]] = defaultdict(lambda: defaultdict(set))
    vrs: dict[tuple[str, str, int, str, str], str] = {}
    for e in oracle:
        if e.depth == 0:
            k = (e.site, e.session, e.series_number, e.key, e.creator)
            seen[k]["" if e.value is None else e.value].add(e.sop)
            vrs[k] = e.vr
    expected = []
    smallest: dict[tuple[Any, ...], tuple[Any, Any]] = {}
    for k, by_value in seen.items():
        holders = sum(len(s) for s in by_value.values())
        if len(by_value) > 1 or holders < size[k[1:3]]:
            expected.append((*k, len(by_value), holders, size[k[1:3]]))
            if vrs[k] not in BINARY:
                texts = list(by_value)
                if vrs[k] in NUMERIC and all("\\" not in t and t for t in texts):
                    lo, hi = min(float(t) for t in texts), max(float(t) for t in texts)
                    smallest[k] = (min(t for t in texts if float(t) == lo), max(t for t in texts if float(t) == hi))
                else:
                    smallest[k] = (min(texts), max(texts))
    rows = rows_of(db, "series-variation")
    got = pick(rows, "site", "session", "series_number", "tag", "private_creator", "distinct_values", "instances",
               "series_instances")  # fmt: skip
    assert got == sorted(expected)
    for r in rows:
        k = (r["site"], r["session"], r["series_number"], r["tag"], r["private_creator"])
        if k in smallest:
            assert (r["smallest_value"], r["largest_value"]) == smallest[k], r


def test_duplicates_none_in_the_sample(db: str, sample: Sample) -> None:
    """duplicates: the sample's SOP Instance UIDs are all different, so nothing is listed."""
    assert len({f.sop_instance_uid for f in sample.dicom_files}) == len(sample.dicom_files)
    assert rows_of(db, "duplicates") == []


def test_duplicates_lists_every_copy(sample: Sample, tmp_path: Path) -> None:
    """duplicates: a file copied twice shows its UID once per file, with the file count."""
    root = tmp_path / "data"
    (root / "a").mkdir(parents=True)
    original, other = sample.dicom_files[0], sample.dicom_files[1]
    for target in (root / "a" / "x.dcm", root / "b.dcm", root / "c.dcm"):
        shutil.copy(original.path, target)
    shutil.copy(other.path, root / "d.dcm")
    db = str(tmp_path / "dup.db")
    build([root], db, BuildOptions(workers=0))
    rows = rows_of(db, "duplicates")
    assert pick(rows, "sop_instance_uid", "files", "site", "path") == sorted(
        (original.sop_instance_uid, 3, original.site, str(p))
        for p in (root / "a" / "x.dcm", root / "b.dcm", root / "c.dcm")
    )


def test_errors(db: str, sample: Sample) -> None:
    """errors: the sample's stray non-DICOM files, grouped under one reason."""
    others = sorted(str(f.path) for f in sample.other_files)
    rows = rows_of(db, "errors")
    assert [(r["status"], r["files"], r["first_path"]) for r in rows] == [("not_dicom", len(others), others[0])]
    assert rows[0]["reason"]


def test_reports_are_stored_in_the_database(db: str) -> None:
    """The reports table holds every report; those without parameters are also report_<name> views."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    stored = {name: (title, json.loads(params), sql) for name, title, params, sql in
              con.execute("SELECT name, title, params, sql FROM reports")}  # fmt: skip
    views = {name for (name,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'view'")}
    for report in load_reports().values():
        title, params, sql = stored[report.name]
        assert (title, set(params), sql) == (report.title, set(report.params), report.path.read_text())
        assert (f"report_{report.name}" in views) == (not report.params)
        if not report.params:
            via_view = con.execute(f"SELECT * FROM report_{report.name}").fetchall()
            assert sorted(map(repr, via_view)) == sorted(map(repr, run_saved_report(db, report.name, {}).rows))
    assert len(stored) == len(load_reports())
    con.close()


def test_install_reports_twice_is_the_same(db: str, tmp_path: Path) -> None:
    """Installing again replaces the rows and views instead of failing or duplicating them."""
    copy = tmp_path / "again.db"
    shutil.copy(db, copy)
    engine = open_index(str(copy))
    install_reports(engine)
    install_reports(engine)
    engine.dispose()
    con = sqlite3.connect(copy)
    assert con.execute("SELECT COUNT(*) FROM reports").fetchone()[0] == len(load_reports())
    con.close()


# --------------------------------------------------------------------------
# the real scanner corpora


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(ISSUE_REPORTS))
def test_every_report_runs_on_the_real_corpora(corpora_db: Path, db: str, name: str) -> None:
    """Each report runs on the database built from ../shared/corpora, with the same columns as on the sample."""
    on_corpora = run_saved_report(str(corpora_db), name, EXAMPLE_PARAMS.get(name, {}))
    on_sample = run_saved_report(db, name, EXAMPLE_PARAMS.get(name, {}))
    assert on_corpora.columns == on_sample.columns
    if name in ("sites", "sessions", "tag_presence", "private_creators", "phi", "study_times"):
        assert on_corpora.rows, f"{name} found nothing in the corpora"


def test_same_answers_on_postgresql(postgres: Any, sample: Sample, tmp_path: Path) -> None:
    """Every report gives the same rows on PostgreSQL as on SQLite, and installs there too (portable SQL)."""
    root = tmp_path / "part"
    taken: dict[tuple[str | None, int | None], int] = defaultdict(int)
    for f in sample.dicom_files:  # up to 4 files of each series: every site, session and private block
        if taken[(f.session, f.series_number)] < 4:
            taken[(f.session, f.series_number)] += 1
            target = root / f.path.relative_to(sample.root)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(f.path, target)
    lite, url = str(tmp_path / "part.db"), postgres.new_database()
    for target in (lite, url):
        build([root], target, BuildOptions(workers=0))
        engine = open_index(target)
        install_reports(engine)
        engine.dispose()
    for name in sorted(ISSUE_REPORTS):
        for params in PARAM_SETS.get(name, [{}]):
            on_pg, on_lite = run_saved_report(url, name, params), run_saved_report(lite, name, params)
            assert on_pg.columns == on_lite.columns
            assert sorted(map(repr, on_pg.rows)) == sorted(map(repr, on_lite.rows)), name
            assert on_pg.rows or name in ("duplicates", "errors"), name


# --------------------------------------------------------------------------
# read-only, bound parameters


class TestReadOnly:
    """Reports and queries cannot change the database, whatever the SQL says."""

    @pytest.mark.parametrize(
        "sql",
        [
            "DELETE FROM files",
            "DROP TABLE files",
            "SELECT 1; DELETE FROM files",
            "ATTACH DATABASE 'x.db' AS x",
            "PRAGMA query_only = OFF",
            "WITH gone AS (SELECT id FROM files) DELETE FROM files WHERE id IN (SELECT id FROM gone)",
        ],
    )
    def test_writes_are_refused(self, db: str, sql: str) -> None:
        """Anything but one SELECT is refused, and the files table keeps every row."""
        before = run_sql(db, "SELECT COUNT(*) FROM files", {}).rows
        with pytest.raises(BadQuery):
            run_sql(db, sql, {})
        assert run_sql(db, "SELECT COUNT(*) FROM files", {}).rows == before

    def test_parameters_are_bound_not_pasted(self, db: str) -> None:
        """A parameter value with quotes and SQL in it comes back as plain text."""
        value = "x'; DROP TABLE files; --"
        assert run_sql(db, "SELECT :v AS v", {"v": value}).rows == [(value,)]
        assert run_sql(db, "SELECT COUNT(*) > 0 FROM files", {}).rows == [(1,)]

    def test_colons_in_text_and_comments_are_not_parameters(self, db: str) -> None:
        """'12:30' and a comment with :word need no parameter."""
        assert run_sql(db, "SELECT '12:30' AS t -- at :noon\n", {}).rows == [("12:30",)]

    def test_query_parameters_must_match(self, db: str) -> None:
        """A query's :params must all be given, and nothing else."""
        with pytest.raises(BadReportParams, match="give it with -p x=VALUE"):
            run_sql(db, "SELECT :x", {})
        with pytest.raises(BadReportParams, match="does not use :y"):
            run_sql(db, "SELECT :x", {"x": "1", "y": "2"})


class TestReportErrors:
    """Unknown reports and bad parameters are IbashErrors that name the problem."""

    def test_unknown_report_suggests_close_names(self) -> None:
        """A misspelt report name gets the closest names."""
        with pytest.raises(ReportNotFound, match="did you mean tag-values"):
            find_report("tag-value")

    def test_database_from_an_older_version(self, db: str, tmp_path: Path) -> None:
        """A database at an older schema revision is told to upgrade, not shown a missing table."""
        old = tmp_path / "old.db"
        shutil.copy(db, old)
        con = sqlite3.connect(old)
        con.execute("UPDATE alembic_version SET version_num = '0001'")
        con.commit()
        con.close()
        with pytest.raises(IbashError, match=r"schema revision 0001 .*ibash-index build"):
            run_saved_report(str(old), "phi", {})

    def test_missing_and_unknown_parameters(self, db: str) -> None:
        """A required parameter must be given; an unknown one is refused."""
        with pytest.raises(BadReportParams, match="needs -p tag=VALUE"):
            run_saved_report(db, "tag-values", {})
        with pytest.raises(BadReportParams, match="has no parameter 'colour'"):
            run_saved_report(db, "sites", {"colour": "red"})


# --------------------------------------------------------------------------
# the command line


def width(line: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in line)


def invoke(*args: str) -> Any:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result


def user_error(args: list[str], match: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and match in lines[0], result.stderr
    assert result.stdout == "" and "Traceback" not in result.output


class TestCli:
    """`reports`, `report` and `query` in every format, and their one-line errors."""

    def test_reports_lists_every_report(self) -> None:
        """`reports` shows each name (with dashes), title and parameters."""
        out = invoke("reports").stdout
        for report in load_reports().values():
            assert report.cli_name in out
        assert "tag [site]" in out
        listed = json.loads(invoke("reports", "--format", "json").stdout)
        assert {r["name"] for r in listed} == {r.cli_name for r in load_reports().values()}

    def test_table_fits_80_columns(self, db: str) -> None:
        """Table output fits an 80-column terminal, cutting long values with an ellipsis."""
        for name in ("sites", "tag-presence", "site-differences", "private-creators"):
            out = invoke("report", name, "--db", db).stdout
            assert out and all(width(line) <= 80 for line in out.splitlines()), name
        assert "…" in invoke("report", "private-creators", "--db", db).stdout

    def test_table_escapes_control_characters(self, db: str) -> None:
        """A newline or escape code in a value is shown escaped, never sent to the terminal."""
        out = invoke("query", "SELECT :v AS v", "-p", "v=a\nb\x1b[31m", "--db", db).stdout
        assert "a\\nb\\x1b[31m" in out and "\x1b" not in out

    def test_csv(self, db: str) -> None:
        """CSV has a header row and one row per result row; formulas are defused."""
        out = invoke("report", "tag-values", "-p", "tag=MagneticFieldStrength", "--format", "csv", "--db", db).stdout
        rows = list(csv.reader(io.StringIO(out)))
        assert rows[0] == run_saved_report(db, "tag-values", {"tag": "MagneticFieldStrength"}).columns
        assert {r[0] for r in rows[1:]} == set(SITES)
        formula = invoke("query", "SELECT :v AS v, '-1.5' AS n", "-p", "v==1+2", "-f", "csv", "--db", db).stdout
        assert list(csv.reader(io.StringIO(formula)))[1] == ["'=1+2", "-1.5"]
        sql = "SELECT :a AS a, :b AS b"  # numbers joined by \ stay as they are; a cell reference does not
        out = invoke("query", sql, "-p", "a=-0.6\\-120\\-1e3", "-p", "b=-E1\\2", "-f", "csv", "--db", db).stdout
        assert list(csv.reader(io.StringIO(out)))[1] == ["-0.6\\-120\\-1e3", "'-E1\\2"]

    def test_files_are_private_and_uncut(self, db: str, tmp_path: Path) -> None:
        """-o writes owner-only files (patient data), and a table written to a file is never cut to 80 columns."""
        target = tmp_path / "private-creators.txt"
        invoke("report", "private-creators", "--output", str(target), "--db", db)
        assert stat.S_IMODE(target.stat().st_mode) == 0o600
        text = target.read_text()
        assert "…" not in text and max(width(line) for line in text.splitlines()) > 80
        assert "…" in invoke("report", "private-creators", "--db", db).stdout  # on stdout: 80 columns
        wide = "SELECT " + ", ".join(f"1 AS a_column_name_as_long_as_this_{i}" for i in range(12)) + " WHERE 0"
        assert invoke("query", wide, "--db", db).stdout == "(no rows)\n"  # not nothing at all

    def test_csv_file_opens_in_spreadsheets(self, db: str, tmp_path: Path) -> None:
        """--output writes the file (UTF-8 with a byte order mark for CSV) and says so on stderr."""
        target = tmp_path / "sites.csv"
        result = invoke("report", "sites", "--format", "csv", "--output", str(target), "--db", db)
        assert result.stdout == "" and "rows written" in result.stderr
        data = target.read_bytes()
        assert data.startswith(b"\xef\xbb\xbf") and b"\r\n" in data
        assert next(csv.reader(io.StringIO(data.decode("utf-8-sig"))))[0] == "site"

    def test_json(self, db: str) -> None:
        """JSON is a list of objects keyed by column name."""
        out = invoke("report", "sessions", "--format", "json", "--db", db).stdout
        rows = json.loads(out)
        assert isinstance(rows, list) and rows and set(rows[0]) >= {"site", "session", "series_number", "instances"}

    def test_markdown(self, db: str) -> None:
        """Markdown is a pipe table with a header separator."""
        out = invoke("report", "private-creators", "--format", "markdown", "--db", db).stdout.splitlines()
        assert out[0].startswith("| site | manufacturer |") and set(out[1]) <= set("|-: ")
        assert len(out) == 2 + len(rows_of(db, "private-creators"))

    def test_sql_prints_the_file(self) -> None:
        """--sql prints the report's SQL file, header included, without needing a database."""
        assert invoke("report", "tag-values", "--sql").stdout == (SQL / "tag_values.sql").read_text()

    def test_query_formats(self, db: str) -> None:
        """query runs ad-hoc SQL with bound parameters in every format."""
        sql = "SELECT site, COUNT(*) AS n FROM instances WHERE site = :s GROUP BY site"
        args = ["query", sql, "-p", f"s={SITES[0]}", "--db", db]
        assert SITES[0] in invoke(*args).stdout
        assert json.loads(invoke(*args, "-f", "json").stdout)[0]["site"] == SITES[0]
        assert next(csv.reader(io.StringIO(invoke(*args, "-f", "csv").stdout))) == ["site", "n"]
        assert invoke(*args, "-f", "markdown").stdout.startswith("| site | n |")

    @pytest.mark.parametrize(
        ("args", "match"),
        [
            (["report", "no-such-report"], "no report named 'no-such-report'"),
            (["report", "tag-values"], "needs -p tag=VALUE"),
            (["report", "sites", "-p", "colour=red"], "has no parameter 'colour'"),
            (["report", "sites", "-p", "colour"], "-p takes NAME=VALUE"),
            (["query", "DELETE FROM files"], "only SELECT queries"),
            (["query", "SELECT 1; SELECT 2"], "one statement at a time"),
            (["query", "SELECT * FROM no_such_table"], "no such table"),
        ],
    )
    def test_user_errors(self, db: str, args: list[str], match: str) -> None:
        """Each mistake is one line on stderr and exit code 1."""
        user_error([*args, "--db", db], match)

    def test_database_not_built(self, tmp_path: Path) -> None:
        """A missing database, or an empty file, is one line that says to build it first."""
        user_error(["report", "sites", "--db", str(tmp_path / "none.db")], "ibash-index build")
        assert not (tmp_path / "none.db").exists()
        (tmp_path / "empty.db").touch()
        user_error(["query", "SELECT 1", "--db", str(tmp_path / "empty.db")], "has not been built yet")

    def test_bad_format_is_a_usage_error(self, db: str) -> None:
        """An unknown --format is refused before anything runs."""
        result = runner.invoke(app, ["report", "sites", "--format", "xml", "--db", db])
        assert result.exit_code == 2 and "xml" in result.stderr

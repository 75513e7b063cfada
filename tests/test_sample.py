"""Tests for the IBASH-like sample generator, checked by reading the files back with pydicom."""

from __future__ import annotations

import hashlib
import io
import re
import xml.etree.ElementTree as ET
from collections import Counter, defaultdict
from pathlib import Path

import pytest
from pydicom import dcmread, dcmwrite
from pydicom._private_dict import private_dictionaries
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage

from ibash_index.sample import AFTER_PIXEL_DATA, EMPTY_AT_ONE_SITE, SESSIONS, SITES, Sample, make_sample

EXPECTED_SESSIONS = {
    "1908460",
    "2070607",
    "3085612",
    "3089130",
    "3814135",
    "4094813",
    "4822218",
    "5812567",
    "5812567-2",
    "6258754",
    "9083868",
}
EXPECTED_SITES = (
    "Metropolis General Hospital",
    "Avengers HQ Medical Centre",
    "Professor Charles Xavier School for the Gifted",
)
NAME_RE = re.compile(
    r"^(?P<session>\d{7}(?:-2)?)/(?P<series>\d+)/DICOM/"
    r"(?P=session)\.MR\.IBASH\.(?P=series)\.(?P<instance>\d+)\.(?P<date>\d{8})\.(?P<time>\d{6})\.[a-z0-9]{6}\.dcm$"
)
# vendor -> (group, private creator) pairs that must be present
PRIVATE_BLOCKS = {
    "SIEMENS": [(0x0029, "SIEMENS CSA HEADER"), (0x0019, "SIEMENS MR HEADER")],
    "GE MEDICAL SYSTEMS": [(0x0043, "GEMS_PARM_01"), (0x0019, "GEMS_ACQU_01")],
    "Philips": [(0x2005, "Philips MR Imaging DD 001")],
}


def _digest(root: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(p for p in root.rglob("*") if p.is_file()):
        h.update(f.relative_to(root).as_posix().encode() + b"\0")
        h.update(f.read_bytes())
    return h.hexdigest()


def _depth(ds: Dataset) -> int:
    """Deepest sequence nesting: 0 for a flat dataset."""
    return max(
        (1 + max((_depth(item) for item in e.value), default=0) for e in ds if e.VR == "SQ"),
        default=0,
    )


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Sample, list[int]]:
    calls: list[int] = []
    sample = make_sample(tmp_path_factory.mktemp("s") / "out", progress=calls.append)
    return sample, calls


@pytest.fixture(scope="module")
def fresh_sample(generated: tuple[Sample, list[int]]) -> Sample:
    """This module's own copy (not conftest's shared `sample`), so other tests can't alter what it checks."""
    return generated[0]


@pytest.fixture(scope="module")
def datasets(fresh_sample: Sample) -> dict[str, Dataset]:
    """Every .dcm file on disk, read back, keyed by its path relative to the root."""
    return {p.relative_to(fresh_sample.root).as_posix(): dcmread(p) for p in sorted(fresh_sample.root.rglob("*.dcm"))}


@pytest.fixture(scope="module")
def series_ends(datasets: dict[str, Dataset]) -> list[Dataset]:
    """First and last file of every series: whole-header checks on these keep the suite fast."""
    firsts: dict[str, Dataset] = {}
    lasts: dict[str, Dataset] = {}
    for ds in datasets.values():
        firsts.setdefault(ds.SeriesInstanceUID, ds)
        lasts[ds.SeriesInstanceUID] = ds
    return [*firsts.values(), *lasts.values()]


@pytest.fixture(scope="module")
def by_site(datasets: dict[str, Dataset]) -> dict[str, list[Dataset]]:
    out: dict[str, list[Dataset]] = defaultdict(list)
    for ds in datasets.values():
        out[ds.InstitutionName].append(ds)
    return out


def test_eleven_sessions_with_exact_labels(fresh_sample: Sample, datasets: dict[str, Dataset]) -> None:
    """The export has exactly the 11 IBASH session folders, and headers name their session."""
    folders = {p.name for p in fresh_sample.root.iterdir() if p.is_dir()}
    assert folders == EXPECTED_SESSIONS
    assert set(SESSIONS) == EXPECTED_SESSIONS and len(SESSIONS) == 11
    for rel, ds in datasets.items():
        session = rel.split("/")[0]
        assert ds.AccessionNumber == session
        assert ds.StudyID == session


def test_three_sites_with_exact_names(by_site: dict[str, list[Dataset]]) -> None:
    """InstitutionName takes exactly the three site names, in SITES order."""
    assert SITES == EXPECTED_SITES
    assert set(by_site) == set(EXPECTED_SITES)


def test_each_site_has_its_own_scanner(by_site: dict[str, list[Dataset]]) -> None:
    """Within a site every file shares one manufacturer/model/software; sites differ from each other."""
    scanners = {}
    for site, dss in by_site.items():
        kinds = {(ds.Manufacturer, ds.ManufacturerModelName, tuple(ds.SoftwareVersions)) for ds in dss}
        assert len(kinds) == 1, site
        scanners[site] = kinds.pop()
    assert len({m for m, _, _ in scanners.values()}) == 3


def test_sessions_are_split_three_or_four_per_site(datasets: dict[str, Dataset]) -> None:
    """Each session belongs to exactly one site and each site has 3-4 sessions."""
    site_of: dict[str, set[str]] = defaultdict(set)
    for rel, ds in datasets.items():
        site_of[rel.split("/")[0]].add(ds.InstitutionName)
    assert all(len(sites) == 1 for sites in site_of.values())
    per_site = Counter(next(iter(s)) for s in site_of.values())
    assert set(per_site) == set(EXPECTED_SITES)
    assert all(3 <= n <= 4 for n in per_site.values())


def test_file_names_follow_xnat_layout(datasets: dict[str, Dataset]) -> None:
    """Paths are <session>/<series>/DICOM/<session>.MR.IBASH.<series>.<instance>.<date>.<time>.<6 chars>.dcm."""
    for rel, ds in datasets.items():
        m = NAME_RE.match(rel)
        assert m, rel
        assert int(m["series"]) == ds.SeriesNumber
        assert int(m["instance"]) == ds.InstanceNumber
        assert m["date"] == ds.AcquisitionDate
        assert m["time"] == ds.AcquisitionTime[:6]


def test_series_numbers_and_counts_per_session(datasets: dict[str, Dataset]) -> None:
    """Every session has 5-8 series numbered 501, 601, ... 1101."""
    series: dict[str, set[int]] = defaultdict(set)
    for rel, ds in datasets.items():
        series[rel.split("/")[0]].add(ds.SeriesNumber)
    for session, numbers in series.items():
        assert 5 <= len(numbers) <= 8, session
        assert numbers <= set(range(501, 1102, 100)), session


def test_headers_have_150_to_300_elements(series_ends: list[Dataset]) -> None:
    """Files hold 150-300 data elements, counting into sequences (first and last file of every series)."""
    counts = [sum(1 for _ in ds.iterall()) for ds in series_ends]
    assert min(counts) >= 150
    assert max(counts) <= 300


def test_private_creators_present_at_each_site(datasets: dict[str, Dataset]) -> None:
    """Each vendor's files carry that vendor's private creators in the right groups."""
    for rel, ds in datasets.items():
        for group, creator in PRIVATE_BLOCKS[ds.Manufacturer]:
            try:
                ds.private_block(group, creator)
            except KeyError:
                pytest.fail(f"{rel}: no {creator!r} in group {group:04X}")


def test_siemens_csa_and_mr_header(by_site: dict[str, list[Dataset]]) -> None:
    """Siemens files have multi-KB CSA OB blobs and MR-header elements with dictionary VRs."""
    for ds in by_site["Metropolis General Hospital"]:
        csa = ds.private_block(0x0029, "SIEMENS CSA HEADER")
        for offset in (0x10, 0x20):
            assert csa[offset].VR == "OB"
            assert csa[offset].value.startswith(b"SV10") and len(csa[offset].value) > 2000
        mr = ds.private_block(0x0019, "SIEMENS MR HEADER")
        table = private_dictionaries["SIEMENS MR HEADER"]
        seen = 0
        for elem in ds.group_dataset(0x0019):
            if elem.tag.element >> 8 == mr.block_start >> 8:
                vr, expected = elem.VR, table[f"0019xx{elem.tag.element & 0xFF:02X}"][0]
                assert vr == expected, elem.tag
                seen += 1
        assert seen >= 3


def test_philips_private_sequence_holds_private_elements(by_site: dict[str, list[Dataset]]) -> None:
    """Philips files contain a private SQ whose items have their own private creator and elements."""
    for ds in by_site["Professor Charles Xavier School for the Gifted"]:
        block = ds.private_block(0x2005, "Philips MR Imaging DD 001")
        seq = block[0x80]
        assert seq.VR == "SQ" and len(seq.value) >= 1
        for item in seq.value:
            inner = item.private_block(0x2005, "Philips MR Imaging DD 001")
            assert any(e.tag.is_private and not e.tag.is_private_creator for e in item)
            assert inner[0x81].value


def test_sequences_nest_at_least_two_levels(series_ends: list[Dataset]) -> None:
    """Some file nests a sequence inside a sequence item (depth >= 2)."""
    assert max(_depth(ds) for ds in series_ends) >= 2


def test_non_ascii_names_decode(fresh_sample: Sample, datasets: dict[str, Dataset]) -> None:
    """Latin-1 (ISO_IR 100) and UTF-8 (ISO_IR 192) names decode correctly; the ASCII site sets no charset."""
    latin = next(ds for rel, ds in datasets.items() if rel.startswith("1908460/"))
    assert latin.SpecificCharacterSet == "ISO_IR 100"
    assert str(latin.PatientName) == "Müller^Jürgen"
    utf8 = next(ds for rel, ds in datasets.items() if rel.startswith("3089130/"))
    assert utf8.SpecificCharacterSet == "ISO_IR 192"
    assert str(utf8.PatientName) == "Dvořák^Zoë"
    ascii_ = next(ds for rel, ds in datasets.items() if rel.startswith("2070607/"))
    assert "SpecificCharacterSet" not in ascii_
    assert str(ascii_.PatientName).isascii()
    # and the bytes on disk really are in those encodings
    raw = next((fresh_sample.root / "1908460").rglob("*.dcm")).read_bytes()
    assert "Müller^Jürgen".encode("latin-1") in raw
    raw = next((fresh_sample.root / "3089130").rglob("*.dcm")).read_bytes()
    assert "Dvořák^Zoë".encode() in raw


def test_one_site_leaves_a_tag_empty(by_site: dict[str, list[Dataset]]) -> None:
    """EMPTY_AT_ONE_SITE's tag is present but empty at that site and filled everywhere else."""
    keyword, empty_site = EMPTY_AT_ONE_SITE
    assert empty_site in EXPECTED_SITES
    for site, dss in by_site.items():
        for ds in dss:
            assert keyword in ds
            assert (ds[keyword].is_empty) == (site == empty_site), site
            assert ds.InstitutionName  # the site name itself is never blank


def test_element_after_pixel_data(by_site: dict[str, list[Dataset]]) -> None:
    """AFTER_PIXEL_DATA's element is stored after PixelData at its site."""
    keyword, site = AFTER_PIXEL_DATA
    for ds in by_site[site]:
        assert keyword in ds
        assert ds[keyword].tag > ds["PixelData"].tag


def test_stray_non_dicom_files(fresh_sample: Sample) -> None:
    """catalog.xml at the top and a .DS_Store in a session folder exist and are not DICOM."""
    catalog = fresh_sample.root / "catalog.xml"
    stores = list(fresh_sample.root.glob("*/.DS_Store"))
    assert catalog.is_file() and len(stores) == 1
    assert {f.path for f in fresh_sample.other_files} == {catalog, stores[0]}
    for path in (catalog, stores[0]):
        with pytest.raises(InvalidDicomError):
            dcmread(path)
    entries = ET.parse(catalog).getroot().iter("{http://nrg.wustl.edu/catalog}entry")
    assert sum(1 for _ in entries) == len(fresh_sample.dicom_files)
    stray = next(f for f in fresh_sample.files if f.path == catalog)
    assert stray.session is None and stray.site is None


def test_default_size_and_file_list(generated: tuple[Sample, list[int]]) -> None:
    """scale=1 writes 1,000-2,000 DICOM files; Sample.files lists exactly what is on disk; progress counts them."""
    sample, calls = generated
    on_disk = {p for p in sample.root.rglob("*") if p.is_file()}
    assert on_disk == {f.path for f in sample.files}
    assert all(f.path.is_absolute() for f in sample.files)
    assert 1000 <= len(sample.dicom_files) <= 2000
    assert sum(calls) == len(sample.files)


def test_sample_file_metadata_matches_headers(fresh_sample: Sample, datasets: dict[str, Dataset]) -> None:
    """Each SampleFile's session, site, series number and SOP Instance UID agree with its file."""
    for f in fresh_sample.dicom_files:
        ds = datasets[f.path.relative_to(fresh_sample.root).as_posix()]
        assert (f.session, f.site, f.series_number, f.sop_instance_uid) == (
            f.path.relative_to(fresh_sample.root).parts[0],
            ds.InstitutionName,
            ds.SeriesNumber,
            ds.SOPInstanceUID,
        )


def test_uids_unique_and_consistent(datasets: dict[str, Dataset]) -> None:
    """SOP Instance UIDs are unique; one study UID per session and one series UID per series."""
    sops = [ds.SOPInstanceUID for ds in datasets.values()]
    assert len(set(sops)) == len(sops)
    studies: dict[str, set[str]] = defaultdict(set)
    series: dict[tuple[str, int], set[str]] = defaultdict(set)
    for rel, ds in datasets.items():
        studies[rel.split("/")[0]].add(ds.StudyInstanceUID)
        series[rel.split("/")[0], ds.SeriesNumber].add(ds.SeriesInstanceUID)
    assert all(len(v) == 1 for v in studies.values())
    assert all(len(v) == 1 for v in series.values())
    assert len({next(iter(v)) for v in series.values()}) == len(series)


def test_per_instance_values_vary(datasets: dict[str, Dataset]) -> None:
    """Within a series InstanceNumber, SliceLocation, ImagePositionPatient and AcquisitionTime all differ."""
    groups: dict[str, list[Dataset]] = defaultdict(list)
    for ds in datasets.values():
        groups[ds.SeriesInstanceUID].append(ds)
    for dss in groups.values():
        n = len(dss)
        assert len({ds.InstanceNumber for ds in dss}) == n
        assert len({float(ds.SliceLocation) for ds in dss}) == n
        assert len({tuple(ds.ImagePositionPatient) for ds in dss}) == n
        assert len({ds.AcquisitionTime for ds in dss}) == n


def test_file_meta_and_pixel_data(datasets: dict[str, Dataset]) -> None:
    """Files have real MR file meta and tiny uint16 pixel data consistent with Rows/Columns/BitsAllocated."""
    for ds in datasets.values():
        meta = ds.file_meta
        assert meta.MediaStorageSOPClassUID == MRImageStorage == ds.SOPClassUID
        assert meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert meta.TransferSyntaxUID == ExplicitVRLittleEndian
        assert meta.ImplementationClassUID
        assert ds.BitsAllocated == 16 and ds.PixelRepresentation == 0
        assert len(ds.PixelData) == ds.Rows * ds.Columns * 2


def test_acquisition_parameters_differ_by_site(by_site: dict[str, list[Dataset]]) -> None:
    """Field strength and T1 protocol parameters are site specific."""
    fields = {site: {float(ds.MagneticFieldStrength) for ds in dss} for site, dss in by_site.items()}
    assert all(len(v) == 1 for v in fields.values())
    assert {v.pop() for v in fields.values()} == {1.5, 3.0}
    t1 = {  # the 3D T1 series at each site
        site: {
            (ds.SeriesDescription, float(ds.RepetitionTime), ds.SequenceName)
            for ds in dss
            if ds.MRAcquisitionType == "3D"
        }
        for site, dss in by_site.items()
    }
    assert all(len(v) == 1 for v in t1.values())
    assert len({v.pop() for v in t1.values()}) == 3


def test_second_visit_shares_patient_not_study(datasets: dict[str, Dataset]) -> None:
    """5812567-2 is the same patient as 5812567 but a different study on a later date."""
    first = next(ds for rel, ds in datasets.items() if rel.startswith("5812567/"))
    second = next(ds for rel, ds in datasets.items() if rel.startswith("5812567-2/"))
    assert second.PatientID == first.PatientID
    assert second.PatientName == first.PatientName
    assert second.PatientBirthDate == first.PatientBirthDate
    assert second.StudyInstanceUID != first.StudyInstanceUID
    assert second.StudyDate > first.StudyDate


def test_files_round_trip_through_pydicom(fresh_sample: Sample) -> None:
    """Re-encoding a file with pydicom's dcmwrite reproduces it byte for byte (one file per series)."""
    for folder in sorted(fresh_sample.root.glob("*/*/DICOM")):
        path = next(folder.glob("*.dcm"))
        buf = io.BytesIO()
        dcmwrite(buf, dcmread(path), enforce_file_format=True)
        assert buf.getvalue() == path.read_bytes(), path


def test_same_seed_is_byte_identical(fresh_sample: Sample, tmp_path: Path) -> None:
    """Regenerating (into an existing empty directory) with the same scale and seed gives identical names and bytes."""
    again = make_sample(tmp_path)
    assert again.root == tmp_path.absolute()
    assert _digest(again.root) == _digest(fresh_sample.root)


def test_other_seed_changes_uids(datasets: dict[str, Dataset], tmp_path: Path) -> None:
    """A different seed gives different UIDs and file-name suffixes but the same layout."""
    other = make_sample(tmp_path / "other", seed=1)
    studies = {ds.StudyInstanceUID for ds in datasets.values()}
    other_studies = {dcmread(f.path, stop_before_pixels=True).StudyInstanceUID for f in other.dicom_files[::50]}
    assert studies.isdisjoint(other_studies)
    assert not {f.path.name for f in other.dicom_files} & {Path(rel).name for rel in datasets}
    assert len(other.dicom_files) == len(datasets)


@pytest.mark.slow
def test_scale_two_doubles_instances(fresh_sample: Sample, tmp_path: Path) -> None:
    """scale=2 writes twice as many instances in every series."""

    def per_series(s: Sample) -> Counter[tuple[str | None, int | None]]:
        return Counter((f.session, f.series_number) for f in s.dicom_files)

    double = make_sample(tmp_path / "double", scale=2)
    one, two = per_series(fresh_sample), per_series(double)
    assert one.keys() == two.keys()
    assert all(two[k] == 2 * one[k] for k in one)
    assert len(list(double.root.rglob("*.dcm"))) == 2 * len(fresh_sample.dicom_files)


def test_refuses_non_empty_directory(tmp_path: Path) -> None:
    """make_sample raises ValueError for a non-empty target and leaves it untouched."""
    (tmp_path / "keep.txt").write_text("x")
    with pytest.raises(ValueError):
        make_sample(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def test_rejects_scale_below_one(tmp_path: Path) -> None:
    """scale < 1 raises ValueError before anything is written."""
    with pytest.raises(ValueError):
        make_sample(tmp_path / "bad", scale=0)
    assert not (tmp_path / "bad").exists()

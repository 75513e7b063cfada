"""Deterministic IBASH-like multi-site MR sample data set.

Real IBASH exports cannot be shared, so tests, benchmarks and demos need a
stand-in that has the same shape and the same awkward corners: an XNAT export
layout, three sites with different scanner vendors, private blocks (including
a private sequence), non-ASCII names in two character sets, a tag left empty
at one site, an element stored after PixelData and stray non-DICOM files.
Everything is derived from ``(scale, seed)`` so runs are byte-identical.
"""

from __future__ import annotations

import hashlib
import random
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple
from xml.sax.saxutils import quoteattr

from pydicom.charset import default_encoding
from pydicom.datadict import private_dictionaries
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import correct_ambiguous_vr, write_data_element, write_file_meta_info
from pydicom.tag import BaseTag, Tag
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage

__all__ = [
    "AFTER_PIXEL_DATA",
    "EMPTY_AT_ONE_SITE",
    "SESSIONS",
    "SITES",
    "Sample",
    "SampleFile",
    "make_sample",
]

SIEMENS_SITE = "Metropolis General Hospital"
GE_SITE = "Avengers HQ Medical Centre"
PHILIPS_SITE = "Professor Charles Xavier School for the Gifted"

SITES: tuple[str, ...] = (SIEMENS_SITE, GE_SITE, PHILIPS_SITE)

#: (keyword, site): the tag this site writes present but zero-length while the
#: other sites fill it.
EMPTY_AT_ONE_SITE = ("StationName", GE_SITE)

#: (keyword, site): an element this site stores after (7FE0,0010) PixelData.
AFTER_PIXEL_DATA = ("DataSetTrailingPadding", PHILIPS_SITE)

ROWS = COLUMNS = 16  # tiny images so headers dominate the files
_MR_PPS_CLASS = "1.2.840.10008.3.1.2.3.3"  # Modality Performed Procedure Step
_STUDY_MGMT_CLASS = "1.2.840.10008.3.1.2.3.1"  # (retired) Study Management


class _Site(NamedTuple):
    """Everything that is constant for one scanner."""

    name: str
    vendor: str  # key into the private-block builders
    manufacturer: str
    model: str
    software: str  # may be multi-valued ("\\")
    field_strength: float  # tesla
    charset: str | None  # SpecificCharacterSet; None = absent (default ASCII)
    station_name: str
    serial: str
    address: str
    department: str
    impl_class_uid: str
    impl_version: str
    referring: str
    performing: str
    operator: str
    coil: str


# fmt: off
_SITE_TABLE: tuple[_Site, ...] = (
    _Site(
        SIEMENS_SITE, "siemens", "SIEMENS", "Prisma_fit", "syngo MR E11", 3.0,
        "ISO_IR 100", "MRC35123", "35123", "12 Kent Street, Metropolis, NY 10001",
        "Neuroradiologie", "1.3.12.2.1107.5.2", "SIEMENS_E11",
        "Straße^Björn^^Dr.", "Åkesson^Ingrid", "Nuñez^José", "HeadNeck_64",
    ),
    _Site(
        GE_SITE, "ge", "GE MEDICAL SYSTEMS", "SIGNA Artist",
        "27\\LX\\MR Software release:RX27.0_R02_1831.a", 1.5,
        None, "AVGMR1", "000000AVG4MR01", "890 Fifth Avenue, Manhattan, NY 10021",
        "Radiology", "1.2.840.113619.6.374", "MR_RX27",
        "Banner^Robert^^Dr.", "Wilson^Samuel", "Barton^Clinton", "HNU",
    ),
    _Site(
        PHILIPS_SITE, "philips", "Philips", "Ingenia Elition X", "5.7.1\\5.7.1.1",
        3.0, "ISO_IR 192", "XAVIER-MR1", "46021",
        "1407 Graymalkin Lane, Salem Center, NY 10560", "Cerebro Imaging",
        "1.3.46.670589.11.0.0.51.4.57.1", "Philips MR 57.1",
        "Xavier^Charles^^Prof.", "Grey^Jean", "Ōkubo^Hana", "dS Head 32ch",
    ),
)
# fmt: on
_SITE_BY_NAME = {s.name: s for s in _SITE_TABLE}


class _Kind(NamedTuple):
    """Site-independent facts about one series type."""

    images: int  # instances per series at scale 1
    orientation: str  # "sag" | "cor" | "tra"
    mr_type: str  # MRAcquisitionType
    seconds: int  # scan duration, drives the times
    body_part: str


_KINDS: dict[str, _Kind] = {
    "localizer": _Kind(3, "tra", "2D", 25, "HEAD"),
    "t1": _Kind(32, "sag", "3D", 320, "BRAIN"),
    "t2": _Kind(24, "tra", "2D", 150, "BRAIN"),
    "flair": _Kind(24, "tra", "2D", 200, "BRAIN"),
    "dwi": _Kind(30, "tra", "2D", 180, "BRAIN"),
    "bold": _Kind(36, "tra", "2D", 420, "BRAIN"),
    "fieldmap": _Kind(20, "tra", "2D", 60, "BRAIN"),
}


class _Protocol(NamedTuple):
    """What a site's scanner calls and does for one series type."""

    description: str  # SeriesDescription and ProtocolName
    image_type: str
    sequence_name: str
    scanning_sequence: str
    sequence_variant: str
    scan_options: str
    tr: float
    te: float
    ti: float | None
    flip: float
    thickness: float
    pixel_spacing: float
    matrix: tuple[int, int, int, int]  # AcquisitionMatrix
    echo_train: int
    bandwidth: float


# fmt: off
_P = _Protocol
_PROTOCOLS: dict[str, dict[str, _Protocol]] = {
    "siemens": {
        "localizer": _P("localizer", "ORIGINAL\\PRIMARY\\M\\ND\\NORM", "*fl2d1", "GR", "SP", "PFP",
                        8.6, 4.0, None, 20, 7.0, 0.49, (0, 256, 256, 0), 1, 320),
        "t1": _P("t1_mprage_sag_p2_iso", "ORIGINAL\\PRIMARY\\M\\ND\\NORM", "*tfl3d1_16ns", "GR\\IR",
                 "SK\\SP\\MP", "IR", 2300, 2.98, 900, 9, 1.0, 1.0, (0, 256, 256, 0), 1, 240),
        "t2": _P("t2_tse_tra_p2", "ORIGINAL\\PRIMARY\\M\\ND\\NORM", "*tse2d1_15", "SE", "SK\\SP\\OSP",
                 "SAT1", 6000, 93, None, 150, 4.0, 0.43, (0, 512, 358, 0), 15, 220),
        "flair": _P("t2_tirm_tra_dark-fluid", "ORIGINAL\\PRIMARY\\M\\ND\\NORM", "*tir2d1_16", "SE\\IR",
                    "SK\\SP\\MP\\OSP", "IR\\PFP", 9000, 81, 2500, 150, 4.0, 0.69, (0, 320, 224, 0), 16, 287),
        "dwi": _P("ep2d_diff_mddw_20", "ORIGINAL\\PRIMARY\\DIFFUSION\\NONE\\ND\\MOSAIC", "*ep_b1000t", "EP",
                  "SK\\SP", "PFP\\FS", 3500, 60, None, 90, 3.0, 1.8, (128, 0, 0, 128), 1, 1628),
        "bold": _P("ep2d_bold_rest", "ORIGINAL\\PRIMARY\\M\\ND\\MOSAIC", "*epfid2d1_64", "EP", "SK", "FS",
                   2000, 30, None, 78, 3.0, 3.0, (64, 0, 0, 64), 1, 2232),
        "fieldmap": _P("gre_field_mapping", "ORIGINAL\\PRIMARY\\P\\ND", "*fm2d2r", "GR", "SP", "PFP",
                       590, 7.38, None, 60, 3.0, 3.0, (0, 64, 64, 0), 1, 290),
    },
    "ge": {
        "localizer": _P("3Plane Loc SSFSE", "ORIGINAL\\PRIMARY\\LOCALIZER", "ssfse", "SE", "SK\\SS",
                        "FAST_GEMS\\EDR_GEMS\\SS_GEMS", 1175, 80, None, 90, 8.0, 0.94, (256, 0, 0, 128), 1, 244),
        "t1": _P("Sag 3D T1 BRAVO", "ORIGINAL\\PRIMARY\\OTHER", "efgre3d", "GR", "SS\\SK",
                 "FAST_GEMS\\EDR_GEMS\\FILTERED_GEMS\\ACC_GEMS\\IR_GEMS",
                 8.5, 3.2, 450, 12, 1.2, 1.0, (256, 0, 0, 256), 1, 122),
        "t2": _P("Ax T2 FSE", "ORIGINAL\\PRIMARY\\OTHER", "fse-xl", "SE", "SK", "FAST_GEMS\\EDR_GEMS\\FC",
                 4300, 102, None, 111, 5.0, 0.47, (416, 0, 0, 320), 18, 195),
        "flair": _P("Ax T2 FLAIR", "ORIGINAL\\PRIMARY\\OTHER", "fse-ir", "IR", "SK\\SS",
                    "FAST_GEMS\\EDR_GEMS\\FILTERED_GEMS", 9000, 126, 2250, 90, 5.0, 0.94, (256, 0, 0, 224), 20, 163),
        "dwi": _P("Ax DWI 1000b", "ORIGINAL\\PRIMARY\\OTHER", "epi2", "EP\\SE", "SS", "EPI_GEMS\\PFF\\FS",
                  5000, 88, None, 90, 5.0, 0.94, (128, 0, 0, 128), 1, 1953),
        "bold": _P("rsfMRI EPI", "ORIGINAL\\PRIMARY\\EPI", "epiRT", "EP\\GR", "SS", "EPI_GEMS\\FS",
                   2500, 40, None, 90, 3.5, 3.75, (64, 0, 0, 64), 1, 7812),
        "fieldmap": _P("B0 Field Map", "ORIGINAL\\PRIMARY\\OTHER", "fgre", "GR", "SS", "FAST_GEMS",
                       600, 4.8, None, 40, 3.5, 3.75, (64, 0, 0, 64), 1, 244),
    },
    "philips": {
        "localizer": _P("SURVEY", "ORIGINAL\\PRIMARY\\M_FFE\\M\\FFE", "SURVEY", "GR", "SP", "OTHER",
                        10, 4.6, None, 20, 10.0, 0.98, (256, 0, 0, 256), 1, 217),
        "t1": _P("T1W_3D_TFE", "ORIGINAL\\PRIMARY\\M_FFE\\M\\FFE", "T1TFE", "GR", "SP\\MP", "OTHER",
                 8.1, 3.7, 1000, 8, 1.0, 1.0, (0, 240, 240, 0), 1, 191),
        "t2": _P("T2W_TSE", "ORIGINAL\\PRIMARY\\M_SE\\M\\SE", "TSE", "SE", "SK", "FS",
                 3000, 80, None, 90, 4.0, 0.6, (400, 0, 0, 320), 15, 218),
        "flair": _P("FLAIR_longTR", "ORIGINAL\\PRIMARY\\M_IR\\M\\IR", "IR_TSE", "IR", "SK\\MP", "FS",
                    11000, 125, 2800, 90, 4.0, 0.9, (0, 256, 224, 0), 26, 260),
        "dwi": _P("DWI_SE_EPI", "ORIGINAL\\PRIMARY\\DIFFUSION\\M\\SE", "DwiSE", "SE\\EP", "SK", "FS",
                  4800, 70, None, 90, 4.0, 1.8, (128, 0, 0, 128), 1, 1850),
        "bold": _P("fMRI_rest_FEEPI", "ORIGINAL\\PRIMARY\\M_FFE\\M\\FFE", "FEEPI", "GR", "SK", "FS",
                   2000, 30, None, 75, 3.0, 3.0, (80, 0, 0, 80), 1, 2050),
        "fieldmap": _P("B0_map", "ORIGINAL\\PRIMARY\\B0\\B0\\FFE", "B0_MAP", "GR", "SP", "OTHER",
                       20, 2.3, None, 10, 3.0, 3.0, (0, 80, 80, 0), 1, 430),
    },
}
del _P
# fmt: on

_ALL = tuple(_KINDS)


class _Session(NamedTuple):
    """One XNAT session (= one DICOM study)."""

    label: str
    site: str
    patient_name: str
    sex: str
    birth_date: str
    study_date: str
    study_time: str  # HHMMSS
    kinds: tuple[str, ...]
    history: str
    image_comment: str


# fmt: off
_SESSION_TABLE: tuple[_Session, ...] = (
    _Session("1908460", SIEMENS_SITE, "Müller^Jürgen", "M", "19710314", "20190312", "081500", _ALL,
             "Kopfschmerzen seit März; Zustand nach Schädel-Hirn-Trauma 2015", "Bewegungsartefakte gering"),
    _Session("2070607", GE_SITE, "Parker^Benjamin^R", "M", "19590827", "20190405", "093000",
             ("localizer", "t1", "t2", "flair", "dwi"),
             "Recurrent headaches, rule out mass lesion", "Mild motion in later slices"),
    _Session("3085612", SIEMENS_SITE, "Østergård^Søren", "M", "19880602", "20190522", "133000",
             ("localizer", "t1", "t2", "flair", "dwi", "bold"),
             "Schwindel, Übelkeit; MRT zur Abklärung", "Keine Besonderheiten"),
    _Session("3089130", PHILIPS_SITE, "Dvořák^Zoë", "F", "19920130", "20190611", "101500", _ALL,
             "Migréna s aurou; kontrola po 6 měsících", "Pohybové artefakty minimální"),
    _Session("3814135", GE_SITE, "Okafor^Grace", "F", "19830419", "20190702", "110000", _ALL,
             "Follow-up after concussion, claustrophobic - sedated", "Good quality"),
    _Session("4094813", PHILIPS_SITE, "Łukasiewicz^Paweł", "M", "19770905", "20190814", "141500",
             ("localizer", "t1", "t2", "flair", "dwi", "bold"),
             "Zawroty głowy; wykluczyć stwardnienie rozsiane", "Jakość dobra"),
    _Session("4822218", GE_SITE, "Lindqvist^Mark", "M", "19660111", "20190903", "080000",
             ("localizer", "t1", "t2", "flair", "bold", "fieldmap"),
             "Memory complaints, family history of dementia", "Patient moved during FLAIR"),
    _Session("5812567", SIEMENS_SITE, "Lefèvre^Hélène", "F", "19650921", "20191008", "151500", _ALL,
             "Gedächtnisstörungen; Verlaufskontrolle geplant", "Leichte Suszeptibilitätsartefakte"),
    _Session("5812567-2", SIEMENS_SITE, "Lefèvre^Hélène", "F", "19650921", "20200414", "091500",
             ("localizer", "t1", "flair", "dwi", "bold"),
             "Verlaufskontrolle nach 6 Monaten", "Vergleich mit Voruntersuchung"),
    _Session("6258754", PHILIPS_SITE, "Şahin^Çağrı", "M", "19900716", "20191119", "123000",
             ("localizer", "t1", "flair", "dwi", "bold", "fieldmap"),
             "Baş ağrısı ve baş dönmesi; kontrol", "Hareket artefaktı yok"),
    _Session("9083868", GE_SITE, "Novak^Petra", "F", "19790228", "20191210", "160000",
             ("localizer", "t1", "t2", "dwi", "bold", "fieldmap"),
             "Tinnitus, left-sided hearing loss", "IAC coverage included"),
)
# fmt: on

SESSIONS: tuple[str, ...] = tuple(s.label for s in _SESSION_TABLE)

_DSSTORE_SESSION = "3089130"  # where a macOS user copied the export from
_TRAILING_PADDING = b"\x00" * 16

# per-instance elements (everything else is constant within a series)
_SOP_UID = Tag("SOPInstanceUID")
_ACQ_TIME = Tag("AcquisitionTime")
_CONTENT_TIME = Tag("ContentTime")
_INSTANCE = Tag("InstanceNumber")
_POSITION = Tag("ImagePositionPatient")
_SLICE_LOC = Tag("SliceLocation")
_MIN = Tag("SmallestImagePixelValue")
_MAX = Tag("LargestImagePixelValue")
_PIXELS = Tag("PixelData")
_SIEMENS_PCS = Tag(0x0019, 0x1015)  # SIEMENS MR HEADER SlicePosition_PCS
_PHILIPS_SLICE = Tag(0x2001, 0x100A)  # Philips Imaging DD 001 Slice Number MR
_PER_INSTANCE_PRIVATE = (_SIEMENS_PCS, _PHILIPS_SLICE)

_IOP = {
    "sag": (0.0, 1.0, 0.0, 0.0, 0.0, -1.0),
    "cor": (1.0, 0.0, 0.0, 0.0, 0.0, -1.0),
    "tra": (1.0, 0.0, 0.0, 0.0, 1.0, 0.0),
}
_NORMAL_AXIS = {"sag": 0, "cor": 1, "tra": 2}


@dataclass(frozen=True)
class SampleFile:
    """One written file and what it is meant to contain (the test oracle)."""

    path: Path
    is_dicom: bool
    session: str | None
    site: str | None
    series_number: int | None
    sop_instance_uid: str | None


@dataclass(frozen=True)
class Sample:
    """Everything :func:`make_sample` wrote."""

    root: Path
    files: tuple[SampleFile, ...]

    @property
    def dicom_files(self) -> tuple[SampleFile, ...]:
        return tuple(f for f in self.files if f.is_dicom)

    @property
    def other_files(self) -> tuple[SampleFile, ...]:
        return tuple(f for f in self.files if not f.is_dicom)


# --------------------------------------------------------------------------
# small helpers


def _uid(seed: int, *parts: object) -> str:
    """A 2.25 UID that depends only on the seed and what it identifies."""
    key = "/".join(map(str, (seed, *parts))).encode()
    return "2.25." + str(int.from_bytes(hashlib.sha256(key).digest()[:16], "big"))


def _ds(value: float) -> str:
    """Format a DS without float noise and within 16 characters."""
    return f"{value:.6g}"


def _tm(seconds: float) -> str:
    seconds %= 86400
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{int(h):02d}{int(m):02d}{s:09.6f}"


def _secs(hhmmss: str) -> int:
    return int(hhmmss[:2]) * 3600 + int(hhmmss[2:4]) * 60 + int(hhmmss[4:6])


def _age(birth: str, on: str) -> str:
    """PatientAge (AS) on the study date, so a second visit can be older."""
    b = (int(birth[:4]), int(birth[4:6]), int(birth[6:]))
    d = (int(on[:4]), int(on[4:6]), int(on[6:]))
    return f"{d[0] - b[0] - (d[1:] < b[1:]):03d}Y"


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = meaning
    return item


def _private(ds: Dataset, group: int, creator: str, values: dict[int, Any]) -> None:
    """Add private elements with the VR pydicom's private dictionary knows."""
    table = private_dictionaries[creator]
    block = ds.private_block(group, creator, create=True)
    for offset, value in values.items():
        vr = table[f"{group:04X}xx{offset:02X}"][0]
        block.add_new(offset, vr, value)


# --------------------------------------------------------------------------
# vendor private blocks

# fmt: off
_CSA_SYNGODT = {
    "CS": 16, "DS": 3, "FD": 4, "FL": 5, "IS": 6, "LO": 19, "SH": 22, "SL": 7, "ST": 21,
    "UI": 25, "UL": 9, "UN": 0, "US": 10,
}
# fmt: on


def _csa2(tags: list[tuple[str, str, list[str]]]) -> bytes:
    """Encode a Siemens CSA2 ("SV10") header: 64-byte names, 4-int items."""
    out = bytearray(b"SV10\x04\x03\x02\x01")
    out += struct.pack("<2I", len(tags), 77)
    for name, vr, values in tags:
        out += struct.pack(
            "<64si4s3i",
            name.encode(),
            len(values),
            vr.encode() + b"\0",
            _CSA_SYNGODT[vr],
            len(values),
            77 if values else 205,
        )
        for value in values:
            data = value.encode("latin-1") + b"\0"
            n = len(data)
            out += struct.pack("<4i", n, n, 77, n) + data + b"\0" * (-n % 4)
    return bytes(out)


def _csa_image_header(p: _Protocol, kind: _Kind, n: int) -> bytes:
    iop = [f"{v:.8f}" for v in _IOP[kind.orientation]]
    normal = ["0", "0", "0"]
    normal[_NORMAL_AXIS[kind.orientation]] = "1"
    tags: list[tuple[str, str, list[str]]] = [
        ("EchoLinePosition", "IS", [str(max(p.matrix) // 2)]),
        ("EchoColumnPosition", "IS", ["128"]),
        ("EchoPartitionPosition", "IS", ["32"]),
        ("UsedChannelMask", "UL", ["4294967295"]),
        ("Actual3DImaPartNumber", "IS", []),
        ("ICE_Dims", "LO", ["X_1_1_1_1_1_1_1_1_1_1_1_184"]),
        ("B_value", "IS", ["1000" if "DIFFUSION" in p.image_type else "0"]),
        ("Filter1", "IS", []),
        ("Filter2", "IS", []),
        ("ProtocolSliceNumber", "IS", ["0"]),
        ("RealDwellTime", "IS", ["2600"]),
        ("PixelFile", "UN", []),
        ("PixelFileName", "LO", []),
        ("SliceMeasurementDuration", "DS", ["260000.00000000"]),
        ("SequenceMask", "UL", ["134217728"]),
        ("AcquisitionMatrixText", "SH", [f"{max(p.matrix)}*{max(p.matrix)}"]),
        ("MeasuredFourierLines", "IS", ["0"]),
        ("FlowEncodingDirection", "IS", []),
        ("FlowVenc", "FD", []),
        ("PhaseEncodingDirectionPositive", "IS", ["1"]),
        ("NumberOfImagesInMosaic", "US", [str(n)] if "MOSAIC" in p.image_type else []),
        ("DiffusionGradientDirection", "FD", []),
        ("ImageGroup", "US", []),
        ("SliceNormalVector", "FD", [f"{v}.00000000" for v in normal]),
        ("DiffusionDirectionality", "CS", ["DIRECTIONAL"] if "DIFFUSION" in p.image_type else []),
        ("TimeAfterStart", "DS", ["0.00000000"]),
        ("FlipAngle", "DS", [f"{p.flip:.8f}"]),
        ("SequenceName", "SH", [p.sequence_name]),
        ("RepetitionTime", "DS", [f"{p.tr:.8f}"]),
        ("EchoTime", "DS", [f"{p.te:.8f}"]),
        ("NumberOfAverages", "DS", ["1.00000000"]),
        ("VoxelThickness", "DS", [f"{p.thickness:.8f}"]),
        ("VoxelPhaseFOV", "DS", ["256.00000000"]),
        ("VoxelReadoutFOV", "DS", ["256.00000000"]),
        ("VoxelPositionSag", "DS", ["0.00000000"]),
        ("VoxelPositionCor", "DS", ["-17.50000000"]),
        ("VoxelPositionTra", "DS", ["12.25000000"]),
        ("VoxelNormalSag", "DS", [normal[0] + ".00000000"]),
        ("VoxelNormalCor", "DS", [normal[1] + ".00000000"]),
        ("VoxelNormalTra", "DS", [normal[2] + ".00000000"]),
        ("VoxelInPlaneRot", "DS", ["0.00000000"]),
        ("ImagePositionPatient", "DS", ["-128.00000000", "-128.00000000", "0.00000000"]),
        ("ImageOrientationPatient", "DS", iop),
        ("PixelSpacing", "DS", [f"{p.pixel_spacing:.8f}"] * 2),
        ("SliceLocation", "DS", ["0.00000000"]),
        ("SliceThickness", "DS", [f"{p.thickness:.8f}"]),
        ("SpectrumTextRegionLabel", "SH", []),
        ("Comp_Algorithm", "IS", []),
        ("Comp_Blended", "IS", []),
        ("Comp_ManualAdjusted", "IS", []),
        ("Comp_AutoParam", "LO", []),
        ("Comp_AdjustedParam", "LO", []),
        ("Comp_JobID", "LO", []),
        ("FMRIStimulInfo", "IS", ["0"] if "MOSAIC" in p.image_type else []),
        ("FlowEncodingDirectionString", "SH", []),
        ("RepetitionTimeEffective", "DS", []),
        ("CsiImagePositionPatient", "FD", []),
        ("CsiImageOrientationPatient", "FD", []),
        ("CsiPixelSpacing", "FD", []),
        ("CsiSliceLocation", "FD", []),
        ("CsiSliceThickness", "FD", []),
        ("OriginalSeriesNumber", "IS", []),
        ("OriginalImageNumber", "IS", []),
        ("ImaAbsTablePosition", "SL", ["0", "0", "-1259"]),
        ("NonPlanarImage", "US", ["0"]),
        ("MoCoQMeasure", "US", []),
        ("LQAlgorithm", "SH", []),
        ("SlicePosition_PCS", "FD", ["-128.00000000", "-128.00000000", "0.00000000"]),
        ("RBMoCoTrans", "FD", []),
        ("RBMoCoRot", "FD", []),
        ("MultistepIndex", "IS", ["0"]),
        ("ImaRelTablePosition", "IS", ["0", "0", "0"]),
        ("ImaCoilString", "LO", ["HC1-7"]),
        ("RFSWDDataType", "SH", ["predicted"]),
        ("GSWDDataType", "SH", ["predicted"]),
        ("NormalizeManipulated", "IS", []),
        ("ImaPATModeText", "LO", ["p2"]),
        ("B_matrix", "FD", []),
        ("BandwidthPerPixelPhaseEncode", "FD", [f"{p.bandwidth / 10:.8f}"]),
        ("FMRIStimulLevel", "FD", []),
        (
            "MosaicRefAcqTimes",
            "FD",
            [f"{i * p.tr / max(n, 1):.8f}" for i in range(min(n, 40))] if "MOSAIC" in p.image_type else [],
        ),
        ("AutoInlineImageFilterEnabled", "SL", ["1"]),
        ("QCData", "FD", []),
        ("ExamLandmarks", "LO", []),
        (
            "ExamDataRole",
            "ST",
            ["<?xml version='1.0' encoding='UTF-8'?><ExamDataRole><Name>ImageData</Name></ExamDataRole>"],
        ),
    ]
    return _csa2(tags)


def _csa_series_header(p: _Protocol, kind: _Kind, n: int, serial: str) -> bytes:
    """Series header with a fake MrPhoenixProtocol (ASCCONV) text block."""
    lines = [
        "### ASCCONV BEGIN @Checksum=mpf:1234567890 ###",
        "ulVersion                                = 0x14b44b6",
        f'tSequenceFileName                        = "%SiemensSeq%\\{p.sequence_name.strip("*")}"',
        f'tProtocolName                            = "{p.description}"',
        f"sProtConsistencyInfo.flNominalB0        = {2.89362:.5f}",
        'sProtConsistencyInfo.tMeasuredBaselineString = "N4_VE11E_LATEST_20181129"',
        f"lSerialNumber                            = {serial}",
        f"alTR[0]                                  = {int(p.tr * 1000)}",
        f"alTE[0]                                  = {int(p.te * 1000)}",
        f"alTI[0]                                  = {int((p.ti or 0) * 1000)}",
        f"adFlipAngleDegree[0]                     = {p.flip}",
        f"sKSpace.lBaseResolution                  = {max(p.matrix)}",
        f"sKSpace.lPhaseEncodingLines              = {max(p.matrix)}",
        f"sKSpace.ucDimension                      = {4 if kind.mr_type == '3D' else 2}",
        f"sSliceArray.lSize                        = {n}",
    ]
    for i in range(n):
        lines += [
            f"sSliceArray.asSlice[{i}].dThickness      = {p.thickness}",
            f"sSliceArray.asSlice[{i}].dPhaseFOV       = 256",
            f"sSliceArray.asSlice[{i}].dReadoutFOV     = 256",
            f"sSliceArray.asSlice[{i}].sPosition.dTra  = {i * p.thickness - n * p.thickness / 2:.6f}",
            f"sSliceArray.asSlice[{i}].sNormal.dTra    = 1",
        ]
    for c in range(20):
        lines += [
            f'sCoilSelectMeas.aRxCoilSelectData[0].asList[{c}].sCoilElementID.tCoilID = "HeadNeck_64"',
            f"sCoilSelectMeas.aRxCoilSelectData[0].asList[{c}].sCoilElementID.lCoilCopy = 1",
            f'sCoilSelectMeas.aRxCoilSelectData[0].asList[{c}].sCoilElementID.tElement = "H{c + 1}"',
            f"sCoilSelectMeas.aRxCoilSelectData[0].asList[{c}].lElementSelected = 1",
            f"sCoilSelectMeas.aRxCoilSelectData[0].asList[{c}].lRxChannelConnected = {c + 1}",
        ]
    lines.append("### ASCCONV END ###")
    tags = [
        ("UsedPatientWeight", "IS", ["75"]),
        ("NumberOfPrescans", "IS", ["0"]),
        ("TransmitterCalibration", "DS", ["318.38900000"]),
        ("PhaseGradientAmplitude", "DS", ["0.00000000"]),
        ("ReadoutGradientAmplitude", "DS", ["0.00000000"]),
        ("SelectionGradientAmplitude", "DS", ["0.00000000"]),
        ("GradientDelayTime", "DS", ["36.00000000", "35.00000000", "31.00000000"]),
        ("RfWatchdogMask", "IS", ["0"]),
        ("RfPowerErrorIndicator", "DS", []),
        ("SarWholeBody", "DS", []),
        ("Sed", "DS", ["1000000.00000000", "60.29000000", "60.29000000"]),
        ("SequenceFileOwner", "SH", ["SIEMENS"]),
        ("Stim_mon_mode", "IS", ["2"]),
        ("Operation_mode_flag", "IS", ["2"]),
        ("dBdt_max", "DS", ["0.00000000"]),
        ("t_puls_max", "DS", ["0.00000000"]),
        ("dBdt_thresh", "DS", ["0.00000000"]),
        ("dBdt_limit", "DS", ["0.00000000"]),
        ("SW_korr_faktor", "DS", ["1.00000000"]),
        ("Stim_max_online", "DS", ["0.87011850", "17.96580124", "0.43633613"]),
        ("Stim_max_ges_norm_online", "DS", ["0.59880000"]),
        ("Stim_lim", "DS", ["45.73000336", "25.67000008", "39.59999847"]),
        ("Stim_faktor", "DS", ["1.00000000"]),
        ("CoilForGradient", "SH", ["void"]),
        ("CoilForGradient2", "SH", ["AS82"]),
        ("CoilTuningReflection", "DS", []),
        ("CoilID", "IS", ["255", "83", "238", "255", "255", "255", "255", "255", "255", "255", "255"]),
        ("MiscSequenceParam", "IS", ["0"] * 12),
        ("MrProtocolVersion", "IS", ["21710006"]),
        ("DataFileName", "LO", []),
        ("RepresentativeImage", "UI", []),
        ("PositivePCSDirections", "SH", ["+LPH"]),
        ("RelTablePosition", "IS", ["0", "0", "0"]),
        ("ReadoutOS", "FD", ["2.00000000"]),
        ("LongModelName", "LO", ["NUMARIS/4"]),
        ("SliceArrayConcatenations", "IS", ["1"]),
        ("SliceResolution", "DS", ["1.00000000"]),
        ("AbsTablePosition", "IS", ["-1259"]),
        ("AutoAlignMatrix", "FL", []),
        ("MeasurementIndex", "FL", []),
        ("CoilString", "LO", ["HC1-7"]),
        ("PATModeText", "LO", ["p2"]),
        ("PatReinPattern", "ST", ["1;HFS;75.00;15.00;3;0;2;-794981376"]),
        ("MrPhoenixProtocol", "ST", ["\n".join(lines)]),
    ]
    return _csa2(tags)


def _siemens_private(ds: Dataset, site: _Site, p: _Protocol, kind: _Kind, n: int) -> None:
    mr: dict[int, Any] = {
        0x08: "IMAGE NUM 4",
        0x09: "1.0",
        0x0B: "260000.0",
        0x0F: "Fast",
        0x11: "No",
        0x12: [0, 0, -1259],
        0x13: [0, 0, -1259],
        0x14: ["0", "0", "0"],
        0x15: [-128.0, -128.0, 0.0],  # SlicePosition_PCS, per instance
        0x17: "1.0",
        0x18: "2600",
    }
    if "MOSAIC" in p.image_type:
        mr[0x0A] = min(n, 64)
        mr[0x28] = round(p.bandwidth / 85.3, 3)
        mr[0x29] = [round(i * p.tr / 40, 2) for i in range(40)]
    if "DIFFUSION" in p.image_type:
        mr[0x0C] = "1000"
        mr[0x0D] = "DIRECTIONAL"
        mr[0x0E] = [0.57735, 0.57735, 0.57735]
        mr[0x27] = [333.3, 333.3, 333.3, 333.3, 333.3, 333.3]
    _private(ds, 0x0019, "SIEMENS MR HEADER", dict(sorted(mr.items())))
    _private(
        ds,
        0x0029,
        "SIEMENS CSA HEADER",
        {
            0x08: "IMAGE NUM 4",
            0x09: "20190312",
            0x10: _csa_image_header(p, kind, n),
            0x18: "MR",
            0x19: "20190312",
            0x20: _csa_series_header(p, kind, n, site.serial),
        },
    )
    _private(ds, 0x0029, "SIEMENS MEDCOM HEADER2", {0x60: "com"})
    _private(
        ds,
        0x0051,
        "SIEMENS MR HEADER",
        {
            0x08: "IMAGE NUM 4",
            0x09: "1.0",
            0x0B: f"{max(p.matrix)}p*{max(p.matrix)}",
            0x0E: {"sag": "Sag", "cor": "Cor", "tra": "Tra"}[kind.orientation],
            0x0F: "HC1-7",
            0x11: "p2",
            0x13: "+LPH",
        },
    )


def _ge_private(ds: Dataset, site: _Site, p: _Protocol, kind: _Kind, n: int, seed: int) -> None:
    _private(
        ds,
        0x0009,
        "GEMS_IDEN_01",
        {
            0x01: "GE_GENESIS_FF",
            0x02: site.station_name,
            0x04: "SIGNA",
            0xE3: _uid(seed, "ge-equipment"),
            0xE6: "27",
            0xE7: 1876543210,
        },
    )
    _private(
        ds,
        0x0019,
        "GEMS_ACQU_01",
        {
            0x0F: "1140.5",
            0x11: 0,
            0x12: 2,
            0x17: {"sag": 4, "cor": 8, "tra": 2}[kind.orientation],
            0x18: "I",
            0x19: _ds(-n * p.thickness / 2),
            0x1A: "S",
            0x1B: _ds(n * p.thickness / 2),
            0x1E: "240.0",
            0x23: "0.0",
            0x24: "0.0",
            0x25: 0,
            0x26: 0,
            0x2C: 0,
            0x87: "0.0",
            0x8F: 0,
            0x9B: 1,
            0x9C: p.sequence_name,
            0x9E: p.sequence_name.upper(),
            0xA1: 0,
            0xA7: "0.0",
            0xBB: "0.0",
            0xC0: 0,
            0xDF: "0.0",
            0xE0: "3.0" if "EP\\SE" in p.scanning_sequence else "0.0",
        },
    )
    _private(
        ds,
        0x0021,
        "GEMS_RELA_01",
        {
            0x03: 1,
            0x35: 1,
            0x36: 1,
            0x37: 1,
            0x4E: 0,
            0x4F: n,
            0x50: 1,
            0x51: "0.0",
            0x52: "0.0",
            0x53: "0.0",
            0x56: 1 if kind.mr_type == "3D" else 0,
            0x57: n if kind.mr_type == "3D" else 0,
            0x58: 0,
        },
    )
    _private(
        ds,
        0x0025,
        "GEMS_SERS_01",
        {
            0x06: 1,
            0x07: n,
            0x10: 0,
            0x11: 1,
            0x14: 0,
            0x17: 1,
            0x18: n,
            0x19: n,
            0x1A: f"{site.station_name}_6_0",
        },
    )
    _private(
        ds,
        0x0043,
        "GEMS_PARM_01",
        {
            0x01: 0,
            0x02: 12,
            0x03: -7,
            0x04: 3,
            0x06: 1,
            0x07: p.echo_train,
            0x0A: 1,
            0x0B: "66.5",
            0x0C: "80",
            0x0D: "0.0",
            0x0E: "0.0",
            0x1A: 0,
            0x1F: 0,
            0x2B: [4, 4, 0, 0],
            0x2C: 0,
            0x2D: "TH",
            0x32: 0,
            0x34: "0",
            0x35: 0,
            0x38: [0.0] * 24,
            0x39: ["0", "0", "0", "0"],
            0x40: [0.0, 0.0, 0.0, 0.0],
            0x42: [0, 0, 0, 0],
            0x61: _uid(seed, "ge-scanner-study", ds.StudyInstanceUID),
            0x6A: 0,
            0x6F: ["0", "0", "0", "0"],
            0x77: "ProScan",
            0x78: "27.0",
            0x79: n,
            0x83: ["2", "1"],
            0x95: "0:0:0",
            0x96: "PRODUCT",
            0x97: ["0", "0", "0", "0", "0", "0", "0", "0"],
        },
    )


def _philips_item(offsets: dict[int, Any]) -> Dataset:
    item = Dataset()
    _private(item, 0x2005, "Philips MR Imaging DD 001", offsets)
    return item


def _philips_private(ds: Dataset, p: _Protocol, kind: _Kind, n: int) -> None:
    _private(
        ds,
        0x2001,
        "Philips Imaging DD 001",
        {
            0x01: 0.0,
            0x02: "0",
            0x03: 1000.0 if "DIFFUSION" in p.image_type else 0.0,
            0x04: "I" if "DIFFUSION" in p.image_type else "0",
            0x06: "N",
            0x08: "1",
            0x0A: "1",  # Slice Number MR, per instance
            0x0B: {"sag": "SAGITTAL", "cor": "CORONAL", "tra": "TRANSVERSAL"}[kind.orientation],
            0x10: "NO",
            0x11: 0.0,
            0x12: "Y" if "FEEPI" in p.sequence_name else "N",
            0x13: 41 if p.scanning_sequence.count("EP") else 1,
            0x14: 1,
            0x15: n,
            0x17: 1,
            0x18: n,
            0x19: "N",
            0x1B: 0.0,
            0x1C: "INVERSION" if p.ti else "NONE",
            0x1F: "NO",
            0x20: p.sequence_name,
            0x21: "N",
            0x22: 1.2,
            0x23: _ds(p.flip),
            0x25: f"{p.te:.0f}",
        },
    )
    stacks = []
    for s in range(2):
        inner = _philips_item({0x81: "ENABLED", 0xA0: float(s + 1)})
        stacks.append(
            _philips_item(
                {
                    0x81: "STACK",
                    0x83: [inner],  # a private sequence inside a private sequence
                    0xA1: "STANDARD",
                    0xA2: "N",
                    0xA3: str(n),
                    0xA8: _ds(p.thickness),
                }
            )
        )
    _private(
        ds,
        0x2005,
        "Philips MR Imaging DD 001",
        {
            0x0D: 0.0,  # rescale intercept
            0x0E: 1.25,  # rescale slope
            0x11: "M",
            0x13: "N",
            0x14: "N",
            0x16: "N",
            0x20: 0,
            0x22: "0",
            0x30: float(p.tr),
            0x33: float(kind.seconds),
            0x35: "PIXEL",
            0x70: p.description,
            0x80: stacks,
            0xA1: "STANDARD",
            0xB0: 0.0,
            0xB1: 0.0,
            0xB2: 0.0,
        },
    )


# --------------------------------------------------------------------------
# standard header


def _series_template(
    seed: int,
    sess: _Session,
    site: _Site,
    kind_name: str,
    series: int,
    n: int,
    start: int,
    localizer_refs: list[str],
) -> Dataset:
    """Everything that is the same for all `n` instances of one series."""
    kind = _KINDS[kind_name]
    p = _PROTOCOLS[site.vendor][kind_name]
    pid = sess.label.split("-")[0]
    study_uid = _uid(seed, "study", sess.label)

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MRImageStorage
    meta.MediaStorageSOPInstanceUID = "1.2"  # set per instance
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = site.impl_class_uid
    meta.ImplementationVersionName = site.impl_version
    meta.SourceApplicationEntityTitle = f"AN_{site.station_name}"[:16]

    ds = Dataset()
    ds.file_meta = meta
    if site.charset:
        ds.SpecificCharacterSet = site.charset
    ds.ImageType = p.image_type.split("\\")
    ds.InstanceCreationDate = sess.study_date
    ds.InstanceCreationTime = _tm(start)
    ds.SOPClassUID = MRImageStorage
    ds.SOPInstanceUID = "1.2"
    ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = sess.study_date
    ds.StudyTime = sess.study_time + ".000000"
    ds.SeriesTime = _tm(start)
    ds.AcquisitionTime = ds.ContentTime = _tm(start)
    ds.AccessionNumber = sess.label
    ds.Modality = "MR"
    ds.Manufacturer = site.manufacturer
    ds.InstitutionName = site.name
    ds.InstitutionAddress = site.address
    ds.ReferringPhysicianName = site.referring
    ds.ReferringPhysicianTelephoneNumbers = "+1 555 0100"
    ds.StationName = "" if ("StationName", site.name) == EMPTY_AT_ONE_SITE else site.station_name
    ds.StudyDescription = "IBASH^Brain"
    ds.ProcedureCodeSequence = [_code("MRBRAIN", "L", "MR Brain without contrast")]
    ds.SeriesDescription = p.description
    ds.InstitutionalDepartmentName = site.department
    ds.PhysiciansOfRecord = site.referring
    ds.PerformingPhysicianName = site.performing
    ds.NameOfPhysiciansReadingStudy = site.referring
    ds.OperatorsName = site.operator
    ds.AdmittingDiagnosesDescription = "R51 Headache"
    ds.ManufacturerModelName = site.model
    ref_study = Dataset()
    ref_study.ReferencedSOPClassUID = _STUDY_MGMT_CLASS
    ref_study.ReferencedSOPInstanceUID = _uid(seed, "study-mgmt", sess.label)
    ds.ReferencedStudySequence = [ref_study]
    ref_pps = Dataset()
    ref_pps.ReferencedSOPClassUID = _MR_PPS_CLASS
    ref_pps.ReferencedSOPInstanceUID = _uid(seed, "mpps", sess.label)
    ds.ReferencedPerformedProcedureStepSequence = [ref_pps]
    refs = []
    for uid in localizer_refs:
        ref = Dataset()
        ref.ReferencedSOPClassUID = MRImageStorage
        ref.ReferencedSOPInstanceUID = uid
        refs.append(ref)
    if refs:
        ds.ReferencedImageSequence = refs

    ds.PatientName = sess.patient_name
    ds.PatientID = pid
    ds.IssuerOfPatientID = "IBASH"
    ds.PatientBirthDate = sess.birth_date
    ds.PatientSex = sess.sex
    other = Dataset()
    other.PatientID = f"MRN{int(pid) * 7 % 1000003:07d}"
    other.IssuerOfPatientID = site.name
    other.TypeOfPatientID = "TEXT"
    ds.OtherPatientIDsSequence = [other]
    ds.PatientAge = _age(sess.birth_date, sess.study_date)
    ds.PatientSize = "1.74" if sess.sex == "M" else "1.65"
    ds.PatientWeight = "82" if sess.sex == "M" else "61"
    ds.PatientAddress = f"{int(pid) % 97 + 1} Elm Street, Springfield"
    ds.PatientTelephoneNumbers = f"+1 555 {int(pid) % 10000:04d}"
    ds.AdditionalPatientHistory = sess.history
    ds.PatientComments = "Consent for research use on file"

    ds.BodyPartExamined = kind.body_part
    ds.ScanningSequence = p.scanning_sequence.split("\\")
    ds.SequenceVariant = p.sequence_variant.split("\\")
    ds.ScanOptions = p.scan_options.split("\\")
    ds.MRAcquisitionType = kind.mr_type
    ds.SequenceName = p.sequence_name
    ds.AngioFlag = "N"
    ds.SliceThickness = _ds(p.thickness)
    ds.RepetitionTime = _ds(p.tr)
    ds.EchoTime = _ds(p.te)
    if p.ti is not None:
        ds.InversionTime = _ds(p.ti)
    ds.NumberOfAverages = "1"
    ds.ImagingFrequency = _ds(42.577478 * site.field_strength)
    ds.ImagedNucleus = "1H"
    ds.EchoNumbers = "1"
    ds.MagneticFieldStrength = _ds(site.field_strength)
    ds.SpacingBetweenSlices = _ds(p.thickness * (1.0 if kind.mr_type == "3D" else 1.2))
    ds.NumberOfPhaseEncodingSteps = str(max(p.matrix))
    ds.EchoTrainLength = str(p.echo_train)
    ds.PercentSampling = "100"
    ds.PercentPhaseFieldOfView = "100"
    ds.PixelBandwidth = _ds(p.bandwidth)
    ds.DeviceSerialNumber = site.serial
    ds.SoftwareVersions = site.software.split("\\")
    ds.ProtocolName = p.description
    ds.ReceiveCoilName = site.coil
    ds.TransmitCoilName = "Body"
    ds.AcquisitionMatrix = list(p.matrix)
    ds.InPlanePhaseEncodingDirection = "ROW" if p.matrix[1] else "COL"
    ds.FlipAngle = _ds(p.flip)
    ds.VariableFlipAngleFlag = "N"
    ds.SAR = _ds(0.05 + p.flip / 400)
    ds.dBdt = "0"
    ds.PatientPosition = "HFS"

    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = _uid(seed, "series", sess.label, series)
    ds.StudyID = sess.label
    ds.SeriesNumber = series
    ds.AcquisitionNumber = 1
    ds.InstanceNumber = 1
    ds.ImagePositionPatient = [0.0, 0.0, 0.0]
    ds.ImageOrientationPatient = [_ds(v) for v in _IOP[kind.orientation]]
    ds.FrameOfReferenceUID = _uid(seed, "for", sess.label)
    ds.PositionReferenceIndicator = ""
    ds.SliceLocation = "0"
    ds.ImageComments = sess.image_comment

    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = ROWS
    ds.Columns = COLUMNS
    ds.PixelSpacing = [_ds(p.pixel_spacing)] * 2
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.SmallestImagePixelValue = 0
    ds.LargestImagePixelValue = 0
    ds.WindowCenter = "600"
    ds.WindowWidth = "1200"
    ds.WindowCenterWidthExplanation = "Algo1"

    ds.RequestingPhysician = site.referring
    ds.RequestingService = "Neurology"
    ds.RequestedProcedureDescription = "MRI brain research protocol"
    ds.StudyComments = f"IBASH study visit {sess.label}"
    ds.PerformedProcedureStepStartDate = sess.study_date
    ds.PerformedProcedureStepStartTime = sess.study_time
    ds.PerformedProcedureStepID = sess.label
    ds.PerformedProcedureStepDescription = "IBASH^Brain"
    ds.PerformedProtocolCodeSequence = [_code(f"IBASH-{kind_name.upper()}", "99IBASH", p.description)]
    req = Dataset()
    req.RequestedProcedureID = sess.label
    req.ScheduledProcedureStepDescription = "MRI brain research protocol"
    req.ScheduledProcedureStepID = f"{sess.label}-1"
    protocol_code = _code("IBASH-BRAIN", "99IBASH", "IBASH brain protocol")
    protocol_code.CodingSchemeVersion = "1.0"
    req.ScheduledProtocolCodeSequence = [protocol_code]
    ds.RequestAttributesSequence = [req]

    if site.vendor == "siemens":
        _siemens_private(ds, site, p, kind, n)
    elif site.vendor == "ge":
        _ge_private(ds, site, p, kind, n, seed)
    else:
        _philips_private(ds, p, kind, n)

    ds.PixelData = b"\0\0" * (ROWS * COLUMNS)
    if ("DataSetTrailingPadding", site.name) == AFTER_PIXEL_DATA:
        ds.DataSetTrailingPadding = _TRAILING_PADDING
    return ds


def _pixels(instance: int, series: int) -> tuple[bytes, int, int]:
    """Tiny deterministic 12-bit image plus its min and max."""
    values = [
        (x * 31 + y * 17 + instance * 13 + series) % 1000 + (400 if 4 <= x < 12 and 4 <= y < 12 else 0)
        for y in range(ROWS)
        for x in range(COLUMNS)
    ]
    return struct.pack(f"<{len(values)}H", *values), min(values), max(values)


class _SeriesWriter:
    """Write one series' files, encoding its constant elements only once.

    ``dcmwrite`` re-encodes all ~200 elements for every file, which made the
    default sample take ~8 s; here only the few per-instance elements are
    encoded per file. The output is byte-identical to ``dcmwrite(...,
    enforce_file_format=True)`` of the same dataset (the tests check that
    files round-trip through pydicom unchanged).
    """

    def __init__(self, ds: Dataset, dynamic: set[BaseTag]) -> None:
        correct_ambiguous_vr(ds, True)  # pin "OB or OW" etc. once, as dcmwrite would
        self._ds = ds
        self._encodings = ds.get("SpecificCharacterSet", default_encoding)
        self._parts: list[bytes | BaseTag] = []
        run = bytearray()
        for tag in sorted(ds.keys()):
            if tag in dynamic:
                self._parts += [bytes(run), tag]
                run.clear()
            else:
                run += self._encode(tag)
        self._parts.append(bytes(run))

    def _encode(self, tag: BaseTag) -> bytes:
        fp = DicomBytesIO()
        fp.is_little_endian, fp.is_implicit_VR = True, False
        write_data_element(fp, self._ds[tag], self._encodings)
        return fp.getvalue()

    def write(self, path: Path, values: dict[BaseTag, Any]) -> None:
        """Set the per-instance values (keeping each element's VR) and write."""
        for tag, value in values.items():
            self._ds[tag].value = value
        meta = self._ds.file_meta
        meta.MediaStorageSOPInstanceUID = self._ds.SOPInstanceUID
        fp = DicomBytesIO()
        fp.is_little_endian, fp.is_implicit_VR = True, False
        fp.write(b"\0" * 128 + b"DICM")
        write_file_meta_info(fp, meta, enforce_standard=True)
        chunks = [fp.getvalue()]
        chunks += [part if isinstance(part, bytes) else self._encode(part) for part in self._parts]
        path.write_bytes(b"".join(chunks))


# --------------------------------------------------------------------------
# stray files


def _catalog_xml(root: Path, files: list[SampleFile]) -> bytes:
    """An XNAT-like catalog that a download tool drops next to the data."""
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<cat:Catalog xmlns:cat="http://nrg.wustl.edu/catalog" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" ID="IBASH_export">',
        "  <cat:entries>",
    ]
    for f in files:
        rel = f.path.relative_to(root).as_posix()
        lines.append(
            f"    <cat:entry ID={quoteattr(f.path.name)} URI={quoteattr(rel)} "
            f'UID={quoteattr(f.sop_instance_uid or "")} format="DICOM" content="RAW"/>'
        )
    lines += ["  </cat:entries>", "</cat:Catalog>", ""]
    return "\n".join(lines).encode()


def _ds_store(rng: random.Random) -> bytes:
    """Binary junk shaped like a macOS .DS_Store (Bud1 magic, 6 KB)."""
    head = b"\x00\x00\x00\x01Bud1\x00\x00\x10\x00\x00\x00\x08\x00"
    return head + rng.randbytes(6148 - len(head))


# --------------------------------------------------------------------------
# public entry point


def make_sample(
    out: Path,
    scale: int = 1,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
) -> Sample:
    """Write the data set under `out` (created if missing; raise ValueError if it exists and is not empty).

    Deterministic: the same ``(scale, seed)`` gives byte-identical files and
    names; the seed changes UIDs, file-name suffixes and the .DS_Store junk.
    """
    if scale < 1:
        raise ValueError(f"scale must be >= 1, got {scale}")
    root = Path(out).absolute()
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise ValueError(f"{root} exists and is not an empty directory")
    root.mkdir(parents=True, exist_ok=True)

    rng = random.Random(seed)
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    written: list[SampleFile] = []

    for sess in _SESSION_TABLE:
        site = _SITE_BY_NAME[sess.site]
        clock = _secs(sess.study_time) + 45
        localizer_refs: list[str] = []
        for index, kind_name in enumerate(sess.kinds):
            kind = _KINDS[kind_name]
            series = 501 + 100 * index
            count = kind.images * scale
            sop_uids = [_uid(seed, "sop", sess.label, series, i) for i in range(1, count + 1)]
            ds = _series_template(seed, sess, site, kind_name, series, count, clock, localizer_refs[:3])
            if kind_name == "localizer":
                localizer_refs = sop_uids
            dynamic = {_SOP_UID, _ACQ_TIME, _CONTENT_TIME, _INSTANCE, _POSITION, _SLICE_LOC, _MIN, _MAX, _PIXELS}
            dynamic.update(t for t in _PER_INSTANCE_PRIVATE if t in ds)
            writer = _SeriesWriter(ds, dynamic)
            folder = root / sess.label / str(series) / "DICOM"
            folder.mkdir(parents=True)

            axis = _NORMAL_AXIS[kind.orientation]
            spacing = float(ds.SpacingBetweenSlices)
            first = -spacing * (count - 1) / 2
            step = kind.seconds / count
            for i, sop in enumerate(sop_uids, start=1):
                where = first + (i - 1) * spacing
                pos = [-120.0, -120.0, -120.0]
                pos[axis] = round(where, 4)
                t = _tm(clock + (i - 1) * step)
                pixels, lo, hi = _pixels(i, series)
                values: dict[BaseTag, Any] = {
                    _SOP_UID: sop,
                    _ACQ_TIME: t,
                    _CONTENT_TIME: t,
                    _INSTANCE: i,
                    _POSITION: [_ds(v) for v in pos],
                    _SLICE_LOC: _ds(where),
                    _MIN: lo,
                    _MAX: hi,
                    _PIXELS: pixels,
                }
                if _SIEMENS_PCS in ds:
                    values[_SIEMENS_PCS] = pos
                if _PHILIPS_SLICE in ds:
                    values[_PHILIPS_SLICE] = str(i)
                suffix = "".join(rng.choices(alphabet, k=6))
                path = folder / f"{sess.label}.MR.IBASH.{series}.{i}.{sess.study_date}.{t[:6]}.{suffix}.dcm"
                writer.write(path, values)
                written.append(SampleFile(path, True, sess.label, site.name, series, sop))
            if progress is not None:
                progress(count)
            clock += kind.seconds + 60

        if sess.label == _DSSTORE_SESSION:
            junk = root / sess.label / ".DS_Store"
            junk.write_bytes(_ds_store(rng))
            written.append(SampleFile(junk, False, sess.label, site.name, None, None))
            if progress is not None:
                progress(1)

    catalog = root / "catalog.xml"
    catalog.write_bytes(_catalog_xml(root, [f for f in written if f.is_dicom]))
    written.append(SampleFile(catalog, False, None, None, None, None))
    if progress is not None:
        progress(1)
    return Sample(root=root, files=tuple(written))

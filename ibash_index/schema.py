"""The database schema as SQLAlchemy Core tables: the one description migrations are checked against.

Surrogate keys are `id`; foreign keys are `<table>_id`. DICOM attributes copied into the
hierarchy tables are named after their keyword in snake case, so `series.series_description`
is (0008,103E) SeriesDescription. Comments become column descriptions in Datasette.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Table,
    Text,
)

# Stable constraint names keep Alembic batch migrations on SQLite deterministic
# (https://alembic.sqlalchemy.org/en/latest/naming.html).
# Paths compare byte-wise everywhere (the first file by path fills a study's row), so on
# PostgreSQL they use the "C" collation rather than the database's locale.
PathText = Text().with_variant(Text(collation="C"), "postgresql")

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

builds = Table(
    "builds",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("started_at", Text, nullable=False, comment="UTC, ISO 8601"),
    Column("finished_at", Text, comment="UTC, ISO 8601; NULL while running or if killed"),
    Column("status", Text, nullable=False, comment="running, complete, interrupted, failed"),
    Column("tool_version", Text, nullable=False),
    Column("pydicom_version", Text, nullable=False),
    Column("roots", Text, nullable=False, comment="JSON list of the folders crawled"),
    Column("options", Text, nullable=False, comment="JSON object of the build options"),
    Column("files_seen", Integer, nullable=False, default=0),
    Column("indexed", Integer, nullable=False, default=0),
    Column("unchanged", Integer, nullable=False, default=0),
    Column("not_dicom", Integer, nullable=False, default=0),
    Column("errors", Integer, nullable=False, default=0),
    Column("skipped", Integer, nullable=False, default=0),
    Column("removed", Integer, nullable=False, default=0),
    Column("elements", Integer, nullable=False, default=0, comment="elements written by this build"),
    Column("seconds", Float),
    comment="One row per run of `ibash-index build`.",
)

files = Table(
    "files",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("path", PathText, nullable=False, comment="absolute path; bytes that are not UTF-8 shown as \\xNN"),
    Column("path_bytes", LargeBinary, nullable=False, unique=True, comment="the path exactly as the OS gives it"),
    Column("root", Text, nullable=False, comment="the crawled folder the file was found under"),
    Column("size", BigInteger, comment="bytes, when the file was read"),
    Column("mtime_ns", BigInteger, comment="modification time in ns, when the file was read"),
    Column("status", Text, nullable=False, comment="indexed, not_dicom, error or skipped"),
    Column("reason", Text, comment="why the file is not indexed"),
    Column("warning", Text, comment="indexed, but something was odd (e.g. truncated data)"),
    Column("build_id", Integer, ForeignKey("builds.id"), nullable=False, comment="last build that read it"),
    comment="Every file the crawl saw, DICOM or not, and what became of it.",
)

studies = Table(
    "studies",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("study_instance_uid", Text, nullable=False, unique=True, comment="(0020,000D); '' when missing"),
    Column("site", Text, comment="InstitutionName by default; see build --site-from"),
    Column("patient_id", Text, comment="(0010,0020) PatientID"),
    Column("patient_name", Text, comment="(0010,0010) PatientName"),
    Column("patient_birth_date", Text, comment="(0010,0030)"),
    Column("patient_sex", Text, comment="(0010,0040)"),
    Column("study_date", Text, comment="(0008,0020) YYYYMMDD"),
    Column("study_time", Text, comment="(0008,0030)"),
    Column("study_description", Text, comment="(0008,1030)"),
    Column("accession_number", Text, comment="(0008,0050)"),
    Column("dicom_study_id", Text, comment="(0020,0010) StudyID"),
    Column("key_path", PathText, comment="file whose values fill this row (the first by path)"),
    comment="One row per Study Instance UID.",
)

series = Table(
    "series",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("study_id", Integer, ForeignKey("studies.id"), nullable=False),
    Column("series_instance_uid", Text, nullable=False, comment="(0020,000E); '' when missing"),
    Column("series_number", Integer, comment="(0020,0011)"),
    Column("modality", Text, comment="(0008,0060)"),
    Column("series_description", Text, comment="(0008,103E)"),
    Column("protocol_name", Text, comment="(0018,1030)"),
    Column("manufacturer", Text, comment="(0008,0070)"),
    Column("manufacturer_model_name", Text, comment="(0008,1090)"),
    Column("software_versions", Text, comment="(0018,1020), values joined by \\"),
    Column("magnetic_field_strength", Float, comment="(0018,0087) tesla"),
    Column("institution_name", Text, comment="(0008,0080)"),
    Column("station_name", Text, comment="(0008,1010)"),
    Column("series_date", Text, comment="(0008,0021)"),
    Column("series_time", Text, comment="(0008,0031)"),
    Column("key_path", PathText, comment="file whose values fill this row (the first by path)"),
    Index("uq_series_study_uid", "study_id", "series_instance_uid", unique=True),
    comment="One row per Series Instance UID within a study.",
)

instances = Table(
    "instances",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("file_id", Integer, ForeignKey("files.id"), nullable=False, unique=True),
    Column("series_id", Integer, ForeignKey("series.id"), nullable=False, index=True),
    Column("site", Text, comment="InstitutionName by default; see build --site-from"),
    Column(
        "sop_instance_uid", Text, nullable=False, index=True, comment="(0008,0018); not unique: duplicates are kept"
    ),
    Column("sop_class_uid", Text, comment="(0008,0016)"),
    Column("instance_number", Integer, comment="(0020,0013)"),
    Column("transfer_syntax_uid", Text, comment="(0002,0010)"),
    Column("acquisition_time", Text, comment="(0008,0032)"),
    Column("element_count", Integer, nullable=False, comment="elements extracted, all depths: the rows in `elements`"),
    comment="One row per DICOM file indexed.",
)

tags = Table(
    "tags",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("tag", BigInteger, nullable=False, comment="(group << 16) | element"),
    Column("private_creator", Text, nullable=False, comment="'' for public tags"),
    Column("tag_text", Text, nullable=False, comment="(GGGG,EEEE)"),
    Column("tag_hex", Text, nullable=False, comment="GGGGEEEE"),
    Column("private_tag", Text, comment="private tags as (GGGG,xxEE), the form that is stable across blocks"),
    Column("keyword", Text, nullable=False, comment="DICOM keyword; '' for private and unknown tags"),
    Column("name", Text, nullable=False, comment="dictionary name, public or private; '' when unknown"),
    Column("dictionary_vr", Text, comment="VR from the dictionary"),
    Column("dictionary_vm", Text, comment="VM from the dictionary"),
    Column("retired", Integer, nullable=False, default=0),
    Index("uq_tags_tag_creator", "tag", "private_creator", unique=True),
    Index("ix_tags_keyword", "keyword"),
    comment="Each tag seen (with its private creator), named from pydicom's dictionaries.",
)

elements = Table(
    "elements",
    metadata,
    Column("instance_id", Integer, ForeignKey("instances.id"), primary_key=True),
    Column("seq", Integer, primary_key=True, comment="position in a depth-first walk of the file, from 0"),
    Column("parent_seq", Integer, comment="seq of the sequence element holding this one; NULL at top level"),
    Column("item", Integer, comment="index of the sequence item holding this one, from 0"),
    Column("depth", Integer, nullable=False, comment="0 at top level"),
    Column("tag_id", Integer, ForeignKey("tags.id"), nullable=False, index=True),
    Column("vr", Text, nullable=False),
    Column("vm", Integer, nullable=False, comment="value multiplicity; items in a sequence"),
    Column("value", Text, comment="decoded text, values joined by \\; NULL for binary VRs and sequences"),
    Column("number", Float, comment="the value as a number when it is one numeric value"),
    Column("length", BigInteger, comment="value length in bytes as stored in the file"),
    Column("hash", Text, comment="SHA-1 of binary values"),
    Column("data", LargeBinary, comment="binary values up to --max-blob bytes"),
    Column("element_path", Text, comment="path inside sequences, e.g. Seq[0].Keyword; NULL at top level"),
    Column("flag", Text, comment="why the value could not be decoded; the raw bytes are then in data"),
    comment="Every data element of every instance, at every depth. Read it through element_view.",
    sqlite_with_rowid=False,
)

reports = Table(
    "reports",
    metadata,
    Column("name", Text, primary_key=True),
    Column("title", Text, nullable=False),
    Column("description", Text, nullable=False),
    Column("params", Text, nullable=False, comment="JSON object: parameter name to its help"),
    Column("sql", Text, nullable=False),
    comment="The saved reports of `ibash-index report`, for SQLite browsers.",
)

# The tables the saved reports need live beside them; imported here so that Alembic's check
# (tests/test_migrations.py) sees every table on this metadata.
from . import report_tables  # noqa: E402, F401

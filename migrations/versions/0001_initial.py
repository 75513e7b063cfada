"""Initial schema: builds, files, studies, series, instances, tags, elements, reports; element_view.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


# Paths compare byte-wise on every engine (see schema.PathText).
PATH_TEXT = sa.Text().with_variant(sa.Text(collation="C"), "postgresql")

# One row per element at every depth, with names instead of ids: what a SQLite browser shows.
# private_creator is NULL for public tags and '' for a private element whose creator is missing.
# Top-level elements store no element_path (it is their keyword), which saves a column of text.
ELEMENT_VIEW = """
CREATE VIEW element_view AS
SELECT f.path AS path,
       i.site AS site,
       st.study_instance_uid AS study_uid,
       se.series_instance_uid AS series_uid,
       i.sop_instance_uid AS sop_uid,
       t.tag_text AS tag,
       t.keyword AS keyword,
       t.name AS name,
       e.vr AS vr,
       e.vm AS vm,
       e.value AS value,
       e.number AS number,
       CASE WHEN t.private_tag IS NOT NULL THEN t.private_creator END AS private_creator,
       COALESCE(e.element_path, CASE WHEN t.keyword <> '' THEN t.keyword ELSE t.tag_text END) AS element_path,
       e.depth AS depth,
       e.item AS item,
       e.length AS length,
       e.hash AS hash,
       e.flag AS flag,
       e.instance_id AS instance_id,
       e.seq AS seq,
       e.parent_seq AS parent_seq
FROM elements AS e
JOIN tags AS t ON t.id = e.tag_id
JOIN instances AS i ON i.id = e.instance_id
JOIN files AS f ON f.id = i.file_id
JOIN series AS se ON se.id = i.series_id
JOIN studies AS st ON st.id = se.study_id
"""


def upgrade() -> None:
    op.create_table(
        "builds",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.Text(), nullable=False, comment="UTC, ISO 8601"),
        sa.Column("finished_at", sa.Text(), nullable=True, comment="UTC, ISO 8601; NULL while running or if killed"),
        sa.Column("status", sa.Text(), nullable=False, comment="running, complete, interrupted, failed"),
        sa.Column("tool_version", sa.Text(), nullable=False),
        sa.Column("pydicom_version", sa.Text(), nullable=False),
        sa.Column("roots", sa.Text(), nullable=False, comment="JSON list of the folders crawled"),
        sa.Column("options", sa.Text(), nullable=False, comment="JSON object of the build options"),
        sa.Column("files_seen", sa.Integer(), nullable=False),
        sa.Column("indexed", sa.Integer(), nullable=False),
        sa.Column("unchanged", sa.Integer(), nullable=False),
        sa.Column("not_dicom", sa.Integer(), nullable=False),
        sa.Column("errors", sa.Integer(), nullable=False),
        sa.Column("skipped", sa.Integer(), nullable=False),
        sa.Column("removed", sa.Integer(), nullable=False),
        sa.Column("elements", sa.Integer(), nullable=False, comment="elements written by this build"),
        sa.Column("seconds", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_builds")),
        comment="One row per run of `ibash-index build`.",
    )
    op.create_table(
        "reports",
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("params", sa.Text(), nullable=False, comment="JSON object: parameter name to its help"),
        sa.Column("sql", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_reports")),
        comment="The saved reports of `ibash-index report`, for SQLite browsers.",
    )
    op.create_table(
        "studies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_instance_uid", sa.Text(), nullable=False, comment="(0020,000D); '' when missing"),
        sa.Column("site", sa.Text(), nullable=True, comment="InstitutionName by default; see build --site-from"),
        sa.Column("patient_id", sa.Text(), nullable=True, comment="(0010,0020) PatientID"),
        sa.Column("patient_name", sa.Text(), nullable=True, comment="(0010,0010) PatientName"),
        sa.Column("patient_birth_date", sa.Text(), nullable=True, comment="(0010,0030)"),
        sa.Column("patient_sex", sa.Text(), nullable=True, comment="(0010,0040)"),
        sa.Column("study_date", sa.Text(), nullable=True, comment="(0008,0020) YYYYMMDD"),
        sa.Column("study_time", sa.Text(), nullable=True, comment="(0008,0030)"),
        sa.Column("study_description", sa.Text(), nullable=True, comment="(0008,1030)"),
        sa.Column("accession_number", sa.Text(), nullable=True, comment="(0008,0050)"),
        sa.Column("dicom_study_id", sa.Text(), nullable=True, comment="(0020,0010) StudyID"),
        sa.Column("key_path", PATH_TEXT, nullable=True, comment="file whose values fill this row (the first by path)"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_studies")),
        sa.UniqueConstraint("study_instance_uid", name=op.f("uq_studies_study_instance_uid")),
        comment="One row per Study Instance UID.",
    )
    op.create_table(
        "tags",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tag", sa.BigInteger(), nullable=False, comment="(group << 16) | element"),
        sa.Column("private_creator", sa.Text(), nullable=False, comment="'' for public tags"),
        sa.Column("tag_text", sa.Text(), nullable=False, comment="(GGGG,EEEE)"),
        sa.Column("tag_hex", sa.Text(), nullable=False, comment="GGGGEEEE"),
        sa.Column(
            "private_tag",
            sa.Text(),
            nullable=True,
            comment="private tags as (GGGG,xxEE), the form that is stable across blocks",
        ),
        sa.Column("keyword", sa.Text(), nullable=False, comment="DICOM keyword; '' for private and unknown tags"),
        sa.Column("name", sa.Text(), nullable=False, comment="dictionary name, public or private; '' when unknown"),
        sa.Column("dictionary_vr", sa.Text(), nullable=True, comment="VR from the dictionary"),
        sa.Column("dictionary_vm", sa.Text(), nullable=True, comment="VM from the dictionary"),
        sa.Column("retired", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tags")),
        comment="Each tag seen (with its private creator), named from pydicom's dictionaries.",
    )
    with op.batch_alter_table("tags", schema=None) as batch_op:
        batch_op.create_index("ix_tags_keyword", ["keyword"], unique=False)
        batch_op.create_index("uq_tags_tag_creator", ["tag", "private_creator"], unique=True)

    op.create_table(
        "files",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("path", PATH_TEXT, nullable=False, comment="absolute path; bytes that are not UTF-8 shown as \\xNN"),
        sa.Column("path_bytes", sa.LargeBinary(), nullable=False, comment="the path exactly as the OS gives it"),
        sa.Column("root", sa.Text(), nullable=False, comment="the crawled folder the file was found under"),
        sa.Column("size", sa.BigInteger(), nullable=True, comment="bytes, when the file was read"),
        sa.Column(
            "mtime_ns", sa.BigInteger(), nullable=True, comment="modification time in ns, when the file was read"
        ),
        sa.Column("status", sa.Text(), nullable=False, comment="indexed, not_dicom, error or skipped"),
        sa.Column("reason", sa.Text(), nullable=True, comment="why the file is not indexed"),
        sa.Column("warning", sa.Text(), nullable=True, comment="indexed, but something was odd (e.g. truncated data)"),
        sa.Column("build_id", sa.Integer(), nullable=False, comment="last build that read it"),
        sa.ForeignKeyConstraint(["build_id"], ["builds.id"], name=op.f("fk_files_build_id_builds")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_files")),
        sa.UniqueConstraint("path_bytes", name=op.f("uq_files_path_bytes")),
        comment="Every file the crawl saw, DICOM or not, and what became of it.",
    )
    op.create_table(
        "series",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("series_instance_uid", sa.Text(), nullable=False, comment="(0020,000E); '' when missing"),
        sa.Column("series_number", sa.Integer(), nullable=True, comment="(0020,0011)"),
        sa.Column("modality", sa.Text(), nullable=True, comment="(0008,0060)"),
        sa.Column("series_description", sa.Text(), nullable=True, comment="(0008,103E)"),
        sa.Column("protocol_name", sa.Text(), nullable=True, comment="(0018,1030)"),
        sa.Column("manufacturer", sa.Text(), nullable=True, comment="(0008,0070)"),
        sa.Column("manufacturer_model_name", sa.Text(), nullable=True, comment="(0008,1090)"),
        sa.Column("software_versions", sa.Text(), nullable=True, comment="(0018,1020), values joined by \\"),
        sa.Column("magnetic_field_strength", sa.Float(), nullable=True, comment="(0018,0087) tesla"),
        sa.Column("institution_name", sa.Text(), nullable=True, comment="(0008,0080)"),
        sa.Column("station_name", sa.Text(), nullable=True, comment="(0008,1010)"),
        sa.Column("series_date", sa.Text(), nullable=True, comment="(0008,0021)"),
        sa.Column("series_time", sa.Text(), nullable=True, comment="(0008,0031)"),
        sa.Column("key_path", PATH_TEXT, nullable=True, comment="file whose values fill this row (the first by path)"),
        sa.ForeignKeyConstraint(["study_id"], ["studies.id"], name=op.f("fk_series_study_id_studies")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_series")),
        comment="One row per Series Instance UID within a study.",
    )
    with op.batch_alter_table("series", schema=None) as batch_op:
        batch_op.create_index("uq_series_study_uid", ["study_id", "series_instance_uid"], unique=True)

    op.create_table(
        "instances",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("file_id", sa.Integer(), nullable=False),
        sa.Column("series_id", sa.Integer(), nullable=False),
        sa.Column("site", sa.Text(), nullable=True, comment="InstitutionName by default; see build --site-from"),
        sa.Column(
            "sop_instance_uid", sa.Text(), nullable=False, comment="(0008,0018); not unique: duplicates are kept"
        ),
        sa.Column("sop_class_uid", sa.Text(), nullable=True, comment="(0008,0016)"),
        sa.Column("instance_number", sa.Integer(), nullable=True, comment="(0020,0013)"),
        sa.Column("transfer_syntax_uid", sa.Text(), nullable=True, comment="(0002,0010)"),
        sa.Column("acquisition_time", sa.Text(), nullable=True, comment="(0008,0032)"),
        sa.Column(
            "element_count",
            sa.Integer(),
            nullable=False,
            comment="elements extracted, all depths: the rows in `elements`",
        ),
        sa.ForeignKeyConstraint(["file_id"], ["files.id"], name=op.f("fk_instances_file_id_files")),
        sa.ForeignKeyConstraint(["series_id"], ["series.id"], name=op.f("fk_instances_series_id_series")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_instances")),
        sa.UniqueConstraint("file_id", name=op.f("uq_instances_file_id")),
        comment="One row per DICOM file indexed.",
    )
    with op.batch_alter_table("instances", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_instances_series_id"), ["series_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_instances_sop_instance_uid"), ["sop_instance_uid"], unique=False)

    op.create_table(
        "elements",
        sa.Column("instance_id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False, comment="position in a depth-first walk of the file, from 0"),
        sa.Column(
            "parent_seq",
            sa.Integer(),
            nullable=True,
            comment="seq of the sequence element holding this one; NULL at top level",
        ),
        sa.Column("item", sa.Integer(), nullable=True, comment="index of the sequence item holding this one, from 0"),
        sa.Column("depth", sa.Integer(), nullable=False, comment="0 at top level"),
        sa.Column("tag_id", sa.Integer(), nullable=False),
        sa.Column("vr", sa.Text(), nullable=False),
        sa.Column("vm", sa.Integer(), nullable=False, comment="value multiplicity; items in a sequence"),
        sa.Column(
            "value",
            sa.Text(),
            nullable=True,
            comment="decoded text, values joined by \\; NULL for binary VRs and sequences",
        ),
        sa.Column("number", sa.Float(), nullable=True, comment="the value as a number when it is one numeric value"),
        sa.Column("length", sa.BigInteger(), nullable=True, comment="value length in bytes as stored in the file"),
        sa.Column("hash", sa.Text(), nullable=True, comment="SHA-1 of binary values"),
        sa.Column("data", sa.LargeBinary(), nullable=True, comment="binary values up to --max-blob bytes"),
        sa.Column(
            "element_path",
            sa.Text(),
            nullable=True,
            comment="path inside sequences, e.g. Seq[0].Keyword; NULL at top level",
        ),
        sa.Column(
            "flag",
            sa.Text(),
            nullable=True,
            comment="why the value could not be decoded; the raw bytes are then in data",
        ),
        sa.ForeignKeyConstraint(["instance_id"], ["instances.id"], name=op.f("fk_elements_instance_id_instances")),
        sa.ForeignKeyConstraint(["tag_id"], ["tags.id"], name=op.f("fk_elements_tag_id_tags")),
        sa.PrimaryKeyConstraint("instance_id", "seq", name=op.f("pk_elements")),
        comment="Every data element of every instance, at every depth. Read it through element_view.",
        sqlite_with_rowid=False,
    )
    with op.batch_alter_table("elements", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_elements_tag_id"), ["tag_id"], unique=False)

    op.execute(ELEMENT_VIEW)


def downgrade() -> None:
    op.execute("DROP VIEW element_view")
    with op.batch_alter_table("elements", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_elements_tag_id"))

    op.drop_table("elements")
    with op.batch_alter_table("instances", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_instances_sop_instance_uid"))
        batch_op.drop_index(batch_op.f("ix_instances_series_id"))

    op.drop_table("instances")
    with op.batch_alter_table("series", schema=None) as batch_op:
        batch_op.drop_index("uq_series_study_uid")

    op.drop_table("series")
    op.drop_table("files")
    with op.batch_alter_table("tags", schema=None) as batch_op:
        batch_op.drop_index("uq_tags_tag_creator")
        batch_op.drop_index("ix_tags_keyword")

    op.drop_table("tags")
    op.drop_table("studies")
    op.drop_table("reports")
    op.drop_table("builds")

"""Report summaries: the summary_* tables the slow reports read instead of `elements`.

The build keeps them up to date (ibash_index/summaries.py); this migration creates them and
fills them from the elements of a database built by an earlier version.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

from ibash_index import summaries

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "summary_phi_groups",
        sa.Column("site", sa.Text(), nullable=False),
        sa.Column("tag", sa.Text(), nullable=False, comment="COALESCE(tags.private_tag, tags.tag_text)"),
        sa.Column("name", sa.Text(), nullable=False, comment="keyword, else dictionary name"),
        sa.Column("private_creator", sa.Text(), nullable=False),
        sa.Column(
            "category", sa.Text(), nullable=False, comment="PS3.15 E.1-1, person name, date or time, UID, private text"
        ),
        sa.Column("action", sa.Text(), nullable=False, comment="PS3.15 Basic Profile action code; '' when not listed"),
        sa.Column("instances", sa.Integer(), nullable=False, comment="instances holding such an element"),
        sa.Column("top_elements", sa.Integer(), nullable=False, comment="such elements at top level"),
        sa.Column("nested_elements", sa.Integer(), nullable=False, comment="such elements inside sequences"),
        sa.PrimaryKeyConstraint(
            "site", "tag", "name", "private_creator", "category", "action", name=op.f("pk_summary_phi_groups")
        ),
        comment="Per site, tag and category, elements that may identify a person, with a value (phi).",
    )
    with op.batch_alter_table("summary_phi_groups", schema=None) as batch_op:
        batch_op.create_index(
            "ix_summary_phi_groups_zero",
            ["instances"],
            unique=False,
            sqlite_where=sa.text("instances = 0"),
            postgresql_where=sa.text("instances = 0"),
        )

    op.create_table(
        "summary_phi_shown",
        sa.Column("site", sa.Text(), nullable=False),
        sa.Column("tag", sa.Text(), nullable=False, comment="COALESCE(tags.private_tag, tags.tag_text)"),
        sa.Column("private_creator", sa.Text(), nullable=False),
        sa.Column(
            "value_key", sa.Text(), nullable=False, comment="the value, or for a long one its start, instance and seq"
        ),
        sa.Column("value", sa.Text(), nullable=False, comment="the value, whole"),
        sa.Column("instances", sa.Integer(), nullable=False, comment="instances holding the value"),
        sa.PrimaryKeyConstraint("site", "tag", "private_creator", "value_key", name=op.f("pk_summary_phi_shown")),
        comment="Per site and tag, each value that may identify a person, whatever its category (phi --show-values).",
    )
    with op.batch_alter_table("summary_phi_shown", schema=None) as batch_op:
        batch_op.create_index(
            "ix_summary_phi_shown_zero",
            ["instances"],
            unique=False,
            sqlite_where=sa.text("instances = 0"),
            postgresql_where=sa.text("instances = 0"),
        )

    op.create_table(
        "summary_phi_values",
        sa.Column("site", sa.Text(), nullable=False),
        sa.Column("tag", sa.Text(), nullable=False, comment="COALESCE(tags.private_tag, tags.tag_text)"),
        sa.Column("name", sa.Text(), nullable=False, comment="keyword, else dictionary name"),
        sa.Column("private_creator", sa.Text(), nullable=False),
        sa.Column(
            "category", sa.Text(), nullable=False, comment="PS3.15 E.1-1, person name, date or time, UID, private text"
        ),
        sa.Column("action", sa.Text(), nullable=False, comment="PS3.15 Basic Profile action code; '' when not listed"),
        sa.Column(
            "value_key", sa.Text(), nullable=False, comment="the value, or for a long one its start, instance and seq"
        ),
        sa.Column("value", sa.Text(), nullable=False, comment="the value, whole"),
        sa.Column("elements", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint(
            "site",
            "tag",
            "name",
            "private_creator",
            "category",
            "action",
            "value_key",
            name=op.f("pk_summary_phi_values"),
        ),
        comment="The values of summary_phi_groups, per group (phi: distinct_values).",
    )
    with op.batch_alter_table("summary_phi_values", schema=None) as batch_op:
        batch_op.create_index(
            "ix_summary_phi_values_zero",
            ["elements"],
            unique=False,
            sqlite_where=sa.text("elements = 0"),
            postgresql_where=sa.text("elements = 0"),
        )

    op.create_table(
        "summary_series_values",
        sa.Column("series_id", sa.Integer(), nullable=False, comment="series.id"),
        sa.Column("tag_id", sa.Integer(), nullable=False, comment="tags.id"),
        sa.Column("vr", sa.Text(), nullable=False),
        sa.Column(
            "value_key", sa.Text(), nullable=False, comment="the value, or for a long one its start, instance and seq"
        ),
        sa.Column("value", sa.Text(), nullable=False, comment="the value, whole"),
        sa.Column(
            "number",
            sa.Float(),
            nullable=True,
            comment="elements.number of the value (the same for every element with it)",
        ),
        sa.Column("elements", sa.Integer(), nullable=False, comment="top-level elements holding the value"),
        sa.PrimaryKeyConstraint("series_id", "tag_id", "vr", "value_key", name=op.f("pk_summary_series_values")),
        comment="Per series, top-level tag and VR, each value: COALESCE(value, hash, '') (series-variation).",
    )
    with op.batch_alter_table("summary_series_values", schema=None) as batch_op:
        batch_op.create_index(
            "ix_summary_series_values_zero",
            ["elements"],
            unique=False,
            sqlite_where=sa.text("elements = 0"),
            postgresql_where=sa.text("elements = 0"),
        )

    op.create_table(
        "summary_tags",
        sa.Column("site", sa.Text(), nullable=False),
        sa.Column("tag_id", sa.Integer(), nullable=False, comment="tags.id"),
        sa.Column("instances", sa.Integer(), nullable=False, comment="instances holding the tag at least once"),
        sa.Column(
            "non_empty", sa.Integer(), nullable=False, comment="instances holding it at least once with VM above 0"
        ),
        sa.PrimaryKeyConstraint("site", "tag_id", name=op.f("pk_summary_tags")),
        comment="Per site and tag: instances that hold the tag at any depth, and those with a value (tag-presence).",
    )
    with op.batch_alter_table("summary_tags", schema=None) as batch_op:
        batch_op.create_index(
            "ix_summary_tags_zero",
            ["instances"],
            unique=False,
            sqlite_where=sa.text("instances = 0"),
            postgresql_where=sa.text("instances = 0"),
        )

    op.create_table(
        "summary_values",
        sa.Column("site", sa.Text(), nullable=False),
        sa.Column("tag_id", sa.Integer(), nullable=False, comment="tags.id"),
        sa.Column(
            "value_key", sa.Text(), nullable=False, comment="the value, or for a long one its start, instance and seq"
        ),
        sa.Column("value", sa.Text(), nullable=False, comment="the value, whole"),
        sa.Column("elements", sa.Integer(), nullable=False, comment="elements holding the value"),
        sa.PrimaryKeyConstraint("site", "tag_id", "value_key", name=op.f("pk_summary_values")),
        comment="Per site and tag, each value held with VM above 0, except UIDs, dates and times (site-differences).",
    )
    with op.batch_alter_table("summary_values", schema=None) as batch_op:
        batch_op.create_index(
            "ix_summary_values_zero",
            ["elements"],
            unique=False,
            sqlite_where=sa.text("elements = 0"),
            postgresql_where=sa.text("elements = 0"),
        )

    # Count what the earlier version built (elements are read in instance order, 500 at a time).
    op.create_table(
        "summary_private",
        sa.Column("series_id", sa.Integer(), nullable=False, comment="series.id"),
        sa.Column("site", sa.Text(), nullable=False),
        sa.Column("private_creator", sa.Text(), nullable=False),
        sa.Column("private_group", sa.Text(), nullable=False, comment="the odd group as 4 hex digits"),
        sa.Column("elements", sa.Integer(), nullable=False, comment="private elements of this creator, at any depth"),
        sa.Column("instances", sa.Integer(), nullable=False, comment="instances holding at least one"),
        sa.PrimaryKeyConstraint(
            "series_id", "site", "private_creator", "private_group", name=op.f("pk_summary_private")
        ),
        comment="Per series, site, private creator and odd group: private elements and the instances holding "
        "them (private-creators).",
    )
    with op.batch_alter_table("summary_private", schema=None) as batch_op:
        batch_op.create_index(
            "ix_summary_private_zero",
            ["elements"],
            unique=False,
            sqlite_where=sa.text("elements = 0"),
            postgresql_where=sa.text("elements = 0"),
        )

    summaries.rebuild(op.get_bind())


def downgrade() -> None:
    with op.batch_alter_table("summary_private", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_summary_private_zero", sqlite_where=sa.text("elements = 0"), postgresql_where=sa.text("elements = 0")
        )
    op.drop_table("summary_private")
    with op.batch_alter_table("summary_values", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_summary_values_zero", sqlite_where=sa.text("elements = 0"), postgresql_where=sa.text("elements = 0")
        )

    op.drop_table("summary_values")
    with op.batch_alter_table("summary_tags", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_summary_tags_zero", sqlite_where=sa.text("instances = 0"), postgresql_where=sa.text("instances = 0")
        )

    op.drop_table("summary_tags")
    with op.batch_alter_table("summary_series_values", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_summary_series_values_zero",
            sqlite_where=sa.text("elements = 0"),
            postgresql_where=sa.text("elements = 0"),
        )

    op.drop_table("summary_series_values")
    with op.batch_alter_table("summary_phi_values", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_summary_phi_values_zero", sqlite_where=sa.text("elements = 0"), postgresql_where=sa.text("elements = 0")
        )

    op.drop_table("summary_phi_values")
    with op.batch_alter_table("summary_phi_shown", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_summary_phi_shown_zero",
            sqlite_where=sa.text("instances = 0"),
            postgresql_where=sa.text("instances = 0"),
        )

    op.drop_table("summary_phi_shown")
    with op.batch_alter_table("summary_phi_groups", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_summary_phi_groups_zero",
            sqlite_where=sa.text("instances = 0"),
            postgresql_where=sa.text("instances = 0"),
        )

    op.drop_table("summary_phi_groups")

"""Tables and indexes that the saved reports in `sql/` need, on the shared `schema.metadata`.

Migration 0002 creates ps315_attributes, migration 0003 the summary_* tables (kept by the build
through ibash_index/summaries.py); `schema.py` imports this module so that Alembic's check sees
them. (0002 also made ix_elements_blank, a partial index the summaries made unused; 0004 drops it.)
"""

from __future__ import annotations

from sqlalchemy import Column, Float, Index, Integer, PrimaryKeyConstraint, Table, Text

from .schema import metadata

ps315_attributes = Table(
    "ps315_attributes",
    metadata,
    Column("tag", Text, primary_key=True, comment="(GGGG,EEEE); xx stands for any hex digits, e.g. (60xx,4000)"),
    Column("tag_hex", Text, nullable=False, comment="GGGGEEEE with the same x wildcards"),
    Column("keyword", Text, nullable=False, comment="pydicom's keyword; '' for attributes newer than pydicom"),
    Column("name", Text, nullable=False, comment="attribute name as the standard writes it"),
    Column(
        "basic_profile", Text, nullable=False, comment="action code D, Z, X or U, or a choice such as X/Z/D or X/Z/U*"
    ),
    comment="DICOM PS3.15 Table E.1-1: attributes the Basic Application Level Confidentiality Profile acts on.",
)

# Summaries of `elements` that the slow reports read instead of scanning every element. The
# build keeps them up to date in the same transaction as the elements (ibash_index/summaries.py
# runs sql/maintenance/*.sql for each batch of new instances, and again with the sign reversed
# before instances are deleted), so they always equal a recomputation from `elements`.
# `site` is COALESCE(instances.site, ''). Values longer than VALUE_KEY_CHARS characters do not
# fit a portable index key: their rows are keyed by the value's first characters plus the
# instance and the element that holds it, so they are never merged and `value` holds them whole.

# The longest value used whole as a key; set in sql/maintenance/*.sql too.
VALUE_KEY_CHARS = 200


def _summary(name: str, comment: str, count: str, *columns: Column, key: tuple[str, ...]) -> Table:
    table = Table(name, metadata, *columns, PrimaryKeyConstraint(*key), comment=comment)
    # Rows whose count drops to 0 are deleted after each batch; this index holds only those.
    Index(f"ix_{name}_zero", table.c[count], sqlite_where=table.c[count] == 0, postgresql_where=table.c[count] == 0)
    return table


def _value_columns() -> tuple[Column, Column]:
    return (
        Column("value_key", Text, nullable=False, comment="the value, or for a long one its start, instance and seq"),
        Column("value", Text, nullable=False, comment="the value, whole"),
    )


summary_tags = _summary(
    "summary_tags",
    "Per site and tag: instances that hold the tag at any depth, and those with a value (tag-presence).",
    "instances",
    Column("site", Text, nullable=False),
    Column("tag_id", Integer, nullable=False, comment="tags.id"),
    Column("instances", Integer, nullable=False, comment="instances holding the tag at least once"),
    Column("non_empty", Integer, nullable=False, comment="instances holding it at least once with VM above 0"),
    key=("site", "tag_id"),
)

summary_values = _summary(
    "summary_values",
    "Per site and tag, each value held with VM above 0, except UIDs, dates and times (site-differences).",
    "elements",
    Column("site", Text, nullable=False),
    Column("tag_id", Integer, nullable=False, comment="tags.id"),
    *_value_columns(),
    Column("elements", Integer, nullable=False, comment="elements holding the value"),
    key=("site", "tag_id", "value_key"),
)

summary_series_values = _summary(
    "summary_series_values",
    "Per series, top-level tag and VR, each value: COALESCE(value, hash, '') (series-variation).",
    "elements",
    Column("series_id", Integer, nullable=False, comment="series.id"),
    Column("tag_id", Integer, nullable=False, comment="tags.id"),
    Column("vr", Text, nullable=False),
    *_value_columns(),
    Column("number", Float, comment="elements.number of the value (the same for every element with it)"),
    Column("elements", Integer, nullable=False, comment="top-level elements holding the value"),
    key=("series_id", "tag_id", "vr", "value_key"),
)

_PHI_GROUP = ("site", "tag", "name", "private_creator", "category", "action")


def _phi_group_columns() -> list[Column]:
    return [
        Column("site", Text, nullable=False),
        Column("tag", Text, nullable=False, comment="COALESCE(tags.private_tag, tags.tag_text)"),
        Column("name", Text, nullable=False, comment="keyword, else dictionary name"),
        Column("private_creator", Text, nullable=False),
        Column("category", Text, nullable=False, comment="PS3.15 E.1-1, person name, date or time, UID, private text"),
        Column("action", Text, nullable=False, comment="PS3.15 Basic Profile action code; '' when not listed"),
    ]


summary_phi_groups = _summary(
    "summary_phi_groups",
    "Per site, tag and category, elements that may identify a person, with a value (phi).",
    "instances",
    *_phi_group_columns(),
    Column("instances", Integer, nullable=False, comment="instances holding such an element"),
    Column("top_elements", Integer, nullable=False, comment="such elements at top level"),
    Column("nested_elements", Integer, nullable=False, comment="such elements inside sequences"),
    key=_PHI_GROUP,
)

summary_phi_values = _summary(
    "summary_phi_values",
    "The values of summary_phi_groups, per group (phi: distinct_values).",
    "elements",
    *_phi_group_columns(),
    *_value_columns(),
    Column("elements", Integer, nullable=False),
    key=(*_PHI_GROUP, "value_key"),
)

summary_phi_shown = _summary(
    "summary_phi_shown",
    "Per site and tag, each value that may identify a person, whatever its category (phi --show-values).",
    "instances",
    Column("site", Text, nullable=False),
    Column("tag", Text, nullable=False, comment="COALESCE(tags.private_tag, tags.tag_text)"),
    Column("private_creator", Text, nullable=False),
    *_value_columns(),
    Column("instances", Integer, nullable=False, comment="instances holding the value"),
    key=("site", "tag", "private_creator", "value_key"),
)

summary_private = _summary(
    "summary_private",
    "Per series, site, private creator and odd group: private elements and the instances holding them "
    "(private-creators).",
    "elements",
    Column("series_id", Integer, nullable=False, comment="series.id"),
    Column("site", Text, nullable=False),
    Column("private_creator", Text, nullable=False),
    Column("private_group", Text, nullable=False, comment="the odd group as 4 hex digits"),
    Column("elements", Integer, nullable=False, comment="private elements of this creator, at any depth"),
    Column("instances", Integer, nullable=False, comment="instances holding at least one"),
    key=("series_id", "site", "private_creator", "private_group"),
)

SUMMARY_TABLES = (
    summary_tags,
    summary_values,
    summary_series_values,
    summary_phi_groups,
    summary_phi_values,
    summary_phi_shown,
    summary_private,
)

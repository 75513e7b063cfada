"""Tables and indexes that the saved reports in `sql/` need, on the shared `schema.metadata`.

Migration 0002 creates them; `schema.py` imports this module so that Alembic's check sees them.
"""

from __future__ import annotations

from sqlalchemy import Column, Index, Table, Text

from .schema import elements, metadata

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

# Present-but-empty elements (vm = 0) are rare, so this partial index stays tiny; with the
# index on tag_id it lets `tag-presence` and `site-differences` count "present and non-empty"
# without reading the elements table itself.
Index(
    "ix_elements_blank",
    elements.c.tag_id,
    elements.c.instance_id,
    sqlite_where=elements.c.vm == 0,
    postgresql_where=elements.c.vm == 0,
)

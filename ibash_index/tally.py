"""Counting files into the summary tables in the workers, as they read them.

A fresh build used to count each batch with set-based SQL over the elements it had just
inserted (sql/maintenance/*.sql): five GROUP BY passes over every element on the writer's one
core, half of the build. A worker holds each file's rows anyway, so it counts a group of files
(one batch of paths) into a `Tally` keyed by what the rows say, (tag, creator) and the file's
site, study and series; the writer turns those keys into ids and adds a few hundred rows per
group (summaries.add_tallies). The SQL stays the definition: a rebuild, a migration, files
taken away, and any file a tally does not cover (a worker killed mid-group, --workers 0) use it,
and tests/test_summaries.py checks that both ways give the same tables.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .dictionary import tag_values

if TYPE_CHECKING:
    from .outcome import FileResult

LONG = 200  # report_tables.VALUE_KEY_CHARS: longer values are keyed per element (see sql/maintenance)
NO_SITE_VALUES = frozenset({"UI", "DA", "DT", "TM"})  # summary_values leaves these out
DATE_TIME = frozenset({"DA", "DT", "TM"})
PHI_VRS = frozenset({"PN", "DA", "DT", "TM", "UI"})
PRIVATE_TEXT = frozenset({"LO", "LT", "SH", "ST", "UC", "UT"})

# A (tag, private creator) as one int: the tag, plus the creator's number (Profile.creator_id) << 32.
# Ints hash for nothing, where tuples of a tag and a string were a fifth of a worker's time.
Key = int
CREATOR_SHIFT = 32
TAG_MASK = (1 << CREATOR_SHIFT) - 1
Context = tuple[str, str, str]  # (site or '', study UID or '', series UID or '')
# A phi group: (tag as phi.sql shows it, name, creator, category, action); see batch_2_phi.sql.
PhiGroup = tuple[str, str, str, str, str]
# What a (tag, creator, VR) adds: its key, whether summary_values counts its values, its phi group, and its
# (creator, group) in summary_private (None for public tags).
RowFacts = tuple[Key, bool, PhiGroup | None, tuple[str, str] | None]


class Profile:
    """PS3.15 Table E.1-1 as batch_2_phi.sql matches it: exact (GGGG,EEEE), or an xx pattern on GGGGEEEE."""

    def __init__(self, rows: tuple[tuple[str, str, str], ...]) -> None:
        self.rows = rows  # (tag, tag_hex, basic_profile) from ps315_attributes; pickled for the workers
        self.creator_ids: dict[str, int] = {"": 0}  # private creator -> its number in keys, per process
        self.creators: list[str] = [""]
        self.facts: dict[tuple[int, str | None, str], RowFacts] = {}  # (tag, creator, VR) -> row_facts, per process
        self._exact: dict[str, list[str]] = {}
        self._patterns: list[tuple[re.Pattern[str], str]] = []
        for tag, tag_hex, action in rows:
            self._exact.setdefault(tag, []).append(action)
            if "x" in tag_hex.lower():  # SQLite's LIKE ignores ASCII case
                pattern = re.compile(re.escape(tag_hex).replace("x", ".").replace("X", "."), re.IGNORECASE)
                self._patterns.append((pattern, action))

    def __reduce__(self) -> tuple[Any, ...]:
        return (Profile, (self.rows,))

    def action(self, tag: int, creator: str, tag_text: str, tag_hex: str) -> str | None:
        """The Basic Profile action of a public tag (MIN of the matches, as the SQL takes it), else None."""
        if creator or (tag >> 16) % 2:
            return None
        found = list(self._exact.get(tag_text, ()))
        found += [action for pattern, action in self._patterns if pattern.fullmatch(tag_hex)]
        return min(found) if found else None

    def creator_id(self, creator: str) -> int:
        """The number of a private creator in keys (new creators get the next one)."""
        cid = self.creator_ids.get(creator)
        if cid is None:
            cid = self.creator_ids[creator] = len(self.creators)
            self.creators.append(creator)
        return cid

    def row_facts(self, tag: int, creator: str | None, vr: str) -> RowFacts:
        """What a row with this tag, private creator and VR adds to the tallies besides its value (kept in `facts`)."""
        if creator:
            key = tag | (self.creator_id(creator) << CREATOR_SHIFT)
            odd = (creator, f"{tag >> 16:04X}")  # its group as summary_private shows it
        else:
            key, odd = tag, None
        facts = (key, vr not in NO_SITE_VALUES, self.phi_group(tag, creator or "", vr), odd)
        self.facts[tag, creator, vr] = facts
        return facts

    def phi_group(self, tag: int, creator: str, vr: str) -> PhiGroup | None:
        """The phi group of a (tag, creator) with this VR, or None when phi.sql would not list it."""
        facts = tag_values(tag, creator)
        action = self.action(tag, creator, facts["tag_text"], facts["tag_hex"])
        group: PhiGroup | None = None
        if action is not None or vr in PHI_VRS or (facts["private_tag"] is not None and vr in PRIVATE_TEXT):
            if action is not None:
                category = "PS3.15 E.1-1"
            elif vr == "PN":
                category = "person name"
            elif vr in DATE_TIME:
                category = "date or time"
            elif vr == "UI":
                category = "UID"
            else:
                category = "private text"
            shown_tag = facts["private_tag"] or facts["tag_text"]
            group = (shown_tag, facts["keyword"] or facts["name"], creator, category, action or "")
        return group


@dataclass
class Counts:
    """What one context (site, study, series) of a group adds to each summary, by worker-side keys."""

    tags: Counter = field(default_factory=Counter)  # Key -> instances holding it
    filled: Counter = field(default_factory=Counter)  # Key -> instances holding it with VM above 0
    values: Counter = field(default_factory=Counter)  # (Key, value) -> elements (summary_values)
    series: Counter = field(default_factory=Counter)  # (Key, vr, value) -> elements, top level
    numbers: dict = field(default_factory=dict)  # (Key, vr, value) -> smallest number
    phi: Counter = field(default_factory=Counter)  # PhiGroup -> instances
    phi_top: Counter = field(default_factory=Counter)  # PhiGroup -> top-level elements
    phi_nested: Counter = field(default_factory=Counter)  # PhiGroup -> elements in sequences
    phi_values: Counter = field(default_factory=Counter)  # (PhiGroup, value) -> elements
    phi_shown: Counter = field(default_factory=Counter)  # (tag, creator, value) -> instances
    private: Counter = field(default_factory=Counter)  # (creator, group) -> elements
    private_instances: Counter = field(default_factory=Counter)  # (creator, group) -> instances
    # Values longer than LONG, each keyed by its instance and seq: (table, ..., file index, seq).
    long: list = field(default_factory=list)


class Tally:
    """The summary counts of the files of one group, made by the worker that read them.

    `paths` are the files counted, in order (long values point into it); `last` is the path of
    the group's last file, so that the build never splits a group across two transactions.
    """

    def __init__(self, profile: Profile) -> None:
        self.profile = profile
        self.paths: list[bytes] = []
        self.contexts: dict[Context, Counts] = {}
        self.last: bytes = b""
        self.creators = profile.creators  # what the creator numbers in keys stand for (a snapshot once pickled)

    def __getstate__(self) -> dict[str, Any]:
        return {"paths": self.paths, "contexts": self.contexts, "last": self.last, "creators": self.creators}

    def tag_key(self, key: Key) -> tuple[int, str]:
        """(tag, creator) of a key, as the tags table holds it."""
        return key & TAG_MASK, self.creators[key >> CREATOR_SHIFT]

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def count(self, result: FileResult, rows: list[tuple]) -> None:
        """Add one indexed file (its rows in outcome.ROW_FIELDS order).

        What a row adds depends on its (tag, creator, VR) through its key, its phi group and
        its private group: those come from one look-up in `Profile.facts`, built once per
        process, since this loop runs once for every element of every file.
        """
        h = result.header
        context = (h.get("site") or "", h.get("study_instance_uid") or "", h.get("series_instance_uid") or "")
        c = self.contexts.get(context)
        if c is None:
            c = self.contexts[context] = Counts()
        f = len(self.paths)
        self.paths.append(result.path_bytes)
        filled: set[Key] = set()  # keys of the rows with VM above 0
        empty: set[Key] = set()  # keys of the others: a row adds its key to one set, not two
        long_shown: dict[tuple[str, str, str], int] = {}
        private: list[tuple[str, str]] = []
        # Keys are collected in lists and counted in C (Counter.update) at the end.
        series: list[tuple] = []
        values: list[tuple] = []
        top: list[PhiGroup] = []
        nested: list[PhiGroup] = []
        phi_values: list[tuple] = []
        numbers, long = c.numbers, c.long
        known, facts_of = self.profile.facts, self.profile.row_facts
        for seq, _p, _i, depth, tag, creator, vr, vm, value, number, _n, digest, _d, _e, _f in rows:
            facts = known.get((tag, creator, vr))
            if facts is None:
                facts = facts_of(tag, creator, vr)
            key, in_values, group, odd = facts
            if odd is not None:
                private.append(odd)
            if depth == 0:
                v = value if value is not None else digest if digest is not None else ""
                if len(v) <= LONG:
                    k = (key, vr, v)
                    series.append(k)
                    if number is not None:
                        old = numbers.get(k)
                        if old is None or number < old:
                            numbers[k] = number
                else:
                    long.append(("series", key, vr, v, number, f, seq))
            if vm > 0:
                filled.add(key)
                if value is not None and in_values:
                    if len(value) <= LONG:
                        values.append((key, value))
                    else:
                        long.append(("values", key, value, f, seq))
                if group is not None:
                    (top if depth == 0 else nested).append(group)
                    if value is not None:
                        if len(value) <= LONG:
                            phi_values.append((group, value))
                        else:
                            long.append(("phi_values", group, value, f, seq))
                            long_shown.setdefault((group[0], group[2], value), seq)  # rows come in seq order
            else:
                empty.add(key)
        c.tags.update(filled | empty)
        c.filled.update(filled)
        c.series.update(series)
        c.values.update(values)
        c.phi.update({*top, *nested})
        c.phi_top.update(top)
        c.phi_nested.update(nested)
        c.phi_values.update(phi_values)
        c.phi_shown.update({(group[0], group[2], value) for group, value in set(phi_values)})
        c.private.update(private)
        c.private_instances.update(set(private))
        long.extend(("phi_shown", *sk, f, s) for sk, s in long_shown.items())

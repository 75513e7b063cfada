"""`compare`: one self-contained HTML page that puts the sites side by side.

Everything on the page comes from the saved reports (no SQL here), rendered with inline CSS
only, so the file opens anywhere without a network and can be mailed. Values are escaped: a
header may hold any text.
"""

from __future__ import annotations

import html
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from . import __version__
from .private import open_private
from .reports import QueryResult, find_report, run_report
from .store import open_index

SECTIONS = (
    ("sites", "Sites and scanners", {}),
    ("tag_presence", "Which tags each site fills", {}),
    ("private_creators", "Private creators", {}),
    ("phi", "Where identifying data may hide (values not shown)", {}),
    ("acquisition", "Acquisition parameters per series description", {}),
)

CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222}
h1{font-size:1.6em}h2{margin-top:2em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:.5em 0}th,td{border:1px solid #ddd;padding:2px 6px;text-align:left;
vertical-align:top}th{background:#f3f3f3;position:sticky;top:0}td.n{text-align:right}
.heat td.h{text-align:center;min-width:5em}.diff{background:#ffe08a;font-weight:600}
.note{color:#555}.legend span{display:inline-block;width:4em;text-align:center}
"""


def compare(db: str, output: Path) -> Path:
    """Write the comparison page for `db` to `output`."""
    engine = open_index(db, create=False, readonly=True)
    try:
        with engine.connect() as conn:
            results = {name: run_report(conn, find_report(name), params) for name, _, params in SECTIONS}
    finally:
        engine.dispose()
    page = render(results, Path(db).name if "://" not in db else db)
    with open_private(output, "w", encoding="utf-8") as fp:
        fp.write(page)
    return output


def render(results: dict[str, QueryResult], db_name: str) -> str:
    """The whole page as a string."""
    parts = [
        "<!doctype html><html lang=en><meta charset=utf-8>",
        f"<title>Site comparison — {_e(db_name)}</title><style>{CSS}</style>",
        f"<h1>Site comparison — {_e(db_name)}</h1>",
        f"<p class=note>Made by ibash-index {__version__} on {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC "
        "from the saved reports. Contains no header values except site, scanner and acquisition facts.</p>",
    ]
    for name, title, _ in SECTIONS:
        parts.append(f'<section id="{name}"><h2>{_e(title)}</h2>')
        if name == "tag_presence":
            parts.append(heatmap(results[name]))
        elif name == "acquisition":
            parts.append(table(results[name], highlight=_differences(results[name])))
        else:
            parts.append(table(results[name]))
        parts.append("</section>")
    parts.append("</html>")
    return "\n".join(parts)


def heatmap(result: QueryResult) -> str:
    """Tags × sites, each cell coloured by the share of the site's instances that fill the tag."""
    col = {c: i for i, c in enumerate(result.columns)}
    sites: list[str] = []
    cells: dict[tuple, dict[str, tuple[int, int]]] = defaultdict(dict)
    for row in result.rows:
        site = row[col["site"]]
        if site not in sites:
            sites.append(site)
        key = (row[col["tag"]], row[col["name"]], row[col["private_creator"]])
        cells[key][site] = (row[col["non_empty"]], row[col["instances"]])
    head = "".join(f"<th>{_e(s or '(no site)')}</th>" for s in sites)
    legend = "".join(f'<span style="{_cell_style(x / 4)}">{x * 25}%</span>' for x in range(5))
    lines = [
        f"<p class='legend note'>Share of instances with a value: {legend}</p>",
        f"<table class=heat id=heatmap><tr><th>tag</th><th>name</th><th>private creator</th>{head}</tr>",
    ]
    for (tag, name, creator), by_site in cells.items():
        tds = []
        for site in sites:
            filled, total = by_site.get(site, (0, 0))
            share = filled / total if total else 0.0
            tds.append(f'<td class=h style="{_cell_style(share)}" title="{filled} of {total}">{share:.0%}</td>')
        lines.append(f"<tr><td>{_e(tag)}</td><td>{_e(name)}</td><td>{_e(creator)}</td>{''.join(tds)}</tr>")
    lines.append("</table>")
    return "\n".join(lines)


def table(result: QueryResult, highlight: set[tuple[int, int]] | None = None) -> str:
    highlight = highlight or set()
    head = "".join(f"<th>{_e(c)}</th>" for c in result.columns)
    lines = [f"<table><tr>{head}</tr>"]
    for r, row in enumerate(result.rows):
        tds = []
        for c, value in enumerate(row):
            classes = " ".join(x for x in ("n" if isinstance(value, (int, float)) else "",
                                           "diff" if (r, c) in highlight else "") if x)  # fmt: skip
            tds.append(f"<td class='{classes}'>{_e(value)}</td>" if classes else f"<td>{_e(value)}</td>")
        lines.append(f"<tr>{''.join(tds)}</tr>")
    lines.append("</table>")
    if not result.rows:
        lines.append("<p class=note>Nothing to show.</p>")
    return "\n".join(lines)


def _differences(result: QueryResult) -> set[tuple[int, int]]:
    """Cells whose value differs between sites for the same series description."""
    col = {c: i for i, c in enumerate(result.columns)}
    if "site" not in col or "series_description" not in col:
        return set()
    skip = {col["site"], col["series_description"]} | {i for c, i in col.items() if c in ("series", "instances")}
    groups: dict[Any, list[int]] = defaultdict(list)
    for r, row in enumerate(result.rows):
        groups[row[col["series_description"]]].append(r)
    marked = set()
    for rows in groups.values():
        if len({result.rows[r][col["site"]] for r in rows}) < 2:
            continue
        for c in range(len(result.columns)):
            if c not in skip and len({result.rows[r][c] for r in rows}) > 1:
                marked.update((r, c) for r in rows)
    return marked


def _cell_style(share: float) -> str:
    """White for 0 %, deep blue for 100 %, with ink that stays readable."""
    lightness = 97 - round(share * 55)
    return f"background:hsl(215,70%,{lightness}%);color:{'#fff' if share > 0.6 else '#222'}"


def _e(value: Any) -> str:
    if value is None:
        return ""
    text = value if isinstance(value, str) else str(value)
    return html.escape("".join(ch if ch.isprintable() or ch in "\t" else f"\\x{ord(ch):02x}" for ch in text))

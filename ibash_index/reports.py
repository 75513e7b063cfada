"""Saved reports: self-describing `sql/*.sql` files, run read-only with bound parameters.

Each file is plain SQL that any SQLite browser can run: a header of `--` comment lines (title,
description, one `param` line per parameter; see sql/README.md) and one SELECT. This module
parses and checks the files, runs them and ad-hoc queries read-only, and stores them in the
database (the `reports` table, plus a `report_<name>` view for each report without parameters).

On a SQLite file, reports and queries run through the sqlite3 driver alone (direct.py), so that
`ibash-index report` does not spend longer importing SQLAlchemy than running the report; its
`:name` parameters are sqlite3's own. SQLAlchemy is imported where a function needs it.
"""

from __future__ import annotations

import difflib
import json
import re
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

from . import direct
from .errors import BadReportParams, IbashError, ReportNotFound
from .migrate import bundled_dir

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

# A SQLAlchemy connection, or sqlite3's own for a SQLite file (see direct.py).
AnyConnection = Union["Connection", sqlite3.Connection]

VIEW_PREFIX = "report_"

# Comments and quoted text, found the way Datasette's named_parameters does before it looks
# for :name. Unterminated ones run to the end of the SQL.
_QUOTED = re.compile(r"--[^\n]*|/\*.*?(?:\*/|\Z)|'(?:[^']|'')*(?:'|\Z)|\"(?:[^\"]|\"\")*(?:\"|\Z)", re.S)
# The bind-parameter syntax SQLAlchemy's text() understands; `::` (a PostgreSQL cast) is not one.
_PARAM = re.compile(r"(?<![:\w\\]):(\w+)(?!:)")
_HEADER_LINE = re.compile(r" (?P<key>[a-z]+)(?: (?P<arg>\w+))?: (?P<value>.*\S)\s*")
_DEFAULT = re.compile(r"\s*\[default: (?P<value>.*)\]$")
_READ_ONLY_STARTS = {"SELECT", "WITH", "VALUES"}


class ReportFormatError(IbashError):
    """A saved report's file breaks the header convention of sql/README.md."""


class BadQuery(IbashError):
    """The SQL is not one read-only SELECT, or the database refused it."""


@dataclass(frozen=True)
class Param:
    """One `-- param name: help` line (help as written); `default` is None when it must be given."""

    name: str
    help: str
    default: str | None


@dataclass(frozen=True)
class Report:
    """One saved report, as parsed from its file."""

    name: str
    title: str
    description: str
    params: dict[str, Param]
    sql: str
    body: str
    path: Path

    @property
    def cli_name(self) -> str:
        """The name as typed on the command line: dashes instead of underscores."""
        return self.name.replace("_", "-")


@dataclass(frozen=True)
class QueryResult:
    """Column names and rows of one query."""

    columns: list[str]
    rows: list[tuple[Any, ...]]


def _split(sql: str) -> Iterator[tuple[bool, str]]:
    """Yield (is_code, text) pieces: code, or a comment or quoted text."""
    pos = 0
    for match in _QUOTED.finditer(sql):
        if match.start() > pos:
            yield True, sql[pos : match.start()]
        yield False, match.group()
        pos = match.end()
    if pos < len(sql):
        yield True, sql[pos:]


def used_params(sql: str) -> set[str]:
    """The `:name` parameters that `sql` uses, outside comments and quoted text."""
    return {m.group(1) for is_code, part in _split(sql) if is_code for m in _PARAM.finditer(part)}


def _bindable(sql: str) -> str:
    r"""`sql` for SQLAlchemy's text(): colons in comments and quoted text escaped as \:, so only real params bind."""
    return "".join(part if is_code else part.replace(":", "\\:") for is_code, part in _split(sql))


def check_read_only(sql: str) -> None:
    """Raise BadQuery unless `sql` is a single SELECT (or WITH … SELECT, or VALUES) statement."""
    code = "".join(part if is_code else " " for is_code, part in _split(sql))
    statements = [s for s in code.split(";") if s.strip()]
    if not statements:
        raise BadQuery("the query is empty; give one SELECT statement")
    if len(statements) > 1:
        raise BadQuery(f"give one statement at a time, not {len(statements)} separated by ';'")
    word = re.match(r"[\s(]*(\w*)", statements[0])
    first = word.group(1).upper() if word else ""
    if first not in _READ_ONLY_STARTS:
        raise BadQuery(f"only SELECT queries can run here (the database is opened read-only), not {first or '?'}")


def parse_report(path: Path) -> Report:
    """Read one saved report and check it against the header convention.

    Raises
    ------
    ReportFormatError
        For an unknown or repeated header key, a missing title or description, a body that is
        not one SELECT, or declared parameters that differ from the ones the SQL uses.
    """
    name = path.stem
    if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
        raise ReportFormatError(f"{path}: report file names are snake_case, like tag_values.sql")
    sql = path.read_text(encoding="utf-8")
    fields: dict[str, str] = {}
    params: dict[str, str] = {}
    lines = sql.splitlines()
    current: tuple[str, str] | None = None  # the key a continuation line adds to
    body_start = len(lines)
    for number, line in enumerate(lines, start=1):
        where = f"{path.name} line {number}"
        if not line.startswith("--"):
            body_start = number - 1
            break
        content = line[2:]
        if content.startswith("  ") and content.strip():
            if current is None:
                raise ReportFormatError(f"{where}: an indented line continues only a description or a param")
            kind, key = current
            target = fields if kind == "field" else params
            target[key] += " " + content.strip()
            continue
        match = _HEADER_LINE.fullmatch(content)
        if match is None:
            raise ReportFormatError(
                f"{where}: expected '-- key: text' (title, description or param NAME), got {line!r}"
            )
        key, arg, value = match.group("key", "arg", "value")
        if key == "param":
            if arg is None or arg in params:
                raise ReportFormatError(f"{where}: write each parameter once, as '-- param NAME: help'")
            params[arg] = value
            current = ("param", arg)
        elif key in ("title", "description") and arg is None:
            if key in fields:
                raise ReportFormatError(f"{where}: {key} is given twice")
            fields[key] = value
            current = ("field", key) if key == "description" else None
        else:
            raise ReportFormatError(f"{where}: unknown header key {key!r} (known: title, description, param NAME)")
    for key in ("title", "description"):
        if key not in fields:
            raise ReportFormatError(f"{path.name}: the header needs a '-- {key}:' line")
    body = "\n".join(lines[body_start:]).strip().rstrip(";").rstrip()
    try:
        check_read_only(body)
    except BadQuery as exc:
        raise ReportFormatError(f"{path.name}: {exc}") from None
    used = used_params(body)
    if used != set(params):
        raise ReportFormatError(
            f"{path.name}: the header declares {_names(params) or 'no params'}"
            f" but the SQL uses {_names(used) or 'none'}"
        )
    return Report(
        name=name,
        title=fields["title"],
        description=fields["description"],
        params={p: _param(p, help_) for p, help_ in params.items()},
        sql=sql,
        body=body,
        path=path,
    )


def _param(name: str, help_: str) -> Param:
    match = _DEFAULT.search(help_)
    if match is None:
        return Param(name, help_, None)
    default = match.group("value").strip()
    if len(default) >= 2 and default[0] == default[-1] and default[0] in "'\"":
        default = default[1:-1]
    return Param(name, help_, default)


def _names(names: Iterable[str]) -> str:
    return ", ".join(f":{n}" for n in sorted(names))


def load_reports(dirs: Sequence[Path] | None = None) -> dict[str, Report]:
    """The saved reports by name; a report in a later folder replaces one of the same name."""
    found: dict[str, Report] = {}
    for folder in dirs if dirs is not None else [bundled_dir("sql")]:
        for path in sorted(Path(folder).glob("*.sql")):
            report = parse_report(path)
            found[report.name] = report
    return found


def find_report(name: str, reports: dict[str, Report] | None = None) -> Report:
    """The report called `name` (dashes or underscores); ReportNotFound names the closest ones."""
    reports = load_reports() if reports is None else reports
    report = reports.get(name.replace("-", "_"))
    if report is not None:
        return report
    close = difflib.get_close_matches(name.replace("-", "_"), list(reports), n=3)
    hint = f"; did you mean {' or '.join(r.replace('_', '-') for r in close)}?" if close else ""
    raise ReportNotFound(f"no report named {name!r}{hint} (`ibash-index reports` lists them)")


def bind_params(report: Report, values: dict[str, str]) -> dict[str, str]:
    """Every parameter of `report` with its value: given, or its default.

    Raises
    ------
    BadReportParams
        Naming an unknown parameter, or a required one that was not given.
    """
    unknown = sorted(set(values) - set(report.params))
    if unknown:
        takes = ", ".join(report.params) or "no parameters"
        raise BadReportParams(f"report {report.cli_name} has no parameter {unknown[0]!r} (it takes: {takes})")
    bound: dict[str, str] = {}
    for param in report.params.values():
        if param.name in values:
            bound[param.name] = values[param.name]
        elif param.default is not None:
            bound[param.name] = param.default
        else:
            raise BadReportParams(f"report {report.cli_name} needs -p {param.name}=VALUE: {param.help.rstrip('.')}")
    return bound


def run_report(conn: AnyConnection, report: Report, values: dict[str, str]) -> QueryResult:
    """Run a saved report read-only with its parameters bound (defaults filled in)."""
    return _execute(conn, report.body, bind_params(report, values))


def run_query(conn: AnyConnection, sql: str, values: dict[str, str]) -> QueryResult:
    """Run one ad-hoc SELECT read-only; every `:name` it uses must be given in `values`."""
    check_read_only(sql)
    used = used_params(sql)
    unknown = sorted(set(values) - used)
    if unknown:
        raise BadReportParams(f"the query does not use :{unknown[0]}; it uses {_names(used) or 'no parameters'}")
    missing = sorted(used - set(values))
    if missing:
        raise BadReportParams(f"the query uses :{missing[0]}; give it with -p {missing[0]}=VALUE")
    return _execute(conn, sql, values)


def _execute(conn: AnyConnection, sql: str, params: dict[str, str]) -> QueryResult:
    if isinstance(conn, sqlite3.Connection):  # opened read-only by direct.open_readonly
        try:
            cursor = conn.execute(sql, params)
            return QueryResult([d[0] for d in cursor.description or ()], cursor.fetchall())
        except sqlite3.Error as exc:
            raise BadQuery(_refused(str(exc))) from None
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    _read_only(conn)
    try:
        result = conn.execute(text(_bindable(sql)), params)
        return QueryResult(list(result.keys()), [tuple(row) for row in result])
    except DBAPIError as exc:
        raise BadQuery(_refused(str(exc.orig) if exc.orig is not None else str(exc))) from None


def _refused(error: str) -> str:
    reason = error.strip().splitlines()[0] if error.strip() else error
    if "readonly" in reason or "read-only" in reason or "query_only" in reason:
        reason += " (reports and queries cannot change the database)"
    return f"the database refused the query: {reason}"


def _read_only(conn: Connection) -> None:
    """Make the connection refuse writes too, whatever the SQL tries (belt and braces over mode=ro)."""
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("PRAGMA query_only = ON")
    elif conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET TRANSACTION READ ONLY")


def run_saved_report(db: str, name: str, values: dict[str, str]) -> QueryResult:
    """Open `db` read-only and run the report called `name` on it (what `ibash-index report` does)."""
    report = find_report(name)
    bind_params(report, values)  # a bad parameter is reported before the database is opened

    def work(conn: AnyConnection) -> QueryResult:
        _require_current_schema(conn, db)
        return run_report(conn, report, values)

    return _on_database(db, work)


def _require_current_schema(conn: AnyConnection, db: str) -> None:
    """Saved reports are written for the newest schema; a read-only open cannot upgrade an older one."""
    from . import migrate

    if isinstance(conn, sqlite3.Connection):
        current = direct.schema_revision(conn)
        if current == migrate.bundled_head():
            return
    else:
        if migrate.is_current(conn):
            return
        current = migrate.current(conn)
    head = migrate.head()
    if current != head:
        raise IbashError(
            f"{db} is at schema revision {current} and the reports need {head}: upgrade it with"
            f" `ibash-index build ROOT --db {db}` (or, if the database is newer, upgrade ibash-index)"
        )


def run_sql(db: str, sql: str, values: dict[str, str]) -> QueryResult:
    """Open `db` read-only and run one ad-hoc SELECT on it (what `ibash-index query` does)."""
    check_read_only(sql)
    return _on_database(db, lambda conn: run_query(conn, sql, values))


def _on_database(db: str, work: Callable[[AnyConnection], QueryResult]) -> QueryResult:
    if not direct.is_url(db):
        with direct.open_readonly(db) as conn:
            return work(conn)
    from .store import open_index

    engine = open_index(db, create=False, readonly=True)
    try:
        with engine.connect() as conn:
            return work(conn)
    finally:
        engine.dispose()


def drop_report_views(conn: Connection) -> None:
    """Drop the `report_*` views; a migration that rebuilds a table they read must do this first."""
    from sqlalchemy import inspect

    quote = conn.dialect.identifier_preparer.quote
    for view in inspect(conn).get_view_names():
        if view.startswith(VIEW_PREFIX):
            conn.exec_driver_sql(f"DROP VIEW {quote(view)}")


def installed(reports: dict[str, Report]) -> tuple[list[dict[str, str]], set[str]]:
    """What install_reports stores: the `reports` rows by name, and the names of the views."""
    rows = [
        {
            "name": r.name,
            "title": r.title,
            "description": r.description,
            "params": json.dumps({p.name: p.help for p in r.params.values()}),
            "sql": r.sql,
        }
        for r in sorted(reports.values(), key=lambda r: r.name)
    ]
    return rows, {VIEW_PREFIX + r.name for r in reports.values() if not r.params}


def install_reports(engine: Engine, reports: dict[str, Report] | None = None) -> None:
    """Store every report in the `reports` table and (re)create a view for each without parameters."""
    from sqlalchemy import delete, insert, inspect, select

    from .schema import reports as reports_table

    reports = load_reports() if reports is None else reports
    rows, wanted = installed(reports)
    with engine.begin() as conn:
        stored = [dict(row) for row in conn.execute(select(reports_table).order_by(reports_table.c.name)).mappings()]
        views = {v for v in inspect(conn).get_view_names() if v.startswith(VIEW_PREFIX)}
        if stored == rows and views == wanted:
            return  # as installed: a rebuild or a second builder leaves them alone
        drop_report_views(conn)
        conn.execute(delete(reports_table))
        if rows:
            conn.execute(insert(reports_table), rows)
        quote = conn.dialect.identifier_preparer.quote
        for r in reports.values():
            if not r.params:
                conn.exec_driver_sql(f"CREATE VIEW {quote(VIEW_PREFIX + r.name)} AS\n{r.body}")

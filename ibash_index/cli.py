"""The `ibash-index` command line: each command parses options, calls one library function, prints.

This is the only module that touches the terminal: progress bars, logging setup, and turning
errors a user can cause into one line on stderr with a non-zero exit code.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from . import __version__
from .errors import IbashError
from .private import open_private

F = TypeVar("F", bound=Callable[..., Any])

# pretty_exceptions_show_locals=False: locals in a traceback could show patient data.
app = typer.Typer(
    no_args_is_help=True,  # the help is the callback's docstring, with its example
    pretty_exceptions_enable=False,
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

_state = {"debug": False}

DbOption = Annotated[
    str,
    typer.Option("--db", envvar="IBASH_DB", help="SQLite file (or SQLAlchemy URL) of the index.", show_default=True),
]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar and no summary line.")]


class _TqdmHandler(logging.Handler):
    """Log through tqdm.write so records do not tear a progress bar (no bar yet: tqdm is not even imported)."""

    def emit(self, record: logging.LogRecord) -> None:
        tqdm = sys.modules.get("tqdm")
        if tqdm is None:
            sys.stderr.write(self.format(record) + "\n")
        else:
            tqdm.tqdm.write(self.format(record), file=sys.stderr)


def _setup_logging(verbose: int, debug: bool) -> None:
    level = logging.DEBUG if debug or verbose > 1 else logging.INFO if verbose else logging.WARNING
    handler = _TqdmHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("ibash_index")
    root.handlers[:] = [handler]
    root.setLevel(level)


def _version(value: bool) -> None:
    if value:
        import pydicom

        typer.echo(f"ibash-index {__version__} (pydicom {pydicom.__version__})")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")
    ] = False,
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True, help="More log output (-vv for debug).")] = 0,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")] = False,
) -> None:
    """Index folders of DICOM files into a SQL database you can question.

    Example:

        ibash-index sample ./sample && ibash-index build ./sample --db sample.db
    """
    _state["debug"] = debug
    _setup_logging(verbose, debug)


def _user_errors(func: F) -> F:
    """Turn an IbashError, or an error about what the user named, into one line on stderr and exit 1."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except Exception as exc:
            message = str(exc) if isinstance(exc, IbashError) else _user_error(exc)
            if message is None or _state["debug"]:
                raise
            typer.echo(f"Error: {_safe(message)}", err=True)
            raise typer.Exit(getattr(exc, "exit_code", 1)) from None

    return wrapper  # type: ignore[return-value]


# Optional packages, and the extra that installs each (pyproject.toml).
_EXTRAS = {"psycopg": "postgres", "pyarrow": "parquet", "datasette": "web"}


def _user_error(exc: Exception) -> str | None:
    """The line for an error about a path the user named or an extra not installed (None: a bug, let it through).

    Database URLs that cannot be used are IbashErrors already (store.connect, open_index).
    """
    package = (exc.name or "").split(".")[0] if isinstance(exc, ModuleNotFoundError) else ""
    if package in _EXTRAS:
        return f"this needs {package}, which is not installed: pip install 'ibash-index[{_EXTRAS[package]}]'"
    if isinstance(exc, OSError) and exc.filename is not None:
        return f"cannot use {os.fsdecode(exc.filename)}: {exc.strerror or exc}"
    return None


def _safe(text: str) -> str:
    """Escape control characters so a file name or value cannot drive the terminal."""
    return "".join(ch if ch.isprintable() or ch == "\t" else ch.encode("unicode_escape").decode() for ch in text)


@app.command()
@_user_errors
def build(
    roots: Annotated[list[Path], typer.Argument(help="Folders (or files) to index.", show_default=False)],
    db: DbOption = "ibash.db",
    workers: Annotated[int, typer.Option(help="Worker processes (default: all cores; 0 reads in this process).")] = -1,
    full: Annotated[
        bool, typer.Option("--full", help="Forget what these roots (and shard) hold and read every file again.")
    ] = False,
    site_from: Annotated[
        str, typer.Option(help="Tag keyword that names the site, or level:N for the N-th folder below the root.")
    ] = "InstitutionName",
    max_blob: Annotated[int, typer.Option(help="Keep binary values up to this many bytes (larger: hash only).")] = 256,
    follow_symlinks: Annotated[
        bool, typer.Option("--follow-symlinks", help="Follow symlinks out of the roots.")
    ] = False,
    timeout: Annotated[float, typer.Option(help="Seconds one file may take before it is given up.")] = 120.0,
    max_memory: Annotated[int, typer.Option(help="MB of memory one worker may use (0 = no limit).")] = 2048,
    shard: Annotated[
        str | None,
        typer.Option(
            help="K/N: index only the K-th of N parts of the files (for N machines, one database).", show_default=False
        ),
    ] = None,
    quiet: QuietOption = False,
) -> None:
    """Index every DICOM file under ROOTS into the database; a rerun only reads what changed.

    Example:

        ibash-index build /data/ibash --db ibash.db --workers 4

    On several machines into one PostgreSQL, each with its own part of the files:

        ibash-index build /data/ibash --db postgresql+psycopg://me@dbhost/ibash --shard 1/3
    """
    from .build import BuildOptions
    from .build import build as run_build

    options = BuildOptions(
        full=full,
        site_from=site_from,
        max_blob=max_blob,
        follow_symlinks=follow_symlinks,
        timeout=timeout,
        max_memory_mb=max_memory,
        shard=_shard(shard),
        **({"workers": workers} if workers != -1 else {}),
    )
    with _ProgressBar("files", quiet) as bar:
        summary = run_build([str(r) for r in roots], db, options, progress=bar.update)
    if not quiet:
        typer.echo(
            f"{summary.files_seen} files seen: {summary.indexed} indexed, {summary.unchanged} unchanged, "
            f"{summary.not_dicom} not DICOM, {summary.errors} errors, {summary.skipped} skipped, "
            f"{summary.removed} removed; {summary.elements} elements in {summary.seconds:.1f} s"
        )
        for line in summary.group_lines():  # e.g. "  errors: 3 truncated, 1 too deep"
            typer.echo(f"  {line}")
    if summary.errors and not quiet:
        typer.echo(f"see why with: ibash-index report errors --db {db}", err=True)
    mode = os.stat(db).st_mode & 0o777 if "://" not in db and os.path.isfile(db) else 0
    if mode & 0o044:
        shown = _safe(db)
        warning = f"warning: other users can read {shown} (mode {mode:o}); it holds patient data: chmod 600 {shown}"
        typer.echo(warning, err=True)
    if summary.files_seen == 0 and summary.removed == 0 and shard is None:  # a shard may well get no files
        raise IbashError(f"no files found under {', '.join(_safe(str(r)) for r in roots)}")
    if summary.indexed == 0 and summary.unchanged == 0 and summary.files_seen:
        raise IbashError("no DICOM file could be indexed")


def _shard(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    k, _, n = text.partition("/")
    if not (k.isdigit() and n.isdigit() and 1 <= int(k) <= int(n)):
        raise IbashError(f"--shard takes K/N with 1 <= K <= N, such as 1/4; got {text!r}")
    return int(k), int(n)


@app.command()
@_user_errors
def sample(
    out: Annotated[Path, typer.Argument(help="Folder to create (must be new or empty).", show_default=False)],
    scale: Annotated[int, typer.Option(min=1, help="Multiply the instances per series.")] = 1,
    seed: Annotated[int, typer.Option(help="Seed: the same seed gives the same files.")] = 0,
    quiet: QuietOption = False,
) -> None:
    """Write the IBASH-like sample data set: 11 sessions from 3 sites, XNAT layout.

    Example:

        ibash-index sample ./sample --scale 2
    """
    from .sample import make_sample

    with _ProgressBar("files", quiet) as bar:
        try:
            result = make_sample(out, scale=scale, seed=seed, progress=bar.advance)
        except ValueError as exc:
            raise IbashError(str(exc)) from None
    if not quiet:
        typer.echo(f"{len(result.dicom_files)} DICOM files and {len(result.other_files)} other files in {out}")


class _ProgressBar:
    """A tqdm bar on stderr, silent when not a terminal or with --quiet.

    tqdm is imported with the first bar: it costs a few hundredths of a second at every start.
    """

    def __init__(self, unit: str, quiet: bool) -> None:
        self.bar: Any = None
        self.unit = unit
        self.disable = quiet or not sys.stderr.isatty() or bool(os.environ.get("CI"))

    def __enter__(self) -> _ProgressBar:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.close()

    def update(self, done: int, total: int) -> None:
        if self.disable:
            return
        if self.bar is None:
            self.bar = self._new(total=total)
        self.bar.n = done
        self.bar.refresh() if done == total else self.bar.update(0)

    def advance(self, n: int) -> None:
        if self.disable:
            return
        if self.bar is None:
            self.bar = self._new()
        self.bar.update(n)

    def _new(self, **kwargs: Any) -> Any:
        from tqdm import tqdm

        return tqdm(unit=self.unit, file=sys.stderr, dynamic_ncols=True, **kwargs)


# --------------------------------------------------------------------------
# reports and queries: run read-only SQL, print the rows as a table, CSV, JSON or Markdown

_FORMATS = ("table", "csv", "json", "markdown")


def _check_format(value: str) -> str:
    if value.lower() not in _FORMATS:
        raise typer.BadParameter(f"{value!r} is not one of {', '.join(_FORMATS)}")
    return value.lower()


FormatOption = Annotated[
    str,
    typer.Option(
        "--format",
        "-f",
        callback=_check_format,
        help="table (fits the terminal; long values cut with …), csv (for spreadsheets), json or markdown.",
    ),
]
OutputOption = Annotated[
    Path | None, typer.Option("--output", "-o", help="Write to this file instead of the terminal.", show_default=False)
]
ParamOption = Annotated[
    list[str] | None,
    typer.Option("--param", "-p", help="NAME=VALUE for the SQL's :NAME; repeat for more.", show_default=False),
]


@app.command("reports")
@_user_errors
def list_reports(fmt: FormatOption = "table", output: OutputOption = None) -> None:
    """List the saved reports: name, title and parameters (optional ones in brackets).

    Example:

        ibash-index reports
    """
    from .reports import QueryResult, load_reports

    rows: list[tuple[Any, ...]] = [
        (r.cli_name, r.title, " ".join(p.name if p.default is None else f"[{p.name}]" for p in r.params.values()))
        for r in load_reports().values()
    ]
    _emit(QueryResult(["name", "title", "params"], rows), fmt, output)


@app.command()
@_user_errors
def report(
    name: Annotated[str, typer.Argument(help="A report, as `ibash-index reports` lists it.", show_default=False)],
    param: ParamOption = None,
    db: DbOption = "ibash.db",
    fmt: FormatOption = "table",
    output: OutputOption = None,
    sql: Annotated[bool, typer.Option("--sql", help="Print the report's SQL file instead of running it.")] = False,
) -> None:
    """Run a saved report on the database, read-only, with -p NAME=VALUE for its parameters.

    Example:

        ibash-index report tag-values -p tag=MagneticFieldStrength --db ibash.db
    """
    from .reports import find_report, run_saved_report

    if sql:
        _write(find_report(name).sql, output)
        return
    _emit(run_saved_report(db, name, _params(param)), fmt, output)


@app.command()
@_user_errors
def query(
    sql: Annotated[str, typer.Argument(help="One SELECT (or WITH … SELECT) statement.", show_default=False)],
    param: ParamOption = None,
    db: DbOption = "ibash.db",
    fmt: FormatOption = "table",
    output: OutputOption = None,
) -> None:
    """Run your own SELECT on the database, read-only; -p NAME=VALUE binds its :NAME parameters.

    Example:

        ibash-index query "SELECT site, COUNT(*) FROM instances GROUP BY site" --db ibash.db
    """
    from .reports import run_sql

    _emit(run_sql(db, sql, _params(param)), fmt, output)


def _params(pairs: list[str] | None) -> dict[str, str]:
    """-p NAME=VALUE options as a dict."""
    from .errors import BadReportParams

    values: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise BadReportParams(f"-p takes NAME=VALUE, got {pair!r}")
        if key in values:
            raise BadReportParams(f"-p {key} is given twice")
        values[key] = value
    return values


def _emit(result: Any, fmt: str, output: Path | None) -> None:
    """Print (or write to `output`) a QueryResult in the chosen format."""
    import shutil

    if fmt == "csv":
        text = _csv(result.columns, result.rows)
    elif fmt == "json":
        text = _json(result.columns, result.rows)
    elif fmt == "markdown":
        text = _markdown(result.columns, result.rows)
    else:
        # Cut to the terminal (80 columns for a pipe); written to a file (-o), nothing is cut.
        to_terminal = output is None and sys.stdout.isatty()
        width = shutil.get_terminal_size((80, 24)).columns if to_terminal else 80 if output is None else 1 << 30
        text = _table(result.columns, result.rows, width)
    # Excel reads a CSV file as UTF-8 only when it starts with a byte order mark.
    _write(text, output, bom=fmt == "csv")
    if output is not None:
        typer.echo(f"{len(result.rows)} rows written to {_safe(str(output))}", err=True)


def _write(text: str, output: Path | None, bom: bool = False) -> None:
    if output is None:
        typer.echo(text, nl=False)
        return
    try:
        with open_private(output, "w", encoding="utf-8-sig" if bom else "utf-8", newline="") as fp:
            fp.write(text)
    except OSError as exc:
        raise IbashError(f"cannot write {output}: {exc.strerror}") from None


def _plain(value: Any) -> Any:
    """A value JSON and CSV can hold: bytes as hex, anything unusual as text."""
    if value is None or isinstance(value, (str, int, float)):
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    return str(value)


def _text(value: Any) -> str:
    """One cell as terminal-safe text: control characters escaped, whole floats without .0."""
    value = _plain(value)
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        value = int(value)
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in str(value))


def _width(text: str) -> int:
    """Terminal columns `text` takes: wide East Asian characters take two, combining marks none."""
    import unicodedata

    return sum(0 if unicodedata.combining(ch) else 2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _cut(text: str, width: int) -> str:
    """`text` in at most `width` columns, ending in … when it had to be cut."""
    if _width(text) <= width:
        return text
    out, used = [], 0
    for ch in text:
        w = _width(ch)
        if used + w > width - 1:
            break
        out.append(ch)
        used += w
    return "".join(out) + "…"


def _pad(text: str, width: int, right: bool) -> str:
    space = " " * (width - _width(text))
    return space + text if right else text + space


def _table(columns: list[str], rows: list[tuple[Any, ...]], width: int) -> str:
    """Aligned columns that fit in `width`; too many columns for that turn into one block per row."""
    heads = [_text(c) for c in columns]
    cells = [[_text(v) for v in row] for row in rows]
    numeric = [
        any(row[i] is not None for row in rows)
        and all(row[i] is None or (isinstance(row[i], (int, float)) and not isinstance(row[i], bool)) for row in rows)
        for i in range(len(columns))
    ]
    data = [max([_width(row[i]) for row in cells], default=0) for i in range(len(heads))]
    widths = [max(_width(h), d) for h, d in zip(heads, data)]
    budget = width - 2 * (len(columns) - 1)
    # First cut headers that are wider than their values (to 9), then the columns wider than 12
    # (not tags, numbers or codes) down to 6, widest first each time.
    for floor in ([max(d, min(w, 9)) for d, w in zip(data, widths)], [w if w <= 12 else 6 for w in widths]):
        floor = [min(f, w) for f, w in zip(floor, widths)]
        while sum(widths) > budget and any(w > f for w, f in zip(widths, floor)):
            i = max((k for k in range(len(widths)) if widths[k] > floor[k]), key=lambda k: widths[k] - floor[k])
            widths[i] -= 1
    if not columns or sum(widths) > budget:
        return _blocks(heads, cells, width)

    def line(values: list[str], align: bool = True) -> str:
        parts = [_pad(_cut(v, w), w, align and numeric[i]) for i, (v, w) in enumerate(zip(values, widths))]
        return "  ".join(parts).rstrip() + "\n"

    out = [line(heads, align=False), line(["-" * w for w in widths], align=False)]
    out += [line(row) for row in cells]
    return "".join(out)


def _blocks(heads: list[str], cells: list[list[str]], width: int) -> str:
    """One block of `column  value` lines per row, like psql's expanded display."""
    if not cells:
        return "(no rows)\n"
    label = min(max((_width(h) for h in heads), default=0), width // 3)
    out = []
    for n, row in enumerate(cells, start=1):
        title = f"-[ row {n} ]"
        out.append(title + "-" * max(0, min(width, 80) - len(title)) + "\n")
        for head, value in zip(heads, row):
            out.append(f"{_pad(_cut(head, label), label, False)}  {_cut(value, width - label - 2)}".rstrip() + "\n")
    return "".join(out)


def _markdown(columns: list[str], rows: list[tuple[Any, ...]]) -> str:
    """A GitHub-flavoured Markdown table: nothing cut, | escaped."""

    def row(values: list[str]) -> str:
        return "| " + " | ".join(v.replace("|", "\\|") for v in values) + " |\n"

    numeric = [
        any(r[i] is not None for r in rows) and all(r[i] is None or isinstance(r[i], (int, float)) for r in rows)
        for i in range(len(columns))
    ]
    out = [row([_text(c) for c in columns]), row(["---:" if n else "---" for n in numeric])]
    out += [row([_text(v) for v in r]) for r in rows]
    return "".join(out)


def _csv(columns: list[str], rows: list[tuple[Any, ...]]) -> str:
    """RFC 4180 CSV; text a spreadsheet would run as a formula gets a leading ' (OWASP's advice)."""
    import csv
    import io

    def cell(value: Any) -> Any:
        value = _plain(value)
        if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r") and not _is_number(value):
            return "'" + value
        return value

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(columns)
    writer.writerows([cell(v) for v in row] for row in rows)
    return buffer.getvalue()


def _is_number(text: str) -> bool:
    """One number, or several joined by \\ as DICOM multi-values are (-0.6\\-120\\-120): no formula."""
    try:
        for part in text.split("\\"):
            float(part)
    except ValueError:
        return False
    return True


def _json(columns: list[str], rows: list[tuple[Any, ...]]) -> str:
    """A JSON list with one object per row."""
    import json

    return json.dumps([dict(zip(columns, map(_plain, row))) for row in rows], ensure_ascii=False, indent=2) + "\n"


# --------------------------------------------------------------------------
# beyond the terminal: files for other tools, a web page, a browser


@app.command()
@_user_errors
def export(
    out: Annotated[Path, typer.Argument(help="Folder to write one file per table into.", show_default=False)],
    db: DbOption = "ibash.db",
    fmt: Annotated[str, typer.Option("--format", "-f", help="parquet (DuckDB, Spark, BigQuery) or csv.")] = "parquet",
    quiet: QuietOption = False,
) -> None:
    """Export every table and element_view as Parquet or CSV files, streaming (memory stays flat).

    Example:

        ibash-index export ./parquet --db ibash.db && duckdb -c "SELECT count(*) FROM 'parquet/elements.parquet'"
    """
    from .export import export as run_export

    progress = None if quiet else lambda name, rows: typer.echo(f"{name}: {rows} rows", err=True)
    counts = run_export(db, out, fmt.lower(), progress)
    if not quiet:
        typer.echo(f"{len(counts)} files, {sum(counts.values())} rows in {out}")


@app.command()
@_user_errors
def serve(
    db: DbOption = "ibash.db",
    host: Annotated[str, typer.Option(help="Address to listen on; anything but loopback exposes patient data.")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8001,
) -> None:
    """Browse the database in Datasette (read-only), with every saved report as a canned query.

    Needs the web extra: pip install 'ibash-index\\[web]'.

    Example:

        ibash-index serve --db ibash.db --port 8001
    """
    from .web import serve as run_serve

    raise typer.Exit(run_serve(db, host, port))


@app.command()
@_user_errors
def compare(
    output: Annotated[Path, typer.Option("--output", "-o", help="HTML file to write.")] = Path("compare.html"),
    db: DbOption = "ibash.db",
) -> None:
    """Write one self-contained HTML page that puts the sites side by side (no network needed to view it).

    Counts, scanners, the tag-presence heatmap, private creators, the PHI inventory (without values)
    and acquisition parameters with the values that differ between sites highlighted.

    Example:

        ibash-index compare --db ibash.db --output sites.html
    """
    from .compare import compare as run_compare

    typer.echo(f"wrote {run_compare(db, output)}")

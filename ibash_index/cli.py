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
from tqdm import tqdm

from . import __version__
from .errors import IbashError

F = TypeVar("F", bound=Callable[..., Any])

# pretty_exceptions_show_locals=False: locals in a traceback could show patient data.
app = typer.Typer(
    help="Index folders of DICOM files into a SQL database you can question.",
    no_args_is_help=True,
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
    """Log through tqdm.write so records do not tear a progress bar."""

    def emit(self, record: logging.LogRecord) -> None:
        tqdm.write(self.format(record), file=sys.stderr)


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
    """Turn an IbashError into one line on stderr and exit 1 (or the error's own code)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except IbashError as exc:
            if _state["debug"]:
                raise
            typer.echo(f"Error: {_safe(str(exc))}", err=True)
            raise typer.Exit(getattr(exc, "exit_code", 1)) from None

    return wrapper  # type: ignore[return-value]


def _safe(text: str) -> str:
    """Escape control characters so a file name or value cannot drive the terminal."""
    return "".join(ch if ch.isprintable() or ch == "\t" else ch.encode("unicode_escape").decode() for ch in text)


@app.command()
@_user_errors
def build(
    roots: Annotated[list[Path], typer.Argument(help="Folders (or files) to index.", show_default=False)],
    db: DbOption = "ibash.db",
    workers: Annotated[int, typer.Option(help="Worker processes (default: all cores; 0 reads in this process).")] = -1,
    full: Annotated[bool, typer.Option("--full", help="Rebuild from scratch instead of updating.")] = False,
    site_from: Annotated[
        str, typer.Option(help="Tag keyword that names the site, or level:N for the N-th folder below the root.")
    ] = "InstitutionName",
    max_blob: Annotated[int, typer.Option(help="Keep binary values up to this many bytes (larger: hash only).")] = 256,
    follow_symlinks: Annotated[
        bool, typer.Option("--follow-symlinks", help="Follow symlinks out of the roots.")
    ] = False,
    timeout: Annotated[float, typer.Option(help="Seconds one file may take before it is given up.")] = 120.0,
    max_memory: Annotated[int, typer.Option(help="MB of memory one worker may use (0 = no limit).")] = 2048,
    quiet: QuietOption = False,
) -> None:
    """Index every DICOM file under ROOTS into the database; a rerun only reads what changed.

    Example:

        ibash-index build /data/ibash --db ibash.db --workers 4
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
        **({"workers": workers} if workers >= 0 else {}),
    )
    with _ProgressBar("files", quiet) as bar:
        summary = run_build([str(r) for r in roots], db, options, progress=bar.update)
    if not quiet:
        typer.echo(
            f"{summary.files_seen} files seen: {summary.indexed} indexed, {summary.unchanged} unchanged, "
            f"{summary.not_dicom} not DICOM, {summary.errors} errors, {summary.skipped} skipped, "
            f"{summary.removed} removed; {summary.elements} elements in {summary.seconds:.1f} s"
        )
    if summary.errors and not quiet:
        typer.echo(f"see why with: ibash-index report errors --db {db}", err=True)
    if summary.indexed == 0 and summary.unchanged == 0 and summary.files_seen:
        raise IbashError("no DICOM file could be indexed")


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
    """A tqdm bar on stderr, silent when not a terminal or with --quiet."""

    def __init__(self, unit: str, quiet: bool) -> None:
        self.bar: tqdm | None = None
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
            self.bar = tqdm(total=total, unit=self.unit, file=sys.stderr, dynamic_ncols=True)
        self.bar.n = done
        self.bar.refresh() if done == total else self.bar.update(0)

    def advance(self, n: int) -> None:
        if self.disable:
            return
        if self.bar is None:
            self.bar = tqdm(unit=self.unit, file=sys.stderr, dynamic_ncols=True)
        self.bar.update(n)

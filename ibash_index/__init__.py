"""Index folders of DICOM files into a SQL database you can question.

The command line is a thin layer over these functions:

>>> from ibash_index.build import BuildOptions, build
>>> from ibash_index import run_saved_report
>>> build(["/data/ibash"], "ibash.db", BuildOptions(workers=4))  # doctest: +SKIP
>>> run_saved_report("ibash.db", "sites", {}).rows  # doctest: +SKIP

(`build` and `export` stay in their modules, whose names they share.)
"""

__version__ = "0.1.0"

from .build import BuildOptions, BuildSummary
from .errors import IbashError
from .reports import load_reports, run_saved_report, run_sql
from .sample import make_sample
from .store import open_index

__all__ = [
    "BuildOptions",
    "BuildSummary",
    "IbashError",
    "__version__",
    "load_reports",
    "make_sample",
    "open_index",
    "run_saved_report",
    "run_sql",
]

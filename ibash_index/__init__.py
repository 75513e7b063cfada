"""Index folders of DICOM files into a SQL database you can question.

The command line is a thin layer over these functions:

>>> from ibash_index.build import BuildOptions, build
>>> from ibash_index import run_saved_report
>>> build(["/data/ibash"], "ibash.db", BuildOptions(workers=4))  # doctest: +SKIP
>>> run_saved_report("ibash.db", "sites", {}).rows  # doctest: +SKIP

(`build` and `export` stay in their modules, whose names they share.)
"""

__version__ = "0.1.0"

import importlib
from typing import Any

# Imported on first use, so that `ibash-index report` does not pay for pydicom and the build.
_EXPORTS = {
    "BuildOptions": "build",
    "BuildSummary": "build",
    "IbashError": "errors",
    "load_reports": "reports",
    "run_saved_report": "reports",
    "run_sql": "reports",
    "make_sample": "sample",
    "open_index": "store",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

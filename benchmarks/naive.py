"""The baseline a user would write: pydicom reads each file, every element's value becomes a string.

One process, no database, no tricks: `dcmread` every file under a folder, walk every element
(file meta included, into every sequence item at every depth) and `str()` each value. It is the
yardstick of issue 5 (build / naive), so it must stay what a user would write; do not optimise it.

    python benchmarks/naive.py DIR            # prints {"files": ..., "elements": ..., ...} as JSON
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError


@dataclass
class NaiveResult:
    """What the walk saw: files read, files pydicom refused, elements visited, characters produced."""

    files: int = 0
    elements: int = 0
    chars: int = 0
    unreadable: list[str] = field(default_factory=list)
    per_file: dict[str, int] | None = None


def iter_files(root: str | os.PathLike[str]) -> Iterator[str]:
    """Every regular file under `root` (or `root` itself), in a stable order; symlinks are not followed."""
    root = os.fspath(root)
    if os.path.isfile(root):
        yield root
        return
    for folder, dirs, names in os.walk(root):
        dirs.sort()
        for name in sorted(names):
            path = os.path.join(folder, name)
            if os.path.isfile(path) and not os.path.islink(path):
                yield path


def walk_dataset(ds: Dataset) -> tuple[int, int]:
    """Visit every element of `ds` and its sequence items; return (elements, characters of str(value))."""
    elements = chars = 0
    for elem in ds:  # iterating converts each raw element through pydicom's DataElement
        elements += 1
        if elem.VR == "SQ":
            for item in elem.value:
                e, c = walk_dataset(item)
                elements += e
                chars += c
        else:
            chars += len(str(elem.value))
    return elements, chars


def read_one(path: str) -> tuple[int, int]:
    """(elements, characters) of one file, file meta included; raises what pydicom raises."""
    ds = pydicom.dcmread(path)
    e1, c1 = walk_dataset(ds.file_meta)
    e2, c2 = walk_dataset(ds)
    return e1 + e2, c1 + c2


def walk(root: str | os.PathLike[str], per_file: bool = False) -> NaiveResult:
    """Read every file under `root`; files pydicom cannot read are listed, not counted."""
    result = NaiveResult(per_file={} if per_file else None)
    for path in iter_files(root):
        try:
            elements, chars = read_one(path)
        except (InvalidDicomError, OSError, EOFError):
            result.unreadable.append(path)
            continue
        result.files += 1
        result.elements += elements
        result.chars += chars
        if result.per_file is not None:
            result.per_file[path] = elements
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path, help="folder (or file) to read")
    parser.add_argument("--per-file", action="store_true", help="also list each file's element count")
    args = parser.parse_args(argv)
    json.dump(asdict(walk(args.root, args.per_file)), sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

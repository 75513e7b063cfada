"""What the `tags` table says of a (tag, private creator), from pydicom's data dictionary.

Its own module, without SQLAlchemy: the writer fills `tags` with it and the workers' tallies
(tally.py) group phi rows by it, and a worker that imported `store` for it paid for SQLAlchemy.
"""

from __future__ import annotations

import contextlib
from typing import Any


def tag_values(tag: int, creator: str | None) -> dict[str, Any]:
    """Dictionary facts for a tag row: names from pydicom's public or private dictionary."""
    import pydicom.datadict as dd

    group, elem = tag >> 16, tag & 0xFFFF
    values: dict[str, Any] = {
        "tag_text": f"({group:04X},{elem:04X})",
        "tag_hex": f"{group:04X}{elem:04X}",
        "private_tag": None,
        "keyword": "",
        "name": "",
        "dictionary_vr": None,
        "dictionary_vm": None,
        "retired": 0,
    }
    if group & 1:
        if 0x0010 <= elem <= 0x00FF:
            values["name"] = "Private Creator"
        elif elem >= 0x1000:
            values["private_tag"] = f"({group:04X},xx{elem & 0xFF:02X})"
            with contextlib.suppress(KeyError, ValueError):
                vr, vm, name, retired = dd.get_private_entry(tag, creator or "")
                values.update(name=name, dictionary_vr=vr, dictionary_vm=vm, retired=int(bool(retired)))
        return values
    with contextlib.suppress(KeyError):
        vr, vm, name, retired, keyword = dd.get_entry(tag)
        values.update(keyword=keyword, name=name, dictionary_vr=vr, dictionary_vm=vm, retired=int(bool(retired)))
    return values

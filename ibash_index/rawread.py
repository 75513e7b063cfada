"""A strict parser for the common DICOM file: little endian, explicit or implicit VR, read from bytes.

pydicom reads through a Python file object, one small read (and an lseek for every tell) per
element header, and parses sequences again when a value is first asked for. This module splits
a file held in memory into element headers in one pass, values left as byte ranges. It decodes
no values: ibash_index.extract converts them with pydicom, so values stay pydicom's.

It accepts only what it is sure pydicom reads the same way and without a word. Anything else
raises `Unsupported` and the caller reads the file with pydicom: a VR that is not a standard
VR, tags out of order or repeated, a value or item running past its end, bytes after the last
element, an undefined length without its delimiter, a sequence item that is not one, group
0000 or 0002 elements in the data set, nesting deeper than MAX_NESTING.
"""

from __future__ import annotations

import struct
import sys
from typing import NamedTuple

import pydicom.datadict
from pydicom.valuerep import EXPLICIT_VR_LENGTH_32, VR

UNDEFINED = 0xFFFFFFFF
ITEM = 0xFFFEE000
ITEM_END = 0xFFFEE00D
SEQUENCE_END = 0xFFFEE0DD
MAX_NESTING = 32  # sequence levels read here; deeper files go to pydicom (and its recursion checks)

_VRS = {vr.value.encode(): vr.value for vr in VR if len(vr.value) == 2}
_LONG_VRS = frozenset(v.encode() for v in EXPLICIT_VR_LENGTH_32)
# The VRs with a 2-byte length, keyed by their two bytes read as one little endian number: the
# data set loop reads a whole header with one unpack and handles these elements inline.
_SHORT_VRS = {int.from_bytes(raw, "little"): vr for raw, vr in _VRS.items() if raw not in _LONG_VRS}
_EXPLICIT = struct.Struct("<HH2sH").unpack_from
_EXPLICIT_CODE = struct.Struct("<HHHH").unpack_from
_IMPLICIT = struct.Struct("<HHL").unpack_from
_LENGTH = struct.Struct("<L").unpack_from


_new = tuple.__new__


class Unsupported(Exception):
    """The file is not one this parser reads exactly as pydicom does: read it with pydicom."""


class NeedMore(Exception):
    """The parse needs bytes past the part of the file read so far (`end`: up to where)."""

    def __init__(self, end: int) -> None:
        super().__init__(end)
        self.end = end


class Element(NamedTuple):
    """One element header: tag, VR as stored (None: implicit), length as stored, value byte range.

    `items` holds the item data sets of a sequence (None for other elements). For an
    undefined-length encapsulated value, `end` is where its items end (the delimiter's offset).
    """

    tag: int
    vr: str | None
    length: int
    start: int
    end: int
    items: list[list[Element]] | None


class Parsed(NamedTuple):
    """The file meta elements, where the data set starts, and the parser state for the data set."""

    meta: list[Element]
    start: int


def parse_meta(data: bytes, size: int) -> Parsed:
    """Preamble, DICM and the group 0002 elements (always explicit VR little endian)."""
    if len(data) < 140 or data[128:132] != b"DICM":
        raise Unsupported("no preamble and DICM marker")
    reader = _Reader(data, size, implicit=False, defer=None)
    meta: list[Element] = []
    pos, avail, last = 132, len(data), -1
    while pos + 8 <= avail:
        group, elem, code, length = _EXPLICIT_CODE(data, pos)
        if group != 2:
            break
        vr = _SHORT_VRS.get(code)
        if vr is None:
            element, pos = reader.element(pos, 0)
        else:  # as in _Reader.dataset
            start = pos + 8
            pos = start + length
            if pos > avail:
                reader.need(pos)
            element = _new(Element, (0x00020000 | elem, vr, length, start, pos, None))
        if element.tag <= last:
            raise Unsupported("file meta elements out of order")
        last = element.tag
        meta.append(element)
    if not meta or meta[0].vr is None:
        raise Unsupported("no file meta elements")
    return Parsed(meta, pos)


def parse_dataset(data: bytes, size: int, start: int, implicit: bool, defer: int | None) -> list[Element]:
    """The data set from `start` to the end of the file; the last element must end exactly there."""
    if start + 8 > size:
        raise Unsupported("no data set after the file meta")
    head = data[start + 4 : start + 6]
    if len(head) < 2:
        raise NeedMore(start + 8)
    if (0x40 < head[0] < 0x5B and 0x40 < head[1] < 0x5B) == implicit:
        raise Unsupported("the data set's VR encoding is not the transfer syntax's")  # pydicom warns and switches
    reader = _Reader(data, size, implicit, defer)
    elements, end = reader.dataset(start, size, 0, top=True)
    if end != size:
        raise Unsupported("bytes after the data set")
    if elements[0].tag < 0x00030000:
        raise Unsupported("command or file meta elements in the data set")
    return elements


class _Reader:
    """The parse state shared by all levels of one data set."""

    def __init__(self, data: bytes, size: int, implicit: bool, defer: int | None) -> None:
        self.data = data
        self.size = size
        self.implicit = implicit
        self.defer = defer

    def need(self, end: int) -> None:
        """Make sure bytes up to `end` are in memory (and in the file)."""
        if end > self.size:
            raise Unsupported("a length runs past the end of the file")
        if end > len(self.data):
            raise NeedMore(end)

    def dataset(self, pos: int, stop: int | None, depth: int, top: bool = False) -> tuple[list[Element], int]:
        """Elements from `pos` up to `stop` (None: up to an item delimiter, which is consumed).

        The common element (not a sequence, a defined length, and in explicit VR a VR with a
        2-byte length) is read here in one unpack; the others go to `element`. Element is built
        with tuple.__new__: the NamedTuple constructor costs a Python call per element.
        """
        if depth > MAX_NESTING:
            raise Unsupported("nested too deep")
        data, implicit = self.data, self.implicit
        avail = len(data)
        elements: list[Element] = []
        append = elements.append
        last = -1
        until = sys.maxsize if stop is None else stop
        while True:
            if pos >= until:
                if pos != stop:
                    raise Unsupported("an element runs past the end of its item")
                return elements, pos
            if pos + 8 > avail:
                self.need(pos + 8)
            if implicit:
                group, elem, length = _IMPLICIT(data, pos)
                vr = None
            else:
                group, elem, code, length = _EXPLICIT_CODE(data, pos)
                vr = _SHORT_VRS.get(code)
            if group == 0xFFFE:
                if stop is None and elem == 0xE00D:
                    return elements, pos + 8
                raise Unsupported("an item or delimiter tag among the elements")
            tag = group << 16 | elem
            if tag <= last:
                raise Unsupported("elements out of order or repeated")
            last = tag
            if implicit:
                vr_of_tag = _DICTIONARY_VRS.get(tag, _MISSING)
                if vr_of_tag is _MISSING:
                    vr_of_tag = _dictionary_vr(tag)
                inline = length != UNDEFINED and vr_of_tag != "SQ"
            else:
                inline = vr is not None
            if inline:
                start = pos + 8
                pos = start + length
                if pos > avail:
                    self._need_value(tag, length, pos, top)
                append(_new(Element, (tag, vr, length, start, pos, None)))
            else:
                element, pos = self.element(pos, depth, top)
                append(element)

    def _need_value(self, tag: int, length: int, end: int, top: bool) -> None:
        """A value that ends past the bytes read so far: fine only for pixel data left in the file."""
        if end > self.size:
            raise Unsupported("a value runs past the end of the file")
        if not (top and self.defer is not None and length > self.defer and tag in _PIXEL_TAGS):
            raise NeedMore(end)

    def element(self, pos: int, depth: int, top: bool = False) -> tuple[Element, int]:
        data = self.data
        if self.implicit:
            group, elem, length = _IMPLICIT(data, pos)
            vr = None
            pos += 8
        else:
            group, elem, raw_vr, length = _EXPLICIT(data, pos)
            vr = _VRS.get(raw_vr)
            if vr is None:
                raise Unsupported("not a standard VR")  # pydicom guesses: implicit, or a 2-byte length
            pos += 8
            if raw_vr in _LONG_VRS:
                self.need(pos + 4)
                length = _LENGTH(data, pos)[0]
                pos += 4
        tag = group << 16 | elem
        if group == 0xFFFE:
            raise Unsupported("an item or delimiter tag among the elements")
        if length != UNDEFINED:
            end = pos + length
            if end > self.size:
                raise Unsupported("a value runs past the end of the file")
            sequence = vr == "SQ" or (vr is None and _dictionary_vr(tag) == "SQ")
            if sequence:
                self.need(end)
                return Element(tag, vr, length, pos, end, self.sequence(pos, end, depth)), end
            deferred = top and self.defer is not None and length > self.defer and tag != 0x00080005
            if not deferred or tag not in _PIXEL_TAGS:
                self.need(end)
            return Element(tag, vr, length, pos, end, None), end
        if vr == "SQ" or (vr is None and self._implicit_sequence(tag, pos)):
            items: list[list[Element]] = []
            end = self.undefined_sequence(pos, depth, items)
            return Element(tag, vr, length, pos, end, items), end
        if vr is None or vr == "UN" or tag not in _PIXEL_TAGS:
            raise Unsupported("an undefined length that is not a sequence or encapsulated pixel data")
        end = self.fragments(pos)
        return Element(tag, vr, length, pos, end, None), end + 8

    def _implicit_sequence(self, tag: int, pos: int) -> bool:
        """What pydicom decides for an implicit VR undefined length: the dictionary's VR, or an item next."""
        vr = _dictionary_vr(tag)
        if vr is not None:
            return vr == "SQ"
        self.need(pos + 4)
        return self.data[pos : pos + 4] == b"\xfe\xff\x00\xe0"

    def sequence(self, pos: int, end: int, depth: int) -> list[list[Element]]:
        """The items of a defined-length sequence value; they must fill it exactly."""
        items: list[list[Element]] = []
        while pos < end:
            pos = self.item(pos, depth, items)
            if pos is None:
                raise Unsupported("a sequence delimiter in a defined-length sequence")
        if pos != end:
            raise Unsupported("sequence items run past the sequence")
        return items

    def undefined_sequence(self, pos: int, depth: int, items: list[list[Element]]) -> int:
        """Items up to the sequence delimiter; where the sequence ends (after its delimiter)."""
        while True:
            after = self.item(pos, depth, items)
            if after is None:
                return pos + 8
            pos = after

    def item(self, pos: int, depth: int, items: list[list[Element]]) -> int | None:
        """One item appended to `items`; where it ends, or None at a sequence delimiter."""
        self.need(pos + 8)
        tag_bytes = self.data[pos : pos + 4]
        if tag_bytes == b"\xfe\xff\xdd\xe0":
            return None
        if tag_bytes != b"\xfe\xff\x00\xe0":
            raise Unsupported("not an item tag in a sequence")
        length = _LENGTH(self.data, pos + 4)[0]
        pos += 8
        if length == UNDEFINED:
            elements, pos = self.dataset(pos, None, depth + 1)
        else:
            if pos + length > self.size:
                raise Unsupported("an item runs past the end of the file")
            self.need(pos + length)
            elements, pos = self.dataset(pos, pos + length, depth + 1)
        items.append(elements)
        return pos

    def fragments(self, pos: int) -> int:
        """Skip the items of encapsulated pixel data; the offset of the sequence delimiter."""
        data = self.data
        while True:
            self.need(pos + 8)
            tag_bytes = data[pos : pos + 4]
            if tag_bytes == b"\xfe\xff\xdd\xe0":
                self.need(pos + 8)
                return pos
            if tag_bytes != b"\xfe\xff\x00\xe0":
                raise Unsupported("not an item tag in encapsulated pixel data")
            pos += 8 + _LENGTH(data, pos + 4)[0]


_PIXEL_TAGS = frozenset({0x7FE00008, 0x7FE00009, 0x7FE00010})


def _dictionary_vr(tag: int) -> str | None:
    """The public dictionary's VR (None for private and unknown tags), as pydicom looks it up."""
    vr = _DICTIONARY_VRS.get(tag, _MISSING)
    if vr is _MISSING:
        try:
            vr = pydicom.datadict.dictionary_VR(tag) if not (tag >> 16) & 1 else None
        except KeyError:
            vr = None
        if len(_DICTIONARY_VRS) < 8192:
            _DICTIONARY_VRS[tag] = vr
    return vr  # type: ignore[return-value]


_MISSING = object()
_DICTIONARY_VRS: dict[int, str | None] = {}

"""What a HEIF file's boxes say about its primary image, read without decoding any of it.

A HEIF (ISO/IEC 23008-12) is a tree of ISO base media boxes: `meta` describes the items (`pitm`:
which one is the primary image, `iinf`: each item's type, `iref`: a grid's tiles, `iloc`: where
each item's bytes are) and `mdat` holds the coded data. libheif parses the same boxes when it
opens a file, but only checks where the data is when it decodes it; this walk lets the upload
refuse a file whose data is cut off, or coded with what our libheif cannot decode, in a fraction
of a millisecond instead of the seconds a phone photo's decode takes.

Malformed boxes are reported, never guessed around. What the coded data holds is not read: that
is the decoder's work.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

#: The coding of an item whose pixels libheif decodes with the HEVC decoder we ship (libde265).
HEVC = b"hvc1"
#: Items made of other items (`dimg` references): a grid of tiles (what phones write), an overlay
#: of images on a canvas, or an identity derivation (one item, cropped or turned by its
#: properties).
DERIVED = frozenset({b"grid", b"iovl", b"iden"})
#: Deeper than any real file nests derived images (a grid of HEVC tiles is one level).
MAX_DEPTH = 4


class HeifDamaged(Exception):
    """The boxes are cut off or malformed; `str()` says how, for the client."""


class HeifUnsupported(Exception):
    """The primary image is coded with something we do not decode; `coding` names it."""

    def __init__(self, coding: str) -> None:
        self.coding = coding
        super().__init__(coding)


def heif_check(data: bytes) -> None:
    """Raise `HeifDamaged` unless the boxes parse and the primary image's data (a grid's: its
    tiles') lies within `data`, and `HeifUnsupported` unless it is coded in HEVC (a grid: of HEVC
    tiles)."""
    meta = None
    # The last box may be cut short: libheif decodes an `mdat` cut after the last byte an item
    # uses. What matters is that the primary image's data is all there, which `iloc` says.
    for kind, start, end in _boxes(data, 0, len(data), cut_ok=True):
        if kind == b"meta":
            meta = (start + 4, end)  # a full box: version and flags first
    if meta is None:
        raise HeifDamaged("it has no meta box")
    primary: int | None = None
    types: dict[int, bytes] = {}
    derived_from: dict[int, list[int]] = {}
    cut: set[int] = set()
    try:
        for kind, start, end in _boxes(data, *meta):
            box = data[start:end]
            if kind == b"pitm":
                primary = _u(box, 4, 2 if box[0] == 0 else 4)
            elif kind == b"iinf":
                types = _item_types(data, start, end)
            elif kind == b"iref":
                derived_from = _derivations(data, start, end)
            elif kind == b"iloc":
                cut = _items_cut_off(box, len(data))
    except (IndexError, struct.error):
        raise HeifDamaged("its item boxes are malformed") from None
    if primary is None or primary not in types:
        raise HeifDamaged("it names no primary image")
    _check_item(primary, types, derived_from, cut, depth=0)


def _check_item(
    item: int,
    types: dict[int, bytes],
    derived_from: dict[int, list[int]],
    cut: set[int],
    *,
    depth: int,
) -> None:
    """The item and those it is made of: whole, and coded in what we decode. Other items (a
    thumbnail, a depth map, EXIF) are not the decoder's business, nor ours."""
    if item in cut:
        raise HeifDamaged("it ends before its image data does")
    kind = types.get(item, b"")
    if kind == HEVC:
        return
    if kind not in DERIVED:
        raise HeifUnsupported(kind.decode("ascii", "replace").strip() or "unknown")
    sources = derived_from.get(item, [])
    if not sources or depth >= MAX_DEPTH:
        raise HeifDamaged("its grid has no tiles")
    for source in sources:
        _check_item(source, types, derived_from, cut, depth=depth + 1)


def _boxes(
    data: bytes, start: int, end: int, *, cut_ok: bool = False
) -> Iterator[tuple[bytes, int, int]]:
    """(type, payload start, box end) of each box between `start` and `end`; with `cut_ok`, the
    last box may run past `end` (it is cut there, and is the last)."""
    position = start
    while position < end:
        if position + 8 > end:
            raise HeifDamaged("it ends inside a box header")
        size, kind = struct.unpack_from(">I4s", data, position)
        header = 8
        if size == 1:  # a 64-bit size follows the type
            if position + 16 > end:
                raise HeifDamaged("it ends inside a box header")
            (size,) = struct.unpack_from(">Q", data, position + 8)
            header = 16
        elif size == 0:  # the box runs to the end of its container
            size = end - position
        if size < header:
            raise HeifDamaged("a box is shorter than its header")
        if position + size > end:
            if not cut_ok:
                raise HeifDamaged("it ends before its last box does")
            yield kind, position + header, end
            return
        yield kind, position + header, position + size
        position += size


def _u(box: bytes, at: int, size: int) -> int:
    """A big-endian unsigned integer of `size` bytes (0, 4 or 8 in `iloc`), bounds-checked."""
    if at + size > len(box):
        raise IndexError(at)
    return int.from_bytes(box[at : at + size], "big")


def _item_types(data: bytes, start: int, end: int) -> dict[int, bytes]:
    """item id → item type, from the `infe` boxes (version 2 and 3) of `iinf`."""
    version = data[start]
    first = start + 4 + (2 if version == 0 else 4)  # after version, flags and the entry count
    types: dict[int, bytes] = {}
    for kind, entry, entry_end in _boxes(data, first, end):
        box = data[entry:entry_end]
        if kind != b"infe" or box[0] < 2:  # versions 0 and 1 are for files, not images
            continue
        id_size = 2 if box[0] == 2 else 4
        item = _u(box, 4, id_size)
        at = 4 + id_size + 2  # after the protection index
        types[item] = box[at : at + 4]
    return types


def _derivations(data: bytes, start: int, end: int) -> dict[int, list[int]]:
    """item id → the items it is derived from (`dimg` references: a grid's tiles, in order)."""
    id_size = 2 if data[start] == 0 else 4
    derived: dict[int, list[int]] = {}
    for kind, entry, entry_end in _boxes(data, start + 4, end):
        if kind != b"dimg":
            continue
        box = data[entry:entry_end]
        item = _u(box, 0, id_size)
        count = _u(box, id_size, 2)
        at = id_size + 2
        derived.setdefault(item, []).extend(
            _u(box, at + index * id_size, id_size) for index in range(count)
        )
    return derived


def _items_cut_off(box: bytes, file_size: int) -> set[int]:
    """The items stored in this file (`iloc`) with an extent that ends past its end."""
    version = box[0]
    offset_size, length_size = box[4] >> 4, box[4] & 0x0F
    base_size = box[5] >> 4
    index_size = box[5] & 0x0F if version in (1, 2) else 0
    id_size = 2 if version < 2 else 4
    count = _u(box, 6, id_size)
    at = 6 + id_size
    cut = set()
    for _ in range(count):
        item = _u(box, at, id_size)
        at += id_size
        method = 0
        if version in (1, 2):
            method = _u(box, at, 2) & 0x0F
            at += 2
        reference = _u(box, at, 2)  # 0: this file
        base = _u(box, at + 2, base_size)
        at += 2 + base_size
        extents = _u(box, at, 2)
        at += 2
        for _ in range(extents):
            at += index_size
            offset = _u(box, at, offset_size)
            length = _u(box, at + offset_size, length_size)
            at += offset_size + length_size
            # Method 0 is an offset in the file (1: in `idat`, inside meta, already bounded;
            # 2: in another item). A length of 0 means "to the end of the file".
            if method == 0 and reference == 0 and base + offset + length > file_size:
                cut.add(item)
    return cut

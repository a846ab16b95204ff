"""A JPEG without its metadata, losslessly: the same compressed pixels, none of the segments that
carry EXIF, GPS, XMP, ICC profiles, maker notes or comments.

Used by the preflight for a JPEG that needs no pixel work (upright, small enough): removing the
segments is one scan of the file, where decoding and re-encoding it is pixel work, and lossy.
Anything unusual returns None and the caller decodes instead: the walk never guesses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SOI, EOI, SOS, COM = 0xD8, 0xD9, 0xDA, 0xFE
APP0, APP14, APP15 = 0xE0, 0xEE, 0xEF
#: Huffman-coded frames, 8 bits a sample: baseline, extended sequential, progressive. Arithmetic
#: coding, lossless and hierarchical frames are rare and not read by every decoder: decoded.
PLAIN_FRAMES = frozenset({0xC0, 0xC1, 0xC2})
OTHER_FRAMES = frozenset({0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})
#: Segments between SOI and EOI that carry no metadata: quantisation and Huffman tables, the
#: restart interval, the number of lines, a scan header.
TABLES = frozenset({0xDB, 0xC4, 0xDD, 0xDC, SOS})
#: Far above what encoders write (imaging/validation.py refuses more at upload).
MAX_SEGMENTS = 1000
# A marker in entropy-coded data: 0xFF, then anything but 0x00 (a stuffed 0xFF), 0xFF (fill) or
# RSTn (restart markers belong to the data).
_MARKER_IN_DATA = re.compile(rb"\xff[^\x00\xff\xd0-\xd7]")
# A plain JFIF header: version, density, and a 0x0 thumbnail (14 bytes after the length).
_JFIF = re.compile(rb"JFIF\x00[\x01\x02].{6}\x00\x00", re.DOTALL)


@dataclass(frozen=True)
class StrippedJpeg:
    data: bytes
    width: int
    height: int


def jpeg_strip_metadata(data: bytes) -> StrippedJpeg | None:
    """The first image of `data` with every APPn segment but a plain JFIF header, and every
    comment, removed; bytes after its EOI (an MPO's other images, trailers) are dropped too.

    None when the file is not a plain 8-bit Huffman-coded YCbCr JPEG whose structure is sound: a
    length that runs past the end, no frame header, no EOI, an Adobe (APP14) segment (it can say
    the colours are not YCbCr; removing it would change them), RGB component ids, and so on.
    """
    if data[:3] != b"\xff\xd8\xff":
        return None
    parts = [data[:2]]
    frame: tuple[int, int] | None = None
    position = 2
    for _ in range(MAX_SEGMENTS):
        while data[position : position + 2] == b"\xff\xff":  # fill bytes before a marker
            position += 1
        if data[position : position + 1] != b"\xff" or position + 2 > len(data):
            return None
        marker = data[position + 1]
        if marker == EOI:
            if frame is None:
                return None
            parts.append(data[position : position + 2])
            return StrippedJpeg(b"".join(parts), *frame)
        if position + 4 > len(data):
            return None
        end = position + 2 + int.from_bytes(data[position + 2 : position + 4], "big")
        if end - position < 4 or end > len(data):
            return None
        segment = data[position:end]
        if marker == APP14 or marker in OTHER_FRAMES:
            return None
        if marker in PLAIN_FRAMES:
            if frame is not None:
                return None
            frame = _frame_size(segment)
            if frame is None:
                return None
            parts.append(segment)
        elif marker == APP0:
            if _JFIF.fullmatch(segment, 4):
                parts.append(segment)  # harmless and 18 bytes; decoders expect it
        elif APP0 < marker <= APP15 or marker == COM:
            pass  # metadata: EXIF, GPS, XMP, ICC, maker notes, comments
        elif marker in TABLES:
            if marker == SOS and frame is None:
                return None
            parts.append(segment)
        else:
            return None  # SOI again, a stray RSTn, TEM, a reserved marker
        position = end
        if marker == SOS:  # entropy-coded data up to the next marker
            found = _MARKER_IN_DATA.search(data, position)
            if found is None:
                return None
            parts.append(data[position : found.start()])
            position = found.start()
    return None


def _frame_size(segment: bytes) -> tuple[int, int] | None:
    """(width, height) from a frame header, or None unless 8 bits a sample and three components
    that decoders read as YCbCr (ids 'R', 'G', 'B' mean RGB: left to the decoder)."""
    if len(segment) < 10:
        return None
    precision = segment[4]
    height = int.from_bytes(segment[5:7], "big")
    width = int.from_bytes(segment[7:9], "big")
    components = segment[9]
    if precision != 8 or components != 3 or len(segment) != 10 + 3 * components:
        return None
    if segment[10::3] == b"RGB" or not width or not height:
        return None
    return width, height

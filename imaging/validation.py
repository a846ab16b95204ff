"""Checking uploaded images: sniff the real format with Pillow, never trust names or headers."""

from __future__ import annotations

import io
import re
import struct
import warnings
import zlib
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError
from pillow_heif import register_heif_opener

from imaging.heif import HeifDamaged, HeifUnsupported, heif_check

register_heif_opener()  # phones send HEIC/HEIF
Image.init()  # every plugin registered, so that `formats=` below can name the ones we run

#: Pillow format name → the extension we store under.
ACCEPTED_FORMATS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp", "HEIF": "heic"}
ACCEPTED_NAMES = "JPEG, PNG, WebP or HEIC"
#: The only Pillow plugins run on untrusted bytes: `Image.open` otherwise tries every plugin it
#: has, and some (DDS with an unimplemented pixel format) raise what no caller expects. The JPEG
#: plugin also opens MPO: a JPEG followed by more JPEGs (Ultra HDR gain maps, depth maps, stereo
#: pairs: what phones write).
OPENED_FORMATS = ("JPEG", "PNG", "WEBP", "HEIF")
#: Formats we recognise to name them in the refusal, by their first bytes (no plugin runs on them).
_OTHER_FORMATS = (
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"\x00\x00\x01\x00", "ICO"),
    (b"DDS ", "DDS"),
    (b"8BPS", "PSD"),
    (b"\x00\x00\x00\x0cjP  ", "JPEG2000"),
    (b"\xff\x4f\xff\x51", "JPEG2000"),
    (b"qoif", "QOI"),
)
# Decoding a JPEG at 1/8 scale reads every byte of its entropy-coded data (so truncation is
# caught) at a fraction of the time and memory of a full decode.
_DRAFT_EDGE = 256
#: Far above what encoders write (libjpeg's progressive mode: 10 scans; a phone: about a dozen
#: segments before the first scan). Each scan is a pass over the whole image's coefficients and
#: Pillow keeps every segment in a list, so a small file with thousands of either costs seconds of
#: CPU (and, for segments, hundreds of MB) before any pixel comes out.
JPEG_MAX_SCANS = 100
JPEG_MAX_SEGMENTS = 1000
# A marker: 0xFF then anything but 0x00 (a stuffed 0xFF in entropy-coded data), 0xFF (fill)
# or RSTn (restart markers inside entropy-coded data). One byte of context only: no backtracking.
_JPEG_MARKER = re.compile(rb"\xff[^\x00\xff\xd0-\xd7]")
_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # by colour type
# Adam7 interlacing: each pass's first column, first row, column step and row step.
_ADAM7 = (
    (0, 0, 8, 8),
    (4, 0, 8, 8),
    (0, 4, 4, 8),
    (2, 0, 4, 4),
    (0, 2, 2, 4),
    (1, 0, 2, 2),
    (0, 1, 1, 2),
)


class ImageRejected(Exception):
    """The upload is not an image we accept. `message` says why, for the client."""

    def __init__(self, message: str, *, status_code: int = 400) -> None:
        self.message = message
        self.status_code = status_code
        super().__init__(message)


@dataclass(frozen=True)
class ImageInfo:
    format: str
    extension: str
    width: int
    height: int
    size_bytes: int


def image_inspect(
    data: bytes, *, max_bytes: int, max_pixels: int, min_edge: int = 200
) -> ImageInfo:
    """Validate raw upload bytes and describe the image, or raise `ImageRejected`.

    Checks, cheapest first: empty, byte limit (413), a JPEG's structure (scans and segments,
    before Pillow parses it), format, pixel limit (declared size, before decoding anything),
    smallest edge, then a decode that catches truncated or damaged files: a JPEG's at 1/8 scale,
    a PNG's, a WebP's in full. A HEIC is not decoded at all (see `_check_heif`).
    """
    if not data:
        raise ImageRejected("The file is empty.")
    if len(data) > max_bytes:
        raise ImageRejected(
            f"The file is {len(data)} bytes; the limit is {max_bytes} bytes.", status_code=413
        )
    if data[:3] == b"\xff\xd8\xff":  # what Pillow takes for a JPEG
        _check_jpeg_structure(data)
    with warnings.catch_warnings():
        # Pillow only warns between 1x and 2x its own pixel limit: make that an error too.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data), formats=OPENED_FORMATS) as image:
                # An MPO's first image is the photo.
                image_format = "JPEG" if image.format == "MPO" else image.format or "unknown"
                width, height = image.size
                if image_format not in ACCEPTED_FORMATS:
                    raise ImageRejected(
                        f"Unsupported image format {image_format}; send {ACCEPTED_NAMES}."
                    )
                if width * height > max_pixels:
                    raise ImageRejected(
                        f"The image is {width}x{height} pixels ({width * height} in all); "
                        f"the limit is {max_pixels} pixels."
                    )
                if min(width, height) < min_edge:
                    raise ImageRejected(
                        f"The image is {width}x{height} pixels; its short side must be at least "
                        f"{min_edge} pixels for the analysis to be reliable."
                    )
                if image_format == "JPEG":
                    image.draft("RGB", (_DRAFT_EDGE, _DRAFT_EDGE))
                if image_format == "PNG":
                    _check_png_data(data)
                if image_format == "HEIF":
                    _check_heif(data)
                else:
                    image.load()
        except ImageRejected:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise ImageRejected(
                "The image declares too many pixels (a decompression bomb)."
            ) from None
        except UnidentifiedImageError:
            other = next((name for magic, name in _OTHER_FORMATS if data.startswith(magic)), None)
            if other is not None:
                raise ImageRejected(
                    f"Unsupported image format {other}; send {ACCEPTED_NAMES}."
                ) from None
            raise ImageRejected(
                f"The file is not an image (or not one we can read: send {ACCEPTED_NAMES})."
            ) from None
        except Exception:  # any decoder failure on untrusted bytes is the file's, never a 500
            # Not the decoder's own words: they name Pillow's internals, not what to do.
            raise ImageRejected(
                "The image is damaged or truncated (it cannot be decoded): send the original "
                "file again."
            ) from None
    return ImageInfo(image_format, ACCEPTED_FORMATS[image_format], width, height, len(data))


def _check_jpeg_structure(data: bytes) -> None:
    """Count the scans and marker segments of the first image, up to its EOI, without decoding.

    Segment headers are skipped by their length and entropy-coded data by a regular expression,
    so the work is bounded by the limits, not by the file. A file that ends before its EOI is
    truncated: Pillow alone does not always say so (when the last scan's data happens to hold
    every block, it decodes the image and never asks for the marker). Anything else malformed is
    left to Pillow.
    """
    scans = segments = 0
    position = 2  # after SOI
    while match := _JPEG_MARKER.search(data, position):
        marker = data[match.end() - 1]
        position = match.end()
        if marker == 0xD9:  # EOI: later images (MPO) are never decoded
            return
        if marker == 0x01:  # TEM: no length
            continue
        segments += 1
        if marker == 0xDA:
            scans += 1
        if scans > JPEG_MAX_SCANS:
            raise ImageRejected(f"The JPEG has more than {JPEG_MAX_SCANS} scans (a decoding bomb).")
        if segments > JPEG_MAX_SEGMENTS:
            raise ImageRejected(
                f"The JPEG has more than {JPEG_MAX_SEGMENTS} marker segments (a decoding bomb)."
            )
        # Past the segment; after SOS the entropy-coded data follows, which the search skips.
        position += max(int.from_bytes(data[position : position + 2], "big"), 2)
    raise ImageRejected(
        "The image is damaged or truncated (it ends before its end-of-image marker)."
    )


def _check_heif(data: bytes) -> None:
    """A HEIC's structure, instead of a decode.

    libheif has no reduced-scale decode of an HEVC image, and decoding a phone's 12 MP costs
    seconds of CPU in the web process. Checked here, without decoding: the container parses
    (libheif opened it above), the primary image's declared size is within the limits (above),
    its data (a grid's: its tiles') lies within the file, so a truncated upload is refused, and
    it is coded in HEVC, or is a grid of HEVC tiles (what our libheif decodes).

    Left to the worker's preflight, which decodes the image in full and fails the photo with
    BAD_INPUT when it cannot: coded data that is damaged inside a complete file, a coded size
    that differs from the declared one, and the properties (colour, rotation) libheif applies.
    An embedded thumbnail is not decoded either: it is an item of its own, and decoding it would
    say nothing about the primary image's data.
    """
    try:
        heif_check(data)
    except HeifDamaged as damaged:
        raise ImageRejected(f"The image is damaged or truncated ({damaged}).") from None
    except HeifUnsupported as unsupported:
        raise ImageRejected(
            f"Unsupported image coding {unsupported.coding} in a HEIF file; send {ACCEPTED_NAMES}."
        ) from None


def _check_png_data(data: bytes) -> None:
    """The pixel data must inflate to the size the header declares.

    Pillow accepts a PNG whose compressed stream ends early and leaves the rest blank: a
    100-byte file declaring 50 megapixels would pass, and cost the worker (and the AI) a full
    image. Inflated 1 MiB at a time and thrown away: memory stays small whatever the size.
    """
    width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", data[16:29])
    bits = _PNG_CHANNELS.get(color, 4) * depth

    def raw_size(w: int, h: int) -> int:
        return h * (1 + (w * bits + 7) // 8) if w > 0 and h > 0 else 0

    expected = (
        sum(
            raw_size((width - x + dx - 1) // dx, (height - y + dy - 1) // dy)
            for x, y, dx, dy in _ADAM7
        )
        if interlace
        else raw_size(width, height)
    )
    inflater = zlib.decompressobj()
    produced, position, view = 0, 8, memoryview(data)
    try:
        while position + 8 <= len(data) and produced < expected:
            length, kind = struct.unpack(">I4s", data[position : position + 8])
            if kind == b"IEND":
                break
            if kind == b"IDAT":
                pending: bytes | memoryview = view[position + 8 : position + 8 + length]
                while pending and produced < expected:
                    produced += len(inflater.decompress(pending, 1 << 20))
                    pending = inflater.unconsumed_tail
            position += 12 + length
    except zlib.error as exc:
        raise ImageRejected(f"The image is damaged or truncated ({exc}).") from None
    if produced < expected:
        raise ImageRejected(
            "The image is damaged or truncated (its pixel data ends before the image does)."
        )

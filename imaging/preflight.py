"""Preflight before any AI call: upright, no metadata, small enough, JPEG.

Vision models downscale anything above ~1.15 MP / 1568 px on the long edge server-side anyway,
and bill roughly width × height / 750 tokens, so sending more only costs bandwidth and money.

A JPEG that is already upright and within the limits (what a client that shrinks before uploading
sends) keeps its compressed pixels: only its metadata segments are cut out (imaging/jpeg.py),
without the pixel work and the quality loss of a decode and re-encode. Everything else is decoded,
turned, shrunk and re-encoded.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

from PIL import ExifTags, Image, ImageOps
from pillow_heif import register_heif_opener

from imaging.jpeg import jpeg_strip_metadata
from imaging.validation import OPENED_FORMATS

register_heif_opener()

MAX_LONG_EDGE = 1568
MAX_PIXELS = 1_150_000
JPEG_QUALITY = 85
PIXELS_PER_TOKEN = 750
#: A JPEG heavier than this after its metadata is cut (quality ~95 and up for a photo) is
#: re-encoded anyway: quality 85 is ~0.4 byte a pixel, and the bytes cost base64, JSON and upload.
AS_IS_MAX_BYTES_PER_PIXEL = 1.0
#: EXIF orientations that turn or mirror the image (what `ImageOps.exif_transpose` applies).
TURNED = range(2, 9)


@dataclass(frozen=True)
class PreparedImage:
    data: bytes
    width: int
    height: int
    original_bytes: int
    original_width: int
    original_height: int
    #: False when the original JPEG's compressed pixels are sent as they are (metadata cut out).
    reencoded: bool = True

    @property
    def estimated_tokens(self) -> int:
        return estimate_image_tokens(self.width, self.height)

    def as_meta(self) -> dict[str, int]:
        return {
            "originalBytes": self.original_bytes,
            "originalWidth": self.original_width,
            "originalHeight": self.original_height,
            "sentBytes": len(self.data),
            "sentWidth": self.width,
            "sentHeight": self.height,
            "estimatedImageTokens": self.estimated_tokens,
            "originalEstimatedImageTokens": estimate_image_tokens(
                self.original_width, self.original_height
            ),
        }


def estimate_image_tokens(width: int, height: int) -> int:
    return math.ceil(width * height / PIXELS_PER_TOKEN)


def target_size(width: int, height: int) -> tuple[int, int]:
    """The largest size within both limits, keeping the aspect ratio (never upscaled)."""
    scale = min(1.0, MAX_LONG_EDGE / max(width, height), math.sqrt(MAX_PIXELS / (width * height)))
    return max(1, int(width * scale)), max(1, int(height * scale))


def image_preflight(data: bytes) -> PreparedImage:
    """Apply EXIF orientation, drop all metadata (GPS stays with us), downsize, re-encode JPEG;
    or, for an upright JPEG within the limits, only drop its metadata."""
    as_is = _jpeg_as_is(data)
    if as_is is not None:
        return as_is
    with Image.open(io.BytesIO(data), formats=OPENED_FORMATS) as image:
        original_width, original_height = image.size
        width, height = target_size(original_width, original_height)
        if image.format in ("JPEG", "MPO"):  # MPO: a phone's JPEG with more images after it
            # Let libjpeg decode at a reduced scale (1/2, 1/4, 1/8) that is still >= the target:
            # most of the time of a large photo's preflight is the full-size decode.
            image.draft("RGB", (width, height))
        # Every step below makes a new image only when it has to (a copy of a decoded photo is
        # megabytes): `convert` only for other modes, `resize` only when too large, and the
        # orientation in place. The steps keep `info`, and with it the EXIF orientation.
        rgb = image if image.mode == "RGB" else image.convert("RGB")
        # Shrink first, then turn upright: the quarter turn of a phone photo then moves a third
        # of the pixels. The target is symmetric in width and height: the order changes nothing.
        # BICUBIC, not LANCZOS: after the reduced-scale decode the step left is small (12 MP:
        # 2016 → 1238 px), where the two look alike, and BICUBIC is the cheaper filter of the two.
        if rgb.size != (width, height):
            rgb = rgb.resize((width, height), Image.Resampling.BICUBIC, reducing_gap=2.0)
        ImageOps.exif_transpose(rgb, in_place=True)
        # Orientation may have swapped the sides: report the original as it is displayed.
        upright_w, upright_h = (
            (original_height, original_width)
            if _swapped(rgb.size, (original_width, original_height))
            else (original_width, original_height)
        )
        width, height = rgb.size
        out = io.BytesIO()
        # No exif=, no icc_profile=, an empty comment (Pillow copies a JPEG's COM segment
        # otherwise): nothing of the original's metadata is written. No optimize=: its extra
        # Huffman pass holds the GIL, stalling the worker's other threads, to save a few bytes;
        # the provider bills pixels, not bytes.
        rgb.save(out, format="JPEG", quality=JPEG_QUALITY, comment=b"")
    return PreparedImage(
        data=out.getvalue(),
        width=width,
        height=height,
        original_bytes=len(data),
        original_width=upright_w,
        original_height=upright_h,
    )


def _jpeg_as_is(data: bytes) -> PreparedImage | None:
    """The JPEG without its metadata when it needs no pixel work, else None (decode it)."""
    if data[:3] != b"\xff\xd8\xff":
        return None
    try:
        with Image.open(io.BytesIO(data), formats=OPENED_FORMATS) as image:  # headers only
            # The orientation as the decode path sees it (EXIF, else XMP's tiff:Orientation).
            turned = image.getexif().get(ExifTags.Base.Orientation, 1) in TURNED
            plain = image.format in ("JPEG", "MPO") and image.mode == "RGB"
            size = image.size
    except Exception:  # the decode path reports what is wrong with it
        return None
    if turned or not plain or target_size(*size) != size:
        return None
    stripped = jpeg_strip_metadata(data)
    if stripped is None or (stripped.width, stripped.height) != size:
        return None
    width, height = size
    if len(stripped.data) > width * height * AS_IS_MAX_BYTES_PER_PIXEL:
        return None
    return PreparedImage(
        data=stripped.data,
        width=width,
        height=height,
        original_bytes=len(data),
        original_width=width,
        original_height=height,
        reencoded=False,
    )


def _swapped(size: tuple[int, int], original: tuple[int, int]) -> bool:
    """True when the orientation step turned the image a quarter turn."""
    w, h = size
    ow, oh = original
    if ow == oh:
        return False
    return (w > h) != (ow > oh)

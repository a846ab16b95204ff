"""Checking uploaded images: sniff the real format with Pillow, never trust names or headers."""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError
from pillow_heif import register_heif_opener

register_heif_opener()  # phones send HEIC/HEIF

#: Pillow format name → the extension we store under.
ACCEPTED_FORMATS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp", "HEIF": "heic"}
ACCEPTED_NAMES = "JPEG, PNG, WebP or HEIC"
# Decoding a JPEG at 1/8 scale reads every byte of its entropy-coded data (so truncation is
# caught) at a fraction of the time and memory of a full decode.
_DRAFT_EDGE = 256


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

    Checks, cheapest first: empty, byte limit (413), format, pixel limit (declared size, before
    decoding anything), smallest edge, then a decode that catches truncated or damaged files.
    """
    if not data:
        raise ImageRejected("The file is empty.")
    if len(data) > max_bytes:
        raise ImageRejected(
            f"The file is {len(data)} bytes; the limit is {max_bytes} bytes.", status_code=413
        )
    with warnings.catch_warnings():
        # Pillow only warns between 1x and 2x its own pixel limit: make that an error too.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data)) as image:
                image_format = image.format or "unknown"
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
                image.load()
        except ImageRejected:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise ImageRejected(
                "The image declares too many pixels (a decompression bomb)."
            ) from None
        except UnidentifiedImageError:
            raise ImageRejected(
                f"The file is not an image (or not one we can read: send {ACCEPTED_NAMES})."
            ) from None
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            raise ImageRejected(f"The image is damaged or truncated ({exc}).") from None
    return ImageInfo(image_format, ACCEPTED_FORMATS[image_format], width, height, len(data))

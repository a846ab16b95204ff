"""Checking uploaded images: sniff the real format with Pillow, never trust names or headers."""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

#: Pillow format name → the extension we store under.
ACCEPTED_FORMATS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp"}


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


def image_inspect(data: bytes, *, max_bytes: int, max_pixels: int) -> ImageInfo:
    """Validate raw upload bytes and describe the image, or raise `ImageRejected`."""
    if not data:
        raise ImageRejected("The file is empty.")
    if len(data) > max_bytes:
        raise ImageRejected(
            f"The file is {len(data)} bytes; the limit is {max_bytes} bytes.", status_code=413
        )
    try:
        with warnings.catch_warnings():
            # Pillow only warns between 1x and 2x its own pixel limit: make that an error too.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                image_format = image.format or ""
                width, height = image.size
                if width * height > max_pixels:
                    raise ImageRejected(
                        f"The image is {width}x{height} pixels; the limit is {max_pixels} pixels."
                    )
                if image_format not in ACCEPTED_FORMATS:
                    raise ImageRejected(
                        f"Unsupported image format {image_format}; send JPEG, PNG or WebP."
                    )
                image.verify()
    except ImageRejected:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageRejected("The image declares too many pixels (decompression bomb).") from None
    except UnidentifiedImageError:
        raise ImageRejected("The file is not an image.") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageRejected(f"The image is damaged or truncated ({exc}).") from None
    return ImageInfo(image_format, ACCEPTED_FORMATS[image_format], width, height, len(data))

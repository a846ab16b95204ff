"""Regenerates the image corpus beside this file: `python -m tests.images.make_images`.

- `good/`: what the service accepts (JPEG, MPO, PNG, WebP, HEIC) in the variants encoders write
  (progressive, greyscale, CMYK, alpha, palette, 16 and 10 bits, interlaced, lossless, animated).
- `other/`: every other format this Pillow can write (and the plugins it has can read), which
  the upload refuses by name.
- `broken/`: hand-made damage: truncated files, wrong magic bytes, huge declared dimensions,
  empty and tiny files.

Images are small (64 to 256 pixels a side) so that the whole corpus stays well under 1 MB. The
upload test (tests/test_image_corpus.py) sends every file through `POST /api/photos`.
"""

from __future__ import annotations

import io
import shutil
import struct
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PIL import Image
from pillow_heif import register_heif_opener

register_heif_opener()

HERE = Path(__file__).resolve().parent
GOOD_SIZE = (256, 224)  # the short side above UPLOAD_MIN_EDGE (200)
SMALL_SIZE = (64, 48)


def _picture(size: tuple[int, int], mode: str = "RGB") -> Image.Image:
    """Gradients and a few shapes: compresses small and decodes to something recognisable."""
    width, height = size
    horizontal = Image.linear_gradient("L").rotate(90).resize(size)
    vertical = Image.linear_gradient("L").resize(size)
    radial = Image.radial_gradient("L").resize(size)
    image = Image.merge("RGB", (horizontal, vertical, radial))
    for x in range(0, width, 16):
        for y in range(0, height, 16):
            image.putpixel((x, y), (255, 255, 255))
    if mode == "RGBA":
        image.putalpha(radial)
        return image
    return image.convert(mode)


def _encoded(image: Image.Image, fmt: str, **options: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _good() -> dict[str, Callable[[], bytes]]:
    rgb = _picture(GOOD_SIZE)
    second = rgb.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return {
        "baseline.jpg": lambda: _encoded(rgb, "JPEG", quality=80),
        "progressive.jpg": lambda: _encoded(rgb, "JPEG", quality=80, progressive=True),
        "greyscale.jpg": lambda: _encoded(rgb.convert("L"), "JPEG"),
        "cmyk.jpg": lambda: _encoded(rgb.convert("CMYK"), "JPEG"),
        "exif-rotated.jpg": lambda: _encoded(rgb, "JPEG", exif=_exif_orientation(6)),
        "two-frames.mpo": lambda: _encoded(rgb, "MPO", save_all=True, append_images=[second]),
        "rgb.png": lambda: _encoded(rgb, "PNG"),
        "rgba.png": lambda: _encoded(_picture(GOOD_SIZE, "RGBA"), "PNG"),
        "palette.png": lambda: _encoded(rgb.convert("P"), "PNG"),
        "grey-16-bit.png": lambda: _encoded(rgb.convert("L").convert("I;16"), "PNG"),
        "interlaced.png": lambda: _encoded(rgb, "PNG", interlace=1),
        "lossy.webp": lambda: _encoded(rgb, "WEBP", quality=70),
        "lossless.webp": lambda: _encoded(rgb, "WEBP", lossless=True),
        "alpha.webp": lambda: _encoded(_picture(GOOD_SIZE, "RGBA"), "WEBP"),
        "animated.webp": lambda: _encoded(rgb, "WEBP", save_all=True, append_images=[second]),
        "rgb.heic": lambda: _encoded(rgb, "HEIF", quality=60),
        "alpha.heic": lambda: _encoded(_picture(GOOD_SIZE, "RGBA"), "HEIF", quality=60),
        "exif-rotated.heic": lambda: _encoded(rgb, "HEIF", quality=60, exif=_exif_orientation(6)),
    }


def _exif_orientation(value: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = value
    return exif.tobytes()


def _other() -> dict[str, Callable[[], bytes]]:
    rgb = _picture(SMALL_SIZE)
    return {
        "image.gif": lambda: _encoded(rgb, "GIF"),
        "image.bmp": lambda: _encoded(rgb, "BMP"),
        "image.dib": lambda: _encoded(rgb, "DIB"),
        "image.tiff": lambda: _encoded(rgb, "TIFF", compression="tiff_deflate"),
        "big-endian.tiff": lambda: _encoded(rgb, "TIFF", tiffinfo={}, big_endian=True),
        "image.ico": lambda: _encoded(rgb, "ICO", sizes=[(48, 48)]),
        "image.ppm": lambda: _encoded(rgb, "PPM"),
        "image.pgm": lambda: _encoded(rgb.convert("L"), "PPM"),
        "image.pbm": lambda: _encoded(rgb.convert("1"), "PPM"),
        "image.tga": lambda: _encoded(rgb, "TGA", compression="tga_rle"),
        "image.pcx": lambda: _encoded(rgb, "PCX"),
        "image.dds": lambda: _encoded(rgb.convert("RGBA"), "DDS"),
        "image.sgi": lambda: _encoded(rgb, "SGI"),
        "image.eps": lambda: _encoded(rgb, "EPS"),
        "image.jp2": lambda: _encoded(rgb, "JPEG2000"),
        "image.j2k": lambda: _encoded(rgb, "JPEG2000", no_jp2=True),
        "image.qoi": lambda: _encoded(rgb, "QOI"),
        "image.blp": lambda: _encoded(rgb.convert("P"), "BLP"),
        "image.icns": lambda: _encoded(_picture((16, 16)), "ICNS"),
        "image.im": lambda: _encoded(rgb, "IM"),
        "image.msp": lambda: _encoded(rgb.convert("1"), "MSP"),
        "image.palm": lambda: _encoded(rgb.convert("L").convert("P"), "PALM", bpp=8),
        "image.spider": lambda: _encoded(rgb.convert("F"), "SPIDER"),
        "image.xbm": lambda: _encoded(rgb.convert("1"), "XBM"),
        "image.pdf": lambda: _encoded(rgb, "PDF"),
        "image.avif": lambda: _encoded(rgb, "AVIF"),
    }


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_declaring(width: int, height: int) -> bytes:
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    row = zlib.compress(b"\x00" * (1 + (width + 7) // 8))
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", row)
        + _png_chunk(b"IEND", b"")
    )


def _patched(data: bytes, marker: bytes, offset: int, packed: bytes) -> bytes:
    at = data.index(marker) + offset
    return data[:at] + packed + data[at + len(packed) :]


def _broken() -> dict[str, Callable[[], bytes]]:
    rgb = _picture(GOOD_SIZE)
    jpeg = _encoded(rgb, "JPEG", quality=80)
    png = _encoded(rgb, "PNG")
    webp = _encoded(rgb, "WEBP", quality=70)
    heic = _encoded(rgb, "HEIF", quality=60)
    return {
        "truncated.jpg": lambda: jpeg[: len(jpeg) // 2],
        "truncated-progressive.jpg": lambda: (lambda d: d[: len(d) * 2 // 3])(
            _encoded(rgb, "JPEG", progressive=True)
        ),
        "no-eoi.jpg": lambda: jpeg[:-2],
        "truncated.png": lambda: png[: len(png) // 2],
        "truncated.webp": lambda: webp[: len(webp) // 2],
        "truncated.heic": lambda: heic[: len(heic) // 2],
        "header-only.heic": lambda: heic[: heic.index(b"mdat") + 4],
        "jpeg-magic-then-text.jpg": lambda: b"\xff\xd8\xff\xe0" + b"not a photo, " * 40,
        "png-signature-then-garbage.png": lambda: b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 2,
        "riff-but-not-webp.webp": lambda: b"RIFF\x20\x00\x00\x00WAVEfmt " + bytes(24),
        "ftyp-but-not-heic.heic": lambda: (
            struct.pack(">I4s4sI", 16, b"ftyp", b"isom", 0) + bytes(64)
        ),
        "declares-100000x100000.png": lambda: _png_declaring(100_000, 100_000),
        "declares-65500x65500.jpg": lambda: _patched(
            jpeg, b"\xff\xc0", 5, struct.pack(">HH", 65_500, 65_500)
        ),
        "declares-16383x16383.webp": lambda: _patched(
            webp, b"\x9d\x01\x2a", 3, struct.pack("<HH", 16_383, 16_383)
        ),
        "declares-60000x60000.heic": lambda: _patched(
            heic, b"ispe", 8, struct.pack(">II", 60_000, 60_000)
        ),
        "declares-1x60000.png": lambda: _png_declaring(1, 60_000),
        "declares-65535x65535.gif": lambda: _patched(
            _encoded(rgb, "GIF"), b"GIF8", 6, struct.pack("<HH", 65_535, 65_535)
        ),
        "empty.jpg": lambda: b"",
        "one-byte.png": lambda: b"\x89",
        "text.jpg": lambda: b"Shopping list: boxes, tape, a van.\n" * 10,
        "svg-with-script.svg": lambda: (
            b'<svg xmlns="http://www.w3.org/2000/svg" width="900" height="900">'
            b"<script>alert(1)</script></svg>"
        ),
    }


def main() -> None:
    for folder, makers in (("good", _good()), ("other", _other()), ("broken", _broken())):
        target = HERE / folder
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir()
        for name, make in makers.items():
            try:
                data = make()
            except (KeyError, OSError, ValueError) as exc:  # a codec this Pillow lacks
                print(f"skipped {folder}/{name}: {exc}")
                continue
            (target / name).write_bytes(data)
    total = sum(path.stat().st_size for path in HERE.rglob("*") if path.parent != HERE)
    print(f"{total:,} bytes")


if __name__ == "__main__":
    main()

"""The preflight before any AI call: upright, stripped of metadata, small enough, JPEG."""

from __future__ import annotations

import io
import math
import os

import pillow_heif
import pytest
from PIL import ExifTags, Image, ImageCms

from imaging.preflight import MAX_LONG_EDGE, MAX_PIXELS, PreparedImage, image_preflight

pillow_heif.register_heif_opener()

PHONE_SIZE = (4032, 3024)  # a 12 MP phone photo as the sensor stores it: landscape
MARKER = 400  # a red square painted in the stored top-left corner


def _noisy(size: tuple[int, int]) -> Image.Image:
    """A photo-like RGB image: a gradient under per-pixel noise, which JPEG cannot squeeze."""
    base = Image.linear_gradient("L").resize(size)
    noise = Image.frombytes("L", size, os.urandom(size[0] * size[1]))
    flipped = noise.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return Image.merge(
        "RGB", (Image.blend(base, noise, 0.3), base, Image.blend(base, flipped, 0.3))
    )


def _exif_rotated_with_gps() -> Image.Exif:
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6  # display turned a quarter turn clockwise
    exif[ExifTags.Base.Make] = "Moverz test phone"
    exif[ExifTags.IFD.GPSInfo] = {
        ExifTags.GPS.GPSLatitudeRef: "N",
        ExifTags.GPS.GPSLatitude: (48.0, 51.0, 24.0),
        ExifTags.GPS.GPSLongitudeRef: "E",
        ExifTags.GPS.GPSLongitude: (2.0, 21.0, 3.0),
    }
    return exif


def _srgb_profile() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def _jpeg_markers(data: bytes) -> list[int]:
    """The marker bytes of a JPEG's header segments, from SOI up to the start of scan."""
    assert data[:2] == b"\xff\xd8"
    markers = []
    position = 2
    while position < len(data):
        assert data[position] == 0xFF
        marker = data[position + 1]
        markers.append(marker)
        if marker == 0xDA:  # start of scan: entropy-coded data follows
            break
        length = int.from_bytes(data[position + 2 : position + 4], "big")
        position += 2 + length
    return markers


@pytest.fixture(scope="module")
def phone_photo() -> bytes:
    """A 12 MP JPEG as a phone sends it: stored sideways with EXIF orientation 6, GPS, ICC."""
    image = _noisy(PHONE_SIZE)
    image.paste((255, 0, 0), (0, 0, MARKER, MARKER))
    buffer = io.BytesIO()
    image.save(
        buffer,
        format="JPEG",
        quality=90,
        exif=_exif_rotated_with_gps(),
        icc_profile=_srgb_profile(),
        xmp=b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><exif:GPSLatitude>48,51N</exif:GPSLatitude>'
        b"</x:xmpmeta>",
    )
    data = buffer.getvalue()
    # The input really carries what the preflight must remove.
    with Image.open(io.BytesIO(data)) as check:
        exif = check.getexif()
        assert exif[ExifTags.Base.Orientation] == 6
        assert exif.get_ifd(ExifTags.IFD.GPSInfo)[ExifTags.GPS.GPSLatitudeRef] == "N"
        assert check.info["icc_profile"]
    return data


@pytest.fixture(scope="module")
def prepared_phone_photo(phone_photo: bytes) -> PreparedImage:
    return image_preflight(phone_photo)


def _open(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def _near(pixel: tuple[int, ...], colour: tuple[int, ...]) -> bool:
    return all(abs(a - b) < 40 for a, b in zip(pixel, colour, strict=True))


def _encoded(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def test_rotated_phone_photo_comes_out_upright_as_portrait(
    prepared_phone_photo: PreparedImage,
) -> None:
    sent = _open(prepared_phone_photo.data)

    width, height = sent.size
    assert width < height
    assert sent.size == (prepared_phone_photo.width, prepared_phone_photo.height)
    # Orientation 6 is shown turned clockwise: the stored top-left corner is now top-right.
    red = (255, 0, 0)
    inset = 20
    top_right = sent.getpixel((width - inset, inset))
    top_left = sent.getpixel((inset, inset))
    assert isinstance(top_right, tuple) and isinstance(top_left, tuple)
    assert _near(top_right, red)
    assert not _near(top_left, red)


def test_large_photo_is_shrunk_within_the_model_limits(
    prepared_phone_photo: PreparedImage,
) -> None:
    sent = _open(prepared_phone_photo.data)

    assert max(sent.size) <= MAX_LONG_EDGE == 1568
    assert sent.width * sent.height <= MAX_PIXELS == 1_150_000
    # Only just within: nothing is thrown away needlessly.
    assert sent.width * sent.height > 0.98 * MAX_PIXELS
    assert sent.width / sent.height == pytest.approx(3024 / 4032, rel=0.01)


def test_sent_image_is_a_jpeg_without_exif_gps_or_icc_profile(
    prepared_phone_photo: PreparedImage,
) -> None:
    sent = _open(prepared_phone_photo.data)

    assert (sent.format, sent.mode) == ("JPEG", "RGB")
    assert len(sent.getexif()) == 0
    assert "exif" not in sent.info
    assert sent.info.get("icc_profile") is None
    assert "xmp" not in sent.info
    markers = _jpeg_markers(prepared_phone_photo.data)
    assert 0xE1 not in markers  # APP1: EXIF (orientation, GPS) or XMP
    assert 0xE2 not in markers  # APP2: ICC profile


def test_meta_reports_original_and_sent_sizes_and_token_estimate(
    phone_photo: bytes, prepared_phone_photo: PreparedImage
) -> None:
    sent = _open(prepared_phone_photo.data)

    meta = prepared_phone_photo.as_meta()

    assert meta["originalBytes"] == len(phone_photo)
    # The original's size as displayed, i.e. after the orientation is applied.
    assert (meta["originalWidth"], meta["originalHeight"]) == (3024, 4032)
    assert meta["sentBytes"] == len(prepared_phone_photo.data)
    assert (meta["sentWidth"], meta["sentHeight"]) == sent.size
    assert meta["estimatedImageTokens"] == math.ceil(sent.width * sent.height / 750)
    assert meta["estimatedImageTokens"] <= math.ceil(MAX_PIXELS / 750)


def test_noisy_12_megapixel_photo_is_sent_at_least_ten_times_smaller(phone_photo: bytes) -> None:
    prepared = image_preflight(phone_photo)

    assert len(phone_photo) > 3_000_000  # a realistic phone upload, not a toy
    assert len(prepared.data) * 10 <= len(phone_photo)


def test_small_image_is_not_upscaled() -> None:
    data = _encoded(_noisy((640, 480)), "JPEG")

    prepared = image_preflight(data)

    assert _open(prepared.data).size == (640, 480)
    assert (prepared.width, prepared.height) == (640, 480)
    assert prepared.as_meta()["originalWidth"] == 640


def test_png_with_alpha_comes_out_as_rgb_jpeg() -> None:
    image = _noisy((900, 700)).convert("RGBA")
    image.putalpha(Image.linear_gradient("L").resize((900, 700)))
    data = _encoded(image, "PNG")
    assert _open(data).mode == "RGBA"

    prepared = image_preflight(data)

    sent = _open(prepared.data)
    assert (sent.format, sent.mode, sent.size) == ("JPEG", "RGB", (900, 700))


def test_heic_comes_out_as_rgb_jpeg() -> None:
    # Smooth content: the HEVC encoder is slow on noise, and the decoder is what matters here.
    smooth = Image.merge("RGB", [Image.linear_gradient("L").resize((1600, 1200))] * 3)
    data = _encoded(smooth, "HEIF")
    assert _open(data).format == "HEIF"

    prepared = image_preflight(data)

    sent = _open(prepared.data)
    assert (sent.format, sent.mode) == ("JPEG", "RGB")
    assert sent.width * sent.height <= MAX_PIXELS
    assert sent.size == (prepared.width, prepared.height)
    assert prepared.as_meta()["originalWidth"] == 1600

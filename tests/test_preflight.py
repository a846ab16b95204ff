"""The preflight before any AI call: upright, stripped of metadata, small enough, JPEG; and what
the provider receives of a photo (the fake Anthropic server, through the SDK)."""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Callable
from typing import Any

import pillow_heif
import pytest
from django.conf import settings
from PIL import ExifTags, Image, ImageCms

from ai_engine.anthropic_provider import AnthropicProvider
from imaging.jpeg import jpeg_strip_metadata
from imaging.preflight import (
    AS_IS_MAX_BYTES_PER_PIXEL,
    MAX_LONG_EDGE,
    MAX_PIXELS,
    PreparedImage,
    image_preflight,
)
from photos.lifecycle import photo_enqueue
from photos.services.analysis import Outcome, photo_analyze
from photos.services.uploads import photo_create
from tests.factories import make_project, noise_bytes
from tests.fakeai import running_fake_ai, tool_of

pillow_heif.register_heif_opener()

PHONE_SIZE = (4032, 3024)  # a 12 MP phone photo as the sensor stores it: landscape
MARKER = 400  # a red square painted in the stored top-left corner


def _noisy(size: tuple[int, int]) -> Image.Image:
    """A photo-like RGB image: a gradient under per-pixel noise, which JPEG cannot squeeze."""
    base = Image.linear_gradient("L").resize(size)
    noise = Image.frombytes("L", size, noise_bytes(size[0] * size[1]))
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
    """Every marker of a JPEG from SOI to EOI, the ones between scans included (entropy-coded
    data is skipped: a 0xFF there is followed by 0x00 or is a restart marker)."""
    assert data[:2] == b"\xff\xd8"
    markers = [0xD8]
    position = 2
    while position < len(data):
        assert data[position] == 0xFF
        marker = data[position + 1]
        markers.append(marker)
        if marker == 0xD9:
            break
        position += 2 + int.from_bytes(data[position + 2 : position + 4], "big")
        if marker == 0xDA:
            while not (data[position] == 0xFF and data[position + 1] not in RESTART_OR_STUFFED):
                position += 1
    assert markers[-1] == 0xD9, "no EOI"
    return markers


RESTART_OR_STUFFED = (0x00, *range(0xD0, 0xD8))
#: APP1 to APP15 (EXIF, XMP, ICC, maker notes, MPO indexes, Adobe...) and COM (comments).
METADATA_MARKERS = {*range(0xE1, 0xF0), 0xFE}
COMMENT = b"Moverz secret comment"
XMP = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><exif:GPSLatitude>48,51N</exif:GPSLatitude></x:xmpmeta>'


def _assert_no_metadata(sent: bytes) -> None:
    """What the provider may see of a photo: pixels, and nothing of its metadata."""
    assert not METADATA_MARKERS & set(_jpeg_markers(sent))
    for secret in (b"Exif\x00", b"Moverz test phone", b"GPSLatitude", b"xmpmeta", COMMENT):
        assert secret not in sent
    image = _open(sent)
    assert len(image.getexif()) == 0
    for key in ("exif", "xmp", "icc_profile", "comment"):
        assert not image.info.get(key)


def _with_metadata(image: Image.Image, *, orientation: int = 1, **options: object) -> bytes:
    """`image` as a JPEG carrying everything a phone or an editor writes: EXIF with GPS and the
    given orientation, XMP, an ICC profile and a comment."""
    exif = _exif_rotated_with_gps()
    exif[ExifTags.Base.Orientation] = orientation
    buffer = io.BytesIO()
    image.save(
        buffer,
        format="JPEG",
        exif=exif,
        xmp=XMP,
        icc_profile=_srgb_profile(),
        comment=COMMENT,
        **options,
    )
    data = buffer.getvalue()
    assert METADATA_MARKERS & set(_jpeg_markers(data)) == {0xE1, 0xE2, 0xFE}
    return data


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
        xmp=XMP,
        comment=COMMENT,
    )
    data = buffer.getvalue()
    # The input really carries what the preflight must remove.
    with Image.open(io.BytesIO(data)) as check:
        exif = check.getexif()
        assert exif[ExifTags.Base.Orientation] == 6
        assert exif.get_ifd(ExifTags.IFD.GPSInfo)[ExifTags.GPS.GPSLatitudeRef] == "N"
        assert check.info["icc_profile"]
        assert check.info["comment"] == COMMENT
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


def test_sent_image_is_a_jpeg_without_exif_gps_xmp_icc_profile_or_comment(
    prepared_phone_photo: PreparedImage,
) -> None:
    sent = _open(prepared_phone_photo.data)

    assert prepared_phone_photo.reencoded
    assert (sent.format, sent.mode) == ("JPEG", "RGB")
    # Pillow copies a JPEG's comment into the one it writes unless told not to: it did once.
    _assert_no_metadata(prepared_phone_photo.data)


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


# --- an upright JPEG within the limits: its metadata cut out, its pixels kept --------------------


def _decoded(data: bytes) -> bytes:
    return _open(data).tobytes()


def test_upright_small_jpeg_is_sent_without_metadata_and_without_a_reencode() -> None:
    original = _with_metadata(_noisy((1024, 768)), quality=85)

    prepared = image_preflight(original)

    assert not prepared.reencoded
    _assert_no_metadata(prepared.data)
    assert _decoded(prepared.data) == _decoded(original)  # the same compressed pixels
    assert len(prepared.data) < len(original)
    assert (prepared.width, prepared.height) == (1024, 768)
    assert prepared.as_meta()["sentBytes"] == len(prepared.data)
    assert prepared.as_meta()["originalBytes"] == len(original)


def test_progressive_jpeg_is_sent_as_is_too() -> None:
    original = _with_metadata(_noisy((640, 480)), quality=80, progressive=True)

    prepared = image_preflight(original)

    assert not prepared.reencoded
    _assert_no_metadata(prepared.data)
    assert _decoded(prepared.data) == _decoded(original)


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_small_turned_jpeg_is_still_turned_upright(orientation: int) -> None:
    image = _noisy((800, 600))
    image.paste((255, 0, 0), (0, 0, 100, 100))  # the stored top-left corner
    original = _with_metadata(image, orientation=orientation)

    prepared = image_preflight(original)

    assert prepared.reencoded
    _assert_no_metadata(prepared.data)
    sent = _open(prepared.data)
    assert sent.size == ((600, 800) if orientation in (6, 8) else (800, 600))
    width, height = sent.size
    red_corner = {3: (width - 20, height - 20), 6: (width - 20, 20), 8: (20, height - 20)}
    pixel = sent.getpixel(red_corner[orientation])
    assert isinstance(pixel, tuple) and _near(pixel, (255, 0, 0))


def test_orientation_given_only_by_xmp_is_applied_as_before() -> None:
    # Pillow reads tiff:Orientation from XMP when EXIF has none: both paths must agree on it.
    buffer = io.BytesIO()
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:Description tiff:Orientation="6"/></x:xmpmeta>'
    _noisy((800, 600)).save(buffer, format="JPEG", xmp=xmp)

    prepared = image_preflight(buffer.getvalue())

    assert prepared.reencoded
    assert _open(prepared.data).size == (600, 800)
    _assert_no_metadata(prepared.data)


def test_jpeg_over_the_pixel_limits_is_still_shrunk() -> None:
    original = _with_metadata(_noisy((1600, 1200)))  # 1.92 MP, long edge 1600

    prepared = image_preflight(original)

    assert prepared.reencoded
    assert max(prepared.width, prepared.height) <= MAX_LONG_EDGE
    assert prepared.width * prepared.height <= MAX_PIXELS
    _assert_no_metadata(prepared.data)


def test_heavy_jpeg_within_the_limits_is_reencoded_smaller() -> None:
    original = _with_metadata(_noisy((800, 600)), quality=100, subsampling=0)
    assert len(original) > 800 * 600 * AS_IS_MAX_BYTES_PER_PIXEL

    prepared = image_preflight(original)

    assert prepared.reencoded
    assert len(prepared.data) < len(original) / 2
    _assert_no_metadata(prepared.data)


def test_mpo_is_sent_as_its_first_image_only_and_bytes_after_it_are_dropped() -> None:
    buffer = io.BytesIO()
    first = _noisy((640, 480))
    exif = _exif_rotated_with_gps()
    exif[ExifTags.Base.Orientation] = 1
    first.save(buffer, format="MPO", save_all=True, append_images=[_noisy((320, 240))], exif=exif)
    payload = b"<?php echo 'after the image'; ?>"
    original = buffer.getvalue() + payload
    assert _open(original).format == "MPO"

    prepared = image_preflight(original)

    assert not prepared.reencoded
    assert payload not in prepared.data
    assert prepared.data.count(b"\xff\xd8") == 1  # one image: the gain map is not sent
    sent = _open(prepared.data)
    assert (sent.format, sent.size) == ("JPEG", (640, 480))
    assert sent.tobytes() == first_frame_pixels(original)
    _assert_no_metadata(prepared.data)


def first_frame_pixels(mpo: bytes) -> bytes:
    image = _open(mpo)
    image.seek(0)
    return image.tobytes()


def test_adobe_jpeg_is_decoded_rather_than_guessed() -> None:
    # An APP14 (Adobe) segment can say the three channels are RGB, not YCbCr: cutting it out
    # would change the colours, so such a file goes through the decoder.
    original = bytearray(_with_metadata(_noisy((640, 480))))
    adobe = b"\xff\xee\x00\x0eAdobe\x00\x64\x00\x00\x00\x00\x01"  # transform 1: YCbCr
    original[2:2] = adobe

    prepared = image_preflight(bytes(original))

    assert prepared.reencoded
    _assert_no_metadata(prepared.data)


def test_jpeg_with_bytes_between_its_segments_goes_through_the_decoder() -> None:
    # libjpeg skips stray bytes before a marker (with a warning); the segment walk does not
    # guess what they are: the decode path sends what the decoder saw.
    data = _with_metadata(_noisy((640, 480)))
    quant = data.index(b"\xff\xdb")
    damaged = data[:quant] + b"\x00\x00" + data[quant:]

    assert jpeg_strip_metadata(damaged) is None
    prepared = image_preflight(damaged)
    assert prepared.reencoded
    _assert_no_metadata(prepared.data)


def test_truncated_jpeg_is_never_sent_as_is() -> None:
    data = _with_metadata(_noisy((640, 480)))
    truncated = data[: len(data) * 2 // 3]

    assert jpeg_strip_metadata(truncated) is None
    with pytest.raises(OSError, match="truncated"):
        image_preflight(truncated)


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda d: d[:4] + b"\xff\xff" + d[6:], id="length-past-the-end"),
        pytest.param(lambda d: d[:4] + b"\x00\x01" + d[6:], id="length-too-short"),
        pytest.param(lambda d: d.replace(b"\xff\xc0", b"\xff\xcf", 1), id="arithmetic-frame"),
        pytest.param(
            lambda d: d[: d.index(b"\xff\xc0")] + d[d.index(b"\xff\xc4") :], id="no-frame"
        ),
        pytest.param(lambda d: d[:-2], id="no-eoi"),
        pytest.param(lambda d: b"\xff\xd8\xff", id="only-soi"),
    ],
)
def test_segment_walk_refuses_a_malformed_structure(damage: Callable[[bytes], bytes]) -> None:
    data = _with_metadata(_noisy((320, 240)))
    assert jpeg_strip_metadata(data) is not None

    assert jpeg_strip_metadata(damage(data)) is None


# --- what the provider receives (the fake Anthropic server, through the SDK) -----------------


@pytest.mark.django_db
@pytest.mark.parametrize("orientation", [1, 6], ids=["as-is", "decoded"])
def test_provider_receives_no_metadata_on_either_path(
    orientation: int, django_capture_on_commit_callbacks: Any
) -> None:
    original = _with_metadata(_noisy((1024, 768)), orientation=orientation)
    photo, _ = photo_create(project=make_project(), data=original, enqueue=False)
    with django_capture_on_commit_callbacks(execute=True):
        photo_enqueue(photo=photo)
    with running_fake_ai() as server, django_capture_on_commit_callbacks(execute=True):
        provider = AnthropicProvider(
            api_key="test-key", model=settings.ANTHROPIC_MODEL, timeout_s=5, base_url=server.url
        )
        outcome = photo_analyze(photo_id=str(photo.pk), provider=provider)
        requests = server.requests_for("anthropic")

    assert outcome == Outcome.DONE
    assert [tool_of(request.body) for request in requests] == ["report_items"]
    for request in requests:
        sent = base64.b64decode(request.image_b64)
        _assert_no_metadata(sent)
        assert _open(sent).size == ((1024, 768) if orientation == 1 else (768, 1024))

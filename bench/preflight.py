"""Section 7: the image preflight of a 12 MP, ~4 MB phone photo (EXIF orientation and GPS).

The floor is the least any preflight must do: open the JPEG and decode it at the reduced scale
libjpeg offers (`draft`), without transposing, resizing or encoding.
"""

from __future__ import annotations

import io
import time
from typing import Any

from PIL import Image

from bench.context import Bench
from bench.stats import summary


def run(bench: Bench) -> dict[str, Any]:
    from imaging.preflight import estimate_image_tokens, image_preflight, target_size

    original = bench.phone_path.read_bytes()
    repeats = 5 if bench.options.quick else 15
    image_preflight(original)  # warm
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        prepared = image_preflight(original)
        timings.append(time.perf_counter() - started)

    def decode_floor() -> None:
        with Image.open(io.BytesIO(original)) as image:
            image.draft("RGB", target_size(*image.size))
            image.load()

    floor = []
    for _ in range(repeats):
        started = time.perf_counter()
        decode_floor()
        floor.append(time.perf_counter() - started)
    with Image.open(io.BytesIO(original)) as image:
        width, height = image.size
    return {
        "original": {
            "bytes": len(original),
            "width": width,
            "height": height,
            "estimated_tokens": estimate_image_tokens(width, height),
        },
        "sent": {
            "bytes": len(prepared.data),
            "width": prepared.width,
            "height": prepared.height,
            "estimated_tokens": prepared.estimated_tokens,
        },
        "bytes_reduction": round(len(original) / len(prepared.data), 1),
        "tokens_reduction": round(
            estimate_image_tokens(width, height) / prepared.estimated_tokens, 1
        ),
        "preflight_ms": summary(timings, scale=1000),
        "floor_draft_decode_ms": summary(floor, scale=1000),
    }

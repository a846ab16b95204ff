"""The `fake` provider: deterministic answers derived from the image bytes, no network.

Used by default in development, tests and benchmarks. Latency and failures can be injected.
"""

from __future__ import annotations

import hashlib
import random
import time
from collections.abc import Sequence

from ai_engine.errors import AiError, ErrorCode
from ai_engine.fake_items import CATALOGUE
from ai_engine.types import ROOM_TYPES, DetectedItem, PhotoAnalysis, RoomGuess, Usage

_ROOM_ITEMS: dict[str, tuple[str, ...]] = {
    "living_room": ("sofa_3_seat", "armchair", "coffee_table", "tv_unit", "television", "bookcase"),
    "kitchen": ("fridge", "cooker", "washing_machine", "chair", "carton"),
    "bedroom": ("double_bed", "wardrobe_2_door", "bedside_table", "chest_of_drawers", "mirror"),
    "bathroom": ("washing_machine", "mirror", "carton"),
    "dining_room": ("dining_table", "chair", "bookcase", "mirror"),
    "office": ("desk", "chair", "bookcase", "carton"),
    "hallway": ("mirror", "chest_of_drawers", "carton"),
    "garage": ("carton", "bookcase", "chair"),
    "cellar": ("carton", "bookcase"),
    "attic": ("carton", "single_bed", "chest_of_drawers"),
    "outdoor": ("chair", "dining_table"),
    "other": ("carton", "chair"),
}
MODEL = "fake-vision-1"


class FakeProvider:
    """Plausible, repeatable results: the same image always gives the same room and items."""

    name = "fake"
    model = MODEL

    def __init__(
        self,
        *,
        latency_ms: int = 0,
        fail_rate: float = 0.0,
        fail_code: str = ErrorCode.PROVIDER_DOWN,
        rng: random.Random | None = None,
    ) -> None:
        self.latency_ms = latency_ms
        self.fail_rate = fail_rate
        self.fail_code = ErrorCode(fail_code)
        self._rng = rng or random.Random()

    def _call(self, image: bytes) -> bytes:
        if self.latency_ms:
            time.sleep(self.latency_ms / 1000)
        if self.fail_rate and self._rng.random() < self.fail_rate:
            raise AiError(self.fail_code, f"fake provider: injected {self.fail_code} failure")
        if not image:
            raise AiError(ErrorCode.BAD_INPUT, "fake provider: empty image")
        return hashlib.sha256(image).digest()

    def detect_room(self, image: bytes, *, max_tokens: int | None = None) -> RoomGuess:
        digest = self._call(image)
        room, confidence = _room_of(digest)
        return RoomGuess(room, confidence, self._usage(image, 12))

    def analyze_photo(
        self,
        image: bytes,
        room_type: str | None,
        catalogue_keys: Sequence[str] = (),
        *,
        max_tokens: int | None = None,
    ) -> PhotoAnalysis:
        digest = self._call(image)
        detected = _room_of(digest) if room_type is None else None
        room = detected[0] if detected is not None else room_type or "other"
        candidates = _ROOM_ITEMS.get(room, _ROOM_ITEMS["other"])
        count = 1 + digest[2] % len(candidates)
        items = []
        for index, key in enumerate(candidates[:count]):
            entry = CATALOGUE[key]
            byte = digest[3 + index]
            quantity = 1 + (byte % 4 if key in {"chair", "carton"} else byte % 2)
            items.append(
                DetectedItem(
                    key=key,
                    name=entry.name,
                    category=entry.category,
                    quantity=quantity,
                    confidence=round(0.55 + (byte % 45) / 100, 2),
                    fragile=entry.fragile,
                    dismantle=entry.dismantle,
                    volume_m3_estimate=float(entry.volume_m3),
                )
            )
        confidence = round(sum(item.confidence for item in items) / len(items), 2)
        usage = self._usage(image, 40 * len(items))
        if detected is None:
            return PhotoAnalysis(items, confidence, usage)
        return PhotoAnalysis(
            items, confidence, usage, room_type=detected[0], room_confidence=detected[1]
        )

    def _usage(self, image: bytes, tokens_out: int) -> Usage:
        return Usage(self.name, MODEL, tokens_in=85 + len(image) // 1000, tokens_out=tokens_out)


def _room_of(digest: bytes) -> tuple[str, float]:
    """The room an image shows, and the confidence, as the fake sees it."""
    room = ROOM_TYPES[digest[0] % (len(ROOM_TYPES) - 1)]  # never "other"
    return room, round(0.6 + (digest[1] % 40) / 100, 2)

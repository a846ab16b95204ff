"""The provider seam: what the pipeline asks of any AI provider."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Protocol

ROOM_TYPES = (
    "living_room",
    "kitchen",
    "bedroom",
    "bathroom",
    "dining_room",
    "office",
    "hallway",
    "garage",
    "cellar",
    "attic",
    "outdoor",
    "other",
)


class ImageBytes(bytes):
    """An image as providers take it (it is `bytes`), remembering its base64 once computed: the
    calls about one photo (detect_room, analyze_photo, a retry) encode it once."""

    @cached_property
    def b64(self) -> bytes:
        return base64.b64encode(self)


def image_b64(image: bytes) -> bytes:
    """The base64 of `image` (ASCII bytes), computed once for an `ImageBytes`."""
    return image.b64 if isinstance(image, ImageBytes) else base64.b64encode(image)


@dataclass(frozen=True)
class Usage:
    """What one provider call cost: tokens and the model that answered. `tokens_in` counts every
    input token; the cache's reads and writes, billed at their own rates, are part of it."""

    provider: str
    model: str
    tokens_in: int = 0
    tokens_out: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0


@dataclass(frozen=True)
class RoomGuess:
    room_type: str
    confidence: float
    usage: Usage


@dataclass(frozen=True)
class DetectedItem:
    key: str
    name: str
    category: str
    quantity: int
    confidence: float
    fragile: bool
    dismantle: bool
    #: The model's own estimate of ONE item's volume; used when the catalogue lacks the key.
    volume_m3_estimate: float | None = None


@dataclass(frozen=True)
class PhotoAnalysis:
    items: list[DetectedItem]
    confidence: float
    usage: Usage
    extra: dict[str, Any] = field(default_factory=dict)
    #: The room, when the same call detected it (asked without a room type); else None.
    room_type: str | None = None
    room_confidence: float | None = None


class AiProvider(Protocol):
    """One AI back end. Raises `ai_engine.errors.AiError` on failure, nothing else."""

    name: str
    model: str

    def detect_room(self, image: bytes, *, max_tokens: int | None = None) -> RoomGuess: ...

    def analyze_photo(
        self,
        image: bytes,
        room_type: str | None,
        catalogue_keys: Sequence[str] = (),
        *,
        max_tokens: int | None = None,
    ) -> PhotoAnalysis:
        """The items in the photo; with `room_type` None, the room is detected in the same call
        (the answer's `room_type`). `max_tokens` replaces the provider's output budget."""
        ...


def answer_to_json(result: RoomGuess | PhotoAnalysis) -> dict[str, Any]:
    """A provider's answer as plain JSON, to keep with the call's record (and reuse it)."""
    if isinstance(result, RoomGuess):
        return {
            "room_type": result.room_type,
            "confidence": result.confidence,
            "provider": result.usage.provider,
            "model": result.usage.model,
        }
    return {
        "items": [
            {
                "key": item.key,
                "name": item.name,
                "category": item.category,
                "quantity": item.quantity,
                "confidence": item.confidence,
                "fragile": item.fragile,
                "dismantle": item.dismantle,
                "volume_m3_estimate": item.volume_m3_estimate,
            }
            for item in result.items
        ],
        "confidence": result.confidence,
        "room_type": result.room_type,
        "room_confidence": result.room_confidence,
        "provider": result.usage.provider,
        "model": result.usage.model,
    }


def answer_from_json(operation: str, data: dict[str, Any]) -> RoomGuess | PhotoAnalysis:
    """The inverse of `answer_to_json` (usage carries no tokens: nothing new was paid)."""
    usage = Usage(data["provider"], data["model"])
    if operation == "detect_room":
        return RoomGuess(data["room_type"], float(data["confidence"]), usage)
    items = [DetectedItem(**item) for item in data["items"]]
    room_confidence = data.get("room_confidence")
    return PhotoAnalysis(
        items,
        float(data["confidence"]),
        usage,
        room_type=data.get("room_type"),
        room_confidence=None if room_confidence is None else float(room_confidence),
    )

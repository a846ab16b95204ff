"""Validating a model's JSON answer against our schemas and turning it into our types."""

from __future__ import annotations

import json
from typing import Any

import jsonschema

from ai_engine.errors import AiError, ErrorCode
from ai_engine.prompts import ITEMS_SCHEMA, ROOM_ITEMS_SCHEMA, ROOM_SCHEMA
from ai_engine.types import DetectedItem, PhotoAnalysis, RoomGuess, Usage

_ROOM_VALIDATOR = jsonschema.Draft202012Validator(ROOM_SCHEMA)
_ITEMS_VALIDATOR = jsonschema.Draft202012Validator(ITEMS_SCHEMA)
_ROOM_ITEMS_VALIDATOR = jsonschema.Draft202012Validator(ROOM_ITEMS_SCHEMA)


class BilledAnswer(AiError):
    """The model answered, and was paid for, but the answer is not one we can use. `usage` is
    what it cost; `problem` names what was wrong with it, for the call's metric row."""

    problem = ""

    def __init__(self, message: str, *, usage: Usage | None = None) -> None:
        super().__init__(ErrorCode.BAD_INPUT, message, retryable=False)
        self.usage = usage


class InvalidOutput(BilledAnswer):
    """Not valid JSON for our schema. Worth one more try (the engine's)."""

    problem = "malformed"

    def __init__(self, provider: str, detail: str, *, usage: Usage | None = None) -> None:
        super().__init__(f"{provider}: answer does not match the schema ({detail})", usage=usage)


class AnswerRefused(BilledAnswer):
    """The model declined (a refusal, a content filter). Asking the same again would be paid
    again and declined again: never repeated."""

    problem = "refused"

    def __init__(self, provider: str, reason: str, *, usage: Usage | None = None) -> None:
        super().__init__(f"{provider}: the model declined to answer: {reason}", usage=usage)


class AnswerTruncated(BilledAnswer):
    """The answer hit the output budget (`budget` tokens) and was cut off. The identical request
    would be cut off again: never repeated (the engine may ask once with a larger budget)."""

    problem = "truncated"

    def __init__(self, provider: str, *, budget: int, usage: Usage | None = None) -> None:
        super().__init__(
            f"{provider}: answer too long: cut off at the output budget ({budget} tokens)",
            usage=usage,
        )
        self.budget = budget


def load_json(provider: str, payload: Any, usage: Usage | None = None) -> Any:
    if isinstance(payload, str | bytes):
        try:
            return json.loads(payload)
        except ValueError as exc:
            raise InvalidOutput(provider, f"not JSON: {exc}", usage=usage) from None
    return payload


def _validate(
    validator: jsonschema.Draft202012Validator, provider: str, data: Any, usage: Usage
) -> None:
    error = jsonschema.exceptions.best_match(validator.iter_errors(data))
    if error is not None:
        where = "/".join(str(part) for part in error.absolute_path) or "answer"
        raise InvalidOutput(provider, f"{where}: {error.message}", usage=usage)


def parse_room(provider: str, payload: Any, usage: Usage) -> RoomGuess:
    data = load_json(provider, payload, usage)
    _validate(_ROOM_VALIDATOR, provider, data, usage)
    return RoomGuess(data["room_type"], float(data["confidence"]), usage)


def parse_items(
    provider: str, payload: Any, usage: Usage, *, with_room: bool = False
) -> PhotoAnalysis:
    """The items answer; `with_room`: the combined answer, with the room's type too."""
    data = load_json(provider, payload, usage)
    _validate(_ROOM_ITEMS_VALIDATOR if with_room else _ITEMS_VALIDATOR, provider, data, usage)
    items = [
        DetectedItem(
            key=item["key"],
            name=item["name"],
            category=item["category"],
            quantity=int(item["quantity"]),
            confidence=float(item["confidence"]),
            fragile=bool(item["fragile"]),
            dismantle=bool(item["dismantle"]),
            volume_m3_estimate=float(item["volume_m3_estimate"]),
        )
        for item in data["items"]
    ]
    if not with_room:
        return PhotoAnalysis(items, float(data["confidence"]), usage)
    return PhotoAnalysis(
        items,
        float(data["confidence"]),
        usage,
        room_type=data["room_type"],
        room_confidence=float(data["room_confidence"]),
    )

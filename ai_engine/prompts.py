"""What the models are asked, and the JSON they must answer with. Versioned: the version goes
into every `analysis`, so a change of wording can be traced in the results."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ai_engine.types import ROOM_TYPES

PROMPT_VERSION = "2026-12-02.2"

#: The most item lines one photo's answer may carry. One item of ITEM_SCHEMA is ~40–60
#: output tokens, so the output budget is sized from it, with room for the rest of the answer:
#: a busy room is never cut off below MAX_ITEMS lines (each line has its own quantity).
MAX_ITEMS = 80
TOKENS_PER_ITEM = 60
ITEMS_OUTPUT_TOKENS = MAX_ITEMS * TOKENS_PER_ITEM + 256
#: The room-detection call's output budget: one small object.
ROOM_OUTPUT_TOKENS = 256

ROOM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "room_type": {"type": "string", "enum": list(ROOM_TYPES)},
        "confidence": {"type": "number", "minimum": 0, "maximum": 1},
    },
    "required": ["room_type", "confidence"],
    "additionalProperties": False,
}

ITEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "key": {"type": "string", "minLength": 1, "maxLength": 64},
        "name": {"type": "string", "minLength": 1, "maxLength": 120},
        "category": {"type": "string", "maxLength": 40},
        "quantity": {"type": "integer", "minimum": 1, "maximum": 500},
        "confidence": {"type": "number", "minimum": 0, "maximum": 1},
        "fragile": {"type": "boolean"},
        "dismantle": {"type": "boolean"},
        "volume_m3_estimate": {"type": "number", "minimum": 0, "maximum": 50},
    },
    "required": [
        "key",
        "name",
        "category",
        "quantity",
        "confidence",
        "fragile",
        "dismantle",
        "volume_m3_estimate",
    ],
    "additionalProperties": False,
}

ITEMS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "items": {"type": "array", "items": ITEM_SCHEMA, "maxItems": MAX_ITEMS},
        "confidence": {"type": "number", "minimum": 0, "maximum": 1},
    },
    "required": ["items", "confidence"],
    "additionalProperties": False,
}

#: One call for a photo without a room type: the room and the items in one answer.
ROOM_ITEMS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "room_type": ROOM_SCHEMA["properties"]["room_type"],
        "room_confidence": ROOM_SCHEMA["properties"]["confidence"],
        **ITEMS_SCHEMA["properties"],
    },
    "required": ["room_type", "room_confidence", *ITEMS_SCHEMA["required"]],
    "additionalProperties": False,
}


def items_schema(room_type: str | None) -> dict[str, Any]:
    """The answer asked for: the items, and the room too when its type is not known."""
    return ROOM_ITEMS_SCHEMA if room_type is None else ITEMS_SCHEMA


#: A cut-off answer is asked once more with twice its budget, never more than this (what the
#: default models of both providers can write in one answer).
MAX_OUTPUT_TOKENS = 16_384

_RANGE_KEYWORDS = frozenset({"minimum", "maximum", "minLength", "maxLength", "maxItems"})
#: The range keywords OpenAI's strict structured outputs accept (Anthropic's strict tools: none).
OPENAI_RANGE_KEYWORDS = frozenset({"minimum", "maximum", "maxItems"})


def provider_schema(schema: Any, *, keep: frozenset[str] = frozenset()) -> Any:
    """The schema without the range keywords a strict structured-output mode refuses (all but
    `keep`). Only keywords go: a *property* named `maximum` stays, and lists (`anyOf`,
    `enum`, `required`) are walked too. Ranges are still enforced: every answer is validated
    against the full schema."""
    if isinstance(schema, list):
        return [provider_schema(item, keep=keep) for item in schema]
    if not isinstance(schema, dict):
        return schema
    cleaned: dict[str, Any] = {}
    for key, value in schema.items():
        if key in _RANGE_KEYWORDS and key not in keep:
            continue
        if key in ("properties", "$defs", "definitions") and isinstance(value, dict):
            # Names, not keywords: each value is a schema.
            cleaned[key] = {name: provider_schema(sub, keep=keep) for name, sub in value.items()}
        else:
            cleaned[key] = provider_schema(value, keep=keep)
    return cleaned


def room_prompt() -> str:
    return (
        "You are helping a moving company. Which room of a home does this photo show? "
        f"Answer with one of: {', '.join(ROOM_TYPES)}, and your confidence from 0 to 1."
    )


def items_prompt(room_type: str | None, catalogue_keys: Sequence[str]) -> str:
    """The items of a photo of `room_type`; with None, the room type is asked for too (one call
    instead of two)."""
    if room_type is None:
        room = (
            "First say which room of a home this photo shows: `room_type`, one of "
            f"{', '.join(ROOM_TYPES)}, and `room_confidence` from 0 to 1. Then list every item "
        )
    else:
        room = f"This photo shows a {room_type.replace('_', ' ')}. List every item "
    return (
        "You are helping a moving company estimate the volume of a household move. "
        + room
        + "a mover would carry "
        "(furniture, appliances, electronics, boxes; not fixtures such as radiators, built-in "
        "kitchens or lights). For each item give: `key`, one of the catalogue keys below when one "
        "fits, otherwise a short snake_case name; `name`, a short display name; `category` "
        "(furniture, appliance, electronics, decor, box or other); `quantity`; `confidence` from "
        "0 to 1; `fragile`; `dismantle` (needs disassembly to move); `volume_m3_estimate`, your "
        "estimate of the volume of ONE such item in cubic metres. Also give your overall "
        "confidence. Catalogue keys: " + ", ".join(catalogue_keys)
    )

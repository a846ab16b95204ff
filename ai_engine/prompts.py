"""What the models are asked, and the JSON they must answer with. Versioned: the version goes
into every `analysis`, so a change of wording can be traced in the results."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ai_engine.types import ROOM_TYPES

PROMPT_VERSION = "2026-12-02.1"

#: The most item lines one photo's answer may carry. One item of ITEM_SCHEMA is ~40–60
#: output tokens, so the output budget is sized from it, with room for the rest of the answer:
#: a busy room is never cut off below MAX_ITEMS lines (each line has its own quantity).
MAX_ITEMS = 80
TOKENS_PER_ITEM = 60
ITEMS_OUTPUT_TOKENS = MAX_ITEMS * TOKENS_PER_ITEM + 256

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


def items_prompt(room_type: str, catalogue_keys: Sequence[str]) -> str:
    return (
        "You are helping a moving company estimate the volume of a household move. "
        f"This photo shows a {room_type.replace('_', ' ')}. List every item a mover would carry "
        "(furniture, appliances, electronics, boxes; not fixtures such as radiators, built-in "
        "kitchens or lights). For each item give: `key`, one of the catalogue keys below when one "
        "fits, otherwise a short snake_case name; `name`, a short display name; `category` "
        "(furniture, appliance, electronics, decor, box or other); `quantity`; `confidence` from "
        "0 to 1; `fragile`; `dismantle` (needs disassembly to move); `volume_m3_estimate`, your "
        "estimate of the volume of ONE such item in cubic metres. Also give your overall "
        "confidence. Catalogue keys: " + ", ".join(catalogue_keys)
    )

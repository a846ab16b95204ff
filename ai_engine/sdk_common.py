"""Pieces shared by the SDK-backed providers."""

from __future__ import annotations

from typing import Any

from ai_engine.types import image_b64


def image_b64_text(image: bytes) -> str:
    return image_b64(image).decode("ascii")


def error_detail(body: Any) -> str:
    """The provider's error type, code and message from an SDK exception body (no headers)."""
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict):
            parts = [str(inner.get(key)) for key in ("type", "code", "message") if inner.get(key)]
            return " ".join(parts)
    return str(body or "")[:300]


def error_codes(body: Any) -> frozenset[str]:
    """The machine-readable codes of a provider's error body: OpenAI's `error.code`, Anthropic's
    `error.details.error_code` (e.g. `enforced_spend_limit_reached`)."""
    inner = body.get("error", body) if isinstance(body, dict) else None
    if not isinstance(inner, dict):
        return frozenset()
    details = inner.get("details")
    codes = [inner.get("code"), details.get("error_code") if isinstance(details, dict) else None]
    return frozenset(str(code) for code in codes if code)

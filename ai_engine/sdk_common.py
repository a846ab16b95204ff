"""Pieces shared by the SDK-backed providers."""

from __future__ import annotations

import base64
from typing import Any


def image_b64(image: bytes) -> str:
    return base64.b64encode(image).decode("ascii")


def error_detail(body: Any) -> str:
    """The provider's error type, code and message from an SDK exception body (no headers)."""
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict):
            parts = [str(inner.get(key)) for key in ("type", "code", "message") if inner.get(key)]
            return " ".join(parts)
    return str(body or "")[:300]

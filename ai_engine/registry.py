"""Builds the configured provider from settings."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from ai_engine.fake import FakeProvider
from ai_engine.types import AiProvider


def provider_from_settings() -> AiProvider:
    """The provider named by `AI_PROVIDER`, configured from settings."""
    name = settings.AI_PROVIDER
    if name == "fake":
        return FakeProvider(
            latency_ms=settings.AI_FAKE_LATENCY_MS,
            fail_rate=settings.AI_FAKE_FAIL_RATE,
            fail_code=settings.AI_FAKE_FAIL_CODE,
        )
    raise ImproperlyConfigured(f"AI_PROVIDER={name!r} is not available (known: fake)")

"""Builds the configured AI engine from settings: providers in fallback order, prices, breaker."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from ai_engine.breaker import CircuitBreaker
from ai_engine.engine import AiEngine
from ai_engine.fake import FakeProvider
from ai_engine.quota import QuotaLimiter, quotas_parse
from ai_engine.types import AiProvider

KNOWN_PROVIDERS = ("anthropic", "openai", "fake")


def provider_from_settings(name: str) -> AiProvider:
    """One provider, configured from settings. SDKs are imported only when used."""
    if name == "fake":
        return FakeProvider(
            latency_ms=settings.AI_FAKE_LATENCY_MS,
            fail_rate=settings.AI_FAKE_FAIL_RATE,
            fail_code=settings.AI_FAKE_FAIL_CODE,
        )
    if name == "anthropic":
        from ai_engine.anthropic_provider import AnthropicProvider

        return AnthropicProvider(
            api_key=_key("ANTHROPIC_API_KEY"),
            model=settings.ANTHROPIC_MODEL,
            timeout_s=settings.AI_TIMEOUT_S,
            base_url=settings.ANTHROPIC_BASE_URL or None,
        )
    if name == "openai":
        from ai_engine.openai_provider import OpenAIProvider

        return OpenAIProvider(
            api_key=_key("OPENAI_API_KEY"),
            model=settings.OPENAI_MODEL,
            timeout_s=settings.AI_TIMEOUT_S,
            base_url=settings.OPENAI_BASE_URL or None,
        )
    raise ImproperlyConfigured(
        f"unknown AI provider {name!r} (known: {', '.join(KNOWN_PROVIDERS)})"
    )


def _key(setting: str) -> str:
    key: str = getattr(settings, setting)
    if not key:
        raise ImproperlyConfigured(f"{setting} (or {setting}_FILE) must be set for this provider")
    return key


def prices_from_settings() -> dict[str, tuple[Decimal, Decimal]]:
    """AI_PRICES as the engine takes it: the models whose prices override genai-prices'."""
    prices = {}
    for model, pair in settings.AI_PRICES.items():
        price_in, price_out = pair
        prices[model] = (Decimal(str(price_in)), Decimal(str(price_out)))
    return prices


def breaker_from_settings(*, redis_client: Any) -> CircuitBreaker:
    """The circuit breaker the workers share (AI_BREAKER_*), over `redis_client`."""
    return CircuitBreaker(
        redis_client,
        prefix=f"{settings.DRAMATIQ_NAMESPACE}:moverz:circuit",
        threshold=settings.AI_BREAKER_THRESHOLD,
        window_s=settings.AI_BREAKER_WINDOW_S,
        cooldown_s=settings.AI_BREAKER_COOLDOWN_S,
    )


def quota_from_settings(*, redis_client: Any) -> QuotaLimiter:
    """The provider quotas, priority and fair shares the workers share (AI_QUOTAS, AI_QUOTA_*,
    AI_PRIORITY_*, AI_PROJECT_CONCURRENCY), over `redis_client`."""
    try:
        quotas = quotas_parse(settings.AI_QUOTAS)
    except ValueError as exc:
        raise ImproperlyConfigured(str(exc)) from None
    if not 0 <= settings.AI_PRIORITY_NORMAL_SHARE <= 1:
        raise ImproperlyConfigured("AI_PRIORITY_NORMAL_SHARE must be between 0 and 1")
    if settings.AI_PRIORITY_RESERVE_S < 0:
        raise ImproperlyConfigured("AI_PRIORITY_RESERVE_S must be 0 or more seconds")
    return QuotaLimiter(
        redis_client,
        prefix=f"{settings.DRAMATIQ_NAMESPACE}:moverz:quota",
        quotas=quotas,
        # A slot of a worker killed mid-call comes back after the photo's lease, which bounds
        # every call of an attempt (AI_TIMEOUT_S each).
        ttl_ms=settings.PHOTO_LEASE_SECONDS * 1000,
        burst_s=settings.AI_QUOTA_BURST_S,
        tenant_concurrency=settings.AI_PROJECT_CONCURRENCY,
        active_ms=settings.AI_FAIR_ACTIVE_MS,
        recheck_ms=settings.AI_QUOTA_RECHECK_MS,
        reserve_s=min(settings.AI_PRIORITY_RESERVE_S, settings.AI_QUOTA_BURST_S),
        normal_share=settings.AI_PRIORITY_NORMAL_SHARE,
    )


_cached: dict[tuple[Any, ...], AiEngine] = {}


def engine_from_settings(*, redis_client: Any = None) -> AiEngine:
    """The engine for `AI_PROVIDERS`, built once per process (SDK clients keep their HTTP pools)."""
    cache_key = (
        tuple(settings.AI_PROVIDERS),
        settings.AI_FAKE_LATENCY_MS,
        settings.AI_FAKE_FAIL_RATE,
        settings.AI_FAKE_FAIL_CODE,
        json.dumps(settings.AI_QUOTAS, sort_keys=True),
        settings.AI_QUOTA_BURST_S,
        settings.AI_PROJECT_CONCURRENCY,
        id(redis_client),
    )
    engine = _cached.get(cache_key)
    if engine is None:
        breaker = None  # a breaker only helps when there is another provider to fall back to
        if redis_client is not None and len(settings.AI_PROVIDERS) > 1:
            breaker = breaker_from_settings(redis_client=redis_client)
        engine = AiEngine(
            [provider_from_settings(name) for name in settings.AI_PROVIDERS],
            breaker=breaker,
            prices=prices_from_settings(),
            quota=quota_from_settings(redis_client=redis_client) if redis_client else None,
        )
        _cached[cache_key] = engine
    return engine

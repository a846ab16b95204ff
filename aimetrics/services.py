"""Recording AI provider calls."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from aimetrics.models import AiMetric


def aimetric_record(
    *,
    provider: str,
    model: str,
    operation: str,
    latency_ms: int,
    success: bool,
    error_type: str | None = None,
    retries: int = 0,
    tokens_in: int = 0,
    tokens_out: int = 0,
    cost_usd: Decimal = Decimal("0"),
    price_source: str = "",
    photo_id: Any = None,
    project_id: Any = None,
    meta: dict[str, Any] | None = None,
) -> AiMetric:
    """Store one provider call. `meta` carries ids and counts, never image bytes or keys."""
    return AiMetric.objects.create(
        provider=provider,
        model=model,
        operation=operation,
        latency_ms=latency_ms,
        success=success,
        error_type=error_type,
        retries=retries,
        tokens_in=tokens_in,
        tokens_out=tokens_out,
        cost_usd=cost_usd,
        price_source=price_source,
        photo_id=photo_id,
        project_id=project_id,
        meta=meta or {},
    )

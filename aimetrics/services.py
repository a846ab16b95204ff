"""Recording AI provider calls."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.db import models

from aimetrics.models import AiMetric, AnswerReuse


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


def answer_reuse_record(
    *, photo_id: Any, project_id: Any, reused_from: Any, saved_usd: Decimal
) -> AnswerReuse:
    """Store that a photo reused another's answer (no provider call was made)."""
    return AnswerReuse.objects.create(
        photo_id=photo_id, project_id=project_id, reused_from=reused_from, saved_usd=saved_usd
    )


def answer_cost(*, photo_id: Any, run: int) -> Decimal:
    """What the successful provider calls of one photo's run cost."""
    total = AiMetric.objects.filter(photo_id=photo_id, success=True, meta__run=run).aggregate(
        total=models.Sum("cost_usd")
    )["total"]
    return total or Decimal("0")

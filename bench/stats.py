"""Small statistics helpers shared by the bench and its load generator (standard library only;
`percentile` is infra's, which the accuracy report shares)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from infra.stats import percentile


def summary(values: Iterable[float], *, scale: float = 1.0, digits: int = 3) -> dict[str, Any]:
    """n, mean, p50, p90, p95, p99 and max of `values` × `scale`, rounded."""
    ordered = sorted(v * scale for v in values)
    if not ordered:
        return {"n": 0, "mean": None, "p50": None, "p90": None, "p95": None, "p99": None}
    out: dict[str, Any] = {"n": len(ordered), "mean": round(sum(ordered) / len(ordered), digits)}
    for name, fraction in (("p50", 0.5), ("p90", 0.9), ("p95", 0.95), ("p99", 0.99)):
        value = percentile(ordered, fraction)
        out[name] = None if value is None else round(value, digits)
    out["min"] = round(ordered[0], digits)
    out["max"] = round(ordered[-1], digits)
    return out


def ratio(value: float | None, floor: float | None, digits: int = 1) -> float | None:
    if value is None or not floor:
        return None
    return round(value / floor, digits)

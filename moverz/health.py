"""`/healthz`: is the database reachable, is the broker reachable."""

from __future__ import annotations

from django.db import connection
from django.http import HttpRequest, JsonResponse

from infra.broker import broker_redis


def healthz(request: HttpRequest) -> JsonResponse:
    """200 when the database and Redis answer, 503 naming what is down. No auth."""
    checks = {"database": "ok", "broker": "ok"}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception:
        checks["database"] = "down"
    try:
        broker_redis().ping()
    except Exception:
        checks["broker"] = "down"
    healthy = all(value == "ok" for value in checks.values())
    return JsonResponse(
        {"status": "ok" if healthy else "down", "checks": checks}, status=200 if healthy else 503
    )

"""Section 8: the AI metrics dashboard at 1,000,000 AiMetric rows (30 days, INSERT … SELECT).

After the insert, the rollup job (`aimetric_rollup`, as the relay runs it, batch after batch)
sums the rows into the hourly rollups; its time is reported apart. `dashboard_build` is timed in
this process for the 24 h, 7 d and 30 d windows (30 d covers every row), with its parts timed
too; the admin page is fetched through gunicorn with a staff session. The floor is one pass over
the window's covering index: count and sum, raw psycopg.
"""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from bench import data
from bench.api import start_web
from bench.context import Bench
from bench.stats import summary

ROWS = 1_000_000
DAYS = 30
WINDOWS = {"24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30)}
PARTS = ("read_consistent", "_retried")  # the figures through the rollups; the retried photos
TABLES = [
    "aimetrics_aimetric",
    *(
        f"aimetrics_aimetric{rollup}"
        for rollup in ("hour", "hourlatency", "daylatency", "hourproject", "photohour")
    ),
]
FLOOR_SQL = (
    "SELECT count(*), sum(cost_usd), sum(tokens_in) FROM aimetrics_aimetric"
    " WHERE created_at >= %s AND created_at < %s"
)


def run(bench: Bench) -> dict[str, Any]:
    from django.db import connection
    from django.utils import timezone

    import aimetrics.dashboard as dashboard
    from aimetrics.rollup import aimetric_rollup
    from photos.models import Project

    bench.reset_pipeline_tables()
    rows = 100_000 if bench.options.quick else ROWS
    owner = Project.objects.get(pk=bench.project_id).owner
    projects = [Project.objects.create(owner=owner, name=f"metrics {i}").pk for i in range(50)]
    bench.log(f"inserting {rows:,} AiMetric rows, then rolling them up")
    started = time.perf_counter()
    data.aimetrics_insert(count=rows, days=DAYS, project_ids=projects)
    inserted = time.perf_counter()
    while aimetric_rollup(settle=timedelta(0)):  # nothing else writes AiMetric here
        pass
    rolled_up = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(f"VACUUM ANALYZE {', '.join(TABLES)}")
    out: dict[str, Any] = {
        "rows": rows,
        "insert_s": round(inserted - started, 1),
        "rollup_s": round(rolled_up - inserted, 1),
        "vacuum_s": round(time.perf_counter() - rolled_up, 1),
    }
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT " + ", ".join(f"(SELECT count(*) FROM {table})" for table in TABLES[1:])
        )
        out["rollup_rows"] = dict(zip(TABLES[1:], cursor.fetchone(), strict=True))
    repeats = 2 if bench.options.quick else 3

    parts: dict[str, list[float]] = {}
    originals = {name: getattr(dashboard, name) for name in PARTS}

    def timed(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            begun = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                parts.setdefault(name, []).append(time.perf_counter() - begun)

        return call

    out["windows"] = {}
    now = timezone.now()
    for label, span in WINDOWS.items():
        parts.clear()
        dashboard.dashboard_build(since=now - span, until=now)  # warm
        parts.clear()
        timings = []
        for name, function in originals.items():
            setattr(dashboard, name, timed(name, function))
        try:
            for _ in range(repeats):
                begun = time.perf_counter()
                result = dashboard.dashboard_build(since=now - span, until=now)
                timings.append(time.perf_counter() - begun)
        finally:
            for name, function in originals.items():
                setattr(dashboard, name, function)
        floor = []
        with bench.db.connect() as conn:
            for _ in range(repeats):
                begun = time.perf_counter()
                conn.execute(FLOOR_SQL, [now - span, now]).fetchall()
                floor.append(time.perf_counter() - begun)
        out["windows"][label] = {
            "calls_in_window": result.summary.calls,
            "build_ms": summary(timings, scale=1000, digits=1),
            "parts_p50_ms": {
                name: summary(values, scale=1000, digits=1)["p50"] for name, values in parts.items()
            },
            "floor_one_pass_ms": summary(floor, scale=1000, digits=1),
        }
        bench.log(f"dashboard {label}: {out['windows'][label]['build_ms']['p50']} ms")
    out["page"] = _page(bench, repeats)
    return out


def _page(bench: Bench, repeats: int) -> dict[str, Any]:
    from django.contrib.auth import get_user_model
    from django.test import Client

    start_web(bench)
    admin = get_user_model().objects.filter(is_staff=True).get()
    client = Client()
    client.force_login(admin)
    cookie = client.cookies["sessionid"].value
    out: dict[str, Any] = {}
    for window in ("24h", "30d"):
        url = f"http://127.0.0.1:{bench.web_port}/admin/aimetrics/dashboard/?window={window}"
        timings, status, size = [], 0, 0
        for attempt in range(repeats + 2):
            request = urllib.request.Request(url, headers={"Cookie": f"sessionid={cookie}"})
            begun = time.perf_counter()
            with urllib.request.urlopen(request, timeout=60) as response:
                body = response.read()
                status = response.status
            if attempt > 1:  # the first ones warm both web workers
                timings.append(time.perf_counter() - begun)
            size = len(body)
        if status != 200 or b"dashboard" not in body.lower():
            raise RuntimeError(f"dashboard page: {status}, {body[:300]!r}")
        out[window] = {"page_ms": summary(timings, scale=1000, digits=1), "bytes": size}
        bench.log(f"dashboard page {window}: {out[window]['page_ms']['p50']} ms")
    return out

"""Section 6: `inventory_sync` over projects of 100 to 50,000 DONE photos (inserted with SQL).

The photos are labelled 50 to a room (a 10,000-photo project has 200 rooms), each with 10 item
lines drawn from its room's 20 kinds (bench/data.py). Timed in this process, the service as the
worker's actor calls it; the floor is the item lines' GROUP BY over their rows (photos.PhotoItem)
as the ORM writes it, sent raw through psycopg (the aggregate alone: no rooms' GROUP BY, no
catalogue read, no snapshot written, no ids sorted, no JSON).
"""

from __future__ import annotations

import math
import time
from typing import Any

from bench import data
from bench.context import Bench
from bench.stats import summary

SIZES = (100, 1_000, 10_000, 50_000)
PHOTOS_PER_ROOM = 50


def run(bench: Bench) -> dict[str, Any]:
    from django.db import connection

    from inventory.lines import inventory_lines_query
    from inventory.services import inventory_sync
    from photos.models import Project

    bench.reset_pipeline_tables()
    sizes = SIZES if not bench.options.quick else (100, 10_000)
    projects = {}
    owner = Project.objects.get(pk=bench.project_id).owner
    for size in sizes:
        project = Project.objects.create(owner=owner, name=f"bench inventory {size}")
        data.photos_insert(
            project_id=project.pk,
            count=size,
            image=bench.small_image,
            done=True,
            photos_per_room=PHOTOS_PER_ROOM,
        )
        projects[size] = project.pk
    # Other projects' photos in the same table, as in production: 20,000 more.
    filler = Project.objects.create(owner=owner, name="bench inventory filler")
    data.photos_insert(
        project_id=filler.pk,
        count=20_000,
        image=bench.small_image,
        done=True,
        photos_per_room=PHOTOS_PER_ROOM,
    )
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE photos_photo, photos_photoitem")

    out: dict[str, Any] = {"sizes": {}}
    for size, project_id in projects.items():
        repeats = max(5, min(40, 200_000 // (size * 10) or 5))
        if bench.options.quick:
            repeats = 5
        for _ in range(2):
            inventory_sync(project_id=project_id)  # warm: caches, plans
        timings = []
        for _ in range(repeats):
            started = time.perf_counter()
            snapshot = inventory_sync(project_id=project_id)
            timings.append(time.perf_counter() - started)
        assert snapshot is not None and snapshot.photo_count == size, snapshot
        lines = sum(len(room["items"]) for room in snapshot.rooms)
        floor = []
        sql, params = inventory_lines_query(project_id=project_id).query.sql_with_params()
        with bench.db.connect() as conn:
            for _ in range(2):
                conn.execute(sql, params).fetchall()
            for _ in range(repeats):
                started = time.perf_counter()
                conn.execute(sql, params).fetchall()
                floor.append(time.perf_counter() - started)
        out["sizes"][str(size)] = {
            "sync_ms": summary(timings, scale=1000),
            "floor_group_by_ms": summary(floor, scale=1000),
            "repeats": repeats,
            "rooms": len(snapshot.rooms),
            "lines": lines,
        }
        bench.log(f"inventory {size}: {out['sizes'][str(size)]['sync_ms']['p50']} ms")
    out["growth"] = _growth(out["sizes"])
    bench.reset_pipeline_tables()
    return out


def _growth(sizes: dict[str, Any]) -> dict[str, Any]:
    """Log-log slopes between consecutive sizes: 1.0 is linear, below is better than linear."""
    points = sorted((int(size), row["sync_ms"]["p50"]) for size, row in sizes.items())
    slopes = {}
    for (n1, t1), (n2, t2) in zip(points, points[1:], strict=False):
        slopes[f"{n1}->{n2}"] = round(math.log(t2 / t1) / math.log(n2 / n1), 3)
    ms_per_1000 = {str(n): round(t / n * 1000, 3) for n, t in points}
    return {
        "loglog_slopes": slopes,
        "max_slope": max(slopes.values(), default=None),
        "ms_per_1000_photos": ms_per_1000,
    }

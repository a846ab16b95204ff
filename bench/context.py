"""What every section of the bench shares: settings, the children, the database, helpers."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.infra import ROOT, Children, Database, cpu_seconds, machine_load, tree_cpu_seconds

#: The quotas section's worker configurations: name → processes of each `rundramatiq` group (one
#: group a host).
QUOTA_CONFIGS: dict[str, tuple[int, ...]] = {"2": (2,), "4": (4,), "2x2": (2, 2)}


@dataclass
class Options:
    quick: bool = False  # shorter runs, for trying the bench out (figures are not comparable)
    sections: tuple[str, ...] = ()
    web_workers: int = 2  # the Procfile's WEB_CONCURRENCY
    web_threads: int = 4  # the Procfile's WEB_THREADS
    web_worker_class: str = ""  # the Procfile's WEB_WORKER_CLASS (gunicorn's default: "")
    worker_processes: int = 2  # the Procfile's WORKER_PROCESSES
    worker_threads: int = 8  # the Procfile's WORKER_THREADS
    update_docs: bool = True
    keep_logs: bool = False
    quota_configs: tuple[str, ...] = tuple(QUOTA_CONFIGS)
    quota_latency_ms: int = 1300  # the fake provider's median latency in the quotas section
    quota_latency_p95_ms: int = 2000


@dataclass
class Bench:
    options: Options
    workdir: Path
    children: Children
    db: Database
    redis_url: str
    redis_pid: int
    env: dict[str, str]  # for child processes: the same settings as this process
    media_root: Path
    results: dict[str, Any] = field(default_factory=dict)
    loads: list[dict[str, Any]] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)
    web_port: int = 0
    web_pid: int = 0
    ping_port: int = 0
    ping_pid: int = 0
    token: str = ""
    user_id: int = 0
    project_id: Any = None
    small_image: str = ""  # a stored image name (MEDIA_ROOT-relative)
    phone_path: Path = Path()
    heic_path: Path = Path()

    def log(self, message: str) -> None:
        elapsed = time.monotonic() - self.started
        print(f"[bench {elapsed:6.1f}s] {message}", file=sys.stderr, flush=True)

    def note_load(self, label: str) -> dict[str, Any]:
        load = machine_load() | {"label": label}
        self.loads.append(load)
        self.log(f"load {load['loadavg']} ({label})")
        return load

    def duration(self, normal: float, quick: float) -> float:
        return quick if self.options.quick else normal

    def loadgen(self, spec: dict[str, Any]) -> dict[str, Any]:
        """One run of bench.loadgen in its own process."""
        spec = {"host": "127.0.0.1", **spec}
        result = subprocess.run(
            [sys.executable, "-m", "bench.loadgen"],
            cwd=ROOT,
            input=json.dumps(spec).encode(),
            capture_output=True,
            timeout=float(spec["duration_s"]) + float(spec.get("warmup_s", 0)) + 120,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"loadgen failed: {result.stderr.decode(errors='replace')[-2000:]}")
        out: dict[str, Any] = json.loads(result.stdout)
        return out

    def cpu_snapshot(self, server_pid: int) -> dict[str, Any]:
        """CPU seconds so far of a server's process tree, the database's backends, and Redis."""
        return {
            "server": tree_cpu_seconds(server_pid) if server_pid else 0.0,
            "postgres": self.backend_cpu(),
            "redis": tree_cpu_seconds(self.redis_pid),
        }

    @staticmethod
    def cpu_per_item(
        before: dict[str, Any], after: dict[str, Any], items: float
    ) -> dict[str, float]:
        """CPU ms per item between two snapshots (PostgreSQL: backends seen at the end)."""
        postgres = sum(
            cpu - before["postgres"].get(pid, 0.0) for pid, cpu in after["postgres"].items()
        )
        total = {
            "server": after["server"] - before["server"],
            "postgres": postgres,
            "redis": after["redis"] - before["redis"],
        }
        return {name: round(1000 * value / max(items, 1), 3) for name, value in total.items()}

    def backend_cpu(self) -> dict[int, float]:
        """CPU seconds of each PostgreSQL backend connected to the bench database (not ours)."""
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                [self.db.name],
            )
            pids = [row[0] for row in cursor.fetchall()]
        return {pid: cpu_seconds(pid) for pid in pids}

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Token {self.token}", "Accept": "application/json"}

    def flush_redis(self) -> None:
        import redis

        client = redis.Redis.from_url(self.redis_url)
        client.flushdb()
        client.close()

    def reset_pipeline_tables(self) -> None:
        """No photos, metrics or snapshots left from an earlier section (and no messages)."""
        from django.db import connection

        from aimetrics.models import AiMetricRollup
        from aimetrics.rollup import ROLLUPS

        with connection.cursor() as cursor:
            cursor.execute(
                "TRUNCATE photos_provideranswer, photos_photoitem, photos_photo,"
                " aimetrics_aimetric, inventory_inventorysnapshot, inventory_inventorycorrection, "
                + ", ".join(model._meta.db_table for model in ROLLUPS)
                + f", {AiMetricRollup._meta.db_table}"
                # And every table that refers to these (staff corrections, item rows).
                + " CASCADE"
            )
            cursor.execute("UPDATE photos_project SET inventory_sync_requested_at = NULL")
        self.flush_redis()

    def write_ids(self, name: str, ids: list[str]) -> Path:
        path = self.workdir / f"{name}.ids"
        path.write_text("\n".join(ids))
        return path

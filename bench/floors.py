"""Floors: what this machine does at best, measured in the same run as our figures.

- PostgreSQL: a primary-key UPDATE and a primary-key SELECT, one at a time, from Python (psycopg,
  as our code talks to it), and pgbench's TPS and latency when pgbench is installed.
- Redis: RPUSH one at a time from redis-py, and redis-benchmark when it is installed.
- HTTP: a bare WSGI app (bench/ping.py) behind the same gunicorn flags as ours, driven by the same
  load generator at the same rates (measured in the API section, next to each of our figures).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from typing import Any

import redis

from bench.context import Bench
from bench.stats import summary


def _loop(call: Any, count: int) -> dict[str, Any]:
    for _ in range(50):  # warm: connection, prepared statement
        call()
    timings = []
    for _ in range(count):
        started = time.perf_counter()
        call()
        timings.append(time.perf_counter() - started)
    return summary(timings, scale=1000, digits=4)


def measure(bench: Bench) -> dict[str, Any]:
    count = 500 if bench.options.quick else 3000
    out: dict[str, Any] = {}
    with bench.db.connect() as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS bench_floor (id int PRIMARY KEY, n int NOT NULL)")
        conn.execute(
            "INSERT INTO bench_floor SELECT g, 0 FROM generate_series(1, 1000) g"
            " ON CONFLICT DO NOTHING"
        )
        keys = iter(range(10**9))

        def update() -> None:
            conn.execute("UPDATE bench_floor SET n = n + 1 WHERE id = %s", [next(keys) % 1000 + 1])

        def select() -> None:
            conn.execute(
                "SELECT n FROM bench_floor WHERE id = %s", [next(keys) % 1000 + 1]
            ).fetchone()

        out["sql_update_pk_ms"] = _loop(update, count)
        out["sql_select_pk_ms"] = _loop(select, count)
    client = redis.Redis.from_url(bench.redis_url)
    try:

        def push() -> None:
            client.rpush("bench:floor", b"x" * 200)

        out["redis_rpush_ms"] = _loop(push, count)
        client.delete("bench:floor")
    finally:
        client.close()
    out["pgbench"] = _pgbench(bench)
    out["redis_benchmark"] = _redis_benchmark(bench)
    return out


def _pgbench(bench: Bench) -> dict[str, Any] | None:
    binary = shutil.which("pgbench")
    if not binary:
        return None
    script = bench.workdir / "pgbench.sql"
    script.write_text(
        "\\set id random(1, 1000)\nUPDATE bench_floor SET n = n + 1 WHERE id = :id;\n"
    )
    seconds = "2" if bench.options.quick else "4"
    result = subprocess.run(
        [binary, "-n", "-c", "1", "-j", "1", "-T", seconds, "-M", "prepared", "-f", str(script)]
        + [bench.db.url],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    text = result.stdout + result.stderr
    latency = re.search(r"latency average = ([\d.]+) ms", text)
    tps = re.search(r"tps = ([\d.]+)", text)
    if result.returncode != 0 or not latency or not tps:
        return {"error": text[-500:]}
    return {"clients": 1, "latency_avg_ms": float(latency[1]), "tps": float(tps[1])}


def _redis_benchmark(bench: Bench) -> dict[str, Any] | None:
    binary = shutil.which("redis-benchmark")
    if not binary:
        return None
    port = bench.redis_url.rsplit(":", 1)[1].split("/")[0]
    out: dict[str, Any] = {}
    requests = "5000" if bench.options.quick else "20000"
    for clients in ("1", "50"):
        result = subprocess.run(
            [binary, "-h", "127.0.0.1", "-p", port, "-t", "rpush", "-n", requests, "-c", clients]
            + ["-d", "200", "--csv"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        lines = [line for line in result.stdout.splitlines() if line.startswith('"RPUSH"')]
        header = next(
            (line for line in result.stdout.splitlines() if line.startswith('"test"')), ""
        )
        if result.returncode != 0 or not lines:
            out[f"c{clients}"] = {"error": (result.stdout + result.stderr)[-300:]}
            continue
        names = [name.strip('"') for name in header.split(",")] if header else []
        values = [value.strip('"') for value in lines[0].split(",")]
        row = dict(zip(names, values, strict=False))
        out[f"c{clients}"] = {
            "rps": float(row.get("rps", "nan")),
            "p50_ms": float(row["p50_latency_ms"]) if "p50_latency_ms" in row else None,
            "p99_ms": float(row["p99_latency_ms"]) if "p99_latency_ms" in row else None,
        }
    return out

"""`python -m bench` (`make bench`): the whole benchmark suite, on this machine, in one run.

It starts a private Redis, creates and migrates a database of its own on the PostgreSQL server of
BENCH_DATABASE_URL (else TEST_DATABASE_URL, else postgres://postgres@127.0.0.1:5432), starts
gunicorn, `rundramatiq` workers and the fake Anthropic server as the sections need them, writes
bench/results/latest.json and latest.md, and puts the table into docs/benchmarks.md. Whatever
happens (an error, Ctrl-C, SIGTERM), every process it started is stopped and its database
dropped. Sections that fail are reported as failed; the others still run.
"""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import shutil
import signal
import socket
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

from bench.context import QUOTA_CONFIGS, Bench, Options
from bench.infra import ROOT, Children, Database, redis_start, with_database

SECTIONS = (
    "floors",
    "preflight",
    "api",
    "worker",
    "scaling",
    "inventory",
    "dashboard",
    "quotas",
    "webhooks",
)
RESULTS = ROOT / "bench" / "results"
# Settings that would point the bench's processes at something else than what it started.
FOREIGN = (
    "AI_PROVIDER",
    "AI_PROVIDERS",
    "AI_FAKE_LATENCY_MS",
    "AI_FAKE_FAIL_RATE",
    "AI_FAKE_FAIL_CODE",
    "OPENAI_API_KEY",
    "OPENAI_API_KEY_FILE",
    "OPENAI_BASE_URL",
    "ANTHROPIC_API_KEY_FILE",
    "AWS_STORAGE_BUCKET_NAME",
    "CACHE_URL",
    "CACHE_KEY_PREFIX",
    "SECRET_KEY_FILE",
    "WEBHOOK_RETRY_SCHEDULE",
    "WEBHOOK_TIMEOUT_S",
)


def parse(argv: list[str] | None) -> Options:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="short runs, to try the bench out")
    parser.add_argument(
        "--only",
        default="",
        help=f"comma-separated sections (default: all of {','.join(SECTIONS)})",
    )
    parser.add_argument("--web-workers", type=int, default=2)
    parser.add_argument("--web-threads", type=int, default=4)
    parser.add_argument("--worker-processes", type=int, default=2)
    parser.add_argument("--worker-threads", type=int, default=8)
    parser.add_argument(
        "--quota-configs",
        default="2,4,2x2",
        help="quotas: worker configurations, comma-separated among 2 (processes), 4 (on one "
        "host), 2x2 (two rundramatiq groups, as two hosts) (default: all three)",
    )
    parser.add_argument(
        "--quota-latency-ms", type=int, default=1300, help="quotas: provider latency median"
    )
    parser.add_argument(
        "--quota-latency-p95-ms", type=int, default=2000, help="quotas: provider latency P95"
    )
    parser.add_argument("--no-docs", action="store_true", help="leave docs/benchmarks.md alone")
    parser.add_argument("--keep-logs", action="store_true", help="copy the processes' logs")
    args = parser.parse_args(argv)
    sections = tuple(s for s in args.only.split(",") if s) or SECTIONS
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections: {', '.join(sorted(unknown))}")
    quota_configs = tuple(c for c in args.quota_configs.split(",") if c)
    if not quota_configs or set(quota_configs) - set(QUOTA_CONFIGS):
        parser.error(f"--quota-configs must be among {','.join(QUOTA_CONFIGS)}")
    return Options(
        quick=args.quick,
        sections=tuple(s for s in SECTIONS if s in sections),
        web_workers=args.web_workers,
        web_threads=args.web_threads,
        worker_processes=args.worker_processes,
        worker_threads=args.worker_threads,
        update_docs=not args.no_docs and not args.quick and not args.only,
        keep_logs=args.keep_logs,
        quota_configs=quota_configs,
        quota_latency_ms=args.quota_latency_ms,
        quota_latency_p95_ms=args.quota_latency_p95_ms,
    )


def _server_url() -> str:
    url = os.environ.get("BENCH_DATABASE_URL") or os.environ.get("TEST_DATABASE_URL")
    return with_database(url or "postgres://postgres@127.0.0.1:5432/postgres", "postgres")


def _settings_env(db: Database, redis_url: str, workdir: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in FOREIGN}
    env |= {
        "DJANGO_SETTINGS_MODULE": "moverz.settings",
        "DEBUG": "0",  # production code paths; plain HTTP on loopback below
        "SECRET_KEY": secrets.token_urlsafe(48),
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SECURE_SSL_REDIRECT": "0",
        "SECURE_COOKIES": "0",
        "TRUST_X_FORWARDED_PROTO": "0",
        "DATABASE_URL": db.url,
        "REDIS_URL": redis_url,
        "DRAMATIQ_NAMESPACE": "moverz-bench",
        "MEDIA_ROOT": str(workdir / "media"),
        "MOVERZ_VAR_DIR": str(workdir / "var"),
        "AI_PROVIDERS": "anthropic",
        "ANTHROPIC_API_KEY": "bench-" + secrets.token_hex(8),
        "ANTHROPIC_BASE_URL": "http://127.0.0.1:9",  # each worker gets its fake server's URL
        # Throttling stays on (its Redis round trips are part of each request), out of reach.
        "THROTTLE_UPLOAD_RATE": "1000000/min",
        "THROTTLE_ENQUEUE_RATE": "1000000/min",
        "dramatiq_prom_host": "127.0.0.1",
        "dramatiq_prom_port": "0",
        "PYTHONUNBUFFERED": "1",
    }
    return env


def _setup_django(bench: Bench) -> None:
    import django
    from django.core.management import call_command

    django.setup()
    # This process's own provider calls (section 4) need no log line each; workers keep theirs.
    logging.getLogger("httpx2").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    call_command("migrate", verbosity=0, interactive=False)

    from bench import data
    from photos.models import Project

    user, bench.token = data.user_with_token("bench")
    data.user_with_token("bench-admin", staff=True)
    bench.user_id = user.pk
    bench.project_id = Project.objects.create(owner=user, name="bench").pk
    bench.small_image = data.store_media(
        bench.media_root, "photos/bench/small.jpg", data.small_photo()
    )
    bench.phone_path = bench.workdir / "phone.jpg"
    bench.phone_path.write_bytes(data.phone_photo())
    bench.heic_path = bench.workdir / "phone.heic"
    bench.heic_path.write_bytes(data.phone_heic())


def _sections() -> dict[str, Callable[[Bench], dict[str, Any]]]:
    from bench import api, dashboard, floors, inventory, preflight, quotas, webhooks, worker

    return {
        "floors": floors.measure,
        "preflight": preflight.run,
        "api": api.run,
        "worker": worker.overhead,
        "scaling": worker.scaling,
        "inventory": inventory.run,
        "dashboard": dashboard.run,
        "quotas": quotas.run,
        "webhooks": webhooks.run,
    }


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    options = parse(argv)
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _interrupt)
    workdir = Path(tempfile.mkdtemp(prefix="moverz-bench-"))
    children = Children(workdir)
    db = Database(_server_url())
    started = time.monotonic()
    status = 1
    bench: Bench | None = None
    try:
        redis, redis_url = redis_start(children)
        db.create()
        env = _settings_env(db, redis_url, workdir)
        os.environ.clear()
        os.environ.update(env)
        bench = Bench(
            options=options,
            workdir=workdir,
            children=children,
            db=db,
            redis_url=redis_url,
            redis_pid=redis.pid,
            env=env,
            media_root=workdir / "media",
            started=started,
        )
        bench.log(f"database {db.name}, redis {redis_url}, work dir {workdir}")
        _setup_django(bench)
        failed = False
        sections = _sections()
        for name in options.sections:
            bench.note_load(name)
            begun = time.monotonic()
            try:
                result = sections[name](bench)
            except KeyboardInterrupt:
                raise
            except Exception:
                failed = True
                bench.log(f"section {name} failed:\n{traceback.format_exc()}")
                result = {"error": traceback.format_exc()}
            bench.results[name] = result
            bench.seconds[name] = round(time.monotonic() - begun, 1)
            bench.log(f"section {name}: {bench.seconds[name]} s")
            _save_partial(bench)
        bench.note_load("end")
        from bench import report

        meta = {
            "finished": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            "host": socket.gethostname(),
            "cpus": os.cpu_count(),
            "duration_s": round(time.monotonic() - started, 1),
            "quick": options.quick,
            "options": vars(options),
            "loads": bench.loads,
            "section_seconds": bench.seconds,
            "gunicorn": f"--workers {options.web_workers} --threads {options.web_threads}",
            "worker": f"--processes {options.worker_processes} --threads {options.worker_threads}",
        }
        path = report.write(bench.results, meta, RESULTS, options.update_docs)
        (RESULTS / "partial.json").unlink(missing_ok=True)  # latest.json has it all now
        bench.log(f"report: {path} and {path.with_suffix('.md')}")
        print((RESULTS / "latest.md").read_text())
        status = 1 if failed else 0
    except KeyboardInterrupt:
        print("[bench] interrupted: stopping everything", flush=True)
        status = 130
    finally:
        _cleanup(children, db, workdir, keep_logs=options.keep_logs or status not in (0, 130))
    print(f"[bench] done in {time.monotonic() - started:.0f} s", flush=True)
    return status


def _save_partial(bench: Bench) -> None:
    """The raw results so far, in case a later section or the report fails."""
    import json

    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "partial.json").write_text(json.dumps(bench.results, indent=2, default=str))


def _cleanup(children: Children, db: Database, workdir: Path, *, keep_logs: bool) -> None:
    # Signals again during cleanup would leave things half-stopped: ignore them now.
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)
    try:
        from django.db import connections

        for conn in connections.all(initialized_only=True):
            conn.close()
            close_pool = getattr(conn, "close_pool", None)
            if close_pool is not None:
                close_pool()
    except Exception:  # Django may never have been set up
        pass
    children.stop_all()
    db.drop()
    if keep_logs:
        target = RESULTS / f"logs-{time.strftime('%Y%m%d-%H%M%S')}"
        target.mkdir(parents=True, exist_ok=True)
        for log in workdir.glob("*.log"):
            shutil.copy(log, target / log.name)
        print(f"[bench] logs kept in {target}", flush=True)
    shutil.rmtree(workdir, ignore_errors=True)

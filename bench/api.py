"""Sections 1–3: the enqueue API, polling, and uploads, through real gunicorn.

Each of our figures is measured right after the same load against bench/ping.py (the floor),
served by a second gunicorn with the same flags. Enqueue requests each move a different PENDING
photo into the queue (the `enqueued` path: one conditional UPDATE and one Redis send); polls read
DONE photos with a five-item analysis; uploads send a 12 MP, ~4 MB phone JPEG, and the same photo
as a ~2.5 MB phone HEIC.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from bench import data
from bench.context import Bench
from bench.infra import gunicorn_start

RATES = (50, 100, 200, 400)
SATURATION_CONNECTIONS = 16
ENQUEUE_PHOTOS = 24_000
POLL_PHOTOS = 1000


class Ids:
    """Photo ids handed out once each."""

    def __init__(self, ids: list[str]) -> None:
        self.ids = ids
        self.used = 0

    def take(self, count: int) -> list[str]:
        chunk = self.ids[self.used : self.used + count]
        self.used += len(chunk)
        return chunk


def start_web(bench: Bench) -> None:
    """Our app and the ping app, both with the Procfile's gunicorn flags."""
    if bench.web_port:
        return
    workers, threads = bench.options.web_workers, bench.options.web_threads
    worker_class = bench.options.web_worker_class
    web, bench.web_port = gunicorn_start(
        bench.children,
        "gunicorn-app",
        "moverz.wsgi",
        bench.env,
        workers=workers,
        threads=threads,
        probe_path="/healthz",
        worker_class=worker_class,
    )
    ping, bench.ping_port = gunicorn_start(
        bench.children,
        "gunicorn-ping",
        "bench.ping:application",
        bench.env,
        workers=workers,
        threads=threads,
        probe_path="/",
        worker_class=worker_class,
    )
    bench.web_pid, bench.ping_pid = web.pid, ping.pid


def _spec(bench: Bench, port: int, request: dict[str, Any], **load: Any) -> dict[str, Any]:
    return {"port": port, "request": request, **load}


def _measured(bench: Bench, spec: dict[str, Any]) -> dict[str, Any]:
    """One load generator run, with the CPU the server side spent per request."""
    server = bench.ping_pid if spec["port"] == bench.ping_port else bench.web_pid
    before = bench.cpu_snapshot(server)
    result = bench.loadgen(spec)
    after = bench.cpu_snapshot(server)
    warmup, duration = float(spec.get("warmup_s", 0)), float(spec["duration_s"])
    # The warm-up's requests cost CPU too: count them at the measured rate.
    sent = result["requests"] * (warmup + duration) / duration
    result["cpu_ms_per_request"] = bench.cpu_per_item(before, after, sent)
    return result


def _enqueue_request(bench: Bench, ids: list[str]) -> dict[str, Any]:
    return {
        "method": "POST",
        "path": "/api/photos/enqueue",
        "headers": bench.auth_headers() | {"Content-Type": "application/json"},
        "body": '{"photoId": "{id}"}',
        "ids_file": str(bench.write_ids("enqueue", ids)),
    }


def _poll_request(bench: Bench, ids_file: str) -> dict[str, Any]:
    return {
        "method": "GET",
        "path": "/api/photos/{id}",
        "headers": bench.auth_headers(),
        "ids_file": ids_file,
    }


PING = {"method": "GET", "path": "/ping", "headers": {"Accept": "application/json"}}


def run(bench: Bench) -> dict[str, Any]:
    start_web(bench)
    bench.reset_pipeline_tables()
    enqueue_ids = Ids(
        data.photos_insert(
            project_id=bench.project_id, count=ENQUEUE_PHOTOS, image=bench.small_image
        )
    )
    poll_file = str(
        bench.write_ids(
            "poll",
            data.photos_insert(
                project_id=bench.project_id, count=POLL_PHOTOS, image=bench.small_image, done=True
            ),
        )
    )
    duration, warmup = bench.duration(5.0, 2.0), bench.duration(1.0, 0.5)
    rates = RATES if not bench.options.quick else (50, 200)

    # Warm every process and path (imports, pools, caches) before anything is counted.
    for port, request in (
        (bench.ping_port, PING),
        (bench.web_port, _enqueue_request(bench, enqueue_ids.take(400))),
        (bench.web_port, _poll_request(bench, poll_file)),
    ):
        bench.loadgen(_spec(bench, port, request, mode="closed", concurrency=4, duration_s=1.0))

    out: dict[str, Any] = {"rates": {}, "saturation": {}}
    for rate in rates:
        count = int(rate * (duration + warmup)) + 10
        load = {"mode": "open", "rate": rate, "duration_s": duration, "warmup_s": warmup}
        load["concurrency"] = 64
        bench.log(f"open loop at {rate} req/s")
        out["rates"][str(rate)] = {
            "ping": _measured(bench, _spec(bench, bench.ping_port, PING, **load)),
            "enqueue": _measured(
                bench,
                _spec(
                    bench, bench.web_port, _enqueue_request(bench, enqueue_ids.take(count)), **load
                ),
            ),
            "poll": _measured(
                bench, _spec(bench, bench.web_port, _poll_request(bench, poll_file), **load)
            ),
        }
    bench.log("saturation (closed loop)")
    load = {
        "mode": "closed",
        "concurrency": SATURATION_CONNECTIONS,
        "duration_s": duration,
        "warmup_s": warmup,
    }
    left = enqueue_ids.take(len(enqueue_ids.ids))
    out["saturation"] = {
        "ping": _measured(bench, _spec(bench, bench.ping_port, PING, **load)),
        "enqueue": _measured(
            bench, _spec(bench, bench.web_port, _enqueue_request(bench, left), **load)
        ),
        "poll": _measured(
            bench, _spec(bench, bench.web_port, _poll_request(bench, poll_file), **load)
        ),
    }
    out["saturation"]["enqueue"]["fresh_photo_ids"] = len(left)
    out["enqueue_check"] = _enqueue_check(bench)
    out["upload"] = _uploads(bench)
    bench.reset_pipeline_tables()
    return out


def _enqueue_check(bench: Bench) -> dict[str, int]:
    """Sanity: every successful enqueue queued its photo and sent one message."""
    import redis
    from django.conf import settings

    from photos.models import Photo

    client = redis.Redis.from_url(bench.redis_url)
    try:
        messages = int(client.llen(f"{settings.DRAMATIQ_NAMESPACE}:photo-analyze"))
    finally:
        client.close()
    return {
        "photos_queued": Photo.objects.filter(queued_at__isnull=False).count(),
        "messages_in_redis": messages,
    }


def _multipart(bench: Bench, image: Path, content_type: str) -> tuple[str, str]:
    boundary = "----moverz-bench-boundary"
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="projectId"\r\n\r\n'
        f"{bench.project_id}\r\n".encode(),
        f'--{boundary}\r\nContent-Disposition: form-data; name="image"; '
        f'filename="IMG_0001{image.suffix}"\r\nContent-Type: {content_type}\r\n\r\n'.encode()
        + image.read_bytes()
        + b"\r\n",
        f"--{boundary}--\r\n".encode(),
    ]
    path = bench.workdir / f"upload{image.suffix}.body"
    path.write_bytes(b"".join(parts))
    return str(path), f"multipart/form-data; boundary={boundary}"


def _uploads(bench: Bench) -> dict[str, Any]:
    """The phone JPEG one and four at a time, then the phone HEIC one at a time."""
    duration = bench.duration(5.0, 2.0)
    out: dict[str, Any] = {"bytes": bench.phone_path.stat().st_size}
    runs = [
        (bench.phone_path, "image/jpeg", 1, out),
        (bench.phone_path, "image/jpeg", 4, out),
        (bench.heic_path, "image/heic", 1, out.setdefault("heic", {})),
    ]
    out["heic"]["bytes"] = bench.heic_path.stat().st_size
    for image, image_type, concurrency, into in runs:
        body_file, content_type = _multipart(bench, image, image_type)
        upload = {
            "method": "POST",
            "path": "/api/photos",
            "headers": bench.auth_headers() | {"Content-Type": content_type},
            "body_file": body_file,
        }
        ping = {"method": "POST", "path": "/ping", "headers": {"Content-Type": content_type}}
        ping["body_file"] = body_file
        bench.log(f"uploads of {image.name}, {concurrency} at a time")
        load = {"mode": "closed", "concurrency": concurrency, "duration_s": duration}
        load["warmup_s"] = 0.5
        into[f"c{concurrency}"] = {
            "ping": _measured(bench, _spec(bench, bench.ping_port, ping, **load)),
            "upload": _measured(bench, _spec(bench, bench.web_port, upload, **load)),
        }
        shutil.rmtree(bench.media_root / "photos" / str(bench.project_id), ignore_errors=True)
    return out

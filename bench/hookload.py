"""Load for the webhooks section, in a process of its own (`python -m bench.hookload`, a JSON spec
as the first line of stdin, a JSON answer as the last line of stdout), so that it does not share
a GIL with the bench's receiver.

- `finish`: photos (queued, in the database) finish at a fixed rate through the worker's own
  moves, `photo_claim` then `photo_store_done` — the DONE transaction that writes the outbox row
  and sends its delivery message on commit — without the provider call in between. Open loop:
  photo *i* is due at t₀ + i / rate whatever the earlier ones took; how late each started is
  returned (a generator that cannot keep up says so). Several finishers share one schedule, each
  taking every `stride`-th photo from `offset` (one process does not keep up with 50/s here):
  each says "ready" once Django is set up, then reads t₀ from stdin.
- `post`: the HTTP floor of a delivery: `threads` threads POST the same signed-size body to the
  receiver with plain http.client, a new connection each (as a delivery does), `count` in all.
"""

from __future__ import annotations

import http.client
import json
import sys
import threading
import time
from typing import Any
from urllib.parse import urlsplit

from bench.stats import summary


def finish(spec: dict[str, Any]) -> dict[str, Any]:
    import django

    django.setup()
    from bench.data import ANALYSIS
    from photos.lifecycle import Claim, photo_claim, photo_store_done
    from photos.models import Photo

    ids: list[str] = spec["ids"]
    rate = float(spec["rate"])  # of all the finishers together
    offset, stride = int(spec["offset"]), int(spec["stride"])
    Photo.objects.filter(pk__in=ids).count()  # connected, and the ORM warm
    print("ready", flush=True)
    start_at = float(sys.stdin.readline())  # time.time(), the same for every finisher
    lag, done, skipped = [], 0, 0
    for index, photo_id in enumerate(ids):
        due = start_at + (offset + index * stride) / rate
        pause = due - time.time()
        if pause > 0:
            time.sleep(pause)
        lag.append(time.time() - due)
        claim = photo_claim(photo_id=photo_id)
        if isinstance(claim, Claim) and photo_store_done(
            claim=claim, analysis=ANALYSIS, room_type="living_room"
        ):
            done += 1
        else:
            skipped += 1
    return {
        "photos": len(ids),
        "done": done,
        "skipped": skipped,
        "ended_at": time.time(),
        "start_lag_ms": lag,
    }


def post(spec: dict[str, Any]) -> dict[str, Any]:
    url = urlsplit(spec["url"])
    body = spec["body"].encode()
    headers = spec["headers"]
    count, threads = int(spec["count"]), int(spec["threads"])
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    todo = iter(range(count))

    def run() -> None:
        while True:
            with lock:
                if next(todo, None) is None:
                    return
            begun = time.perf_counter()
            connection = http.client.HTTPConnection(url.hostname or "", url.port, timeout=10)
            try:
                connection.request("POST", url.path, body=body, headers=headers)
                response = connection.getresponse()
                response.read()
                ok = 200 <= response.status < 300
            except (OSError, http.client.HTTPException):
                ok = False
            finally:
                connection.close()
            with lock:
                latencies.append(time.perf_counter() - begun)
                errors[0] += not ok

    started = time.perf_counter()
    workers = [threading.Thread(target=run) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - started
    return {
        "requests": count,
        "threads": threads,
        "errors": errors[0],
        "per_s": round(count / elapsed, 1),
        "latency_ms": summary(latencies, scale=1000),
    }


def main() -> None:
    spec = json.loads(sys.stdin.readline())
    modes = {"finish": finish, "post": post}
    print(json.dumps(modes[spec["mode"]](spec)))


if __name__ == "__main__":
    main()

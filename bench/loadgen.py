"""An HTTP/1.1 load generator, run as its own process: `python -m bench.loadgen < spec.json`.

Open loop (`"mode": "open"`): request i is due at t0 + i / rate, whatever happened to the earlier
ones, and its latency is measured from that due time, not from when it was actually sent. A slow
server therefore shows up as latency, instead of silently slowing the generator down
("coordinated omission"). Requests go over keep-alive connections: an idle one if there is one,
else a new one up to `concurrency`, else the request waits for one (and that wait counts).

Closed loop (`"mode": "closed"`): `concurrency` connections each send their next request as soon
as the previous answer is in; this finds the saturation throughput.

The spec (JSON on stdin): host, port, mode, rate (open), concurrency, duration_s, warmup_s
(requests due in the warm-up are sent but not counted), and `request`: method, path, headers,
body (text) or body_file, where `{id}` in path or body takes the next of `ids` (each request its
own, cycling when they run out). Prints one JSON object: the latency summary (ms), throughput,
statuses, errors, and the generator's own send lag (how late it sent, a sign it was starved).

Standard library only, so it starts fast and measures little of itself.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.stats import summary

REQUEST_TIMEOUT_S = 60.0
RETRIES = 4  # requests sent again after finding a kept-alive connection closed
# gunicorn closes a kept-alive connection after 2 s idle (its --keep-alive default). An idle one
# older than this is closed by the pool rather than used: it may be closing as the request goes.
IDLE_REUSE_S = 1.5
GRACE_S = 5.0  # open loop: how long answers are awaited after the last request was due


class Connection:
    """One keep-alive HTTP/1.1 connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.closed = False
        self.used = False  # has carried a request: the server may have closed it since (idle)
        self.idle_since = time.perf_counter()

    @classmethod
    async def open(cls, host: str, port: int) -> Connection:
        reader, writer = await asyncio.open_connection(host, port, limit=1 << 20)
        return cls(reader, writer)

    async def exchange(self, raw: bytes) -> int:
        """Send one request, read the whole answer; its status."""
        self.writer.write(raw)
        await self.writer.drain()
        status_line = await self.reader.readline()
        if not status_line:
            raise ConnectionResetError("the server closed the connection")
        self.used = True
        status = int(status_line.split(b" ", 2)[1])
        length = 0
        chunked = False
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value.strip())
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
            elif name == b"connection" and value.strip().lower() == b"close":
                self.closed = True
        if chunked:
            while True:
                size = int((await self.reader.readline()).split(b";")[0].strip(), 16)
                await self.reader.readexactly(size + 2)
                if size == 0:
                    break
        elif length:
            await self.reader.readexactly(length)
        return status

    def close(self) -> None:
        self.closed = True
        self.writer.close()


@dataclass
class Results:
    due_at_measure: float  # requests due before this are warm-up
    latencies: list[float] = field(default_factory=list)  # s, from due (open) or sent (closed)
    service: list[float] = field(default_factory=list)  # s, from sent
    lags: list[float] = field(default_factory=list)  # s, sent - due
    statuses: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    first_due: float = float("inf")
    last_done: float = 0.0
    unfinished: int = 0

    def record(self, due: float, sent: float, done: float, status: int | None, error: str) -> None:
        if due < self.due_at_measure:
            return
        self.first_due = min(self.first_due, due)
        self.last_done = max(self.last_done, done)
        if error:
            self.errors[error] = self.errors.get(error, 0) + 1
            return
        self.statuses[str(status)] = self.statuses.get(str(status), 0) + 1
        self.latencies.append(done - due)
        self.service.append(done - sent)
        self.lags.append(sent - due)


class RequestSource:
    """Raw request bytes, one per call; `{id}` takes the next id."""

    def __init__(self, spec: dict[str, Any], host: str) -> None:
        self.method = spec.get("method", "GET")
        self.path = spec["path"]
        self.headers = {"Host": host, **spec.get("headers", {})}
        self.body_text: str | None = spec.get("body")
        self.body_bytes = Path(spec["body_file"]).read_bytes() if spec.get("body_file") else None
        ids = spec.get("ids") or []
        if spec.get("ids_file"):
            ids = Path(spec["ids_file"]).read_text().split()
        self.ids = ids or [""]
        self.next = 0

    def __call__(self) -> bytes:
        ident = self.ids[self.next % len(self.ids)]
        self.next += 1
        path = self.path.replace("{id}", ident)
        body = b""
        if self.body_bytes is not None:
            body = self.body_bytes
        elif self.body_text is not None:
            body = self.body_text.replace("{id}", ident).encode()
        lines = [f"{self.method} {path} HTTP/1.1"]
        lines += [f"{name}: {value}" for name, value in self.headers.items()]
        if body or self.method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class Pool:
    """Idle keep-alive connections; new ones up to `limit`, then requests wait for one.

    The most recently used idle connection goes first; one idle for longer than IDLE_REUSE_S is
    closed instead (the server is about to, or already did): a burst that reaches past the hot
    connections would otherwise meet several stale ones in a row. The retry in `_one` stays for
    the race that is left."""

    def __init__(self, host: str, port: int, limit: int) -> None:
        self.host, self.port, self.limit = host, port, limit
        self.idle: list[Connection] = []
        self.opened = 0
        self.available = asyncio.Condition()

    async def prefill(self, count: int) -> None:
        for _ in range(min(count, self.limit)):
            connection = await Connection.open(self.host, self.port)
            connection.used = True  # it may sit idle past the server's keep-alive timeout
            self.idle.append(connection)
            self.opened += 1

    async def get(self) -> Connection:
        async with self.available:
            while True:
                while self.idle:
                    connection = self.idle.pop()
                    if time.perf_counter() - connection.idle_since < IDLE_REUSE_S:
                        return connection
                    connection.close()
                    self.opened -= 1
                if self.opened < self.limit:
                    self.opened += 1
                    break
                await self.available.wait()
        try:
            return await Connection.open(self.host, self.port)
        except BaseException:
            async with self.available:
                self.opened -= 1
                self.available.notify()
            raise

    async def put(self, connection: Connection) -> None:
        async with self.available:
            if connection.closed:
                self.opened -= 1
            else:
                connection.idle_since = time.perf_counter()
                self.idle.append(connection)
            self.available.notify()

    def close(self) -> None:
        for connection in self.idle:
            connection.close()


async def _one(pool: Pool, raw: bytes) -> tuple[float, int | None, str]:
    """(sent at, status, error). A kept-alive connection the server closed while it was idle
    (gunicorn's keep-alive timeout) gets the request again on another one, as HTTP clients do:
    no answer had started, so the server never read it."""
    sent = time.perf_counter()
    for attempt in range(RETRIES + 1):
        connection = await pool.get()
        if attempt == 0:
            sent = time.perf_counter()
        reused = connection.used
        try:
            status = await asyncio.wait_for(connection.exchange(raw), REQUEST_TIMEOUT_S)
        except (ConnectionResetError, BrokenPipeError) as exc:
            connection.close()
            await pool.put(connection)
            if reused and attempt < RETRIES:  # the next idle one may be stale too
                continue
            where = "retried" if attempt else ("reused" if reused else "new connection")
            return sent, None, f"{type(exc).__name__} ({where})"
        except Exception as exc:  # counted, never raised: one failure must not end the run
            connection.close()
            await pool.put(connection)
            return sent, None, type(exc).__name__
        await pool.put(connection)
        return sent, status, ""
    raise AssertionError("unreachable")


async def open_loop(spec: dict[str, Any], source: RequestSource) -> Results:
    rate = float(spec["rate"])
    warmup, duration = float(spec.get("warmup_s", 0)), float(spec["duration_s"])
    pool = Pool(spec["host"], int(spec["port"]), int(spec.get("concurrency", 64)))
    await pool.prefill(min(16, int(rate // 20) + 2))
    t0 = time.perf_counter() + 0.05
    results = Results(due_at_measure=t0 + warmup)
    total = int(rate * (warmup + duration))

    async def one(due: float, raw: bytes) -> None:
        sent, status, error = await _one(pool, raw)
        results.record(due, sent, time.perf_counter(), status, error)

    tasks: dict[asyncio.Task[None], float] = {}
    for index in range(total):
        due = t0 + index / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks[asyncio.create_task(one(due, source()))] = due
    # A server slower than the rate builds a backlog that could take minutes to drain: after a
    # grace period the rest is abandoned, each counted as "unfinished" with its age so far as
    # its latency (a lower bound), so the percentiles still say how bad it was.
    _, pending = await asyncio.wait(tasks, timeout=float(spec.get("grace_s", GRACE_S)))
    now = time.perf_counter()
    for task in pending:
        task.cancel()
        due = tasks[task]
        if due >= results.due_at_measure:
            results.errors["unfinished"] = results.errors.get("unfinished", 0) + 1
            results.latencies.append(now - due)
            results.unfinished += 1
    if pending:
        await asyncio.wait(pending)
    pool.close()
    return results


async def closed_loop(spec: dict[str, Any], source: RequestSource) -> Results:
    warmup, duration = float(spec.get("warmup_s", 0)), float(spec["duration_s"])
    concurrency = int(spec["concurrency"])
    pool = Pool(spec["host"], int(spec["port"]), concurrency)
    await pool.prefill(concurrency)
    t0 = time.perf_counter()
    results = Results(due_at_measure=t0 + warmup)
    end = t0 + warmup + duration

    async def loop() -> None:
        while time.perf_counter() < end:
            sent, status, error = await _one(pool, source())
            done = time.perf_counter()
            if done <= end:  # answers after the end would lower the throughput: not counted
                results.record(sent, sent, done, status, error)

    await asyncio.gather(*(loop() for _ in range(concurrency)))
    pool.close()
    return results


def run(spec: dict[str, Any]) -> dict[str, Any]:
    source = RequestSource(spec["request"], f"{spec['host']}:{spec['port']}")
    mode = spec.get("mode", "open")
    results = asyncio.run(open_loop(spec, source) if mode == "open" else closed_loop(spec, source))
    ok = sum(n for status, n in results.statuses.items() if status.startswith("2"))
    counted = len(results.service) + sum(results.errors.values())
    if mode == "open":
        span = max(results.last_done - results.first_due, 1e-9)
    else:
        span = float(spec["duration_s"])
    return {
        "mode": mode,
        "rate": spec.get("rate"),
        "concurrency": spec.get("concurrency"),
        "duration_s": spec["duration_s"],
        "requests": counted,
        "ok": ok,
        "statuses": results.statuses,
        "errors": results.errors,
        "unfinished": results.unfinished,
        "throughput": round(ok / span, 1) if counted else 0.0,
        "latency_ms": summary(results.latencies, scale=1000),
        "service_ms": summary(results.service, scale=1000),
        "send_lag_ms": summary(results.lags, scale=1000),
    }


def main() -> None:
    spec = json.load(sys.stdin)
    json.dump(run(spec), sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()

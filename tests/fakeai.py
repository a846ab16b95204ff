"""A fake AI provider speaking HTTP, for tests, benchmarks and chaos tests.

It answers the two endpoints our SDK-backed providers call, in the providers' own wire format:

- Anthropic Messages API: `POST /v1/messages` (point the SDK's `base_url` at `server.url`);
- OpenAI Chat Completions: `POST /v1/chat/completions` (point `base_url` at `server.openai_url`).

A good answer is derived from a hash of the image, so one image always gets one answer. Tests
script what comes next (`server.script(status=529)`), ask for answers that break our schema
(`malformed=True`), or turn on latency and random faults; every request received is recorded
(in-process; the standalone process keeps only its counts).
Chaos tests choose which random faults happen (`fault_kinds`), the `retry-after` of a 429, make
every answer about images of some widths malformed (`malformed_widths`: the width survives our
preflight, which only shrinks large images), and read what was served from `stats()` (over HTTP:
`GET /stats`), so they can compare it with what our side recorded.

An items answer carries the room (`room_type`, `room_confidence`) when the request's schema asks
for it, as a model follows its schema. Usage is fixed (`tokens_in`, `tokens_out`), or with None
estimated from each request and answer (image pixels ÷ 750, ~4 characters a token): benchmarks
compare flows by it.

Latency is constant (`latency_ms`), or log-normal when `latency_p95_ms` is given too: then
`latency_ms` is the median and `latency_p95_ms` the 95th percentile of the draws (benchmarks).

`POST /latency` with `{"latency_ms": ..., "latency_p95_ms": ...}` switches the latency model of a
running server (benchmarks reuse one server, and the workers connected to it, for both models).

Rate limits (`rpm`, `itpm`, `otpm`; OpenAI's `tpm`; `limit_window_s`) are enforced as the
providers do (tests/fakeai_limits.py): token buckets, a 429 with `retry-after` and the provider's
error body beyond them, the providers' rate-limit headers on every answer. `calls()` (over HTTP:
`GET /calls`) says when each call arrived, admitted or refused; `POST /reset` zeroes the counts
and fills the buckets again (benchmarks reuse one server for several runs).

In-process: `with running_fake_ai(latency_ms=5) as server: ...`.
As its own process: `python -m tests.fakeai --port 0 --fault-rate 0.2` prints the port it listens
on, then serves until SIGTERM or Ctrl-C (`--help` lists the options).

Only the standard library (plus our room list), so it can run anywhere our tests run.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import collections
import contextlib
import hashlib
import json
import math
import random
import signal
import socket
import sys
import threading
import time
import uuid
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from ai_engine.types import ROOM_TYPES
from tests.fakeai_limits import (
    ANTHROPIC,
    OPENAI,
    Admission,
    ProviderLimiter,
    RateLimits,
    anthropic_image_tokens,
    openai_image_tokens,
)

#: The model ids the tests name, current ones: tests/test_models.py checks that the installed SDKs
#: list each (and do not mark it deprecated) and that genai-prices prices it. The dated ids are
#: snapshots, as the APIs name the model in their answers.
SONNET = "claude-sonnet-4-6"
HAIKU_DATED = "claude-haiku-4-5-20251001"
GPT = "gpt-5.4-mini"
GPT_DATED = "gpt-5.4-mini-2026-03-17"
TEST_MODELS = {ANTHROPIC: (SONNET, HAIKU_DATED), OPENAI: (GPT, GPT_DATED)}
ANTHROPIC_PATH = "/v1/messages"
OPENAI_PATH = "/v1/chat/completions"
#: The random faults `fault_rate` draws from: a 429 with `retry-after`, a 529, a 500, and an
#: answer slower than the client's timeout.
FAULT_KINDS = ("rate_limit", "overloaded", "server_error", "slow")
#: The standard normal's 95th percentile: a log-normal's P95 is exp(mu + Z_95 * sigma).
Z_95 = 1.6448536269514722

#: Items the fake reports: (key, name, category, fragile, dismantle, volume of one, m³).
ITEMS: tuple[tuple[str, str, str, bool, bool, float], ...] = (
    ("sofa_3_seat", "3-seat sofa", "furniture", False, False, 2.0),
    ("chair", "Chair", "furniture", False, False, 0.3),
    ("carton", "Standard carton", "box", False, False, 0.06),
    ("television", "Television", "electronics", True, False, 0.3),
    ("bookcase", "Bookcase", "furniture", False, True, 1.0),
)

# The error `type` each status carries in the real APIs' bodies.
_ANTHROPIC_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}
_OPENAI_ERRORS: dict[int, tuple[str, str | None]] = {  # status → (type, code)
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", "unsupported_country_region_territory"),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
    500: ("server_error", None),
}


def anthropic_error(
    error_type: str, message: str, *, error_code: str | None = None
) -> dict[str, Any]:
    """An error body as the Anthropic API sends it; `error_code` goes into `error.details` (as
    for a spend limit: `enforced_spend_limit_reached`)."""
    error: dict[str, Any] = {"type": error_type, "message": message}
    if error_code is not None:
        error["details"] = {"error_code": error_code}
    return {"type": "error", "error": error, "request_id": f"req_{uuid.uuid4().hex[:24]}"}


def openai_error(message: str, error_type: str, code: str | None = None) -> dict[str, Any]:
    """An error body as the OpenAI API sends it."""
    return {"error": {"message": message, "type": error_type, "param": None, "code": code}}


def default_error_body(provider: str, status: int) -> dict[str, Any]:
    message = f"fake {provider} error {status}"
    if provider == OPENAI and status == 401:  # the real API echoes a masked key
        message = "Incorrect API key provided: test-****-123. You can find your API key at ..."
    if provider == ANTHROPIC:
        return anthropic_error(_ANTHROPIC_ERROR_TYPES.get(status, "api_error"), message)
    error_type, code = _OPENAI_ERRORS.get(status, ("server_error" if status >= 500 else "", None))
    return openai_error(message, error_type or "invalid_request_error", code)


@dataclass(frozen=True)
class RecordedRequest:
    """One request the server received, as the SDK sent it."""

    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    body: Any  # the parsed JSON, or None
    provider: str | None
    received_at: float

    @property
    def image_b64(self) -> str:
        return image_b64_of(self.body)


@dataclass(frozen=True)
class Scripted:
    """What to answer to one request. status 200 with no body: the good (or malformed) answer."""

    status: int = 200
    body: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    provider: str | None = None  # None: whichever provider asks next
    malformed: bool = False
    fault: str = ""  # the kind of a random fault (FAULT_KINDS), "" for anything else
    #: A 200 that is not an answer, as the real APIs send them (OUTCOMES); "" for an answer.
    outcome: str = ""


#: `refusal`: Anthropic `stop_reason: "refusal"` with a text block / OpenAI `message.refusal`;
#: `truncated`: Anthropic `stop_reason: "max_tokens"` with a cut-off tool input / OpenAI
#: `finish_reason: "length"` with cut-off JSON; `content_filter`: OpenAI's filter (Anthropic: a
#: refusal). All are billed: they carry `usage`.
OUTCOMES = ("refusal", "truncated", "content_filter")
REFUSAL_TEXT = "I can't help with analysing this image."


def image_b64_of(body: Any) -> str:
    """The base64 image data in a request body ("" when there is none)."""
    if not isinstance(body, dict):
        return ""
    for message in body.get("messages") or []:
        content = message.get("content") if isinstance(message, dict) else None
        for block in content if isinstance(content, list) else []:
            if not isinstance(block, dict):
                continue
            if block.get("type") == "image":
                return str((block.get("source") or {}).get("data") or "")
            if block.get("type") == "image_url":
                url = str((block.get("image_url") or {}).get("url") or "")
                return url.partition("base64,")[2]
    return ""


def image_width(image_b64: str) -> int | None:
    """The width of a base64 JPEG or PNG image, read from its header (None if neither)."""
    size = image_size(image_b64)
    return size[0] if size else None


def image_size(image_b64: str) -> tuple[int, int] | None:
    """Width and height of a base64 JPEG or PNG image, read from its header (None if neither)."""
    try:
        data = base64.b64decode(image_b64[:65536], validate=False)
    except (binascii.Error, ValueError):
        return None
    if data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) >= 24:
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    if not data.startswith(b"\xff\xd8"):
        return None
    index = 2
    while index + 9 <= len(data):
        if data[index] != 0xFF:
            return None
        marker = data[index + 1]
        if marker == 0xFF:  # fill byte
            index += 1
            continue
        length = int.from_bytes(data[index + 2 : index + 4], "big")
        # SOF0..SOF15 carry the frame size; C4 (DHT), C8 (JPG) and CC (DAC) do not.
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height = int.from_bytes(data[index + 5 : index + 7], "big")
            return int.from_bytes(data[index + 7 : index + 9], "big"), height
        index += 2 + length
    return None


def tool_of(body: Any) -> str:
    """The tool (Anthropic) or schema (OpenAI) a request asks for, "" if none."""
    if not isinstance(body, dict):
        return ""
    choice, response_format = body.get("tool_choice"), body.get("response_format")
    if isinstance(choice, dict) and choice.get("name"):
        return str(choice["name"])
    if isinstance(response_format, dict):
        return str((response_format.get("json_schema") or {}).get("name") or "")
    return ""


def room_answer(image_b64: str) -> dict[str, Any]:
    digest = hashlib.sha256(image_b64.encode()).digest()
    room = ROOM_TYPES[digest[0] % (len(ROOM_TYPES) - 1)]  # never "other"
    return {"room_type": room, "confidence": round(0.6 + (digest[1] % 40) / 100, 2)}


def items_answer(image_b64: str) -> dict[str, Any]:
    digest = hashlib.sha256(image_b64.encode()).digest()
    count = 1 + digest[2] % len(ITEMS)
    items = []
    for index in range(count):
        key, name, category, fragile, dismantle, volume = ITEMS[(digest[3] + index) % len(ITEMS)]
        items.append(
            {
                "key": key,
                "name": name,
                "category": category,
                "quantity": 1 + digest[4 + index] % 3,
                "confidence": round(0.5 + (digest[10 + index] % 50) / 100, 2),
                "fragile": fragile,
                "dismantle": dismantle,
                "volume_m3_estimate": volume,
            }
        )
    return {"items": items, "confidence": round(0.55 + (digest[20] % 45) / 100, 2)}


def schema_of(body: Any) -> dict[str, Any]:
    """The JSON schema a request asks the answer to follow ({} if none)."""
    if not isinstance(body, dict):
        return {}
    tools = body.get("tools")
    if isinstance(tools, list) and tools and isinstance(tools[0], dict):
        return dict(tools[0].get("input_schema") or {})
    response_format = body.get("response_format")
    if isinstance(response_format, dict):
        return dict((response_format.get("json_schema") or {}).get("schema") or {})
    return {}


def _answer_for(
    kind: str, image_b64: str, malformed: bool, schema: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The answer for a tool / schema name; `malformed` drops required fields. An items answer
    says the room too when the schema asks for it (`room_type`), as a model follows its schema."""
    if kind in ("report_items", "items"):
        answer = items_answer(image_b64)
        if "room_type" in ((schema or {}).get("properties") or {}):
            room = room_answer(image_b64)
            answer = {"room_type": room["room_type"], "room_confidence": room["confidence"]} | (
                answer
            )
        return {"items": [{"key": "chair", "quantity": "two"}]} if malformed else answer
    answer = room_answer(image_b64)
    return {"room_type": answer["room_type"]} if malformed else answer


def _max_output_tokens(body: dict[str, Any]) -> int:
    """The output a request may use, which the limits reserve when it starts."""
    for key in ("max_tokens", "max_completion_tokens", "max_output_tokens"):
        value = body.get(key)
        if isinstance(value, int) and value > 0:
            return value
    return 0


def _output_tokens(payload: Any) -> int:
    """The output tokens an answer used (0 for an error)."""
    usage = payload.get("usage") if isinstance(payload, dict) else None
    if not isinstance(usage, dict):
        return 0
    return int(usage.get("output_tokens") or usage.get("completion_tokens") or 0)


def _image_detail(body: dict[str, Any]) -> str:
    """The `detail` of an OpenAI image part ("auto" when not said)."""
    for message in body.get("messages") or []:
        content = message.get("content") if isinstance(message, dict) else None
        for block in content if isinstance(content, list) else []:
            if isinstance(block, dict) and block.get("type") == "image_url":
                return str((block.get("image_url") or {}).get("detail") or "auto")
    return "auto"


class FakeAiServer:
    """The server. Thread-safe: handlers run on their own threads, tests script from theirs."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        latency_ms: int = 0,
        latency_p95_ms: int | None = None,
        fault_rate: float = 0.0,
        fault_delay_s: float = 5.0,
        malformed: bool = False,
        tokens_in: int | None = 1000,
        tokens_out: int | None = 500,
        cache_read_tokens: int = 0,
        cache_creation_tokens: int = 0,
        response_model: str | None = None,
        seed: int | None = None,
        fault_kinds: Sequence[str] = FAULT_KINDS,
        retry_after: str = "1",
        malformed_widths: Collection[int] = (),
        record: bool = True,
        rpm: int | None = None,
        itpm: int | None = None,
        otpm: int | None = None,
        tpm: int | None = None,
        limit_window_s: float = 60.0,
    ) -> None:
        unknown = set(fault_kinds) - set(FAULT_KINDS)
        if unknown or not fault_kinds:
            raise ValueError(f"fault kinds must be among {FAULT_KINDS}, got {list(fault_kinds)}")
        self.latency_ms = latency_ms
        if latency_p95_ms is not None and not 0 < latency_ms <= latency_p95_ms:
            raise ValueError("a log-normal latency needs 0 < latency_ms <= latency_p95_ms")
        #: Log-normal latency: its P95 (latency_ms is then the median); None: constant latency.
        self.latency_p95_ms = latency_p95_ms
        self.fault_rate = fault_rate
        self.fault_kinds = tuple(fault_kinds)
        #: The `retry-after` header of a random 429 (seconds, as the APIs send it).
        self.retry_after = retry_after
        #: Every answer about an image of one of these widths (px) breaks our schema.
        self.malformed_widths = frozenset(malformed_widths)
        self._stats: collections.Counter[str] = collections.Counter()
        #: How long a "too slow" fault waits: make it longer than the clients' timeout.
        self.fault_delay_s = fault_delay_s
        self.malformed = malformed
        self.tokens_in = tokens_in
        self.tokens_out = tokens_out
        # Prompt caching: input read from or written to the cache, billed at the cache's rates.
        # Anthropic reports both beside `input_tokens`; OpenAI counts reads in `prompt_tokens`
        # and again in `prompt_tokens_details.cached_tokens` (and reports no writes).
        self.cache_read_tokens = cache_read_tokens
        self.cache_creation_tokens = cache_creation_tokens
        #: The model the answers name; None echoes the request's. (The real OpenAI API answers
        #: with a dated snapshot: "gpt-5.4-mini" comes back as "gpt-5.4-mini-2026-03-17".)
        self.response_model = response_model
        self._rng = random.Random(seed)
        self._latency_rng = random.Random(seed)  # its own: draws never shift the faults'
        self._lock = threading.Lock()
        self._scripts: collections.deque[Scripted] = collections.deque()
        self._requests: list[RecordedRequest] = []
        #: Keep every request (tests read them); off in the standalone process, where nothing can
        #: read them and thousands of ~0.5 MB bodies (benchmarks) would only fill its memory.
        self.record = record
        self._stopping = threading.Event()
        #: Rate limits as the providers enforce them (tests/fakeai_limits.py), each provider its
        #: own buckets; with none set, every request is admitted and no limit header is sent.
        self.rate_limits = RateLimits(rpm, itpm, otpm, tpm, limit_window_s)
        self._limiters = {
            provider: ProviderLimiter(provider, self.rate_limits)
            for provider in (ANTHROPIC, OPENAI)
            if self.rate_limits.any
        }
        #: When each provider call arrived (wall clock), admitted or refused by the limits.
        self._calls: dict[str, list[float]] = {"accepted": [], "rejected": []}
        self._connections: set[socket.socket] = set()
        self._httpd = _Server((host, port), _Handler)
        self._httpd.fake = self
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """Base URL for the Anthropic SDK (it appends `/v1/messages`)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def openai_url(self) -> str:
        """Base URL for the OpenAI SDK (it appends `/chat/completions`)."""
        return f"{self.url}/v1"

    def start(self) -> FakeAiServer:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.02},
            name=f"fakeai-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve on this thread until interrupted (the command-line mode)."""
        try:
            self._httpd.serve_forever(poll_interval=0.05)
        finally:
            self._stopping.set()
            self._httpd.server_close()

    def stop(self) -> None:
        self._stopping.set()  # wakes handlers sleeping in a delay
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=5)
        with self._lock:
            connections = list(self._connections)
        for connection in connections:  # keep-alive connections the SDKs hold in their pools
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        self._httpd.server_close()

    def __enter__(self) -> FakeAiServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- programming it ----------------------------------------------------------------------

    def script(
        self,
        *,
        status: int = 200,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        delay_s: float = 0.0,
        provider: str | None = None,
        malformed: bool = False,
        outcome: str = "",
        times: int = 1,
    ) -> None:
        """Queue the answer to the next request (of `provider`, if given); `times` queues it
        several times. An error status with no body gets the provider's usual error body;
        `outcome` is one of OUTCOMES."""
        if outcome and outcome not in OUTCOMES:
            raise ValueError(f"outcome must be among {OUTCOMES}, got {outcome!r}")
        entry = Scripted(
            status, body, dict(headers or {}), delay_s, provider, malformed, outcome=outcome
        )
        with self._lock:
            self._scripts.extend([entry] * times)

    def reset(self) -> None:
        """Forget scripted answers, recorded requests, counts and calls; fill the rate-limit
        buckets again."""
        with self._lock:
            self._scripts.clear()
            self._requests.clear()
            self._stats.clear()
            for values in self._calls.values():
                values.clear()
        for limiter in self._limiters.values():
            limiter.reset()

    def calls(self) -> dict[str, list[float]]:
        """When each provider call arrived (Unix time), `accepted` within the rate limits or
        `rejected` with a 429 (over HTTP: `GET /calls`)."""
        with self._lock:
            return {name: list(values) for name, values in self._calls.items()}

    def stats(self) -> dict[str, int]:
        """What was served, counted: `requests` and `requests:<tool>`; `fault:<kind>` for random
        faults; `scripted:<status>`; `ok:<tool>` for good answers sent in time and
        `malformed:<tool>` for broken ones; `undelivered` for answers whose client had gone;
        `request_bytes`, the bodies received (provider paths); with rate limits, `accepted` and
        `rate_limited` (and `rate_limited:<limit>`: requests, input_tokens, output_tokens,
        tokens) for the calls admitted and refused."""
        with self._lock:
            return dict(self._stats)

    def _count(self, *keys: str) -> None:
        with self._lock:
            self._stats.update(keys)

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def requests_for(self, provider: str) -> list[RecordedRequest]:
        return [request for request in self.requests if request.provider == provider]

    # -- answering (called on handler threads) -----------------------------------------------

    def _count_bytes(self, length: int) -> None:
        with self._lock:
            self._stats["request_bytes"] += length

    def _record(self, request: RecordedRequest) -> None:
        if not self.record:
            return
        with self._lock:
            self._requests.append(request)

    def _next(self, provider: str | None) -> Scripted | None:
        with self._lock:
            for index, entry in enumerate(self._scripts):
                if entry.provider in (None, provider):
                    del self._scripts[index]
                    return entry
            if self.fault_rate and self._rng.random() < self.fault_rate:
                return self._fault()
        return None

    def _fault(self) -> Scripted:
        kind = self._rng.choice(self.fault_kinds)
        if kind == "rate_limit":
            return Scripted(429, headers={"retry-after": self.retry_after}, fault=kind)
        if kind == "overloaded":
            return Scripted(529, fault=kind)
        if kind == "server_error":
            return Scripted(500, fault=kind)
        return Scripted(delay_s=self.fault_delay_s, fault=kind)

    def _sleep(self, seconds: float) -> None:
        if seconds > 0:
            self._stopping.wait(seconds)

    def latency_s(self) -> float:
        """How long the next answer waits: constant, or a log-normal draw."""
        if self.latency_p95_ms is None:
            return self.latency_ms / 1000
        sigma = math.log(self.latency_p95_ms / self.latency_ms) / Z_95
        with self._lock:
            draw = self._latency_rng.lognormvariate(math.log(self.latency_ms), sigma)
        return draw / 1000

    def respond(self, provider: str | None, body: Any) -> tuple[int, dict[str, str], Any]:
        """Status, headers and JSON body for one request: refused at once beyond the rate
        limits, as the providers do, else answered after the latency."""
        limiter = self._limiters.get(provider or "")
        if limiter is None or not isinstance(body, dict):
            return self._answer(provider, body)
        admission = limiter.admit(
            cost_in=self._tokens_in(body, limiter.provider), max_out=_max_output_tokens(body)
        )
        self._note_call(admission)
        if not admission.accepted:
            headers, message = limiter.rejection(admission, model=str(body.get("model") or ""))
            if limiter.provider == ANTHROPIC:
                return 429, headers, anthropic_error("rate_limit_error", message)
            return 429, headers, openai_error(message, admission.limit, "rate_limit_exceeded")
        status, headers, payload = self._answer(provider, body)
        limiter.settle(admission, tokens_out=_output_tokens(payload))
        return status, limiter.headers() | headers, payload

    def _note_call(self, admission: Admission) -> None:
        with self._lock:
            self._calls["accepted" if admission.accepted else "rejected"].append(time.time())
            if admission.accepted:
                self._stats["accepted"] += 1
            else:
                self._stats.update(("rate_limited", f"rate_limited:{admission.limit}"))

    def _answer(self, provider: str | None, body: Any) -> tuple[int, dict[str, str], Any]:
        self._sleep(self.latency_s())
        entry = self._next(provider) or Scripted()
        tool = tool_of(body)
        self._count("requests", f"requests:{tool}")
        if entry.fault:
            self._count(f"fault:{entry.fault}")
        elif entry.status != 200 or entry.body is not None:
            self._count(f"scripted:{entry.status}")
        self._sleep(entry.delay_s)
        headers = dict(entry.headers)
        if provider is None:
            return 404, headers, openai_error("unknown path", "invalid_request_error")
        if entry.body is not None:
            return entry.status, headers, entry.body
        if entry.status != 200:
            return entry.status, headers, default_error_body(provider, entry.status)
        if not isinstance(body, dict):
            return 400, headers, default_error_body(provider, 400)
        malformed = (
            entry.malformed
            or self.malformed
            or (
                bool(self.malformed_widths)
                and image_width(image_b64_of(body)) in self.malformed_widths
            )
        )
        if entry.outcome:
            self._count(f"{entry.outcome}:{tool}")
        elif not entry.fault:
            self._count(f"{'malformed' if malformed else 'ok'}:{tool}")
        if provider == ANTHROPIC:
            return 200, headers, self._anthropic_message(body, malformed, entry.outcome)
        return 200, headers, self._chat_completion(body, malformed, entry.outcome)

    def _anthropic_message(
        self, request: dict[str, Any], malformed: bool, outcome: str = ""
    ) -> dict[str, Any]:
        tool = str((request.get("tool_choice") or {}).get("name") or "report_room")
        answer = _answer_for(tool, image_b64_of(request), malformed, schema_of(request))
        message = self._anthropic_tool_message(request, tool, answer)
        if outcome in ("refusal", "content_filter"):
            message["content"] = [{"type": "text", "text": REFUSAL_TEXT}]
            message["stop_reason"] = "refusal"
        elif outcome == "truncated":
            # The tool input as far as the budget went: what the API parses of cut-off JSON.
            message["content"][0]["input"] = {}
            message["stop_reason"] = "max_tokens"
        return message

    def _tokens_in(self, request: dict[str, Any], provider: str = ANTHROPIC) -> int:
        """The input tokens an answer reports (and the rate limits count): `tokens_in`, or with
        None an estimate from the request, as the providers count: the image by the provider's
        published rule (Anthropic: pixels ÷ 750 after its downscaling; OpenAI: 512 px tiles) and
        ~4 characters of text (prompt, schema) a token."""
        if self.tokens_in is not None:
            return self.tokens_in
        size = image_size(image_b64_of(request))
        image_tokens = 0
        if size and provider == OPENAI:
            image_tokens = openai_image_tokens(*size, detail=_image_detail(request))
        elif size:
            image_tokens = anthropic_image_tokens(*size)
        text = json.dumps({key: value for key, value in request.items() if key != "messages"})
        for message in request.get("messages") or []:
            for block in message.get("content") or []:
                if isinstance(block, dict) and block.get("type") == "text":
                    text += str(block.get("text") or "")
        return image_tokens + math.ceil(len(text) / 4)

    def _tokens_out(self, answer: Any) -> int:
        """`tokens_out`, or with None an estimate: ~4 characters of the answer's JSON a token."""
        if self.tokens_out is not None:
            return self.tokens_out
        return math.ceil(len(json.dumps(answer)) / 4)

    def _anthropic_tool_message(
        self, request: dict[str, Any], tool: str, answer: dict[str, Any]
    ) -> dict[str, Any]:
        return {
            "id": f"msg_{uuid.uuid4().hex[:24]}",
            "type": "message",
            "role": "assistant",
            "model": self.response_model or request.get("model", ""),
            "content": [
                {
                    "type": "tool_use",
                    "id": f"toolu_{uuid.uuid4().hex[:24]}",
                    "name": tool,
                    "input": answer,
                }
            ],
            "stop_reason": "tool_use",
            "stop_sequence": None,
            "usage": {
                "input_tokens": self._tokens_in(request),
                "output_tokens": self._tokens_out(answer),
                "cache_creation_input_tokens": self.cache_creation_tokens,
                "cache_read_input_tokens": self.cache_read_tokens,
            },
        }

    def _chat_completion(
        self, request: dict[str, Any], malformed: bool, outcome: str = ""
    ) -> dict[str, Any]:
        schema = ((request.get("response_format") or {}).get("json_schema") or {}).get("name")
        answer = _answer_for(
            str(schema or "room"), image_b64_of(request), False, schema_of(request)
        )
        completion = self._openai_completion(request, answer, malformed)
        choice = completion["choices"][0]
        if outcome == "refusal":
            choice["message"].update(content=None, refusal=REFUSAL_TEXT)
        elif outcome == "content_filter":
            choice["message"]["content"] = None
            choice["finish_reason"] = "content_filter"
        elif outcome == "truncated":
            choice["message"]["content"] = json.dumps(answer)[:20]
            choice["finish_reason"] = "length"
        return completion

    def _openai_completion(
        self, request: dict[str, Any], answer: dict[str, Any], malformed: bool
    ) -> dict[str, Any]:
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.response_model or request.get("model", ""),
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": "not json" if malformed else json.dumps(answer),
                        "refusal": None,
                    },
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": self._tokens_in(request, OPENAI) + self.cache_read_tokens,
                "completion_tokens": self._tokens_out(answer),
                "total_tokens": self._tokens_in(request, OPENAI)
                + self.cache_read_tokens
                + self._tokens_out(answer),
                "prompt_tokens_details": {"cached_tokens": self.cache_read_tokens},
            },
        }


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # the listen backlog: 2 × 64 worker threads connect at once
    fake: FakeAiServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up (timeout) leaves a broken pipe behind: not worth a traceback.
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the SDKs' connection pools expect
    # The headers and the body go out in two writes: with Nagle's algorithm the body waited for
    # the client's delayed ACK of the headers, 40 ms per answer at "latency 0".
    disable_nagle_algorithm = True
    server: _Server
    timeout = 30  # an idle keep-alive connection is dropped after this

    def setup(self) -> None:
        super().setup()
        fake = self.server.fake
        with fake._lock:
            fake._connections.add(self.connection)

    def finish(self) -> None:
        fake = self.server.fake
        with fake._lock:
            fake._connections.discard(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        return None

    def do_GET(self) -> None:
        if self.path == "/health":
            self._send(200, {}, {"status": "ok"})
        elif self.path == "/stats":
            self._send(200, {}, self.server.fake.stats())
        elif self.path == "/calls":
            self._send(200, {}, self.server.fake.calls())
        else:
            self._send(404, {}, openai_error("unknown path", "invalid_request_error"))

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        path = self.path.split("?", 1)[0]
        if path == "/latency":  # benchmarks switch a running server's latency model
            self._set_latency(body)
            return
        if path == "/reset":  # benchmarks start each run with zero counts and full buckets
            self.server.fake.reset()
            self._send(200, {}, {"reset": True})
            return
        provider = ANTHROPIC if path == ANTHROPIC_PATH else None
        if path.endswith("/chat/completions"):
            provider = OPENAI
        fake = self.server.fake
        if provider is not None:
            fake._count_bytes(length)
        fake._record(
            RecordedRequest(
                method="POST",
                path=path,
                headers={key.lower(): value for key, value in self.headers.items()},
                body=body,
                provider=provider,
                received_at=time.time(),
            )
        )
        status, headers, payload = fake.respond(provider, body)
        self._send(status, headers, payload)

    def _set_latency(self, body: Any) -> None:
        """`POST /latency {"latency_ms": 1000, "latency_p95_ms": null}`."""
        fake = self.server.fake
        try:
            latency_ms = int(body["latency_ms"])
            p95 = body.get("latency_p95_ms")
            latency_p95_ms = None if p95 is None else int(p95)
            lognormal = latency_p95_ms is not None
            if latency_ms < 0 or (lognormal and not 0 < latency_ms <= (latency_p95_ms or 0)):
                raise ValueError("a log-normal latency needs 0 < latency_ms <= latency_p95_ms")
        except (TypeError, KeyError, ValueError) as exc:
            self._send(400, {}, {"error": str(exc)})
            return
        with fake._lock:
            fake.latency_ms, fake.latency_p95_ms = latency_ms, latency_p95_ms
        self._send(200, {}, {"latency_ms": latency_ms, "latency_p95_ms": latency_p95_ms})

    def _send(self, status: int, headers: Mapping[str, str], payload: Any) -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        try:
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.send_header("request-id", f"req_{uuid.uuid4().hex[:24]}")
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
            self.wfile.flush()
        except OSError:
            self.close_connection = True  # the client went away (it timed out)
            self.server.fake._count("undelivered")


@contextlib.contextmanager
def running_fake_ai(**options: Any) -> Iterator[FakeAiServer]:
    """A started server on an ephemeral port, stopped on exit. Options: see `FakeAiServer`."""
    server = FakeAiServer(**options).start()
    try:
        yield server
    finally:
        server.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Fake Anthropic/OpenAI HTTP server.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: any free port (printed)")
    parser.add_argument("--latency-ms", type=int, default=0, help="constant, or the median")
    parser.add_argument(
        "--latency-p95-ms",
        type=int,
        default=None,
        help="log-normal latency with this P95 (and --latency-ms as its median)",
    )
    parser.add_argument("--fault-rate", type=float, default=0.0)
    parser.add_argument("--fault-delay-s", type=float, default=5.0)
    parser.add_argument("--malformed", action="store_true")
    parser.add_argument(
        "--estimate-usage",
        action="store_true",
        help="report tokens estimated from each request and answer (default: 1000 in, 500 out)",
    )
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument(
        "--fault-kinds",
        default=",".join(FAULT_KINDS),
        help=f"comma-separated random faults to draw from (default: {','.join(FAULT_KINDS)})",
    )
    parser.add_argument("--retry-after", default="1", help="retry-after of a random 429 (s)")
    parser.add_argument(
        "--malformed-width",
        type=int,
        action="append",
        default=[],
        help="answers about images this many pixels wide break the schema (repeatable)",
    )
    for name, what in (
        ("rpm", "requests"),
        ("itpm", "input tokens (Anthropic)"),
        ("otpm", "output tokens (Anthropic)"),
        ("tpm", "tokens, input + max output (OpenAI)"),
    ):
        parser.add_argument(
            f"--{name}", type=int, default=None, help=f"rate limit: {what} per window"
        )
    parser.add_argument(
        "--limit-window-s",
        type=float,
        default=60.0,
        help="the rate limits' window: their buckets refill in this long (default 60)",
    )
    args = parser.parse_args(argv)
    server = FakeAiServer(
        host=args.host,
        port=args.port,
        latency_ms=args.latency_ms,
        latency_p95_ms=args.latency_p95_ms,
        fault_rate=args.fault_rate,
        fault_delay_s=args.fault_delay_s,
        malformed=args.malformed,
        seed=args.seed,
        tokens_in=None if args.estimate_usage else 1000,
        tokens_out=None if args.estimate_usage else 500,
        fault_kinds=[kind for kind in args.fault_kinds.split(",") if kind],
        retry_after=args.retry_after,
        malformed_widths=args.malformed_width,
        record=False,  # only /stats and /calls can be read from outside
        rpm=args.rpm,
        itpm=args.itpm,
        otpm=args.otpm,
        tpm=args.tpm,
        limit_window_s=args.limit_window_s,
    )

    def _stop(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _stop)
    print(server.port, flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()


if __name__ == "__main__":
    main()

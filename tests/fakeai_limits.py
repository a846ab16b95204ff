"""Provider rate limits, as the fake AI server (tests/fakeai.py) enforces them.

What the real APIs do, from their published rate-limit docs:

- **Anthropic** limits requests (RPM), input tokens (ITPM) and output tokens (OTPM) per minute
  with token buckets that are continuously replenished (capacity: the per-minute limit, refilled
  at limit ÷ 60 s every second), not with fixed windows. Input tokens are the API's estimate of
  the request before it runs (an image ≈ width × height ÷ 750 after the API's own downscaling);
  output tokens are reserved at `max_tokens` when the request starts and the unused part given
  back when the answer is done. Beyond a limit: 429 `rate_limit_error` with `retry-after` (whole
  seconds); every answer carries `anthropic-ratelimit-{requests,input-tokens,output-tokens,
  tokens}-{limit,remaining,reset}` (reset: RFC 3339, when the bucket is full again; `tokens-*`:
  the most restrictive token limit right now).
- **OpenAI** limits requests (RPM) and tokens (TPM: the prompt's estimate plus the request's
  maximum output, `max_tokens` / `max_completion_tokens`, counted at admission; its rate-limit
  guide gives no refund of the unused part, hence its advice to keep `max_tokens` close to the
  expected answer), headers `x-ratelimit-{limit,remaining,reset}-{requests,tokens}` (reset: a
  duration, "1s", "6m0s", "120ms"); beyond: 429 `{"error": {"type": "requests" | "tokens",
  "code": "rate_limit_exceeded"}}` with `retry-after`.

A rejected request costs nothing. The window is an option (`window_s`, 60 s as the APIs), so that
tests can see a limit recover in a second. Standard library only, as the server.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

ANTHROPIC = "anthropic"
OPENAI = "openai"
#: Anthropic downscales an image whose long edge exceeds this, or that would cost more than
#: ANTHROPIC_MAX_IMAGE_TOKENS, before counting it (its vision docs).
ANTHROPIC_MAX_EDGE = 1568
ANTHROPIC_MAX_IMAGE_TOKENS = 1600
ANTHROPIC_PIXELS_PER_TOKEN = 750


def anthropic_image_tokens(width: int, height: int) -> int:
    """Tokens Anthropic counts for an image: pixels ÷ 750 once it has shrunk the image to a long
    edge of at most 1568 px and at most ~1,600 tokens (aspect ratio kept)."""
    if width <= 0 or height <= 0:
        return 0
    scale = min(
        1.0,
        ANTHROPIC_MAX_EDGE / max(width, height),
        math.sqrt(ANTHROPIC_MAX_IMAGE_TOKENS * ANTHROPIC_PIXELS_PER_TOKEN / (width * height)),
    )
    return math.ceil(int(width * scale) * int(height * scale) / ANTHROPIC_PIXELS_PER_TOKEN)


def openai_image_tokens(width: int, height: int, detail: str = "auto") -> int:
    """Tokens OpenAI counts for an image (its tile rule): `low` is a flat 85; otherwise the
    image is fitted into 2048 × 2048, its shortest side brought down to 768 px, and each 512 px
    tile costs 170 on top of the 85 base."""
    if width <= 0 or height <= 0:
        return 0
    if detail == "low":
        return 85
    fit = min(1.0, 2048 / max(width, height))
    fit *= min(1.0, 768 / (min(width, height) * fit))
    return 85 + 170 * math.ceil(width * fit / 512) * math.ceil(height * fit / 512)


@dataclass(frozen=True)
class RateLimits:
    """Per-minute limits of one provider (None: unlimited). Anthropic: `rpm`, `itpm`, `otpm`;
    OpenAI: `rpm` and `tpm` (its one token budget). `window_s`: what "a minute" is."""

    rpm: int | None = None
    itpm: int | None = None
    otpm: int | None = None
    tpm: int | None = None
    window_s: float = 60.0

    def __post_init__(self) -> None:
        if self.window_s <= 0:
            raise ValueError("the rate-limit window must be positive")
        for name in ("rpm", "itpm", "otpm", "tpm"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be positive (or None: unlimited)")

    @property
    def any(self) -> bool:
        return any(value is not None for value in (self.rpm, self.itpm, self.otpm, self.tpm))


class Bucket:
    """A token bucket: holds up to `capacity`, refilled at capacity ÷ window per second."""

    def __init__(self, capacity: int, window_s: float, now: float) -> None:
        self.capacity = capacity
        self.rate = capacity / window_s
        self.level = float(capacity)
        self.updated = now

    def refill(self, now: float) -> None:
        self.level = min(self.capacity, self.level + (now - self.updated) * self.rate)
        self.updated = now

    def wait_s(self, cost: int) -> float:
        """Seconds until the bucket holds `cost` (a request larger than the bucket waits for a
        full one, as it could never pass otherwise)."""
        missing = min(cost, self.capacity) - self.level
        return max(missing / self.rate, 0.0)

    def full_in_s(self) -> float:
        return (self.capacity - self.level) / self.rate


#: The header names and the wording of each limit, per provider.
_ANTHROPIC_HEADERS = {
    "requests": "requests",
    "input_tokens": "input-tokens",
    "output_tokens": "output-tokens",
}
_ANTHROPIC_WORDS = {
    "requests": "requests",
    "input_tokens": "input tokens",
    "output_tokens": "output tokens",
}
_OPENAI_WORDS = {"requests": "requests per min (RPM)", "tokens": "tokens per min (TPM)"}


@dataclass(frozen=True)
class Admission:
    """The limiter's verdict on one request: admitted, or the limit it hit and when to retry."""

    accepted: bool
    cost_in: int = 0
    reserved_out: int = 0
    limit: str = ""  # the bucket that said no: requests, input_tokens, output_tokens, tokens
    retry_after_s: float = 0.0


class ProviderLimiter:
    """The buckets of one provider; thread-safe (the server answers on many threads)."""

    def __init__(
        self,
        provider: str,
        limits: RateLimits,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.provider = provider
        self.limits = limits
        self._clock = clock
        self._wall = wall
        self._lock = threading.Lock()
        self.buckets: dict[str, Bucket] = {}
        self.reset()

    def reset(self) -> None:
        """Every bucket full again."""
        now = self._clock()
        names: dict[str, int | None] = {"requests": self.limits.rpm}
        if self.provider == ANTHROPIC:
            names |= {"input_tokens": self.limits.itpm, "output_tokens": self.limits.otpm}
        else:
            names["tokens"] = self.limits.tpm
        with self._lock:
            self.buckets = {
                name: Bucket(capacity, self.limits.window_s, now)
                for name, capacity in names.items()
                if capacity is not None
            }

    def _costs(self, cost_in: int, max_out: int) -> dict[str, int]:
        if self.provider == ANTHROPIC:
            return {"requests": 1, "input_tokens": cost_in, "output_tokens": max_out}
        return {"requests": 1, "tokens": cost_in + max_out}

    def admit(self, *, cost_in: int, max_out: int) -> Admission:
        """Take what the request costs from every bucket, or nothing if one cannot pay."""
        costs = self._costs(cost_in, max_out)
        with self._lock:
            now = self._clock()
            waits = {}
            for name, bucket in self.buckets.items():
                bucket.refill(now)
                waits[name] = bucket.wait_s(costs[name])
            blocked = max(waits, key=lambda name: waits[name], default="")
            if blocked and waits[blocked] > 0:
                return Admission(False, cost_in, 0, blocked, waits[blocked])
            for name, bucket in self.buckets.items():
                bucket.level -= min(costs[name], bucket.capacity)
        return Admission(True, cost_in, max_out)

    def settle(self, admission: Admission, *, tokens_out: int) -> None:
        """The answer is done: Anthropic gives back the output reserved and not used (OTPM);
        OpenAI keeps the maximum counted (TPM)."""
        if not admission.accepted or self.provider != ANTHROPIC:
            return
        unused = max(admission.reserved_out - tokens_out, 0)
        with self._lock:
            bucket = self.buckets.get("output_tokens")
            if bucket is not None:
                bucket.refill(self._clock())
                bucket.level = min(bucket.capacity, bucket.level + unused)

    def headers(self) -> dict[str, str]:
        """The rate-limit headers of an answer, as this provider sends them."""
        with self._lock:
            now = self._clock()
            state = {}
            for name, bucket in self.buckets.items():
                bucket.refill(now)
                state[name] = (bucket.capacity, math.floor(bucket.level), bucket.full_in_s())
        if self.provider == ANTHROPIC:
            return self._anthropic_headers(state)
        return self._openai_headers(state)

    def _anthropic_headers(self, state: dict[str, tuple[int, int, float]]) -> dict[str, str]:
        headers = {}
        wall = self._wall()
        for name, (limit, remaining, full_in) in state.items():
            prefix = f"anthropic-ratelimit-{_ANTHROPIC_HEADERS[name]}"
            headers[f"{prefix}-limit"] = str(limit)
            headers[f"{prefix}-remaining"] = str(remaining)
            headers[f"{prefix}-reset"] = rfc3339(wall + full_in)
        tokens = [state[name] for name in ("input_tokens", "output_tokens") if name in state]
        if tokens:  # the most restrictive token limit in effect
            limit, remaining, full_in = min(tokens, key=lambda entry: entry[1] / entry[0])
            headers["anthropic-ratelimit-tokens-limit"] = str(limit)
            headers["anthropic-ratelimit-tokens-remaining"] = str(remaining)
            headers["anthropic-ratelimit-tokens-reset"] = rfc3339(wall + full_in)
        return headers

    @staticmethod
    def _openai_headers(state: dict[str, tuple[int, int, float]]) -> dict[str, str]:
        headers = {}
        for name, (limit, remaining, full_in) in state.items():
            headers[f"x-ratelimit-limit-{name}"] = str(limit)
            headers[f"x-ratelimit-remaining-{name}"] = str(remaining)
            headers[f"x-ratelimit-reset-{name}"] = go_duration(full_in)
        return headers

    def rejection(self, admission: Admission, *, model: str) -> tuple[dict[str, str], str]:
        """Headers and error message of the 429 for a refused request (tests/fakeai.py wraps
        the message in the provider's error body: `rate_limit_error`; OpenAI's type is the
        limit, `requests` or `tokens`, its code `rate_limit_exceeded`)."""
        limit = self.buckets[admission.limit].capacity
        retry_after = max(1, math.ceil(admission.retry_after_s))
        headers = self.headers() | {"retry-after": str(retry_after)}
        if self.provider == ANTHROPIC:
            return headers, (
                f"This request would exceed the rate limit for your organization (fake-org) of "
                f"{limit:,} {_ANTHROPIC_WORDS[admission.limit]} per minute. For details, refer "
                "to: https://docs.claude.com/en/api/rate-limits. You can see the response "
                "headers for current usage. Please reduce the prompt length or the maximum "
                "tokens requested, or try again later."
            )
        requested = 1 if admission.limit == "requests" else admission.cost_in
        return headers, (
            f"Rate limit reached for {model} in organization org-fake on "
            f"{_OPENAI_WORDS[admission.limit]}: Limit {limit}, Requested {requested}. Please try "
            f"again in {go_duration(admission.retry_after_s)}. Visit "
            "https://platform.openai.com/account/rate-limits to learn more."
        )


def rfc3339(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def go_duration(seconds: float) -> str:
    """A duration as OpenAI writes its resets (Go's format): "120ms", "1.5s", "6m0s"."""
    if seconds < 1:
        return f"{max(round(seconds * 1000), 0)}ms"
    if seconds < 60:
        return f"{round(seconds, 3):g}s"
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes)}m{round(rest, 3):g}s"

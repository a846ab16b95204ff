"""Per-user request rates for the endpoints that cost money or disk (upload, enqueue).

The counts live on the Redis server of Django's cache (settings.CACHES, which must be a Redis
cache), under its key prefix, so every web process shares them: one fixed window per user and
scope, one round trip per request (SET … NX EX and INCR in a pipeline). A fixed window lets a
client send up to twice the rate across a window boundary; that is the price of one round trip
and no race, and it is plenty for "stop one client from flooding us".

When the cache is unreachable the throttle lets requests through (fails open): a Redis outage must
not become an API outage (the enqueue API answers 202 while Redis is down; the outbox re-sends
later). The failure is logged once, and for THROTTLE_FAILOPEN_S seconds the cache is not asked at
all, so requests do not each wait for a dead server's timeout.
"""

from __future__ import annotations

import functools
import logging
import math
import re
import threading
import time
from typing import Any

import redis
from django.conf import settings
from django.core.cache import caches
from django.core.exceptions import ImproperlyConfigured
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle

logger = logging.getLogger(__name__)

_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*(s|sec|second|m|min|minute|h|hour|d|day)s?\s*$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_rate(rate: str | None) -> tuple[int, int] | None:
    """`"120/min"` → (120, 60); `"10/5m"` → (10, 300). Empty or `"off"`: None (no limit)."""
    if rate is None or rate.strip().lower() in ("", "off", "none"):
        return None
    match = _RATE.match(rate.lower())
    if not match:
        raise ImproperlyConfigured(
            f"throttle rate {rate!r} is not like '120/min' (units: s, min, h, day)"
        )
    count, multiplier, unit = match.groups()
    return int(count), int(multiplier or 1) * _SECONDS[unit[0]]


class _CacheHealth:
    """Remembers that the cache failed, so the next requests skip it for a while."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._down_until = 0.0
        self._logged = False

    def available(self) -> bool:
        return time.monotonic() >= self._down_until

    def failed(self, exc: BaseException) -> None:
        with self._lock:
            self._down_until = time.monotonic() + settings.THROTTLE_FAILOPEN_S
            first = not self._logged
            self._logged = True
        if first:
            logger.warning(
                "throttling is off: the cache is unreachable (%s: %s); requests are let through",
                type(exc).__name__,
                exc,
            )

    def succeeded(self) -> None:
        if self._logged:
            with self._lock:
                recovered, self._logged = self._logged, False
            if recovered:
                logger.info("throttling is back on: the cache answers again")


cache_health = _CacheHealth()


def throttle_wait_s(*, scope: str, rate_setting: str, ident: str) -> float | None:
    """Count one request of `ident` in `scope`: None if it is within the rate of the setting
    `rate_setting`, else the seconds until the window ends. Fails open (None) when the cache is
    unreachable."""
    limit = parse_rate(getattr(settings, rate_setting))
    if limit is None or not cache_health.available():
        return None
    count_max, window_s = limit
    now = time.time()
    window = int(now // window_s)
    try:
        count = _incr(f"throttle:{scope}:{ident}:{window_s}:{window}", window_s)
    except Exception as exc:
        # Not only RedisError and OSError: redis-py was seen raising ValueError and AttributeError
        # from a new connection's handshake under load (the fault suite, as 500s of uploads;
        # infra/broker.py). Whatever the client raises, a counter must not fail the request.
        cache_health.failed(exc)
        return None
    cache_health.succeeded()
    if count <= count_max:
        return None
    return (window + 1) * window_s - now


def retry_after(wait_s: float) -> int:
    """`Retry-After` in whole seconds, rounded up, at least one."""
    return max(math.ceil(wait_s), 1)


class ScopedUserRateThrottle(BaseThrottle):
    """At most `rate` requests per window for one user, counted across every process.

    Subclasses name the `scope` and the `rate_setting`; only the `methods` listed are counted.
    """

    scope = ""
    rate_setting = ""
    methods = frozenset({"POST"})

    def __init__(self) -> None:
        self.wait_s: float | None = None

    def allow_request(self, request: Request, view: Any) -> bool:
        if request.method not in self.methods or not request.user.is_authenticated:
            return True
        ident = f"user:{request.user.pk}"
        self.wait_s = throttle_wait_s(scope=self.scope, rate_setting=self.rate_setting, ident=ident)
        return self.wait_s is None

    def wait(self) -> float | None:
        # DRF puts this in `Retry-After` (whole seconds, rounded up).
        return None if self.wait_s is None else retry_after(self.wait_s)


def _incr(key: str, window_s: int) -> int:
    """Add one to the window's counter and return it, in one round trip: SET … NX EX creates
    the counter at 0 with the window's lifetime (a little longer, so a counter never expires
    while its window is open) and leaves a running one alone; INCR counts. Not EXPIRE … NX,
    which Redis 6.2 refuses (it was, silently: throttling was off on the wheel's server)."""
    cache = caches[settings.THROTTLE_CACHE]
    pipeline = _redis_for(settings.THROTTLE_CACHE).pipeline(transaction=False)
    full_key = cache.make_key(key)
    pipeline.set(full_key, 0, ex=window_s + 5, nx=True)
    pipeline.incr(full_key)
    _, count = pipeline.execute()
    return int(count)


def _redis_for(alias: str) -> redis.Redis:
    """A Redis client on the server of the cache `alias` (its first LOCATION, its socket
    options), kept per process. Django's RedisCache builds a new client object per call (its
    response-callback table included) and does EXISTS before INCR; the counter needs neither.
    Keyed by the configuration, so a settings change gets a new client."""
    config: dict[str, Any] = settings.CACHES[alias]
    location = config["LOCATION"]
    if not isinstance(location, str):
        location = location[0]
    options = tuple(
        sorted(
            (name, value)
            for name, value in (config.get("OPTIONS") or {}).items()
            if name not in _DJANGO_ONLY_OPTIONS
        )
    )
    return _redis_client(location.split(",")[0], options)


# OPTIONS of Django's RedisCache that are not redis-py connection arguments.
_DJANGO_ONLY_OPTIONS = frozenset({"pool_class", "parser_class", "serializer"})


@functools.cache
def _redis_client(url: str, options: tuple[tuple[str, Any], ...]) -> redis.Redis:
    return redis.Redis.from_url(url, **dict(options))


class UploadRateThrottle(ScopedUserRateThrottle):
    """POST /api/photos: THROTTLE_UPLOAD_RATE per user."""

    scope = "upload"
    rate_setting = "THROTTLE_UPLOAD_RATE"


class EnqueueRateThrottle(ScopedUserRateThrottle):
    """POST /api/photos/enqueue: THROTTLE_ENQUEUE_RATE per user."""

    scope = "enqueue"
    rate_setting = "THROTTLE_ENQUEUE_RATE"

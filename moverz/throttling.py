"""Per-user request rates for the endpoints that cost money or disk (upload, enqueue).

The counts live in Django's cache, which is Redis (settings.CACHES), so every web process shares
them: one fixed window per user and scope, one atomic INCR per request. A fixed window lets a
client send up to twice the rate across a window boundary; that is the price of one round trip
and no race, and it is plenty for "stop one client from flooding us".

When the cache is unreachable the throttle lets requests through (fails open): a Redis outage must
not become an API outage (the enqueue API answers 202 while Redis is down; the outbox re-sends
later). The failure is logged once, and for THROTTLE_FAILOPEN_S seconds the cache is not asked at
all, so requests do not each wait for a dead server's timeout.
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from typing import Any

from django.conf import settings
from django.core.cache import caches
from django.core.exceptions import ImproperlyConfigured
from redis.exceptions import RedisError
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
        limit = parse_rate(getattr(settings, self.rate_setting))
        if limit is None or not cache_health.available():
            return True
        count_max, window_s = limit
        now = time.time()
        window = int(now // window_s)
        key = f"throttle:{self.scope}:{request.user.pk}:{window_s}:{window}"
        try:
            count = _incr(key, window_s)
        except (RedisError, OSError) as exc:
            cache_health.failed(exc)
            return True
        cache_health.succeeded()
        if count <= count_max:
            return True
        self.wait_s = (window + 1) * window_s - now
        return False

    def wait(self) -> float | None:
        # DRF puts this in `Retry-After` (whole seconds, rounded up).
        return None if self.wait_s is None else max(math.ceil(self.wait_s), 1)


def _incr(key: str, window_s: int) -> int:
    """Add one to the window's counter (created with the window's lifetime) and return it."""
    cache = caches[settings.THROTTLE_CACHE]
    try:
        # The usual case, the window's counter exists: two round trips (EXISTS, INCR) where
        # creating it first every time made three.
        return int(cache.incr(key))
    except ValueError:  # the window's first request
        # A little longer than the window, so a counter never expires while its window is open.
        if cache.add(key, 1, timeout=window_s + 5):
            return 1
        return int(cache.incr(key))  # another request created it in the meantime


class UploadRateThrottle(ScopedUserRateThrottle):
    """POST /api/photos: THROTTLE_UPLOAD_RATE per user."""

    scope = "upload"
    rate_setting = "THROTTLE_UPLOAD_RATE"


class EnqueueRateThrottle(ScopedUserRateThrottle):
    """POST /api/photos/enqueue: THROTTLE_ENQUEUE_RATE per user."""

    scope = "enqueue"
    rate_setting = "THROTTLE_ENQUEUE_RATE"

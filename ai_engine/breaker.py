"""A circuit breaker shared by all workers: its state lives in Redis.

After `threshold` outages (PROVIDER_DOWN, TIMEOUT, NETWORK) of one provider within `window_s`, the
provider is skipped for `cooldown_s`. When the cool-down ends, the next call tries it again
(half-open): a success clears the count, another outage opens it again.
"""

from __future__ import annotations

from typing import Any


class CircuitBreaker:
    def __init__(
        self,
        client: Any,
        *,
        prefix: str,
        threshold: int = 5,
        window_s: int = 60,
        cooldown_s: int = 30,
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.threshold = threshold
        self.window_s = window_s
        self.cooldown_s = cooldown_s

    def _keys(self, provider: str) -> tuple[str, str]:
        return f"{self.prefix}:{provider}:failures", f"{self.prefix}:{provider}:open"

    def is_open(self, provider: str) -> bool:
        return bool(self.client.exists(self._keys(provider)[1]))

    def record_failure(self, provider: str) -> bool:
        """Count an outage; True when this one opened the circuit."""
        failures_key, open_key = self._keys(provider)
        pipe = self.client.pipeline()
        # The window starts at the first outage. SET … NX EX rather than EXPIRE … NX, which
        # Redis 6.2 (the wheel's server: `make run`, the fault suite) refuses.
        pipe.set(failures_key, 0, ex=self.window_s, nx=True)
        pipe.incr(failures_key)
        _, failures = pipe.execute()
        if int(failures) >= self.threshold:
            opened = self.client.set(open_key, "1", ex=self.cooldown_s, nx=True)
            self.client.delete(failures_key)
            return bool(opened)
        return False

    def record_success(self, provider: str) -> None:
        self.client.delete(self._keys(provider)[0])

"""Provider quotas shared by every worker process on every host, and fair shares between tenants.

`AI_QUOTAS` gives, per provider (`"anthropic"`) or per model (`"anthropic:claude-sonnet-4-6"`),
requests per minute (`rpm`), input and output tokens per minute (`itpm`, `otpm`) and concurrent
calls (`concurrency`). Before a photo's provider call a worker asks `QuotaLimiter.acquire` for a
slot; the answer is a `Slot` (call now, then `release` it with what the call really used) or a
`Wait` (how long until a slot should be free: the caller re-sends its message with that delay,
it never sleeps a thread).

Why one Lua script of our own rather than `dramatiq.rate_limits`:
  - Dramatiq's limiters answer yes or no, never "when": a denied photo could only be retried
    blindly, and hundreds of waiting messages would spin against Redis.
  - Token budgets have a variable cost per call, known exactly only after it (usage), which their
    `incr(1)` counters cannot express; the request, token and concurrency checks must also be
    taken together (atomically), or a call that gets its request slot and not its token budget
    holds the first for nothing.
  - `ConcurrentRateLimiter` is one counter whose TTL every acquire refreshes: a slot held by a
    worker killed mid-call is never given back while traffic continues. Here each holder is a
    member of a sorted set scored by its own expiry (`ttl_ms` ≥ the call's timeout), dropped when
    it passes.

The budgets are token buckets refilled continuously (how Anthropic and OpenAI describe theirs),
holding `burst_s` seconds of the requests and input-token limits: a quiet minute does not let the
next second fire the whole minute's budget. Output tokens are charged as the providers charge
them, `max_tokens` at admission, and corrected to the real usage when the answer ends (a call
reserves ~5,000 and uses ~100); their bucket holds the full minute, as the provider's does, or a
couple of calls in flight would fill a `burst_s` bucket with reservations that mostly come back.
A call is admitted when each bucket holds its estimated cost (or, for a call larger than the
bucket, when the bucket is full); after the call `release` corrects the buckets by the real usage,
which may leave them in debt, delaying the next calls.

Priority is strict, with a floor for normal work. Each caller is `high` or normal. A high call
is admitted whenever the quotas allow it. A normal call is not admitted while a high-priority
call is deferred (`prio:high`: until that call's booking, plus `recheck_ms` for its message to
arrive), so the slot it waits for is kept for it, unless normal work has had no grant for
`1 / (normal_share × rate)` (the floor: at least `normal_share` of the slots go to normal work
while high work keeps the provider busy; 0 starves it); high calls then leave it the next slot
(reason `floor`). And a normal call leaves `reserve_s`
seconds of each budget in its bucket, so the first high-priority calls of a burst find their
slots at once rather than after the normal backlog's next grants. Only budgets are reserved,
not concurrency: a reserve of concurrent calls would slow normal work when no high work exists.

Fair share (start-time fair queuing) within each class: each tenant (a project) with work waiting
has a virtual time that each of its grants advances by 1. A tenant more than `slack` ahead of
the least served other active tenant of its class is told to wait even if a slot is free, so
slots go round-robin between active tenants. A tenant is active while it asked within
`active_ms`, or has a deferred message due (its booking), until the caller says it has nothing
left waiting (`tenant_idle`); a new or returning tenant starts at the current least virtual time,
so idle time earns no credit.
Tokens left unused meanwhile stay in the buckets (up to `burst_s`), so the next grants use them.

Denied callers are booked one after the other per tenant (spaced by the tenant's share of the
request rate within its class), so a backlog of hundreds comes back at the pace slots free up,
not all at once. A caller denied again when its booking comes (`booked`: another tenant took the
turn) comes back one spacing later, ahead of its tenant's later bookings, so the shares stay
work-conserving: when the other tenant is gone, these are the first to use its slots.

A 429 that still arrives (the provider's view differs from ours) sets a back-off for the
provider's model until its `retry-after`: every worker's next acquire waits for it.

Keys (`<prefix>:...`, prefix `<DRAMATIQ_NAMESPACE>:moverz:quota`): `q:<quota>:holders` (sorted
set holder → expiry ms), `q:<quota>:bucket` (hash: levels r, i, o and time t), `backoff:<name>`
(ms), `denied:<quota>` (hash reason → count), `fair:active` (sorted set tenant → last ask or
next booking, ms), `fair:vt`, `fair:c` (hashes tenant → virtual time, class `h` or `n`),
`tenant:<t>:holders`, `tenant:<t>:next`, `prio:high` (ms until which a high call is deferred),
`prio:normal` (ms of the last normal grant), `prio:nwait` (a normal call held back by priority
comes back at this ms).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

DIMENSIONS = ("rpm", "itpm", "otpm", "concurrency")


@dataclass(frozen=True)
class Quota:
    """One entry of AI_QUOTAS; 0 means no limit on that dimension."""

    name: str
    rpm: int = 0
    itpm: int = 0
    otpm: int = 0
    concurrency: int = 0


def quotas_parse(raw: Any) -> dict[str, Quota]:
    """AI_QUOTAS (a JSON object) as quotas; ValueError saying what is wrong."""
    if not isinstance(raw, Mapping):
        raise ValueError("AI_QUOTAS must be a JSON object: {provider or provider:model: limits}")
    quotas = {}
    for name, limits in raw.items():
        if not isinstance(limits, Mapping):
            raise ValueError(f"AI_QUOTAS[{name!r}] must be an object of limits")
        unknown = set(limits) - set(DIMENSIONS)
        if unknown:
            raise ValueError(
                f"AI_QUOTAS[{name!r}]: unknown limit(s) {sorted(unknown)} (known: {DIMENSIONS})"
            )
        values = {}
        for key, value in limits.items():
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"AI_QUOTAS[{name!r}][{key!r}] must be a whole number ≥ 0")
            values[key] = value
        quotas[str(name)] = Quota(name=str(name), **values)
    return quotas


@dataclass(frozen=True)
class Cost:
    """What a call costs the quotas: requests and tokens (estimated before, real after)."""

    requests: int = 1
    tokens_in: int = 0
    tokens_out: int = 0


@dataclass(frozen=True)
class Slot:
    """Granted: call now, then `QuotaLimiter.release` it (also when no call was made)."""

    holder: str
    provider: str
    quotas: tuple[Quota, ...]
    tenant: str
    cost: Cost
    high: bool = False


@dataclass(frozen=True)
class Wait:
    """Denied: try again in `delay_ms`; `reason` is what was short (backoff, concurrency,
    tenant, fair, priority, rpm, itpm, otpm)."""

    delay_ms: int
    reason: str


# KEYS: 1 fair:active, 2 fair:vt, 3 fair:c, 4 tenant holders, 5 tenant next, 6 backoff provider,
#       7 backoff model, 8 prio:high, 9 prio:normal, 10 prio:nwait, then per quota: holders,
#       bucket, denied.
# ARGV: 1 holder, 2 tenant, 3 class (h: high, n: normal), 4 cost requests, 5 cost in, 6 cost out,
#       7 ttl ms, 8 tenant cap, 9 active ms, 10 recheck ms, 11 slack, 12 burst s, 13 booked (1:
#       this message comes at a booking made for it), 14 reserve s, 15 normal share, then per
#       quota: rpm, itpm, otpm, concurrency.
ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local holder, tenant, class = ARGV[1], ARGV[2], ARGV[3]
local high = class == 'h'
local cost = {tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])}
local ttl, cap, active_ms = tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])
local recheck, slack, burst_s = tonumber(ARGV[10]), tonumber(ARGV[11]), tonumber(ARGV[12])
local booked_arrival = ARGV[13] == '1'
local reserve_s, normal_share = tonumber(ARGV[14]), tonumber(ARGV[15])
local nq = (#KEYS - 10) / 3
local wait, reason = 0, ''
local function want(ms, why)
  if ms > wait then wait, reason = ms, why end
end

for k = 6, 7 do
  local till = tonumber(redis.call('GET', KEYS[k]) or '0')
  if till > now then want(till - now, 'backoff') end
end

redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now)
if cap > 0 and redis.call('ZCARD', KEYS[4]) >= cap then want(recheck, 'tenant') end

-- Fair share within the class: who is active, and how far ahead of the least served other
-- tenant of the class are we?
local gone = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - active_ms)
if #gone > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - active_ms)
  redis.call('HDEL', KEYS[2], unpack(gone))
  redis.call('HDEL', KEYS[3], unpack(gone))
end
redis.call('ZADD', KEYS[1], 'GT', now, tenant)
redis.call('HSET', KEYS[3], tenant, class)
local active = redis.call('ZRANGE', KEYS[1], 0, -1)
local vts = redis.call('HMGET', KEYS[2], unpack(active))
local classes = redis.call('HMGET', KEYS[3], unpack(active))
local others, peers = nil, 0
for i, name in ipairs(active) do
  if (classes[i] or 'n') == class then
    peers = peers + 1
    if name ~= tenant and vts[i] then
      local v = tonumber(vts[i])
      if others == nil or v < others then others = v end
    end
  end
end
local mine = tonumber(redis.call('HGET', KEYS[2], tenant) or (others or 0))
if others ~= nil and mine < others - slack then mine = others - slack end
local ahead = others ~= nil and mine - others >= slack

-- The rate of one grant (ms), from the tightest request or concurrency limit.
local min_rpm, min_conc = 0, 0
for q = 0, nq - 1 do
  local rpm, conc = tonumber(ARGV[16 + 4 * q]), tonumber(ARGV[19 + 4 * q])
  if rpm > 0 and (min_rpm == 0 or rpm < min_rpm) then min_rpm = rpm end
  if conc > 0 and (min_conc == 0 or conc < min_conc) then min_conc = conc end
end
local base = recheck
if min_rpm > 0 then base = 60000 / min_rpm
elseif min_conc > 0 then base = recheck / min_conc end

-- Strict priority: a normal call waits while a high one is deferred, unless its floor is due:
-- then it is served as a high one would be, and high calls leave it the next slot while a
-- normal call is on its way back for it (prio:nwait).
local high_until = tonumber(redis.call('GET', KEYS[8]) or '0')
local floor_at = nil
if normal_share > 0 then
  floor_at = tonumber(redis.call('GET', KEYS[9]) or '0') + math.ceil(base / normal_share)
end
local floor_due = floor_at ~= nil and floor_at <= now
local privileged, normal_held = high, false
if high then
  if floor_due and redis.call('EXISTS', KEYS[10]) == 1 then want(math.ceil(base), 'floor') end
elseif high_until > now then
  normal_held = true
  if floor_due then
    privileged = true
  else
    local until_ms = high_until
    if floor_at ~= nil and floor_at < until_ms then until_ms = floor_at end
    want(until_ms - now, 'priority')
  end
end

-- Budgets and concurrency of every quota that applies. A normal call leaves `reserve_s` of
-- each budget for high-priority calls.
local names = {'rpm', 'itpm', 'otpm'}
local fields = {'r', 'i', 'o'}
local levels = {}
for q = 0, nq - 1 do
  local holders, bucket = KEYS[11 + 3 * q], KEYS[12 + 3 * q]
  local limits = {}
  for d = 1, 4 do limits[d] = tonumber(ARGV[15 + 4 * q + d]) end
  if limits[4] > 0 then
    redis.call('ZREMRANGEBYSCORE', holders, '-inf', now)
    if redis.call('ZCARD', holders) >= limits[4] then want(recheck, 'concurrency') end
  end
  local stored = redis.call('HMGET', bucket, 'r', 'i', 'o', 't')
  local last = tonumber(stored[4] or now)
  local lv = {}
  for d = 1, 3 do
    local limit = limits[d]
    if limit > 0 then
      local window = burst_s
      if d == 3 then window = 60 end
      local capacity = math.max(limit * window / 60, 1)
      local level = tonumber(stored[d] or capacity) + (now - last) * limit / 60000
      if level > capacity then level = capacity end
      lv[d] = level
      local need = cost[d]
      if not privileged then need = need + limit * reserve_s / 60 end
      need = math.min(need, capacity)
      if level < need then want(math.ceil((need - level) * 60000 / limit), names[d]) end
    end
  end
  levels[q] = lv
end

-- The tenant's share of the rate within its class.
local spacing = math.ceil(base * math.max(peers, 1))
if ahead then want(spacing, 'fair') end

local function save_buckets(spend)
  for q = 0, nq - 1 do
    local bucket = KEYS[12 + 3 * q]
    local args = {'t', now}
    for d = 1, 3 do
      if levels[q][d] ~= nil then
        local level = levels[q][d]
        if spend then level = level - cost[d] end
        table.insert(args, fields[d])
        table.insert(args, tostring(level))
      end
    end
    redis.call('HSET', bucket, unpack(args))
    redis.call('PEXPIRE', bucket, 120000 + 60000)
  end
end

if wait > 0 then
  save_buckets(false)
  for q = 0, nq - 1 do redis.call('HINCRBY', KEYS[13 + 3 * q], reason, 1) end
  -- A first deferral is booked after the tenant's previous booking, spaced by its share of the
  -- rate, so a backlog comes back at the pace slots free. One that already waited its turn
  -- keeps its place in the line: it comes back as soon as it may.
  local booked = tonumber(redis.call('GET', KEYS[5]) or '0')
  local wake
  if booked_arrival then
    wake = now + math.max(wait, spacing)
  else
    wake = math.max(now + wait, booked + spacing)
  end
  if wake > booked then redis.call('SET', KEYS[5], wake, 'PX', wake - now + active_ms) end
  redis.call('ZADD', KEYS[1], 'GT', wake, tenant)
  redis.call('HSET', KEYS[2], tenant, tostring(mine))
  if high then
    -- Normal calls keep off the slots this one will come back for (its message may arrive a
    -- little after its booking).
    local hold = wake + recheck
    if hold > tonumber(redis.call('GET', KEYS[8]) or '0') then
      redis.call('SET', KEYS[8], hold, 'PX', hold - now)
    end
  elseif normal_held then
    redis.call('SET', KEYS[10], wake, 'PX', wake - now + recheck)
  end
  return {0, wake - now, reason}
end

save_buckets(true)
for q = 0, nq - 1 do
  if tonumber(ARGV[15 + 4 * q + 4]) > 0 then
    redis.call('ZADD', KEYS[11 + 3 * q], now + ttl, holder)
    redis.call('PEXPIRE', KEYS[11 + 3 * q], ttl)
  end
end
if cap > 0 then
  redis.call('ZADD', KEYS[4], now + ttl, holder)
  redis.call('PEXPIRE', KEYS[4], ttl)
end
if not high then redis.call('SET', KEYS[9], now, 'PX', 600000) end
redis.call('HSET', KEYS[2], tenant, tostring(mine + 1))
return {1, 0, ''}
"""

# KEYS: 1 tenant holders, then per quota: holders, bucket.
# ARGV: 1 holder, 2 burst s, 3-5 deltas (requests, in, out), then per quota: rpm, itpm, otpm.
RELEASE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local holder, burst_s = ARGV[1], tonumber(ARGV[2])
local delta = {tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])}
local fields = {'r', 'i', 'o'}
redis.call('ZREM', KEYS[1], holder)
local nq = (#KEYS - 1) / 2
for q = 0, nq - 1 do
  local holders, bucket = KEYS[2 + 2 * q], KEYS[3 + 2 * q]
  redis.call('ZREM', holders, holder)
  local stored = redis.call('HMGET', bucket, 'r', 'i', 'o', 't')
  local last = tonumber(stored[4] or now)
  local args = {'t', now}
  for d = 1, 3 do
    local limit = tonumber(ARGV[5 + 3 * q + d])
    if limit > 0 and stored[d] then
      local window = burst_s
      if d == 3 then window = 60 end
      local capacity = math.max(limit * window / 60, 1)
      local level = tonumber(stored[d]) + (now - last) * limit / 60000 - delta[d]
      if level > capacity then level = capacity end
      table.insert(args, fields[d])
      table.insert(args, tostring(level))
    end
  end
  if #args > 2 then redis.call('HSET', bucket, unpack(args)) end
end
return 1
"""

# KEYS: 1 backoff key. ARGV: 1 ms. Only ever pushes the back-off later.
BACK_OFF = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local till = now + tonumber(ARGV[1])
if till > tonumber(redis.call('GET', KEYS[1]) or '0') then
  redis.call('SET', KEYS[1], till, 'PX', tonumber(ARGV[1]))
end
return till
"""


@dataclass(frozen=True)
class QuotaUse:
    """One quota's state, for /metrics: calls in flight, and how empty each bucket is
    (saturation 0: full, idle; 1 or more: empty or in debt, callers wait)."""

    quota: Quota
    in_use: int
    saturation: dict[str, float]
    denied: dict[str, int]


class QuotaLimiter:
    """The shared limiter (see the module docstring). One per process; thread-safe (Redis)."""

    def __init__(
        self,
        client: Any,
        *,
        prefix: str,
        quotas: Mapping[str, Quota],
        ttl_ms: int,
        burst_s: float = 10.0,
        tenant_concurrency: int = 0,
        active_ms: int = 2000,
        recheck_ms: int = 1000,
        slack: float = 1.0,
        reserve_s: float = 0.0,
        normal_share: float = 0.0,
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.quotas = dict(quotas)
        self.ttl_ms = ttl_ms
        self.burst_s = burst_s
        self.tenant_concurrency = tenant_concurrency
        self.active_ms = active_ms
        self.recheck_ms = recheck_ms
        self.slack = slack
        self.reserve_s = reserve_s
        self.normal_share = normal_share
        self._acquire = client.register_script(ACQUIRE)
        self._release = client.register_script(RELEASE)
        self._back_off = client.register_script(BACK_OFF)

    @property
    def limits_anything(self) -> bool:
        """False when only a 429's back-off can make a caller wait (no quota, no tenant cap)."""
        return bool(self.quotas) or self.tenant_concurrency > 0

    def quotas_for(self, provider: str, model: str) -> tuple[Quota, ...]:
        """The quotas a call to `model` of `provider` counts against: the provider's and the
        model's own, when configured."""
        names = (provider, f"{provider}:{model}")
        return tuple(self.quotas[name] for name in names if name in self.quotas)

    def _key(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    def acquire(
        self,
        *,
        provider: str,
        model: str,
        tenant: str,
        cost: Cost,
        high: bool = False,
        booked: bool = False,
    ) -> Slot | Wait:
        """A slot, or how long to wait. `high`: a high-priority call (served first, see the
        module docstring). `booked`: the caller already waited for a booking this limiter gave
        it (a deferred message): if denied again it comes back soon, ahead of the tenant's later
        bookings."""
        quotas = self.quotas_for(provider, model)
        keys = [
            self._key("fair", "active"),
            self._key("fair", "vt"),
            self._key("fair", "c"),
            self._key("tenant", tenant, "holders"),
            self._key("tenant", tenant, "next"),
            self._key("backoff", provider),
            self._key("backoff", f"{provider}:{model}"),
            self._key("prio", "high"),
            self._key("prio", "normal"),
            self._key("prio", "nwait"),
        ]
        args: list[Any] = [
            uuid.uuid4().hex,
            tenant,
            "h" if high else "n",
            cost.requests,
            cost.tokens_in,
            cost.tokens_out,
            self.ttl_ms,
            self.tenant_concurrency,
            self.active_ms,
            self.recheck_ms,
            self.slack,
            self.burst_s,
            1 if booked else 0,
            self.reserve_s,
            self.normal_share,
        ]
        for quota in quotas:
            keys += [
                self._key("q", quota.name, "holders"),
                self._key("q", quota.name, "bucket"),
                self._key("denied", quota.name),
            ]
            args += [quota.rpm, quota.itpm, quota.otpm, quota.concurrency]
        granted, delay_ms, reason = self._acquire(keys=keys, args=args)
        if not int(granted):
            return Wait(delay_ms=int(delay_ms), reason=_text(reason))
        return Slot(
            holder=str(args[0]),
            provider=provider,
            quotas=quotas,
            tenant=tenant,
            cost=cost,
            high=high,
        )

    def release(self, slot: Slot, *, used: Cost) -> None:
        """Give the slot back, correcting the buckets from the estimate to `used` (what the
        calls really cost; `Cost(0, 0, 0)` when no call was made refunds the estimate)."""
        keys = [self._key("tenant", slot.tenant, "holders")]
        args: list[Any] = [
            slot.holder,
            self.burst_s,
            used.requests - slot.cost.requests,
            used.tokens_in - slot.cost.tokens_in,
            used.tokens_out - slot.cost.tokens_out,
        ]
        for quota in slot.quotas:
            keys += [self._key("q", quota.name, "holders"), self._key("q", quota.name, "bucket")]
            args += [quota.rpm, quota.itpm, quota.otpm]
        self._release(keys=keys, args=args)

    def tenant_idle(self, tenant: str) -> None:
        """The tenant has no work waiting any more: it stops counting for the fair shares now,
        rather than `active_ms` after its last ask. (If it asks again, it starts afresh.)"""
        pipe = self.client.pipeline(transaction=False)
        pipe.zrem(self._key("fair", "active"), tenant)
        pipe.hdel(self._key("fair", "vt"), tenant)
        pipe.hdel(self._key("fair", "c"), tenant)
        pipe.execute()

    def back_off(self, *, provider: str, model: str, seconds: float) -> None:
        """A 429 said wait `seconds`: every worker's acquire for this model waits that long."""
        ms = max(int(seconds * 1000), 1)
        self._back_off(keys=[self._key("backoff", f"{provider}:{model}")], args=[ms])

    def usage(self) -> list[QuotaUse]:
        """Every configured quota's calls in flight, bucket saturation and denials so far."""
        now_ms = _redis_now_ms(self.client)
        pipe = self.client.pipeline(transaction=False)
        for name in self.quotas:
            pipe.zcount(self._key("q", name, "holders"), now_ms, "+inf")
            pipe.hmget(self._key("q", name, "bucket"), "r", "i", "o", "t")
            pipe.hgetall(self._key("denied", name))
        results = pipe.execute()
        uses = []
        for index, quota in enumerate(self.quotas.values()):
            in_use, stored, denied = results[3 * index : 3 * index + 3]
            last = float(stored[3]) if stored[3] is not None else now_ms
            saturation = {}
            for dimension, limit, level, window in zip(
                ("requests", "input_tokens", "output_tokens"),
                (quota.rpm, quota.itpm, quota.otpm),
                stored[:3],
                (self.burst_s, self.burst_s, 60.0),
                strict=True,
            ):
                if not limit:
                    continue
                capacity = max(limit * window / 60, 1)
                filled = capacity if level is None else float(level)
                filled = min(capacity, filled + (now_ms - last) * limit / 60000)
                saturation[dimension] = 1 - filled / capacity
            uses.append(
                QuotaUse(
                    quota=quota,
                    in_use=int(in_use),
                    saturation=saturation,
                    denied={_text(k): int(v) for k, v in denied.items()},
                )
            )
        return uses


def _redis_now_ms(client: Any) -> float:
    seconds, micros = client.time()
    return int(seconds) * 1000 + int(micros) / 1000


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value

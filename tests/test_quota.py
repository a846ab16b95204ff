"""The shared quota limiter (ai_engine/quota.py) against real Redis: two limiter objects on two
connections stand for two worker processes (or hosts) sharing the provider's limits."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
import redis
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from ai_engine.quota import Cost, Quota, QuotaLimiter, Slot, Wait, quotas_parse
from ai_engine.registry import quota_from_settings

PROVIDER, MODEL = "anthropic", "claude-sonnet-4-6"


@pytest.fixture
def limiter(redis_client: Any) -> Callable[..., QuotaLimiter]:
    """Limiters over their own connection each (as processes have), one key prefix."""

    def make(quotas: dict[str, dict[str, int]], **options: Any) -> QuotaLimiter:
        client = redis.Redis.from_url(settings.REDIS_URL, protocol=2)
        options.setdefault("ttl_ms", 60_000)
        return QuotaLimiter(
            client,
            prefix=f"{settings.DRAMATIQ_NAMESPACE}:moverz:quota",
            quotas=quotas_parse(quotas),
            **options,
        )

    return make


def ask(limiter: QuotaLimiter, tenant: str = "p1", cost: Cost | None = None, **kw: Any) -> Any:
    return limiter.acquire(
        provider=PROVIDER, model=MODEL, tenant=tenant, cost=cost or Cost(1, 0, 0), **kw
    )


def test_two_processes_share_the_requests_per_minute(limiter: Callable[..., QuotaLimiter]) -> None:
    # 60 rpm with a 2-second bucket: two calls at once, then one a second, whoever asks.
    first = limiter({PROVIDER: {"rpm": 60}}, burst_s=2)
    second = limiter({PROVIDER: {"rpm": 60}}, burst_s=2)
    assert isinstance(ask(first), Slot)
    assert isinstance(ask(second), Slot)
    denied = ask(first)
    assert isinstance(denied, Wait) and denied.reason == "rpm"
    assert 800 <= denied.delay_ms <= 1100, denied  # the next request token, a second away
    time.sleep(denied.delay_ms / 1000)
    assert isinstance(ask(second), Slot)


def test_a_model_quota_applies_beside_the_provider_one(
    limiter: Callable[..., QuotaLimiter],
) -> None:
    quotas = {PROVIDER: {"rpm": 600}, f"{PROVIDER}:{MODEL}": {"concurrency": 1}}
    shared = limiter(quotas)
    assert [quota.name for quota in shared.quotas_for(PROVIDER, MODEL)] == [
        PROVIDER,
        f"{PROVIDER}:{MODEL}",
    ]
    assert shared.quotas_for(PROVIDER, "another-model") == (Quota(PROVIDER, rpm=600),)
    assert isinstance(ask(shared), Slot)
    assert ask(shared).reason == "concurrency"
    other_model = shared.acquire(provider=PROVIDER, model="haiku", tenant="p1", cost=Cost())
    assert isinstance(other_model, Slot)


def test_concurrency_slots_come_back_on_release_and_after_a_crash(
    limiter: Callable[..., QuotaLimiter],
) -> None:
    first = limiter({PROVIDER: {"concurrency": 2}})
    crashing = limiter({PROVIDER: {"concurrency": 2}}, ttl_ms=400)
    held = ask(first)
    crashed = ask(crashing)  # never released: its process is killed mid-call
    assert isinstance(held, Slot) and isinstance(crashed, Slot)
    assert [use.in_use for use in first.usage()] == [2]
    denied = ask(first, tenant="p2")
    assert isinstance(denied, Wait) and denied.reason == "concurrency"
    first.release(held, used=Cost())
    assert isinstance(ask(first, tenant="p3"), Slot)  # the released one
    assert ask(first, tenant="p4").reason == "concurrency"  # the crashed one's is still held
    time.sleep(0.45)  # past the crashed holder's TTL (≥ its call's timeout): free again
    assert isinstance(ask(first, tenant="p5"), Slot)
    assert [use.in_use for use in first.usage()] == [2]


def test_the_token_estimate_is_corrected_by_the_real_usage(
    limiter: Callable[..., QuotaLimiter],
) -> None:
    # 6,000 input tokens a minute, a 10-second bucket: 1,000 tokens, refilled 100 a second.
    shared = limiter({PROVIDER: {"itpm": 6000}}, burst_s=10)
    slot = ask(shared, cost=Cost(1, 800, 0))
    assert isinstance(slot, Slot)
    assert ask(shared, cost=Cost(1, 700, 0)).reason == "itpm"  # 200 left, 700 asked
    shared.release(slot, used=Cost(1, 100, 0))  # the call used far less than estimated
    second = ask(shared, cost=Cost(1, 700, 0))
    assert isinstance(second, Slot)  # 900 were back
    # A call that used more than its estimate leaves the bucket in debt: the wait says how long.
    shared.release(second, used=Cost(1, 1900, 0))  # 200 left - 1,200 more = 1,000 of debt
    denied = ask(shared, cost=Cost(1, 100, 0))
    assert isinstance(denied, Wait) and denied.reason == "itpm"
    assert 10_500 <= denied.delay_ms <= 11_100, denied  # 1,100 tokens at 100 a second


def test_a_call_larger_than_the_bucket_waits_for_a_full_bucket(
    limiter: Callable[..., QuotaLimiter],
) -> None:
    shared = limiter({PROVIDER: {"itpm": 600}}, burst_s=10)  # 100 tokens, 10 a second
    slot = ask(shared, cost=Cost(1, 250, 0))
    assert isinstance(slot, Slot)  # the bucket was full
    denied = ask(shared, cost=Cost(1, 250, 0))
    assert isinstance(denied, Wait) and denied.reason == "itpm"
    assert 24_000 <= denied.delay_ms <= 26_000, denied  # 150 of debt + 100 to fill, at 10/s


def test_output_tokens_are_reserved_at_max_tokens_and_given_back_when_the_answer_ends(
    limiter: Callable[..., QuotaLimiter],
) -> None:
    # 12,000 output tokens a minute, reserved in a bucket of the full minute (as the provider's):
    # two calls of max_tokens 5,056 fit at once, a third waits, although each uses ~100.
    shared = limiter({PROVIDER: {"otpm": 12_000}}, burst_s=10)
    first = ask(shared, cost=Cost(1, 0, 5056))
    second = ask(shared, cost=Cost(1, 0, 5056))
    assert isinstance(first, Slot) and isinstance(second, Slot)
    denied = ask(shared, cost=Cost(1, 0, 5056))
    assert isinstance(denied, Wait) and denied.reason == "otpm"
    shared.release(first, used=Cost(1, 0, 100))  # the answer ended: 4,956 come back
    assert isinstance(ask(shared, cost=Cost(1, 0, 5056)), Slot)


def test_a_429_holds_off_every_process_until_its_retry_after(
    limiter: Callable[..., QuotaLimiter],
) -> None:
    first = limiter({})
    second = limiter({})
    first.back_off(provider=PROVIDER, model=MODEL, seconds=0.5)
    denied = ask(second)
    assert isinstance(denied, Wait) and denied.reason == "backoff"
    assert 300 <= denied.delay_ms <= 500, denied
    first.back_off(provider=PROVIDER, model=MODEL, seconds=0.1)  # never shortens it
    assert ask(second, tenant="p2").delay_ms > 200
    time.sleep(0.55)
    assert isinstance(ask(second), Slot)


def test_denied_photos_of_a_project_are_booked_one_after_the_other(
    limiter: Callable[..., QuotaLimiter],
) -> None:
    shared = limiter({PROVIDER: {"rpm": 120}}, burst_s=0.5)  # one token, two a second
    assert isinstance(ask(shared), Slot)
    delays = [ask(shared).delay_ms for _ in range(4)]
    # Each next one half a second after the previous booking, not all at the same moment.
    steps = [later - earlier for earlier, later in zip(delays, delays[1:], strict=False)]
    assert all(480 <= step <= 520 for step in steps), delays


def _rounds(shared: QuotaLimiter, tenants: tuple[str, ...], rounds: int) -> dict[str, int]:
    """Each round, every tenant asks until it is told to wait (more work than slots)."""
    grants = dict.fromkeys(tenants, 0)
    for tenant in tenants:  # each has work waiting from the start
        grants[tenant] += isinstance(ask(shared, tenant=tenant), Slot)
    for _ in range(rounds):
        for tenant in tenants:
            for _ in range(50):
                if not isinstance(ask(shared, tenant=tenant), Slot):
                    break
                grants[tenant] += 1
    return grants


def test_a_small_project_is_not_behind_a_big_one(limiter: Callable[..., QuotaLimiter]) -> None:
    shared = limiter({PROVIDER: {"concurrency": 10_000}})
    for _ in range(20):  # alone, the big project takes every slot it asks for
        assert isinstance(ask(shared, tenant="big"), Slot)
    # The small one arrives: from then on they take turns, the big one's past use counting
    # for nothing (and earning the small one nothing either).
    grants = _rounds(shared, ("big", "small"), rounds=10)
    assert abs(grants["big"] - grants["small"]) <= 2, grants


def test_a_deferred_high_priority_call_gets_the_next_slot_before_a_normal_backlog(
    limiter: Callable[..., QuotaLimiter],
) -> None:
    # 120 rpm, a 1-second bucket (two calls), no reserve, no floor: strict priority alone.
    shared = limiter({PROVIDER: {"rpm": 120}}, burst_s=1)
    assert isinstance(ask(shared, tenant="big"), Slot)
    assert isinstance(ask(shared, tenant="big"), Slot)
    high = ask(shared, tenant="premium", high=True)
    assert isinstance(high, Wait) and high.reason == "rpm"  # the bucket is empty for everyone
    assert high.delay_ms <= 520, high  # booked for the next token, not behind the big project
    time.sleep(high.delay_ms / 1000 + 0.05)
    # The token refilled meanwhile is kept for the high call: the backlog is told to wait.
    normal = ask(shared, tenant="big", booked=True)
    assert isinstance(normal, Wait) and normal.reason == "priority", normal
    assert isinstance(ask(shared, tenant="premium", high=True, booked=True), Slot)


def test_normal_calls_leave_a_reserve_for_high_priority_ones(
    limiter: Callable[..., QuotaLimiter],
) -> None:
    # 60 rpm, a 5-second bucket (5 calls); normal calls leave 2 seconds of it (2 calls).
    shared = limiter({PROVIDER: {"rpm": 60}}, burst_s=5, reserve_s=2)
    granted = [isinstance(ask(shared, tenant="big"), Slot) for _ in range(4)]
    assert granted == [True, True, True, False]
    # A burst of high-priority photos behind the backlog starts at once.
    assert isinstance(ask(shared, tenant="premium", high=True), Slot)
    assert isinstance(ask(shared, tenant="premium", high=True), Slot)
    assert ask(shared, tenant="premium", high=True).reason == "rpm"


def test_normal_work_keeps_its_floor_share_while_high_priority_work_waits(
    limiter: Callable[..., QuotaLimiter],
) -> None:
    # 1,200 rpm (a token every 50 ms) and a floor of 20 %: while high-priority calls keep the
    # provider busy, a normal one still gets a slot every 250 ms.
    shared = limiter({PROVIDER: {"rpm": 1200}}, burst_s=0.05, normal_share=0.2)
    grants = {"high": 0, "normal": 0}
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        for tenant, high in (("premium", True), ("big", False)):
            if isinstance(ask(shared, tenant=tenant, high=high, booked=True), Slot):
                grants["high" if high else "normal"] += 1
        time.sleep(0.01)
    total = grants["high"] + grants["normal"]
    assert total >= 20, grants  # the provider was kept busy (40 tokens in 2 s)
    assert 0.12 <= grants["normal"] / total <= 0.3, grants
    # With no floor, normal work waits until the high-priority work is done.
    strict = limiter({PROVIDER: {"rpm": 1200}}, burst_s=0.05, normal_share=0.0, recheck_ms=5000)
    while isinstance(ask(strict, tenant="premium", high=True), Slot):
        pass  # until one is deferred
    time.sleep(1.0)  # whatever the normal calls' wait, the floor would be due by now
    assert ask(strict, tenant="big", booked=True).reason == "priority"


def test_a_project_stops_counting_once_it_has_no_work_waiting(
    limiter: Callable[..., QuotaLimiter],
) -> None:
    shared = limiter({PROVIDER: {"concurrency": 100}}, active_ms=300)
    ask(shared, tenant="small")
    assert isinstance(ask(shared, tenant="big"), Slot)
    assert ask(shared, tenant="big").reason == "fair"  # small asked recently: its turn
    time.sleep(0.35)  # small asked nothing since: the big one has the slots to itself
    for _ in range(5):
        assert isinstance(ask(shared, tenant="big"), Slot)


def test_the_per_project_cap(limiter: Callable[..., QuotaLimiter]) -> None:
    shared = limiter({}, tenant_concurrency=1)
    slot = ask(shared, tenant="p1")
    assert isinstance(slot, Slot)
    assert ask(shared, tenant="p1").reason == "tenant"
    assert isinstance(ask(shared, tenant="p2"), Slot)
    shared.release(slot, used=Cost(1, 0, 0))
    assert isinstance(ask(shared, tenant="p1"), Slot)


def test_usage_reports_slots_in_use_saturation_and_denials(
    limiter: Callable[..., QuotaLimiter],
) -> None:
    shared = limiter({PROVIDER: {"rpm": 60, "concurrency": 4}}, burst_s=2)
    idle = shared.usage()[0]
    assert (idle.in_use, idle.saturation["requests"]) == (0, 0.0)
    ask(shared)
    ask(shared)
    ask(shared)  # denied
    (use,) = shared.usage()
    assert use.quota.name == PROVIDER and use.in_use == 2
    assert 0.9 <= use.saturation["requests"] <= 1.0, use
    assert use.denied == {"rpm": 1}


@pytest.mark.parametrize(
    "raw",
    [
        [],
        {"anthropic": 120},
        {"anthropic": {"rpm": -1}},
        {"anthropic": {"rpm": 1.5}},
        {"anthropic": {"tpm": 10}},
    ],
)
def test_a_bad_quota_setting_is_refused_when_the_engine_is_built(
    raw: Any, settings: Any, redis_client: Any
) -> None:
    settings.AI_QUOTAS = raw
    with pytest.raises(ImproperlyConfigured, match="AI_QUOTAS"):
        quota_from_settings(redis_client=redis_client)

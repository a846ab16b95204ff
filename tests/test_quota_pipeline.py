"""Provider quotas in the pipeline: a photo without a slot is deferred (not claimed, no attempt,
no call), the slot is corrected by the real usage, a 429 holds off every worker, and a call that
falls back to the second provider takes a slot of that provider's quota. The fake provider speaks
the Anthropic and OpenAI APIs over HTTP; the limiter is real Redis."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from django.conf import settings

from ai_engine.anthropic_provider import AnthropicProvider
from ai_engine.engine import AiEngine
from ai_engine.openai_provider import OpenAIProvider
from ai_engine.quota import QuotaLimiter, quotas_parse
from aimetrics.models import AiMetric
from photos.lifecycle import photo_enqueue
from photos.models import Photo
from photos.services.analysis import Outcome, photo_analyze
from tests.factories import make_photo, make_project
from tests.fakeai import GPT, SONNET, FakeAiServer, running_fake_ai

pytestmark = pytest.mark.django_db


@pytest.fixture
def fake_ai() -> Iterator[FakeAiServer]:
    with running_fake_ai(tokens_in=1200, tokens_out=300) as server:
        yield server


@pytest.fixture
def engine_with(fake_ai: FakeAiServer, redis_client: Any) -> Callable[..., AiEngine]:
    """An engine on the fake Anthropic API with a limiter of its own connection: each one is a
    worker process sharing the limits through Redis."""

    def make(
        quotas: dict[str, dict[str, int]], *, fallback: bool = False, **options: Any
    ) -> AiEngine:
        client = redis.Redis.from_url(settings.REDIS_URL, protocol=2)
        limiter = QuotaLimiter(
            client,
            prefix=f"{settings.DRAMATIQ_NAMESPACE}:moverz:quota",
            quotas=quotas_parse(quotas),
            ttl_ms=60_000,
            **options,
        )
        provider = AnthropicProvider(
            api_key="sk-ant-quota-test-1234", model=SONNET, timeout_s=5, base_url=fake_ai.url
        )
        second = OpenAIProvider(
            api_key="sk-quota-test-1234", model=GPT, timeout_s=5, base_url=fake_ai.openai_url
        )
        return AiEngine([provider, second] if fallback else [provider], quota=limiter)

    return make


def _enqueued(capture: Any, **kwargs: Any) -> Photo:
    photo = make_photo(**kwargs)
    with capture(execute=True):
        photo_enqueue(photo=photo)
    photo.refresh_from_db()
    return photo


def test_a_photo_without_a_slot_is_deferred_untouched(
    engine_with: Callable[..., AiEngine],
    fake_ai: FakeAiServer,
    django_capture_on_commit_callbacks: Any,
    photo_queue: Any,
) -> None:
    engine = engine_with({"anthropic": {"rpm": 60}}, burst_s=1)  # one call, then one a second
    first = _enqueued(django_capture_on_commit_callbacks)
    second = _enqueued(django_capture_on_commit_callbacks)
    photo_queue.client.delete(*photo_queue.client.keys(f"{settings.DRAMATIQ_NAMESPACE}:photo-*"))

    start_ms = time.time() * 1000
    with django_capture_on_commit_callbacks(execute=True):
        assert photo_analyze(photo_id=str(first.pk), engine=engine) == Outcome.DONE
    before_ms = time.time() * 1000
    with django_capture_on_commit_callbacks(execute=True):
        assert photo_analyze(photo_id=str(second.pk), engine=engine) == Outcome.DEFERRED

    assert len(fake_ai.requests_for("anthropic")) == 1  # the second was never sent
    deferred = Photo.objects.get(pk=second.pk)
    # Not claimed: still PENDING, owed as before (the relay still knows a message is due), no
    # attempt spent, no metric, no error.
    assert (deferred.status, deferred.attempts, deferred.error_code) == ("PENDING", 0, None)
    assert deferred.queued_at == second.queued_at and deferred.run == second.run
    assert not AiMetric.objects.filter(photo_id=second.pk).exists()
    [message] = photo_queue.delayed()
    assert message["args"] == [str(second.pk)]
    # When the next slot frees: a second after the first one's grant (between start and before).
    assert start_ms + 900 <= message["options"]["eta"] <= before_ms + 1150

    time.sleep(1.0)
    with django_capture_on_commit_callbacks(execute=True):
        assert photo_analyze(photo_id=str(second.pk), engine=engine) == Outcome.DONE
    assert Photo.objects.get(pk=second.pk).attempts == 1


def test_the_slot_is_charged_the_real_usage_not_the_estimate(
    engine_with: Callable[..., AiEngine], django_capture_on_commit_callbacks: Any
) -> None:
    # 6,000 input tokens a minute, a 10-second bucket: 1,000 tokens. The photo's estimate (a
    # 320×240 image and the prompt) is far less; the fake reports 1,200 used.
    engine = engine_with({"anthropic": {"itpm": 6000}}, burst_s=10)
    assert engine.quota is not None
    photo = _enqueued(django_capture_on_commit_callbacks)

    with django_capture_on_commit_callbacks(execute=True):
        assert photo_analyze(photo_id=str(photo.pk), engine=engine) == Outcome.DONE

    (use,) = engine.quota.usage()
    # 1,200 taken from a full 1,000-token bucket: 200 in debt (a little refilled since).
    assert 1.1 <= use.saturation["input_tokens"] <= 1.2, use
    assert use.in_use == 0  # released


def test_an_answer_reused_costs_no_slot(
    engine_with: Callable[..., AiEngine], django_capture_on_commit_callbacks: Any
) -> None:
    engine = engine_with({"anthropic": {"rpm": 60}}, burst_s=1)
    assert engine.quota is not None
    project = make_project()
    donor = _enqueued(django_capture_on_commit_callbacks, project=project, seed=5)
    twin = _enqueued(django_capture_on_commit_callbacks, project=project, seed=5)
    with django_capture_on_commit_callbacks(execute=True):
        assert photo_analyze(photo_id=str(donor.pk), engine=engine) == Outcome.DONE
    time.sleep(1.0)  # the request token is back

    with django_capture_on_commit_callbacks(execute=True):
        assert photo_analyze(photo_id=str(twin.pk), engine=engine) == Outcome.DONE

    analysis = Photo.objects.get(pk=twin.pk).analysis
    assert analysis is not None and analysis["reusedFrom"] == str(donor.pk)
    (use,) = engine.quota.usage()
    assert use.saturation["requests"] <= 0.05, use  # refunded: the next call may go at once


def test_a_429_holds_off_every_worker_for_its_retry_after(
    engine_with: Callable[..., AiEngine],
    fake_ai: FakeAiServer,
    django_capture_on_commit_callbacks: Any,
    photo_queue: Any,
) -> None:
    one_worker = engine_with({"anthropic": {"rpm": 600}})
    another = engine_with({"anthropic": {"rpm": 600}})
    first = _enqueued(django_capture_on_commit_callbacks)
    second = _enqueued(django_capture_on_commit_callbacks)
    photo_queue.client.delete(*photo_queue.client.keys(f"{settings.DRAMATIQ_NAMESPACE}:photo-*"))
    fake_ai.script(status=429, headers={"retry-after": "3"})

    with django_capture_on_commit_callbacks(execute=True):
        assert photo_analyze(photo_id=str(first.pk), engine=one_worker) == Outcome.RETRY
    before_ms = time.time() * 1000
    with django_capture_on_commit_callbacks(execute=True):
        assert photo_analyze(photo_id=str(second.pk), engine=another) == Outcome.DEFERRED

    assert len(fake_ai.requests_for("anthropic")) == 1  # the other worker did not try
    assert Photo.objects.get(pk=second.pk).attempts == 0
    eta = {m["args"][0]: m["options"]["eta"] for m in photo_queue.delayed()}[str(second.pk)]
    assert 2500 <= eta - before_ms <= 3300


def test_a_call_that_falls_back_takes_a_slot_of_the_second_providers_quota(
    engine_with: Callable[..., AiEngine],
    fake_ai: FakeAiServer,
    django_capture_on_commit_callbacks: Any,
    photo_queue: Any,
) -> None:
    # Anthropic is overloaded; OpenAI's quota allows one call, then one a second.
    engine = engine_with(
        {"anthropic": {"rpm": 600}, "openai": {"rpm": 60}}, fallback=True, burst_s=1
    )
    assert engine.quota is not None
    first = _enqueued(django_capture_on_commit_callbacks)
    second = _enqueued(django_capture_on_commit_callbacks)
    photo_queue.client.delete(*photo_queue.client.keys(f"{settings.DRAMATIQ_NAMESPACE}:photo-*"))
    fake_ai.script(status=529, provider="anthropic", times=2)

    with django_capture_on_commit_callbacks(execute=True):
        assert photo_analyze(photo_id=str(first.pk), engine=engine) == Outcome.DONE
        assert photo_analyze(photo_id=str(second.pk), engine=engine) == Outcome.RETRY

    assert Photo.objects.get(pk=first.pk).analysis["provider"] == "openai"  # type: ignore[index]
    assert len(fake_ai.requests_for("openai")) == 1  # the second photo's never went out
    retried = Photo.objects.get(pk=second.pk)
    assert (retried.status, retried.error_code) == ("PENDING", "RATE_LIMIT")
    assert "openai: no slot of its quota free" in (retried.error_message or "")
    [message] = photo_queue.delayed()  # its retry comes when OpenAI's next token is back
    assert message["args"] == [str(second.pk)]
    uses = {use.quota.name: use for use in engine.quota.usage()}
    assert uses["openai"].in_use == 0  # released after the call
    assert uses["openai"].denied == {"rpm": 1}
    assert uses["openai"].saturation["requests"] >= 0.5, uses["openai"]

"""Service tests: the analysis pipeline called directly, with the real database and Redis."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings
from django.utils import timezone

from ai_engine.engine import AiEngine
from ai_engine.errors import ErrorCode
from ai_engine.fake import FakeProvider
from aimetrics.models import AiMetric
from infra.broker import heartbeats_key
from photos.lifecycle import (
    Claim,
    EnqueueStatus,
    photo_claim,
    photo_enqueue,
    photo_give_back,
    photo_store_done,
)
from photos.models import Photo, ProviderAnswer
from photos.services.analysis import MetricRecorder, Outcome, photo_analyze
from tests.factories import make_photo

pytestmark = pytest.mark.django_db


def _enqueued_photo(django_capture_on_commit_callbacks: Any, **kwargs: Any) -> Photo:
    photo = make_photo(**kwargs)
    with django_capture_on_commit_callbacks(execute=True):
        photo_enqueue(photo=photo)
    return photo


def test_success_stores_done_analysis_and_metrics(django_capture_on_commit_callbacks: Any) -> None:
    photo = _enqueued_photo(django_capture_on_commit_callbacks)

    with django_capture_on_commit_callbacks(execute=True):
        outcome = photo_analyze(photo_id=str(photo.pk), provider=FakeProvider())

    photo.refresh_from_db()
    assert outcome == Outcome.DONE
    assert photo.status == Photo.Status.DONE
    assert photo.attempts == 1
    assert photo.room_type  # detected, since none was given
    assert photo.processed_at is not None
    assert photo.analysis is not None
    items = photo.analysis["items"]
    assert items and photo.analysis["totals"]["items"] == sum(i["quantity"] for i in items)
    assert photo.analysis["provider"] == "fake"
    assert photo.items_count == photo.analysis["totals"]["items"]
    operations = sorted(
        AiMetric.objects.filter(photo_id=photo.pk).values_list("operation", flat=True)
    )
    assert operations == ["analyze_photo"]  # the room is detected in the same call
    metric = AiMetric.objects.get(photo_id=photo.pk, operation="analyze_photo")
    assert metric.success and metric.tokens_in > 0 and metric.tokens_out > 0
    assert metric.meta["photoId"] == str(photo.pk)
    assert metric.meta["itemsCount"] == photo.items_count


def test_room_type_given_by_client_is_kept_and_not_detected(
    django_capture_on_commit_callbacks: Any,
) -> None:
    photo = _enqueued_photo(django_capture_on_commit_callbacks, room_type="kitchen")

    photo_analyze(photo_id=str(photo.pk), provider=FakeProvider())

    photo.refresh_from_db()
    assert photo.room_type == "kitchen"
    assert not AiMetric.objects.filter(photo_id=photo.pk, operation="detect_room").exists()


def test_retryable_failure_goes_back_to_pending_with_a_delayed_message(
    django_capture_on_commit_callbacks: Any, photo_queue: Any
) -> None:
    photo = _enqueued_photo(django_capture_on_commit_callbacks)
    failing = FakeProvider(fail_rate=1.0, fail_code=ErrorCode.TIMEOUT)

    with django_capture_on_commit_callbacks(execute=True):
        outcome = photo_analyze(photo_id=str(photo.pk), provider=failing)

    photo.refresh_from_db()
    assert outcome == Outcome.RETRY
    assert photo.status == Photo.Status.PENDING
    assert photo.error_code == "TIMEOUT"
    assert photo.attempts == 1
    assert [m["args"] for m in photo_queue.delayed()] == [[str(photo.pk)]]
    failed = AiMetric.objects.get(photo_id=photo.pk)
    assert not failed.success and failed.error_type == "TIMEOUT"


def test_attempts_are_bounded_then_error_is_terminal(
    django_capture_on_commit_callbacks: Any, settings: Any
) -> None:
    settings.PHOTO_MAX_ATTEMPTS = 3
    photo = _enqueued_photo(django_capture_on_commit_callbacks)
    failing = FakeProvider(fail_rate=1.0, fail_code=ErrorCode.PROVIDER_DOWN)

    outcomes = [photo_analyze(photo_id=str(photo.pk), provider=failing) for _ in range(4)]

    photo.refresh_from_db()
    assert outcomes == [Outcome.RETRY, Outcome.RETRY, Outcome.ERROR, Outcome.SKIPPED]
    assert photo.status == Photo.Status.ERROR
    assert photo.attempts == 3
    assert photo.error_code == "PROVIDER_DOWN"
    assert AiMetric.objects.filter(photo_id=photo.pk, success=False).count() == 3


def test_non_retryable_failure_is_error_at_once(django_capture_on_commit_callbacks: Any) -> None:
    photo = _enqueued_photo(django_capture_on_commit_callbacks, room_type="office")
    failing = FakeProvider(fail_rate=1.0, fail_code=ErrorCode.BAD_INPUT)

    assert photo_analyze(photo_id=str(photo.pk), provider=failing) == Outcome.ERROR

    photo.refresh_from_db()
    assert (photo.status, photo.error_code, photo.attempts) == ("ERROR", "BAD_INPUT", 1)
    assert photo.error_message and len(photo.error_message) <= 200


def test_success_after_failure_clears_the_error(django_capture_on_commit_callbacks: Any) -> None:
    photo = _enqueued_photo(django_capture_on_commit_callbacks)
    photo_analyze(photo_id=str(photo.pk), provider=FakeProvider(fail_rate=1.0))

    assert photo_analyze(photo_id=str(photo.pk), provider=FakeProvider()) == Outcome.DONE

    photo.refresh_from_db()
    assert (photo.status, photo.error_code, photo.error_message, photo.attempts) == (
        "DONE",
        None,
        None,
        2,
    )


def test_a_second_run_of_a_done_photo_does_nothing(django_capture_on_commit_callbacks: Any) -> None:
    photo = _enqueued_photo(django_capture_on_commit_callbacks)
    photo_analyze(photo_id=str(photo.pk), provider=FakeProvider())

    assert photo_analyze(photo_id=str(photo.pk), provider=FakeProvider()) == Outcome.SKIPPED
    assert AiMetric.objects.filter(photo_id=photo.pk, operation="analyze_photo").count() == 1


def test_a_photo_never_enqueued_is_not_analysed() -> None:
    photo = make_photo()

    assert photo_analyze(photo_id=str(photo.pk), provider=FakeProvider()) == Outcome.SKIPPED
    photo.refresh_from_db()
    assert photo.status == Photo.Status.PENDING


def test_forced_reanalysis_keeps_old_analysis_readable_until_replaced(
    django_capture_on_commit_callbacks: Any,
) -> None:
    photo = _enqueued_photo(django_capture_on_commit_callbacks, room_type="bedroom")
    photo_analyze(photo_id=str(photo.pk), provider=FakeProvider())
    photo.refresh_from_db()
    first = photo.analysis

    assert photo_enqueue(photo=photo).status == EnqueueStatus.ALREADY_DONE
    assert photo_enqueue(photo=photo, force=True).status == EnqueueStatus.ENQUEUED
    photo.refresh_from_db()
    assert (photo.status, photo.analysis) == ("DONE", first)

    assert photo_analyze(photo_id=str(photo.pk), provider=FakeProvider()) == Outcome.DONE
    assert AiMetric.objects.filter(photo_id=photo.pk, operation="analyze_photo").count() == 2
    assert ProviderAnswer.objects.filter(photo=photo, operation="analyze_photo").count() == 2


def _heartbeat(redis_client: Any, worker: str, *, seconds_ago: float = 0) -> None:
    """Write a worker heartbeat the way the broker does (ms timestamps in a sorted set)."""
    beat_ms = (timezone.now().timestamp() - seconds_ago) * 1000
    redis_client.zadd(heartbeats_key(), {worker: beat_ms})


def _held_by(photo: Photo, owner: str, *, lease_s: float = 60) -> None:
    Photo.objects.filter(pk=photo.pk).update(
        status=Photo.Status.PROCESSING,
        attempts=1,
        lease_owner=owner,
        lease_token=uuid.uuid4(),
        lease_expires_at=timezone.now() + timedelta(seconds=lease_s),
    )


def test_processing_photo_of_a_live_worker_is_left_to_it(
    django_capture_on_commit_callbacks: Any, photo_queue: Any, redis_client: Any
) -> None:
    photo = make_photo()
    _heartbeat(redis_client, "worker-alive")
    _held_by(photo, "worker-alive")

    with django_capture_on_commit_callbacks(execute=True):
        outcome = photo_analyze(photo_id=str(photo.pk), provider=FakeProvider())

    assert outcome == Outcome.BUSY
    assert not AiMetric.objects.filter(photo_id=photo.pk).exists()
    # It looks again later (at most a heartbeat timeout), so if that worker dies the photo is
    # finished rather than stranded.
    [recheck] = photo_queue.delayed()
    delay_ms = recheck["options"]["eta"] - timezone.now().timestamp() * 1000
    assert 0 < delay_ms <= settings.DRAMATIQ_HEARTBEAT_TIMEOUT_MS + 1000


def test_processing_photo_of_a_dead_worker_is_taken_over_at_once(redis_client: Any) -> None:
    photo = make_photo()
    silent_for_s = settings.DRAMATIQ_HEARTBEAT_TIMEOUT_MS / 1000 + 5
    _heartbeat(redis_client, "worker-killed", seconds_ago=silent_for_s)
    _held_by(photo, "worker-killed")  # its lease still has a minute to run

    assert photo_analyze(photo_id=str(photo.pk), provider=FakeProvider()) == Outcome.DONE
    photo.refresh_from_db()
    assert (photo.status, photo.attempts) == ("DONE", 2)


def test_a_result_stored_by_a_taken_over_worker_is_dropped(
    django_capture_on_commit_callbacks: Any, redis_client: Any
) -> None:
    """Fencing: the zombie's claim token no longer matches, so it cannot overwrite."""
    photo = _enqueued_photo(django_capture_on_commit_callbacks)
    zombie = photo_claim(photo_id=str(photo.pk))
    assert isinstance(zombie, Claim)
    Photo.objects.filter(pk=photo.pk).update(lease_owner="worker-gone")  # its heartbeats stop

    assert photo_analyze(photo_id=str(photo.pk), provider=FakeProvider()) == Outcome.DONE
    photo.refresh_from_db()
    winner = photo.analysis

    late = photo_store_done(
        claim=zombie,
        analysis={"items": [], "totals": {"items": 0, "volume_m3": 0.0}},
        room_type="garage",
    )

    assert late is False  # fenced
    photo.refresh_from_db()
    assert (photo.analysis, photo.status) == (winner, "DONE")


def test_a_redelivered_message_reuses_answers_already_paid_for(
    django_capture_on_commit_callbacks: Any, redis_client: Any
) -> None:
    """A worker paid for the answer (room and items, one call) and died before storing the
    result: the next one stores it without calling the provider again."""
    photo = _enqueued_photo(django_capture_on_commit_callbacks)
    counting = FakeProvider()
    first = photo_claim(photo_id=str(photo.pk))
    assert isinstance(first, Claim)
    engine = AiEngine([counting]).with_recorder(MetricRecorder(first.photo, {"originalBytes": 1}))
    paid = engine.analyze_photo(b"image", None)
    Photo.objects.filter(pk=photo.pk).update(lease_owner="worker-killed")  # then it was killed

    failing_if_called = FakeProvider(fail_rate=1.0, fail_code="BAD_INPUT")
    assert photo_analyze(photo_id=str(photo.pk), provider=failing_if_called) == Outcome.DONE

    photo.refresh_from_db()
    assert photo.status == "DONE" and photo.analysis is not None
    assert photo.room_type == paid.room_type  # the room came with the paid answer
    assert AiMetric.objects.filter(photo_id=photo.pk, success=True).count() == 1
    assert not AiMetric.objects.filter(photo_id=photo.pk, success=False).exists()
    # The answers live in their own table, one per operation of the run, not in the metrics.
    answers = ProviderAnswer.objects.filter(photo=photo, run=photo.run)
    assert list(answers.values_list("operation", flat=True)) == ["analyze_photo"]
    assert not AiMetric.objects.filter(photo_id=photo.pk, meta__has_key="answer").exists()


def test_a_photo_handed_back_after_a_database_failure_still_reuses_its_answers(
    django_capture_on_commit_callbacks: Any, redis_client: Any
) -> None:
    """Handing back does not spend the attempt (attempts go back to 0), so the next claim looks
    like a first one: the answers bought before the failure must be found all the same."""
    photo = _enqueued_photo(django_capture_on_commit_callbacks)
    first = photo_claim(photo_id=str(photo.pk))
    assert isinstance(first, Claim)
    engine = AiEngine([FakeProvider()]).with_recorder(MetricRecorder(first.photo, {}))
    engine.analyze_photo(b"image", None)
    photo_give_back(photo_id=photo.pk, token=first.token)  # then its database failed
    assert Photo.objects.get(pk=photo.pk).attempts == 0

    failing_if_called = FakeProvider(fail_rate=1.0, fail_code="BAD_INPUT")
    assert photo_analyze(photo_id=str(photo.pk), provider=failing_if_called) == Outcome.DONE

    photo.refresh_from_db()
    assert (photo.status, photo.attempts) == ("DONE", 1)
    assert AiMetric.objects.filter(photo_id=photo.pk, success=True).count() == 1
    assert not AiMetric.objects.filter(photo_id=photo.pk, success=False).exists()


def test_a_forced_reanalysis_pays_again(django_capture_on_commit_callbacks: Any) -> None:
    photo = _enqueued_photo(django_capture_on_commit_callbacks, room_type="kitchen")
    photo_analyze(photo_id=str(photo.pk), provider=FakeProvider())
    photo.refresh_from_db()
    photo_enqueue(photo=photo, force=True)

    assert photo_analyze(photo_id=str(photo.pk), provider=FakeProvider()) == Outcome.DONE
    assert AiMetric.objects.filter(photo_id=photo.pk, operation="analyze_photo").count() == 2
    assert ProviderAnswer.objects.filter(photo=photo, operation="analyze_photo").count() == 2


def test_processing_photo_with_expired_lease_is_finished_by_a_redelivered_message() -> None:
    photo = make_photo()
    Photo.objects.filter(pk=photo.pk).update(
        status=Photo.Status.PROCESSING,
        attempts=1,
        lease_expires_at=timezone.now() - timedelta(seconds=1),
    )

    assert photo_analyze(photo_id=str(photo.pk), provider=FakeProvider()) == Outcome.DONE
    photo.refresh_from_db()
    assert (photo.status, photo.attempts) == ("DONE", 2)

"""`manage.py requeue_failed`, called through `call_command` against PostgreSQL and Redis."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from photos.models import Photo, Project
from tests.factories import make_photo, make_project

pytestmark = pytest.mark.django_db


def _failed_photo(
    *,
    project: Project | None = None,
    code: str = "TIMEOUT",
    failed_at: datetime | None = None,
    attempts: int = 3,
) -> Photo:
    """A photo whose analysis ended in ERROR at `failed_at` (default: now)."""
    photo = make_photo(project=project)
    Photo.objects.filter(pk=photo.pk).update(
        status=Photo.Status.ERROR,
        error_code=code,
        error_message=f"fake provider: injected {code} failure",
        attempts=attempts,
        updated_at=failed_at or timezone.now(),
    )
    photo.refresh_from_db()
    return photo


def _requeue(capture: Any, *args: str) -> str:
    """Run the command, sending its on-commit messages; returns what it printed."""
    out = io.StringIO()
    with capture(execute=True):
        call_command("requeue_failed", *args, stdout=out, no_color=True)
    return out.getvalue()


def _statuses(*photos: Photo) -> list[str]:
    return [Photo.objects.get(pk=photo.pk).status for photo in photos]


def _queued_ids(photo_queue: Any) -> set[str]:
    return {message["args"][0] for message in photo_queue.all()}


def test_requeues_only_error_photos(
    django_capture_on_commit_callbacks: Any, photo_queue: Any
) -> None:
    project = make_project()
    failed = [_failed_photo(project=project), _failed_photo(project=project, code="NETWORK")]
    pending = make_photo(project=project)
    done = make_photo(project=project)
    Photo.objects.filter(pk=done.pk).update(status=Photo.Status.DONE)
    before = timezone.now()

    output = _requeue(django_capture_on_commit_callbacks)

    for photo in failed:
        photo.refresh_from_db()
        assert photo.status == Photo.Status.PENDING
        assert photo.queued_at is not None and photo.queued_at >= before
        assert photo.attempts == 0  # a fresh attempt budget
    assert _statuses(pending, done) == ["PENDING", "DONE"]
    assert Photo.objects.get(pk=pending.pk).queued_at is None
    messages = photo_queue.ready()
    assert len(messages) == 2
    assert sorted(m["args"][0] for m in messages) == sorted(str(p.pk) for p in failed)
    assert all(m["actor_name"] == "analyze_photo" for m in messages)
    assert f"re-enqueued {failed[0].pk} (TIMEOUT)" in output
    assert f"re-enqueued {failed[1].pk} (NETWORK)" in output
    assert output.splitlines()[-1] == "re-enqueued 2 photo(s), skipped 0"


def test_nothing_to_requeue_says_so(
    django_capture_on_commit_callbacks: Any, photo_queue: Any
) -> None:
    make_photo()

    output = _requeue(django_capture_on_commit_callbacks)

    assert output == "re-enqueued 0 photo(s), skipped 0\n"
    assert photo_queue.all() == []


def test_error_code_filter(django_capture_on_commit_callbacks: Any, photo_queue: Any) -> None:
    timeout = _failed_photo(code="TIMEOUT")
    bad_input = _failed_photo(code="BAD_INPUT")

    output = _requeue(django_capture_on_commit_callbacks, "--error-code", "TIMEOUT")

    assert _statuses(timeout, bad_input) == ["PENDING", "ERROR"]
    assert _queued_ids(photo_queue) == {str(timeout.pk)}
    assert "re-enqueued 1 photo(s), skipped 0" in output
    assert str(bad_input.pk) not in output


def test_unknown_error_code_is_refused() -> None:
    with pytest.raises(CommandError, match="invalid choice"):
        call_command("requeue_failed", "--error-code", "NOPE", stdout=io.StringIO())


def test_project_filter(django_capture_on_commit_callbacks: Any, photo_queue: Any) -> None:
    mine, other = make_project(), make_project()
    ours = [_failed_photo(project=mine), _failed_photo(project=mine)]
    theirs = _failed_photo(project=other)

    output = _requeue(django_capture_on_commit_callbacks, "--project", str(mine.pk))

    assert _statuses(*ours, theirs) == ["PENDING", "PENDING", "ERROR"]
    assert _queued_ids(photo_queue) == {str(p.pk) for p in ours}
    assert "re-enqueued 2 photo(s), skipped 0" in output


def test_project_that_is_not_a_uuid_is_a_command_error() -> None:
    # Passed unchecked to filter(project_id=...), it raised ValidationError with a traceback.
    with pytest.raises(CommandError, match="--project"):
        call_command("requeue_failed", "--project", "not-a-uuid", stdout=io.StringIO())


def test_since_relative(django_capture_on_commit_callbacks: Any, photo_queue: Any) -> None:
    recent = _failed_photo(failed_at=timezone.now() - timedelta(hours=2))
    old = _failed_photo(failed_at=timezone.now() - timedelta(days=3))

    output = _requeue(django_capture_on_commit_callbacks, "--since", "24h")

    assert _statuses(recent, old) == ["PENDING", "ERROR"]
    assert _queued_ids(photo_queue) == {str(recent.pk)}
    assert "re-enqueued 1 photo(s), skipped 0" in output


@pytest.mark.parametrize(
    ("since", "expected"),
    [("30m", ["PENDING", "ERROR", "ERROR"]), ("7d", ["PENDING", "PENDING", "PENDING"])],
)
def test_since_minutes_and_days(
    django_capture_on_commit_callbacks: Any, since: str, expected: list[str]
) -> None:
    now = timezone.now()
    photos = [
        _failed_photo(failed_at=now - timedelta(minutes=5)),
        _failed_photo(failed_at=now - timedelta(hours=1)),
        _failed_photo(failed_at=now - timedelta(days=6)),
    ]

    _requeue(django_capture_on_commit_callbacks, "--since", since)

    assert _statuses(*photos) == expected


def test_since_iso_date(django_capture_on_commit_callbacks: Any, photo_queue: Any) -> None:
    before = _failed_photo(failed_at=datetime(2024, 12, 31, 23, 59, tzinfo=UTC))
    after = _failed_photo(failed_at=datetime(2025, 1, 1, 0, 0, 1, tzinfo=UTC))
    latest = _failed_photo(failed_at=datetime(2025, 6, 1, tzinfo=UTC))

    output = _requeue(django_capture_on_commit_callbacks, "--since", "2025-01-01")

    assert _statuses(before, after, latest) == ["ERROR", "PENDING", "PENDING"]
    assert _queued_ids(photo_queue) == {str(after.pk), str(latest.pk)}
    assert "re-enqueued 2 photo(s), skipped 0" in output


def test_since_iso_datetime_with_zone(django_capture_on_commit_callbacks: Any) -> None:
    # 12:00+02:00 is 10:00 UTC.
    before = _failed_photo(failed_at=datetime(2025, 3, 1, 9, 59, tzinfo=UTC))
    after = _failed_photo(failed_at=datetime(2025, 3, 1, 10, 1, tzinfo=UTC))

    _requeue(django_capture_on_commit_callbacks, "--since", "2025-03-01T12:00:00+02:00")

    assert _statuses(before, after) == ["ERROR", "PENDING"]


@pytest.mark.parametrize("since", ["yesterday", "24", "5x", "h24", "-3d"])
def test_invalid_since_is_a_command_error(since: str, photo_queue: Any) -> None:
    photo = _failed_photo()

    with pytest.raises(CommandError, match="--since"):
        call_command("requeue_failed", f"--since={since}", stdout=io.StringIO())

    assert _statuses(photo) == ["ERROR"]
    assert photo_queue.all() == []


def test_impossible_since_date_is_a_command_error() -> None:
    # Django's parse_datetime raises ValueError for a well-formed impossible date.
    with pytest.raises(CommandError, match="--since"):
        call_command("requeue_failed", "--since", "2024-13-45", stdout=io.StringIO())


def test_limit_takes_the_oldest_failures_first(
    django_capture_on_commit_callbacks: Any, photo_queue: Any
) -> None:
    now = timezone.now()
    newest = _failed_photo(failed_at=now - timedelta(minutes=1))
    oldest = _failed_photo(failed_at=now - timedelta(hours=3))
    middle = _failed_photo(failed_at=now - timedelta(hours=2))

    output = _requeue(django_capture_on_commit_callbacks, "--limit", "2")

    assert _statuses(oldest, middle, newest) == ["PENDING", "PENDING", "ERROR"]
    assert _queued_ids(photo_queue) == {str(oldest.pk), str(middle.pk)}
    assert len(photo_queue.all()) == 2
    lines = output.splitlines()
    assert lines[:2] == [f"re-enqueued {oldest.pk} (TIMEOUT)", f"re-enqueued {middle.pk} (TIMEOUT)"]
    assert lines[-1] == "re-enqueued 2 photo(s), skipped 0"


@pytest.mark.parametrize("limit", ["0", "-1"])
def test_limit_below_one_is_a_command_error(limit: str, photo_queue: Any) -> None:
    photo = _failed_photo()

    with pytest.raises(CommandError, match="--limit must be at least 1"):
        call_command("requeue_failed", f"--limit={limit}", stdout=io.StringIO())

    assert _statuses(photo) == ["ERROR"]
    assert photo_queue.all() == []


def test_dry_run_prints_and_changes_nothing(
    django_capture_on_commit_callbacks: Any, photo_queue: Any
) -> None:
    now = timezone.now()
    first = _failed_photo(code="PROVIDER_DOWN", failed_at=now - timedelta(minutes=2))
    second = _failed_photo(code="TIMEOUT", failed_at=now - timedelta(minutes=1))
    updated_at = {p.pk: p.updated_at for p in (first, second)}

    output = _requeue(django_capture_on_commit_callbacks, "--dry-run")

    assert output.splitlines() == [
        f"would re-enqueue {first.pk} (PROVIDER_DOWN)",
        f"would re-enqueue {second.pk} (TIMEOUT)",
        "error code     found  would re-enqueue  skipped",
        "PROVIDER_DOWN      1                 1        0",
        "TIMEOUT            1                 1        0",
        "total              2                 2        0",
        "would re-enqueue 2 photo(s), skipped 0",
    ]
    for photo in (first, second):
        photo.refresh_from_db()
        assert (photo.status, photo.queued_at, photo.attempts) == ("ERROR", None, 3)
        assert photo.updated_at == updated_at[photo.pk]
    assert photo_queue.all() == []


def test_filters_combine(django_capture_on_commit_callbacks: Any, photo_queue: Any) -> None:
    now = timezone.now()
    mine, other = make_project(), make_project()
    match_old = _failed_photo(project=mine, failed_at=now - timedelta(hours=5))
    match_new = _failed_photo(project=mine, failed_at=now - timedelta(hours=1))
    wrong_code = _failed_photo(project=mine, code="BAD_INPUT")
    too_old = _failed_photo(project=mine, failed_at=now - timedelta(days=2))
    wrong_project = _failed_photo(project=other)

    output = _requeue(
        django_capture_on_commit_callbacks,
        "--project",
        str(mine.pk),
        "--error-code",
        "TIMEOUT",
        "--since",
        "24h",
        "--limit",
        "1",
    )

    assert _statuses(match_old, match_new, wrong_code, too_old, wrong_project) == [
        "PENDING",
        "ERROR",
        "ERROR",
        "ERROR",
        "ERROR",
    ]
    assert _queued_ids(photo_queue) == {str(match_old.pk)}
    assert output.splitlines()[-1] == "re-enqueued 1 photo(s), skipped 0"


def test_a_photo_already_owed_a_message_is_skipped(
    django_capture_on_commit_callbacks: Any, photo_queue: Any
) -> None:
    # An ERROR row that still carries `queued_at` (a message is owed already): no second one.
    photo = _failed_photo()
    Photo.objects.filter(pk=photo.pk).update(queued_at=timezone.now())

    output = _requeue(django_capture_on_commit_callbacks)

    assert f"skipped {photo.pk}: already_queued" in output
    assert output.splitlines()[-1] == "re-enqueued 0 photo(s), skipped 1"
    assert photo_queue.all() == []


def test_non_retryable_errors_need_force(
    django_capture_on_commit_callbacks: Any, photo_queue: Any
) -> None:
    timeout = _failed_photo(code="TIMEOUT")
    bad_input = _failed_photo(code="BAD_INPUT")
    unknown = _failed_photo(code="UNKNOWN")

    output = _requeue(django_capture_on_commit_callbacks)

    assert _statuses(timeout, bad_input, unknown) == ["PENDING", "ERROR", "ERROR"]
    assert output.splitlines()[-1] == "re-enqueued 1 photo(s), skipped 0"

    output = _requeue(django_capture_on_commit_callbacks, "--force")

    assert _statuses(bad_input, unknown) == ["PENDING", "PENDING"]
    assert _queued_ids(photo_queue) == {str(p.pk) for p in (timeout, bad_input, unknown)}
    assert "BAD_INPUT       1            1        0" in output
    assert output.splitlines()[-1] == "re-enqueued 2 photo(s), skipped 0"


def test_long_runs_draw_a_progress_bar_on_stderr(
    django_capture_on_commit_callbacks: Any,
) -> None:
    project = make_project()
    for _ in range(25):
        _failed_photo(project=project)
    stdout, stderr = io.StringIO(), io.StringIO()

    with django_capture_on_commit_callbacks(execute=True):
        call_command("requeue_failed", stdout=stdout, stderr=stderr)

    assert "[" + "#" * 30 + "] 25/25" in stderr.getvalue()
    assert "25/25" not in stdout.getvalue()
    assert stdout.getvalue().splitlines()[-1] == "re-enqueued 25 photo(s), skipped 0"

"""photos/api/fast.py answers token requests for polling and enqueueing without DRF: its answers
must be the DRF views' (which still answer session requests and everything unusual), and
everything it does not handle must still get DRF's answer.

Which path answered is visible: the fast path returns a plain HttpResponse, DRF a `Response`.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from django.http import HttpResponse
from rest_framework.response import Response
from rest_framework.test import APIClient

from photos.models import Photo
from tests.factories import make_photo, make_project, make_token

pytestmark = pytest.mark.django_db

ANALYSIS = {
    "roomType": "dining_room",
    "items": [{"name": "Table à manger", "quantity": 1, "volumeM3": 1.2, "note": "chêne, 8 pers."}],
    "confidence": 0.91,
}


def _session_client(user: Any) -> APIClient:
    client = APIClient()
    client.force_login(user)
    return client


def _photo_in_state(project: Any, state: str) -> Photo:
    photo = make_photo(project=project, room_type="kitchen" if state != "PENDING" else None)
    changes: dict[str, Any] = {"status": state}
    if state == "DONE":
        changes |= {
            "analysis": ANALYSIS,
            "processed_at": datetime(2026, 3, 29, 1, 30, 0, 0, tzinfo=UTC),
            "items_count": 1,
        }
    if state == "ERROR":
        changes |= {
            "error_code": "TIMEOUT",
            "error_message": "The provider did not answer.",
            "attempts": 3,
        }
    if state == "PROCESSING":
        changes |= {"attempts": 1}
    Photo.objects.filter(pk=photo.pk).update(**changes)
    return photo


@pytest.mark.parametrize("state", ["PENDING", "PROCESSING", "DONE", "ERROR"])
def test_polling_with_a_token_answers_what_the_drf_view_answers(
    api: APIClient, user: Any, state: str, django_assert_num_queries: Any
) -> None:
    photo = _photo_in_state(make_project(owner=user), state)

    with django_assert_num_queries(1):
        fast = api.get(f"/api/photos/{photo.pk}")
    slow = _session_client(user).get(f"/api/photos/{photo.pk}")

    assert type(fast) is HttpResponse
    assert isinstance(slow, Response)
    assert fast.status_code == slow.status_code == 200
    assert fast.content == slow.content
    assert fast["Content-Type"] == slow["Content-Type"]
    assert fast["Allow"] == slow["Allow"]
    assert json.loads(fast.content)["photo"]["status"] == state


def test_polling_of_a_photo_with_microsecond_free_times_matches_too(
    api: APIClient, user: Any
) -> None:
    photo = make_photo(project=make_project(owner=user))
    whole_second = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    Photo.objects.filter(pk=photo.pk).update(created_at=whole_second, processed_at=whole_second)

    fast = api.get(f"/api/photos/{photo.pk}")
    slow = _session_client(user).get(f"/api/photos/{photo.pk}")

    assert fast.content == slow.content
    assert json.loads(fast.content)["photo"]["createdAt"] == "2026-01-01T12:00:00Z"


def test_polling_someone_elses_photo_or_with_a_bad_token_gets_drfs_errors(user: Any) -> None:
    others = make_photo()
    mine = make_photo(project=make_project(owner=user))
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {make_token(user)}")
    wrong = APIClient()
    wrong.credentials(HTTP_AUTHORIZATION="Token not-a-key")

    missing = api.get(f"/api/photos/{others.pk}")
    unknown = api.get(f"/api/photos/{uuid.uuid4()}")
    refused = wrong.get(f"/api/photos/{mine.pk}")

    assert (missing.status_code, missing.json()) == (404, {"error": "No such photo."})
    assert (unknown.status_code, unknown.json()) == (404, {"error": "No such photo."})
    assert refused.status_code == 401
    assert refused["WWW-Authenticate"] == "Token"


def test_an_inactive_users_token_is_refused_on_both_hot_paths(user: Any) -> None:
    photo = make_photo(project=make_project(owner=user))
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {make_token(user)}")
    user.is_active = False
    user.save(update_fields=["is_active"])

    poll = api.get(f"/api/photos/{photo.pk}")
    enqueue = api.post("/api/photos/enqueue", {"photoId": str(photo.pk)}, format="json")

    assert poll.status_code == enqueue.status_code == 401
    assert Photo.objects.get(pk=photo.pk).queued_at is None


def _without_ids(response: Any) -> dict[str, Any]:
    body = json.loads(response.content)
    return {key: value for key, value in body.items() if key not in ("jobId", "photoId")}


@pytest.mark.parametrize(
    ("state", "request_body", "expected"),
    [
        ("PENDING", {}, "enqueued"),
        ("ERROR", {"roomType": "bedroom"}, "enqueued"),
        ("DONE", {}, "already_done"),
        ("DONE", {"force": True}, "enqueued"),
        ("PROCESSING", {"userId": "legacy-client"}, "already_processing"),
    ],
)
def test_enqueue_with_a_token_answers_what_the_drf_view_answers(
    api: APIClient,
    user: Any,
    django_capture_on_commit_callbacks: Any,
    state: str,
    request_body: dict[str, Any],
    expected: str,
) -> None:
    project = make_project(owner=user)
    by_token, by_session = _photo_in_state(project, state), _photo_in_state(project, state)

    with django_capture_on_commit_callbacks(execute=True) as sent:
        fast = api.post(
            "/api/photos/enqueue", {"photoId": str(by_token.pk), **request_body}, format="json"
        )
        slow = _session_client(user).post(
            "/api/photos/enqueue", {"photoId": str(by_session.pk), **request_body}, format="json"
        )

    assert type(fast) is HttpResponse
    assert isinstance(slow, Response)
    assert fast.status_code == slow.status_code == 202
    assert _without_ids(fast) == _without_ids(slow)
    assert json.loads(fast.content) == {
        "success": True,
        "status": expected,
        "jobId": f"photo-{by_token.pk}",
        "photoId": str(by_token.pk),
        "queuePosition": json.loads(slow.content)["queuePosition"],
    }
    assert fast["Content-Type"] == slow["Content-Type"]
    assert len(sent) == (2 if expected == "enqueued" else 0)
    by_token.refresh_from_db()
    by_session.refresh_from_db()
    assert (by_token.status, by_token.room_type, by_token.queued_at is not None) == (
        by_session.status,
        by_session.room_type,
        by_session.queued_at is not None,
    )


def test_enqueue_of_someone_elses_photo_is_the_same_404_on_both_paths(user: Any) -> None:
    others = make_photo()
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {make_token(user)}")

    fast = api.post("/api/photos/enqueue", {"photoId": str(others.pk)}, format="json")
    slow = _session_client(user).post(
        "/api/photos/enqueue", {"photoId": str(others.pk)}, format="json"
    )

    assert type(fast) is HttpResponse
    assert fast.status_code == slow.status_code == 404
    assert fast.content == slow.content
    assert Photo.objects.get(pk=others.pk).queued_at is None


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"photoId": "not-a-uuid"}, 400),
        ({"photoId": 12}, 404),  # DRF's UUIDField reads an integer as UUID(int=12)
        ({"roomType": "kitchen"}, 400),
        ("PHOTO", 400),  # a JSON string, not an object
        ({"PHOTO": True, "roomType": {"nested": 1}}, 400),
        ({"PHOTO": True, "roomType": "garage-ish"}, 400),
        ({"PHOTO": True, "force": "yes"}, 202),  # DRF's BooleanField reads "yes"
        ({"PHOTO": True, "extra": 1}, 202),  # unknown fields are ignored by DRF
    ],
)
def test_what_the_fast_path_does_not_handle_gets_drfs_answer(
    api: APIClient,
    user: Any,
    django_capture_on_commit_callbacks: Any,
    body: Any,
    status: int,
) -> None:
    photo = make_photo(project=make_project(owner=user))
    if isinstance(body, dict) and body.pop("PHOTO", False):
        body["photoId"] = str(photo.pk)

    with django_capture_on_commit_callbacks(execute=True):
        response = api.post("/api/photos/enqueue", body, format="json")

    assert isinstance(response, Response)
    assert response.status_code == status, response.content
    if status >= 400:
        assert "error" in response.json()
        assert Photo.objects.get(pk=photo.pk).queued_at is None


def test_a_form_body_or_a_session_still_goes_through_drf(
    api: APIClient, user: Any, django_capture_on_commit_callbacks: Any
) -> None:
    photo = make_photo(project=make_project(owner=user))

    with django_capture_on_commit_callbacks(execute=True):
        response = api.post("/api/photos/enqueue", {"photoId": str(photo.pk)}, format="multipart")

    assert isinstance(response, Response)
    assert response.status_code == 202
    assert response.json()["status"] == "enqueued"


def test_a_poll_with_a_query_string_or_html_accept_goes_through_drf(
    api: APIClient, user: Any
) -> None:
    photo = make_photo(project=make_project(owner=user))

    with_query = api.get(f"/api/photos/{photo.pk}?fields=all")
    html_only = api.get(f"/api/photos/{photo.pk}", HTTP_ACCEPT="text/html")

    assert isinstance(with_query, Response)
    assert with_query.status_code == 200
    assert isinstance(html_only, Response)
    assert html_only.status_code == 406


def test_enqueue_with_an_unknown_token_is_401_and_changes_nothing(user: Any) -> None:
    photo = make_photo(project=make_project(owner=user))
    wrong = APIClient()
    wrong.credentials(HTTP_AUTHORIZATION="Token 0123456789abcdef0123456789abcdef01234567")

    response = wrong.post("/api/photos/enqueue", {"photoId": str(photo.pk)}, format="json")

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"
    assert Photo.objects.get(pk=photo.pk).queued_at is None


def test_the_throttle_counts_a_token_under_a_digest_never_the_token_itself(
    api: APIClient, user: Any, redis_client: Any, django_capture_on_commit_callbacks: Any
) -> None:
    photo = make_photo(project=make_project(owner=user))
    key = make_token(user)

    with django_capture_on_commit_callbacks(execute=True):
        response = api.post("/api/photos/enqueue", {"photoId": str(photo.pk)}, format="json")

    assert response.status_code == 202
    counters = [name.decode() for name in redis_client.scan_iter(match="*throttle:enqueue:*")]
    assert any(":token:" in name for name in counters)
    assert not any(key in name for name in counters)

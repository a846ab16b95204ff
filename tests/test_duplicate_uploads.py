"""Duplicate uploads are not paid again: a photo whose stored bytes, model, prompt version and room
type match a photo already DONE in its project takes that photo's answer, with no provider call,
and says so (`analysis.reusedFrom`, a counter on the AI dashboard). A forced enqueue always pays.
Through the real Anthropic SDK against the fake AI server."""

from __future__ import annotations

import html
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client
from rest_framework.test import APIClient

from ai_engine.anthropic_provider import AnthropicProvider
from ai_engine.engine import AiEngine
from aimetrics.models import AiMetric, AnswerReuse
from photos.lifecycle import photo_enqueue
from photos.models import Photo, Project
from photos.services.analysis import Outcome, photo_analyze
from photos.services.uploads import photo_create
from tests.factories import image_bytes, make_project, make_user
from tests.fakeai import HAIKU_DATED, SONNET, FakeAiServer, running_fake_ai

pytestmark = pytest.mark.django_db

IMAGE = image_bytes(seed=11)


@pytest.fixture
def fake_ai() -> Iterator[FakeAiServer]:
    with running_fake_ai() as server:
        yield server


@pytest.fixture
def engine(fake_ai: FakeAiServer) -> AiEngine:
    return AiEngine(
        [AnthropicProvider(api_key="k", model=SONNET, timeout_s=5, base_url=fake_ai.url)]
    )


def _uploaded(capture: Any, project: Project, data: bytes = IMAGE, **kwargs: Any) -> Photo:
    with capture(execute=True):
        photo, _ = photo_create(project=project, data=data, enqueue=True, **kwargs)
    return photo


def _analysed(capture: Any, photo: Photo, engine: AiEngine) -> Photo:
    with capture(execute=True):
        assert photo_analyze(photo_id=str(photo.pk), engine=engine) == Outcome.DONE
    photo.refresh_from_db()
    return photo


def test_the_same_bytes_twice_in_a_project_are_paid_once(
    fake_ai: FakeAiServer, engine: AiEngine, django_capture_on_commit_callbacks: Any
) -> None:
    capture = django_capture_on_commit_callbacks
    project = make_project()
    first = _analysed(capture, _uploaded(capture, project), engine)
    assert len(fake_ai.requests) == 1

    again = _uploaded(capture, project)  # a phone app retried the upload
    assert again.status == Photo.Status.PENDING
    again = _analysed(capture, again, engine)

    assert len(fake_ai.requests) == 1  # no provider call
    assert again.status == Photo.Status.DONE and again.attempts == 1  # claimed, then DONE
    assert first.analysis is not None and again.analysis is not None
    assert again.analysis["reusedFrom"] == str(first.pk)
    assert again.analysis["items"] == first.analysis["items"]
    assert (again.room_type, again.items_count) == (first.room_type, first.items_count)
    assert not AiMetric.objects.filter(photo_id=again.pk).exists()
    paid = AiMetric.objects.get(photo_id=first.pk).cost_usd
    [reuse] = AnswerReuse.objects.all()
    assert (reuse.photo_id, reuse.reused_from, reuse.saved_usd) == (again.pk, first.pk, paid)
    assert paid > 0


def test_the_api_shows_whose_answer_was_reused(
    engine: AiEngine, django_capture_on_commit_callbacks: Any
) -> None:
    capture = django_capture_on_commit_callbacks
    owner = make_user()
    project = make_project(owner=owner)
    first = _analysed(capture, _uploaded(capture, project), engine)
    again = _analysed(capture, _uploaded(capture, project), engine)
    api = APIClient()
    api.force_authenticate(owner)

    body = api.get(f"/api/photos/{again.pk}").json()["photo"]

    assert body["status"] == "DONE"
    assert body["analysis"]["reusedFrom"] == str(first.pk)
    assert "reusedFrom" not in api.get(f"/api/photos/{first.pk}").json()["photo"]["analysis"]


def test_a_third_copy_names_the_photo_that_paid(
    engine: AiEngine, django_capture_on_commit_callbacks: Any
) -> None:
    capture = django_capture_on_commit_callbacks
    project = make_project()
    first = _analysed(capture, _uploaded(capture, project), engine)
    _analysed(capture, _uploaded(capture, project), engine)
    third = _analysed(capture, _uploaded(capture, project), engine)

    assert third.analysis is not None and third.analysis["reusedFrom"] == str(first.pk)


def test_a_forced_enqueue_always_pays(
    fake_ai: FakeAiServer, engine: AiEngine, django_capture_on_commit_callbacks: Any
) -> None:
    capture = django_capture_on_commit_callbacks
    project = make_project()
    _analysed(capture, _uploaded(capture, project), engine)
    again = _analysed(capture, _uploaded(capture, project), engine)
    assert len(fake_ai.requests) == 1

    with capture(execute=True):
        photo_enqueue(photo=again, force=True)
    again = _analysed(capture, again, engine)

    assert len(fake_ai.requests) == 2
    assert again.analysis is not None and "reusedFrom" not in again.analysis
    assert AiMetric.objects.filter(photo_id=again.pk, success=True).count() == 1


@pytest.mark.parametrize(
    "change",
    ["another project", "other bytes", "a room type", "another model"],
)
def test_what_is_not_identical_is_paid_again(
    change: str,
    fake_ai: FakeAiServer,
    engine: AiEngine,
    django_capture_on_commit_callbacks: Any,
) -> None:
    capture = django_capture_on_commit_callbacks
    project = make_project()
    _analysed(capture, _uploaded(capture, project), engine)
    kwargs: dict[str, Any] = {}
    if change == "another project":
        project = make_project()
    elif change == "other bytes":
        kwargs["data"] = image_bytes(seed=12)
    elif change == "a room type":
        kwargs["room_type"] = "kitchen"
    elif change == "another model":
        provider = engine.providers[0]
        engine = AiEngine(
            [AnthropicProvider(api_key="k", model=HAIKU_DATED, timeout_s=5,
                               base_url=fake_ai.url)]
        )  # fmt: skip
        assert provider.model != HAIKU_DATED

    again = _analysed(capture, _uploaded(capture, project, **kwargs), engine)

    assert len(fake_ai.requests) == 2
    assert again.analysis is not None and "reusedFrom" not in again.analysis
    assert not AnswerReuse.objects.exists()


def test_the_dashboard_counts_the_reused_answers(
    engine: AiEngine, django_capture_on_commit_callbacks: Any
) -> None:
    capture = django_capture_on_commit_callbacks
    project = make_project()
    _analysed(capture, _uploaded(capture, project), engine)
    _analysed(capture, _uploaded(capture, project), engine)
    _analysed(capture, _uploaded(capture, project), engine)
    saved = sum(r.saved_usd for r in AnswerReuse.objects.all())
    assert saved > Decimal("0")
    client = Client()
    client.force_login(make_user(staff=True))

    page = html.unescape(client.get("/admin/aimetrics/dashboard/").content.decode())

    assert "Reused answers (identical images)<strong>2 · $" in page
    assert f"${saved} saved" in page

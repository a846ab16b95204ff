"""Project priority: who may set it (staff, in the admin or through the API with a staff token),
and where its photos' messages go (the high-priority queue, whoever sends them)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from ai_engine.engine import AiEngine
from ai_engine.fake import FakeProvider
from ai_engine.quota import Cost, QuotaLimiter, Slot, quotas_parse
from infra.broker import PHOTO_HIGH_QUEUE
from operations.relay import relay_once
from photos.lifecycle import photo_enqueue
from photos.models import Photo, Project
from photos.services.analysis import Outcome, photo_analyze
from tests.conftest import Queue, flush_namespace
from tests.factories import make_photo, make_project, make_token, make_user

pytestmark = pytest.mark.django_db


def _api(*, staff: bool) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {make_token(make_user(staff=staff))}")
    return client


def test_a_staff_token_creates_a_high_priority_project() -> None:
    api = _api(staff=True)
    created = api.post("/api/projects", {"name": "Premium", "priority": "high"}, format="json")
    assert created.status_code == 201, created.content
    assert created.json()["priority"] == "high"
    shown = api.get(f"/api/projects/{created.json()['id']}")
    assert shown.json()["priority"] == "high"
    assert Project.objects.get(pk=created.json()["id"]).priority == Project.Priority.HIGH


def test_a_customer_token_cannot_ask_for_high_priority_and_nothing_is_created() -> None:
    api = _api(staff=False)
    denied = api.post("/api/projects", {"name": "Me first", "priority": "high"}, format="json")
    assert denied.status_code == 403
    assert denied.json() == {"error": "Only staff accounts can create a high-priority project."}
    assert not Project.objects.exists()
    # Normal, said or not, is everyone's; anything else is a 400 naming the field.
    for body in ({"name": "Flat"}, {"name": "Flat", "priority": "normal"}):
        created = api.post("/api/projects", body, format="json")
        assert created.status_code == 201 and created.json()["priority"] == "normal"
    wrong = api.post("/api/projects", {"name": "Flat", "priority": "urgent"}, format="json")
    assert wrong.status_code == 400 and wrong.json()["error"].startswith("priority: ")
    assert Project.objects.count() == 2


def test_staff_set_the_priority_in_the_admin_and_filter_on_it(user: Any) -> None:
    staff = make_user(staff=True, is_superuser=True)
    client = Client()
    client.force_login(staff)
    project = make_project(owner=user, name="Agency")
    page = client.get(f"/admin/photos/project/{project.pk}/change/")
    assert page.status_code == 200 and b'name="priority"' in page.content
    saved = client.post(
        f"/admin/photos/project/{project.pk}/change/",
        {"name": "Agency", "owner": user.pk, "priority": "high"},
    )
    assert saved.status_code == 302, saved.content[:2000]
    project.refresh_from_db()
    assert project.priority == Project.Priority.HIGH
    listed = client.get("/admin/photos/project/?priority__exact=high")
    assert listed.status_code == 200 and b"Agency" in listed.content
    assert b"Agency" not in client.get("/admin/photos/project/?priority__exact=normal").content


def _high_photo() -> Photo:
    project = make_project(name="Premium")
    Project.objects.filter(pk=project.pk).update(priority=Project.Priority.HIGH)
    return make_photo(project=Project.objects.get(pk=project.pk))


def test_a_high_priority_projects_photos_go_to_the_high_queue(
    redis_client: Any, photo_queue: Queue, django_capture_on_commit_callbacks: Any
) -> None:
    high_queue = Queue(redis_client, PHOTO_HIGH_QUEUE)
    high, normal = _high_photo(), make_photo()
    with django_capture_on_commit_callbacks(execute=True):
        photo_enqueue(photo=high)
        photo_enqueue(photo=normal)
    assert [m["args"] for m in high_queue.ready()] == [[str(high.pk)]]
    assert [m["args"] for m in photo_queue.ready()] == [[str(normal.pk)]]

    # Redis lost them: the relay sends each again to its own queue.
    flush_namespace(redis_client)
    Photo.objects.update(queued_at=timezone.now() - timedelta(minutes=1))
    with django_capture_on_commit_callbacks(execute=True):
        assert relay_once()[0] == 2
    assert [m["args"] for m in high_queue.ready()] == [[str(high.pk)]]
    assert [m["args"] for m in photo_queue.ready()] == [[str(normal.pk)]]


def test_a_deferred_high_priority_photo_stays_in_the_high_queue(
    redis_client: Any, django_capture_on_commit_callbacks: Any
) -> None:
    high_queue = Queue(redis_client, PHOTO_HIGH_QUEUE)
    photo = _high_photo()
    with django_capture_on_commit_callbacks(execute=True):
        photo_enqueue(photo=photo)
    flush_namespace(redis_client)  # only the deferral's message will be there
    limiter = QuotaLimiter(
        redis_client,
        prefix=f"{settings.DRAMATIQ_NAMESPACE}:moverz:quota",
        quotas=quotas_parse({"fake": {"concurrency": 1}}),
        ttl_ms=60_000,
    )
    provider = FakeProvider()
    busy = limiter.acquire(provider="fake", model=provider.model, tenant="other", cost=Cost())
    assert isinstance(busy, Slot)  # the one slot is taken

    engine = AiEngine([provider], quota=limiter)
    assert photo_analyze(photo_id=str(photo.pk), engine=engine) == Outcome.DEFERRED

    [message] = high_queue.delayed()
    assert message["args"] == [str(photo.pk)] and message["kwargs"] == {"booked": True}

"""The relay (stuck photos), the queues admin page, dead letters and the operator commands."""

from __future__ import annotations

import io
import threading
from datetime import timedelta
from typing import Any

import dramatiq
import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import Client
from django.utils import timezone

from infra.broker import heartbeats_key
from inventory.models import InventorySnapshot
from inventory.tasks import sync_inventory
from operations.deadletters import dead_letter_purge, dead_letter_replay, dead_letters
from operations.workers import worker_heartbeats, worker_register
from photos.lifecycle import photo_enqueue
from photos.models import Photo
from photos.services.relay import photo_relay, photos_stuck
from tests.factories import make_photo, make_project, make_user, store_analysis

pytestmark = pytest.mark.django_db


def _owed(photo: Photo, *, seconds_ago: int = 120) -> None:
    """The photo is owed a message since `seconds_ago`, but Redis has none (e.g. it restarted)."""
    Photo.objects.filter(pk=photo.pk).update(
        queued_at=timezone.now() - timedelta(seconds=seconds_ago)
    )


def _expired_lease(photo: Photo, *, owner: str = "worker-gone") -> None:
    """Claimed a while ago by a worker that has stopped sending heartbeats."""
    Photo.objects.filter(pk=photo.pk).update(
        status=Photo.Status.PROCESSING,
        lease_owner=owner,
        lease_expires_at=timezone.now() - timedelta(seconds=5),
        updated_at=timezone.now() - timedelta(minutes=2),
        attempts=1,
    )


def test_a_processing_photo_is_stuck_only_when_its_worker_is_gone(redis_client: Any) -> None:
    alive, gone = make_photo(), make_photo()
    now = timezone.now()
    for photo, owner in ((alive, "worker-alive"), (gone, "worker-gone")):
        Photo.objects.filter(pk=photo.pk).update(
            status=Photo.Status.PROCESSING,
            lease_owner=owner,
            lease_expires_at=now + timedelta(minutes=1),  # leases still running
            updated_at=now - timedelta(minutes=2),
        )
    redis_client.zadd(heartbeats_key(), {"worker-alive": now.timestamp() * 1000})

    assert [p.id for p in photos_stuck(client=redis_client)] == [str(gone.pk)]


def test_stuck_photos_are_owed_ones_without_a_live_message(
    redis_client: Any, django_capture_on_commit_callbacks: Any
) -> None:
    lost = make_photo()
    _owed(lost)
    fresh = make_photo()
    _owed(fresh, seconds_ago=1)  # inside the grace period: its message may be on its way
    dead_worker = make_photo()
    _expired_lease(dead_worker)
    queued = make_photo()
    with django_capture_on_commit_callbacks(execute=True):
        photo_enqueue(photo=queued)
    _owed(queued)  # old, but its message is in Redis
    make_photo()  # uploaded, never enqueued: owed nothing

    stuck = photos_stuck(client=redis_client)

    assert {p.id for p in stuck} == {str(lost.pk), str(dead_worker.pk)}


def test_relay_sends_one_message_per_stuck_photo(
    redis_client: Any, photo_queue: Any, django_capture_on_commit_callbacks: Any
) -> None:
    photo = make_photo()
    _owed(photo)
    [stuck] = photos_stuck(client=redis_client)

    with django_capture_on_commit_callbacks(execute=True):
        assert photo_relay(photo=stuck) is True
        assert photo_relay(photo=stuck) is False  # the same snapshot again: already taken

    assert [m["args"] for m in photo_queue.ready()] == [[str(photo.pk)]]
    assert photos_stuck(client=redis_client) == []


@pytest.mark.django_db(transaction=True)
def test_two_relays_at_once_send_one_message(redis_client: Any, photo_queue: Any) -> None:
    photos = [make_photo() for _ in range(10)]
    for photo in photos:
        _owed(photo)
    barrier = threading.Barrier(2)
    sent: list[int] = []

    def relay() -> None:
        try:
            found = photos_stuck(client=redis_client)
            barrier.wait()
            sent.append(sum(photo_relay(photo=p) for p in found))
        finally:
            connection.close()

    threads = [threading.Thread(target=relay) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sum(sent) == 10
    assert sorted(m["args"][0] for m in photo_queue.ready()) == sorted(str(p.pk) for p in photos)


def test_requeue_stuck_command(
    redis_client: Any, photo_queue: Any, django_capture_on_commit_callbacks: Any
) -> None:
    pending, processing = make_photo(), make_photo()
    _owed(pending)
    _expired_lease(processing)

    dry = io.StringIO()
    call_command("requeue_stuck", "--dry-run", stdout=dry)
    assert photo_queue.all() == []
    assert dry.getvalue().splitlines()[-1] == "would re-enqueue 2 stuck photo(s), skipped 0"

    out = io.StringIO()
    with django_capture_on_commit_callbacks(execute=True):
        call_command("requeue_stuck", stdout=out)

    lines = out.getvalue().splitlines()
    assert f"re-enqueued {pending.pk} (PENDING)" in lines
    assert f"re-enqueued {processing.pk} (PROCESSING)" in lines
    assert lines[-1] == "re-enqueued 2 stuck photo(s), skipped 0"
    assert len(photo_queue.ready()) == 2

    again = io.StringIO()
    call_command("requeue_stuck", stdout=again)
    assert again.getvalue() == "re-enqueued 0 stuck photo(s), skipped 0\n"


def test_requeue_stuck_grace_and_limit(redis_client: Any, photo_queue: Any) -> None:
    photos = [make_photo() for _ in range(3)]
    for photo in photos:
        _owed(photo, seconds_ago=10)

    out = io.StringIO()
    call_command("requeue_stuck", "--dry-run", stdout=out)  # default grace 30 s
    assert out.getvalue().splitlines()[-1] == "would re-enqueue 0 stuck photo(s), skipped 0"

    out = io.StringIO()
    call_command("requeue_stuck", "--dry-run", "--grace", "5", "--limit", "2", stdout=out)
    assert out.getvalue().splitlines()[-1] == "would re-enqueue 2 stuck photo(s), skipped 0"

    with pytest.raises(CommandError):
        call_command("requeue_stuck", "--limit", "0", stdout=io.StringIO())
    with pytest.raises(CommandError):
        call_command("requeue_stuck", "--grace", "-1", stdout=io.StringIO())


def _done_photo(project: Any) -> Photo:
    photo = make_photo(project=project)
    # The inventory counts the analysis' items: three boxes the catalogue lacks, 1.25 m³ in all.
    item = {"key": "other", "name": "box", "category": "box", "quantity": 3, "volume_m3": 1.25}
    return store_analysis(
        photo,
        {"items": [item]},
        status=Photo.Status.DONE,
        items_count=3,
        volume_m3="1.25",
        room_type="kitchen",
    )


def test_sync_inventory_for_one_project_and_all(inventory_queue: Any) -> None:
    first, second, empty = make_project(), make_project(), make_project()
    _done_photo(first)
    _done_photo(first)
    _done_photo(second)

    out = io.StringIO()
    call_command("sync_inventory", "--project", str(first.pk), stdout=out)
    assert f"synced {first.pk}: 2 photo(s), 6 item(s), 2.50 m³" in out.getvalue()
    assert InventorySnapshot.objects.filter(project=first).count() == 1

    out = io.StringIO()
    call_command("sync_inventory", "--all", stdout=out)
    assert out.getvalue().splitlines()[-1] == "2 project(s)"
    assert InventorySnapshot.objects.filter(project=first).count() == 2
    assert InventorySnapshot.objects.filter(project=second).count() == 1
    assert not InventorySnapshot.objects.filter(project=empty).exists()
    assert inventory_queue.all() == []


def test_sync_inventory_dry_run_enqueue_and_errors(
    inventory_queue: Any, django_capture_on_commit_callbacks: Any
) -> None:
    project = make_project()
    _done_photo(project)

    out = io.StringIO()
    call_command("sync_inventory", "--all", "--dry-run", stdout=out)
    assert f"would sync {project.pk}" in out.getvalue()
    assert not InventorySnapshot.objects.exists()

    out = io.StringIO()
    with django_capture_on_commit_callbacks(execute=True):
        call_command("sync_inventory", "--project", str(project.pk), "--enqueue", stdout=out)
    assert f"queued: {project.pk}" in out.getvalue()
    assert [m["args"] for m in inventory_queue.all()] == [[str(project.pk)]]

    with pytest.raises(CommandError, match="not a project id"):
        call_command("sync_inventory", "--project", "nope", stdout=io.StringIO())
    with pytest.raises(CommandError, match="no project"):
        call_command(
            "sync_inventory",
            "--project",
            "00000000-0000-0000-0000-000000000000",
            stdout=io.StringIO(),
        )
    with pytest.raises(CommandError):
        call_command("sync_inventory", stdout=io.StringIO())


def _dead_letter(project_id: str) -> None:
    """A real dead letter: sent, taken by a consumer, and nacked (what a worker does when an
    actor's retries are spent)."""
    broker = dramatiq.get_broker()
    sync_inventory.send(project_id)
    consumer = broker.consume("inventory-sync", timeout=1000)
    message = next(iter(consumer))
    assert message is not None
    consumer.nack(message)
    consumer.close()


def test_dead_letters_list_replay_and_purge(redis_client: Any, inventory_queue: Any) -> None:
    _dead_letter("11111111-1111-1111-1111-111111111111")
    _dead_letter("22222222-2222-2222-2222-222222222222")

    letters = dead_letters(queue="inventory-sync")
    assert sorted(letter.args[0] for letter in letters) == [
        "11111111-1111-1111-1111-111111111111",
        "22222222-2222-2222-2222-222222222222",
    ]
    assert all(letter.actor == "sync_inventory" for letter in letters)

    first = next(letter for letter in letters if letter.args[0].startswith("1"))
    assert dead_letter_replay(queue="inventory-sync", redis_ids=[first.redis_id]) == 1
    assert [m["args"] for m in inventory_queue.ready()] == [[first.args[0]]]
    assert len(dead_letters(queue="inventory-sync")) == 1

    assert dead_letter_purge(queue="inventory-sync") == 1
    assert dead_letters(queue="inventory-sync") == []


@pytest.fixture
def staff_client(db: Any) -> Client:
    client = Client()
    client.force_login(make_user(staff=True, is_superuser=True))
    return client


def test_queues_page_shows_figures_workers_stuck_photos_and_dead_letters(
    staff_client: Client, redis_client: Any, django_capture_on_commit_callbacks: Any
) -> None:
    lost = make_photo()
    _owed(lost)
    with django_capture_on_commit_callbacks(execute=True):
        photo_enqueue(photo=make_photo())
    _dead_letter("33333333-3333-3333-3333-333333333333")
    now_ms = timezone.now().timestamp() * 1000
    redis_client.zadd(
        heartbeats_key(),
        {"worker-alive": now_ms, "worker-gone": now_ms - 600_000, "web-sender": now_ms},
    )
    worker_register(broker_id="worker-alive", threads=8)
    worker_register(broker_id="worker-gone", threads=8)

    response = staff_client.get("/admin/queues/")

    assert response.status_code == 200
    page = response.content.decode()
    assert "photo-analyze" in page and "inventory-sync" in page
    assert str(lost.pk) in page
    assert "33333333-3333-3333-3333-333333333333" in page
    workers_table = page[page.index("<h2>Workers</h2>") : page.index("<h2>Stuck photos</h2>")]
    assert "worker-alive" in workers_table and "worker-gone" in workers_table
    beats = {beat.worker_id: beat for beat in worker_heartbeats()}
    # (the consumer that made the dead letter left a heartbeat of its own too)
    assert (beats["worker-alive"].alive, beats["worker-gone"].alive) == (True, False)
    assert (beats["worker-alive"].is_worker, beats["web-sender"].is_worker) == (True, False)
    assert beats["worker-alive"].threads == 8
    # A process that only sends is listed apart, not as a worker.
    producers = workers_table[workers_table.index("other process") :]
    assert "web-sender" in producers and "worker-alive" not in producers


def test_queues_page_actions(
    staff_client: Client,
    redis_client: Any,
    photo_queue: Any,
    inventory_queue: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    lost = make_photo()
    _owed(lost)
    _dead_letter("44444444-4444-4444-4444-444444444444")
    _dead_letter("55555555-5555-5555-5555-555555555555")

    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client.post("/admin/queues/", {"action": "requeue_stuck"}, follow=True)
    assert "1 stuck photo re-enqueued, 0 skipped." in response.content.decode()
    assert [m["args"] for m in photo_queue.ready()] == [[str(lost.pk)]]

    response = staff_client.post(
        "/admin/queues/",
        {"action": "replay", "queue": "inventory-sync", "all": "1"},
        follow=True,
    )
    assert "2 messages replayed." in response.content.decode()
    assert len(inventory_queue.ready()) == 2

    _dead_letter("66666666-6666-6666-6666-666666666666")
    [letter] = dead_letters(queue="inventory-sync")
    response = staff_client.post(
        "/admin/queues/",
        {"action": "purge", "queue": "inventory-sync", "message": [letter.redis_id]},
        follow=True,
    )
    assert "1 message purged." in response.content.decode()
    assert dead_letters(queue="inventory-sync") == []

    response = staff_client.post(
        "/admin/queues/", {"action": "purge", "queue": "nope"}, follow=True
    )
    assert "Unknown queue." in response.content.decode()


def test_queues_page_is_for_staff_only(client: Client, db: Any) -> None:
    assert client.get("/admin/queues/").status_code == 302
    client.force_login(make_user())
    assert client.get("/admin/queues/").status_code == 302

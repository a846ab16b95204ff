"""The staff console in a real browser: headless Chromium driven by Playwright's sync API.

Debian's `chromium` package is the browser (Playwright's own downloads are not used: `.ci/run`
installs the package); the test is skipped, saying so, only where no Chromium is installed.
Full-page screenshots of every step go to tests/artifacts/screenshots/ (git-ignored) for a
person to look at.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import dramatiq
import pytest
from django.db import connections
from django.utils import timezone
from playwright.sync_api import Browser, Page, ViewportSize, expect, sync_playwright

from ai_engine.fake import FakeProvider
from aimetrics.models import AiMetric
from aimetrics.services import aimetric_record
from infra.broker import INVENTORY_QUEUE
from inventory.tasks import sync_inventory
from photos.lifecycle import photo_enqueue
from photos.models import Photo
from photos.services.analysis import Outcome, photo_analyze
from tests.conftest import Queue, flush_namespace
from tests.factories import make_photo, make_project, make_user
from tests.fakeai import SONNET

pytestmark = pytest.mark.browser

SCREENSHOTS = Path(__file__).resolve().parent / "artifacts" / "screenshots"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 10_000
# An office monitor: the photo list's eleven columns need about 1,000 px beside the two sidebars
# (narrower windows scroll the list sideways, as Django's admin does).
VIEWPORT: ViewportSize = {"width": 1920, "height": 1080}
PASSWORD = "correct horse battery staple"


def chromium_path() -> str | None:
    """Debian's Chromium (or one named by CHROMIUM_PATH); None when there is none."""
    candidates = [
        os.environ.get("CHROMIUM_PATH"),
        "/usr/bin/chromium",
        shutil.which("chromium"),
        shutil.which("chromium-browser"),
    ]
    return next((c for c in candidates if c and os.access(c, os.X_OK)), None)


@pytest.fixture
def browser(live_server: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Browser]:
    executable = chromium_path()
    if executable is None:
        pytest.skip(
            "no Chromium installed: `apt-get install chromium` (Debian) to run the browser test"
        )
    # Playwright's sync API runs an asyncio event loop in this thread, so Django's guard against
    # the ORM inside async code would refuse this test's own queries (setup and checks). They run
    # between Playwright calls, never concurrently with them: the guard does not apply. The live
    # server answers the browser from its own thread, where no loop runs.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()
            # While the loop runs, Django keeps this thread's connections in a context-local
            # (asgiref treats the thread as async): close them now, or the one the test used
            # stays checked out of the pool and the test database cannot be dropped.
            connections.close_all()


def _shot(page: Page, name: str) -> None:
    # Thumbnails load lazily, after the page's load event: wait for them, not for a blank cell.
    page.wait_for_function("Array.from(document.images).every(img => img.complete)")
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def _done(photo: Photo) -> Photo:
    photo_enqueue(photo=photo)
    assert photo_analyze(photo_id=str(photo.pk), provider=FakeProvider()) == Outcome.DONE
    photo.refresh_from_db()
    return photo


def _failed(photo: Photo, code: str, message: str) -> Photo:
    Photo.objects.filter(pk=photo.pk).update(
        status=Photo.Status.ERROR, error_code=code, error_message=message, attempts=3
    )
    for retry in range(3):  # the calls a real failure would have left: the dashboard shows them
        aimetric_record(
            provider="anthropic",
            model=SONNET,
            operation="analyze_photo",
            latency_ms=30_000 if code == "TIMEOUT" else 400,
            success=False,
            error_type=code,
            retries=retry,
            photo_id=photo.pk,
            project_id=photo.project_id,
        )
    photo.refresh_from_db()
    return photo


def _stuck(photo: Photo) -> Photo:
    """Owed a message for an hour, and Redis has none (it restarted, say)."""
    Photo.objects.filter(pk=photo.pk).update(queued_at=timezone.now() - timedelta(hours=1))
    return photo


def _dead_letter(project_id: str) -> None:
    """A real dead letter: sent, taken by a consumer and nacked, as a worker does when an
    actor's retries are spent."""
    broker = dramatiq.get_broker()
    sync_inventory.send(project_id)
    consumer = broker.consume(INVENTORY_QUEUE, timeout=1000)
    message = next(iter(consumer))
    assert message is not None
    consumer.nack(message)
    consumer.close()


def _spread_metrics() -> None:
    """Successful calls over the last day, so the latency and cost charts have a shape."""
    now = timezone.now()
    for hour in range(0, 24, 2):
        metric = aimetric_record(
            provider="anthropic",
            model=SONNET,
            operation="analyze_photo",
            latency_ms=2_000 + 150 * (hour % 7),
            success=True,
            tokens_in=1_600,
            tokens_out=420,
            cost_usd=Decimal("0.011") + Decimal("0.001") * (hour % 5),
        )
        AiMetric.objects.filter(pk=metric.pk).update(created_at=now - timedelta(hours=hour))


def test_staff_rerun_failed_photos_and_look_around_the_console(
    browser: Browser, live_server: Any, photo_queue: Queue, redis_client: Any
) -> None:
    staff = make_user(staff=True, is_superuser=True, username="claire")
    staff.set_password(PASSWORD)
    staff.save()
    project = make_project(owner=make_user(username="dupont"), name="Dupont, Lyon → Paris")
    done = [_done(make_photo(project=project, room_type=room)) for room in ("kitchen", "bedroom")]
    failed = [
        _failed(make_photo(project=project), "TIMEOUT", "provider timed out after 30 s"),
        _failed(make_photo(project=project), "RATE_LIMIT", "rate limited (429)"),
        _failed(make_photo(project=project), "PROVIDER_DOWN", "provider answered 503"),
    ]
    _spread_metrics()
    flush_namespace(redis_client)  # the setup's own messages: only the action's are counted
    stuck = _stuck(make_photo(project=project))
    _dead_letter(str(project.pk))

    context = browser.new_context(base_url=live_server.url, locale="en-US", viewport=VIEWPORT)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()

    # Log in through the form.
    page.goto("/admin/login/?next=/admin/")
    page.fill("#id_username", "claire")
    page.fill("#id_password", PASSWORD)
    _shot(page, "01-login")
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("#user-tools")).to_contain_text("claire")
    _shot(page, "02-admin-index")

    # Photos, filtered by status ERROR with the sidebar's link.
    page.locator("#content-main").get_by_role("link", name="Photos", exact=True).last.click()
    expect(page).to_have_url(re.compile(r"/admin/photos/photo/$"))
    expect(page.locator("#result_list tbody tr")).to_have_count(len(done) + len(failed) + 1)
    _shot(page, "03-photos")
    status_filter = page.locator("#changelist-filter details").filter(has_text="By status")
    status_filter.get_by_role("link", name="error", exact=True).click()
    expect(page).to_have_url(re.compile(r"status__exact=ERROR"))
    expect(page.locator("#result_list tbody tr")).to_have_count(len(failed))
    expect(page.locator("#result_list")).to_contain_text("RATE_LIMIT")
    _shot(page, "04-photos-error")

    # Select all, "Re-run analysis", Run (Django 6.1 names the button "Run", once "Go").
    page.locator("#action-toggle").check()
    page.select_option("select[name=action]", label="Re-run analysis (ERROR or PENDING photos)")
    _shot(page, "05-action-chosen")
    page.get_by_role("button", name="Run").click()
    expect(page.locator("ul.messagelist li.success")).to_have_text("3 photos queued")
    _shot(page, "06-action-done")

    for photo in failed:
        photo.refresh_from_db()
        assert photo.status == Photo.Status.PENDING and photo.queued_at is not None
    queued = sorted(message["args"][0] for message in photo_queue.ready())
    assert queued == sorted(str(photo.pk) for photo in failed)

    # A photo's page: the image and the analysis as a table.
    page.goto("/admin/photos/photo/")
    page.locator("#result_list").get_by_role("link", name=str(done[0].pk)[:8]).click()
    expect(page).to_have_url(re.compile(rf"/admin/photos/photo/{done[0].pk}/change/"))
    preview = page.locator(".field-image_preview img")
    expect(preview).to_be_visible()
    assert preview.evaluate("img => img.complete && img.naturalWidth > 0")
    items = page.locator("fieldset", has_text="Items found by the analysis").locator("table")
    expect(items).to_be_visible()
    assert items.locator("tbody tr").count() >= 1
    _shot(page, "07-photo-change")

    # The AI metrics dashboard, from the AI metrics list.
    page.goto("/admin/aimetrics/aimetric/")
    page.locator(".object-tools").get_by_role("link", name="Dashboard").click()
    expect(page).to_have_url(re.compile(r"/admin/aimetrics/dashboard/"))
    charts = page.locator("figure svg.aimetrics-chart")
    expect(charts).to_have_count(3)
    for index in range(3):
        expect(charts.nth(index)).to_be_visible()
    expect(page.locator("svg.aimetrics-chart rect.aimetrics-bar-failure")).to_have_count(3)
    _shot(page, "08-dashboard")

    # The queues page, from the index: the action's three messages are waiting; the stuck
    # photo and the dead letter are listed.
    page.goto("/admin/")
    page.locator("#moverz-console").get_by_role("link", name="Queues").click()
    expect(page).to_have_url(re.compile(r"/admin/queues/$"))
    # Exactly photo-analyze: photo-analyze-high has a row of its own.
    row = (
        page.locator("#content-main table")
        .first.locator("tr")
        .filter(has=page.get_by_text("photo-analyze", exact=True))
    )
    expect(row.locator("td").nth(1)).to_have_text("3")
    expect(page.locator("#content-main")).to_contain_text(str(stuck.pk))
    expect(page.locator("#content-main")).to_contain_text("sync_inventory")
    _shot(page, "09-queues")

    # The same console in French, as the browser of staff in France asks for it.
    french = browser.new_context(
        base_url=live_server.url,
        locale="fr-FR",
        storage_state=context.storage_state(),
        viewport=VIEWPORT,
    )
    french.set_default_timeout(TIMEOUT_MS)
    page = french.new_page()
    page.goto("/admin/photos/photo/")
    expect(page.locator("#changelist-filter")).to_contain_text("Par statut")
    _shot(page, "10-fr-photos")
    page.goto(f"/admin/photos/photo/{done[0].pk}/change/")
    expect(page.locator("#content-main")).to_contain_text("Objets détectés par l'analyse")
    _shot(page, "11-fr-photo-change")
    page.goto("/admin/aimetrics/dashboard/")
    expect(page.locator("#content-main")).to_contain_text("Taux de réussite")
    _shot(page, "12-fr-dashboard")
    page.goto("/admin/queues/")
    expect(page.locator("#content-main")).to_contain_text("Files d'attente")
    _shot(page, "13-fr-queues")
    french.close()
    context.close()

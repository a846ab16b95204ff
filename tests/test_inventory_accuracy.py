"""How good is the model: the accuracy report from staff corrections (inventory/accuracy.py),
its command, its admin page and its panel on the AI dashboard."""

from __future__ import annotations

import html
import io
import json
from datetime import timedelta
from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from inventory.accuracy import Accuracy, inventory_accuracy
from inventory.corrections import correction_create
from inventory.models import InventoryCorrection
from photos.models import Photo, Project
from tests.factories import analysis_item, make_project, make_user
from tests.test_inventory_lines import _done

pytestmark = pytest.mark.django_db

A = ("anthropic", "claude-sonnet-4-6", "2026-12-02.2")
B = ("openai", "gpt-5.1", "2026-11-20.1")


def _room(
    project: Project, room: str, items: list[dict[str, Any]], by: tuple[str, str, str]
) -> Photo:
    """A DONE photo of `room` whose analysis came from provider, model, prompt `by`."""
    photo = _done(project, items, room=room)
    assert photo.analysis is not None
    analysis = photo.analysis | dict(zip(("provider", "model", "promptVersion"), by, strict=True))
    Photo.objects.filter(pk=photo.pk).update(analysis=analysis)
    return photo


def _fix(project: Project, room: str, action: str, **fields: Any) -> InventoryCorrection:
    return correction_create(project=project, room_group=room, action=action, **fields)


@pytest.fixture
def known() -> None:
    """Model A: three corrected rooms; model B: two, one of them emptied. Volumes in m³."""
    first, second, old = make_project(), make_project(), make_project()
    # Salon, AI 2.6 (sofa 2.0, two chairs 0.6): four chairs (3.2), a missed fridge (4.7).
    _room(first, "Salon", [analysis_item("sofa_3_seat", 1, 2.0), analysis_item("chair", 2, 0.6)], A)
    _fix(first, "salon", "set_quantity", line_key="chair", quantity=4)
    _fix(first, "salon", "add", new_key="fridge", quantity=1)
    # Cuisine, AI 2.0 (fridge 1.5, cooker 0.5): no cooker (1.5); a washing machine staff added
    # and removed again is no error of the model's (1.5).
    _room(first, "Cuisine", [analysis_item("fridge", 1, 1.5), analysis_item("cooker", 1, 0.5)], A)
    _fix(first, "cuisine", "remove", line_key="cooker")
    _fix(first, "cuisine", "add", new_key="washing_machine", quantity=1)
    _fix(first, "cuisine", "remove", line_key="washing_machine")
    # Chambre, AI 2.7 (bed 2.5, two mirrors 0.2): the mirrors are bedside tables (2.9).
    _room(
        first, "Chambre", [analysis_item("double_bed", 1, 2.5), analysis_item("mirror", 2, 0.2)], A
    )
    _fix(first, "chambre", "change_key", line_key="mirror", new_key="bedside_table")
    # Model B. Bureau, AI 1.0: the desk is not there (0: emptied, no ratio).
    _room(second, "Bureau", [analysis_item("desk", 1, 1.0)], B)
    _fix(second, "bureau", "remove", line_key="desk")
    # Garage, AI 0.6 (ten cartons): twenty (1.2).
    _room(second, "Garage", [analysis_item("carton", 10, 0.6)], B)
    _fix(second, "garage", "set_quantity", line_key="carton", quantity=20)
    # Before the window: not counted.
    _room(old, "Salon", [analysis_item("chair", 2, 0.6)], A)
    before = _fix(old, "salon", "set_quantity", line_key="chair", quantity=9)
    InventoryCorrection.objects.filter(pk=before.pk).update(
        created_at=timezone.now() - timedelta(days=40)
    )


def _percentile_cont(ordered: list[float], fraction: float) -> float:
    position = fraction * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _expected() -> list[Accuracy]:
    a_errors = sorted(
        100 * abs(ai - fixed) / fixed for ai, fixed in [(2.6, 4.7), (2.0, 1.5), (2.7, 2.9)]
    )
    b_error = 100 * abs(0.6 - 1.2) / 1.2
    return [
        Accuracy(
            provider=A[0], model=A[1], prompt_version=A[2],
            added=2, removed=1, quantity_changed=1, key_changed=1, rooms=3, emptied_rooms=0,
            volume_error_p50=round(_percentile_cont(a_errors, 0.5), 1),
            volume_error_p90=round(_percentile_cont(a_errors, 0.9), 1),
        ),
        Accuracy(
            provider=B[0], model=B[1], prompt_version=B[2],
            added=0, removed=1, quantity_changed=1, key_changed=0, rooms=1, emptied_rooms=1,
            volume_error_p50=round(b_error, 1), volume_error_p90=round(b_error, 1),
        ),
    ]  # fmt: skip


def _last_30_days() -> dict[str, Any]:
    now = timezone.now()
    return {"since": now - timedelta(days=30), "until": now + timedelta(minutes=1)}


def test_the_report_counts_each_kind_and_the_volume_error_per_model(known: None) -> None:
    report = inventory_accuracy(**_last_30_days())

    assert report == _expected()
    assert (report[0].volume_error_p50, report[0].volume_error_p90) == (33.3, 42.4)


def test_corrections_keep_their_provenance_and_volumes_when_photos_are_analysed_again(
    known: None,
) -> None:
    # A re-analysis by another model changes the photos, not the figures of the corrections.
    Photo.objects.update(analysis={"items": [], "provider": "x", "model": "y"})

    assert inventory_accuracy(**_last_30_days()) == _expected()


def test_an_empty_window_has_no_rows(known: None) -> None:
    now = timezone.now()

    assert inventory_accuracy(since=now - timedelta(days=60), until=now - timedelta(days=50)) == []


def test_the_command_prints_a_table_and_json(known: None) -> None:
    table, document = io.StringIO(), io.StringIO()

    call_command("inventory_accuracy", "--since", "30d", stdout=table)
    call_command("inventory_accuracy", "--since", "30d", "--json", stdout=document)

    lines = table.getvalue().splitlines()
    assert lines[1].split() == [
        "provider", "model", "prompt_version", "added", "removed", "quantity_changed",
        "key_changed", "rooms", "emptied_rooms", "volume_error_p50_pct", "volume_error_p90_pct",
    ]  # fmt: skip
    assert lines[2].split() == [*A, "2", "1", "1", "1", "3", "0", "33.3", "42.4"]
    assert lines[3].split() == [*B, "0", "1", "1", "0", "1", "1", "50.0", "50.0"]
    rows = json.loads(document.getvalue())["rows"]
    assert [Accuracy(**row) for row in rows] == _expected()


def test_the_command_refuses_a_bad_window(db: Any) -> None:
    with pytest.raises(Exception, match="--since"):
        call_command("inventory_accuracy", "--since", "yesterday")


@pytest.fixture
def staff_client() -> Client:
    client = Client()
    client.force_login(make_user(staff=True, is_superuser=True))
    return client


def _cells(page: str) -> str:
    return " ".join(html.unescape(page).split())


def test_the_admin_page_and_the_ai_dashboard_show_the_report(
    known: None, staff_client: Client
) -> None:
    report = staff_client.get("/admin/inventory/inventorycorrection/accuracy/?window=30d")
    dashboard = staff_client.get("/admin/aimetrics/dashboard/?window=7d")

    for response in (report, dashboard):
        assert response.status_code == 200
        page = _cells(response.content.decode())
        assert "Model accuracy (staff corrections)" in page
        assert "claude-sonnet-4-6" in page and "gpt-5.1" in page
        assert "33.3 %" in page and "42.4 %" in page and "(+1 emptied)" in page
    bad = staff_client.get("/admin/inventory/inventorycorrection/accuracy/?window=custom")
    assert bad.status_code == 200 and "Give the first day of the window." in bad.content.decode()

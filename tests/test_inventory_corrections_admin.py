"""Staff corrections in the admin: the project's inventory page and its forms, the photo's link
to it, the corrections' list, permissions and CSRF."""

from __future__ import annotations

import html
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.utils import translation
from rest_framework.test import APIClient

from inventory.models import InventoryCorrection
from inventory.services import inventory_sync
from photos.models import Photo, Project
from tests.factories import analysis_item, make_project, make_user
from tests.test_inventory_lines import _done

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff() -> Any:
    return make_user(staff=True, is_superuser=True)


@pytest.fixture
def staff_client(staff: Any) -> Client:
    client = Client()
    client.force_login(staff)
    return client


@pytest.fixture
def salon(project: Project) -> Photo:
    return _done(
        project,
        [analysis_item("sofa_3_seat", 1, 2.0), analysis_item("chair", 2, 0.6)],
        room="Salon",
    )


def _url(project: Project) -> str:
    return f"/admin/photos/project/{project.pk}/inventory/"


def _text(response: Any) -> str:
    return " ".join(html.unescape(response.content.decode()).split())


def _post(client: Client, project: Project, capture: Any, **fields: Any) -> Any:
    with capture(execute=True):
        return client.post(_url(project), {"room": "salon", **fields}, follow=True)


def test_the_page_lists_each_rooms_lines_with_their_forms(
    staff_client: Client, project: Project, salon: Photo
) -> None:
    response = staff_client.get(_url(project))

    assert response.status_code == 200
    page = _text(response)
    assert "Salon · Living room · 1 photo" in page
    assert '<td>sofa 3 seat</td><td><code>sofa_3_seat</code></td><td class="num">1</td>' in page
    assert page.count('name="action" value="set_quantity"') == 2
    assert page.count('name="action" value="add"') == 1
    assert "No correction yet." in page
    project_page = _text(staff_client.get(f"/admin/photos/project/{project.pk}/change/"))
    assert _url(project) in project_page


def test_each_correction_posted_changes_the_api_inventory(
    django_capture_on_commit_callbacks: Any,
    staff_client: Client,
    staff: Any,
    api: APIClient,
    project: Project,
    salon: Photo,
    inventory_queue: Any,
) -> None:
    capture = django_capture_on_commit_callbacks
    steps = [
        {"action": "set_quantity", "line": "chair", "quantity": "4"},
        {"action": "add", "key": "fridge", "quantity": "1"},
        {"action": "change_key", "line": "sofa_3_seat", "key": "sofa_2_seat"},
        {"action": "remove", "line": "fridge"},
    ]
    for step in steps:
        response = _post(staff_client, project, capture, **step)
        assert response.status_code == 200
        assert "Correction saved" in _text(response)
    # Each correction asked for a sync (coalesced: one message while it waits).
    assert len(inventory_queue.all()) == 1

    inventory_sync(project_id=project.pk)
    lines = api.get(f"/api/projects/{project.pk}/inventory").json()["rooms"][0]["items"]

    assert [(line["key"], line["quantity"], line["corrected"]) for line in lines] == [
        ("sofa_2_seat", 1, True),
        ("chair", 4, True),
    ]
    corrections = list(InventoryCorrection.objects.order_by("id"))
    assert [c.action for c in corrections] == [s["action"] for s in steps]
    assert all(c.created_by == staff for c in corrections)
    page = _text(staff_client.get(_url(project)))
    assert "2 → 4" in page and "sofa_3_seat → sofa_2_seat" in page and "→ (removed)" in page
    # The snapshot's page in the history: the room by its label, and how many lines staff changed.
    snapshot = project.inventory_snapshots.latest("created_at")
    history = _text(staff_client.get(f"/admin/inventory/inventorysnapshot/{snapshot.pk}/change/"))
    assert '<td>Salon</td> <td>Living room</td> <td style="text-align: right">5</td>' in history
    assert '<td style="text-align: right" class="corrected-lines">2</td>' in history


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"action": "set_quantity", "line": "chair", "quantity": "-2"}, "greater than or equal"),
        ({"action": "set_quantity", "line": "chair", "quantity": "two"}, "whole number"),
        ({"action": "change_key", "line": "chair", "key": "stool"}, "volume catalogue"),
        ({"action": "remove", "line": "piano"}, "no such line"),
        ({"action": "add", "key": "chair", "quantity": "1"}, "already has this line"),
        ({"action": "explode", "line": "chair"}, "Select a valid choice"),
        ({"action": "remove", "line": "chair", "room": "grenier"}, "no such room"),
    ],
)
def test_bad_input_shows_a_form_error_and_changes_nothing(
    django_capture_on_commit_callbacks: Any,
    staff_client: Client,
    project: Project,
    salon: Photo,
    fields: dict[str, str],
    error: str,
) -> None:
    response = _post(staff_client, project, django_capture_on_commit_callbacks, **fields)

    assert response.status_code == 200
    assert "errornote" in response.content.decode() and error in _text(response)
    assert not InventoryCorrection.objects.exists()


def test_the_photos_page_links_to_its_room_and_corrections_name_the_photo(
    django_capture_on_commit_callbacks: Any,
    staff_client: Client,
    project: Project,
    salon: Photo,
) -> None:
    other = _done(project, [analysis_item("desk", 1, 1.0)], room="Bureau")
    photo_page = staff_client.get(f"/admin/photos/photo/{salon.pk}/change/").content.decode()
    link = f"{_url(project)}?photo={salon.pk}"
    assert html.escape(link) in photo_page or link in photo_page

    page = _text(staff_client.get(link))
    assert "Salon" in page and "Bureau" not in page
    with django_capture_on_commit_callbacks(execute=True):
        staff_client.post(link, {"room": "salon", "action": "remove", "line": "chair"})
    assert InventoryCorrection.objects.get().photo_id == salon.pk
    assert staff_client.get(f"{_url(project)}?photo={other.pk}").status_code == 200
    assert staff_client.get(f"{_url(project)}?photo=nope").status_code == 404


def test_staff_without_the_permission_see_the_page_but_cannot_correct(
    project: Project, salon: Photo
) -> None:
    clerk = make_user(staff=True)
    clerk.user_permissions.add(Permission.objects.get(codename="view_project"))
    client = Client()
    client.force_login(clerk)

    assert client.get(_url(project)).status_code == 200
    assert 'value="set_quantity"' not in client.get(_url(project)).content.decode()
    response = client.post(_url(project), {"room": "salon", "action": "remove", "line": "chair"})
    assert response.status_code == 403
    assert not InventoryCorrection.objects.exists()
    assert Client().get(_url(project)).status_code == 302  # to the login page


def test_a_post_without_the_csrf_token_is_refused(
    staff: Any, project: Project, salon: Photo
) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(staff)

    response = client.post(_url(project), {"room": "salon", "action": "remove", "line": "chair"})

    assert response.status_code == 403
    assert not InventoryCorrection.objects.exists()


def test_the_correction_list_filters_by_project_and_deleting_one_undoes_it(
    django_capture_on_commit_callbacks: Any,
    staff_client: Client,
    project: Project,
    salon: Photo,
) -> None:
    capture = django_capture_on_commit_callbacks
    _post(staff_client, project, capture, action="set_quantity", line="chair", quantity="5")
    elsewhere = _done(make_project(), [analysis_item("chair", 1, 0.3)], room="Salon")
    _post(staff_client, elsewhere.project, capture, action="remove", line="chair")
    mine = InventoryCorrection.objects.get(project=project)

    listed = staff_client.get(f"/admin/inventory/inventorycorrection/?project={project.pk}")

    assert [c.pk for c in listed.context["cl"].result_list] == [mine.pk]
    assert "2 → 5" in _text(listed)
    detail = staff_client.get(f"/admin/inventory/inventorycorrection/{mine.pk}/change/")
    assert detail.status_code == 200 and "2 → 5" in _text(detail)
    with capture(execute=True):
        staff_client.post(
            f"/admin/inventory/inventorycorrection/{mine.pk}/delete/", {"post": "yes"}
        )
    snapshot = inventory_sync(project_id=project.pk)
    assert snapshot is not None
    chair = next(line for line in snapshot.rooms[0]["items"] if line["key"] == "chair")
    assert (chair["quantity"], chair["corrected"]) == (2, False)


def test_the_pages_speak_french_to_french_staff(
    settings: Any, staff_client: Client, project: Project, salon: Photo
) -> None:
    settings.LANGUAGE_CODE = "fr"

    try:
        inventory = _text(staff_client.get(_url(project)))
        report = _text(staff_client.get("/admin/inventory/inventorycorrection/accuracy/"))
    finally:
        translation.deactivate()  # LocaleMiddleware activated French in this thread

    assert "Salon · Salon · 1 photo" in inventory and "Fixer la quantité" in inventory
    assert "Ajouter une ligne que le modèle a manquée" in inventory
    assert "Précision du modèle (corrections de l’équipe)" in report

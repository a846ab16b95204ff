"""The staff console in French: the language follows LANGUAGE_CODE or the browser's
Accept-Language, and the shipped catalogue (locale/fr) is complete, not fuzzy, and compiled."""

from __future__ import annotations

import ast
import gettext
import html
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from django.utils import translation

from photos.models import Photo
from tests.factories import make_photo, make_user

REPO = Path(__file__).resolve().parent.parent
PO = REPO / "locale" / "fr" / "LC_MESSAGES" / "django.po"
MO = PO.with_suffix(".mo")
PLACEHOLDER = re.compile(r"%\(\w+\)[sd]")


@pytest.fixture(autouse=True)
def _back_to_the_default_language() -> Iterator[None]:
    # LocaleMiddleware activates a language in this thread; later tests must not inherit it.
    yield
    translation.deactivate()


@pytest.fixture
def staff_client(db: Any) -> Client:
    client = Client()
    client.force_login(make_user(staff=True, is_superuser=True))
    return client


@pytest.fixture
def french(settings: Any) -> None:
    settings.LANGUAGE_CODE = "fr"


def _page(response: Any) -> str:
    assert response.status_code == 200, response
    return html.unescape(response.content.decode())


def _error(photo: Photo) -> Photo:
    Photo.objects.filter(pk=photo.pk).update(status=Photo.Status.ERROR, error_code="TIMEOUT")
    return photo


# --- pages --------------------------------------------------------------------------------------


def test_photo_list_is_in_french_with_language_code_fr(french: None, staff_client: Client) -> None:
    _error(make_photo(room_type="kitchen"))
    page = _page(staff_client.get("/admin/photos/photo/"))
    assert '<html lang="fr"' in page
    for text in (
        "Console Moverz",
        "Par statut",  # Django's "By %(title)s" around our "status"
        "en erreur",  # the status label
        "Par code d'erreur",
        "Miniature",
        "Fournisseur / modèle",
        "Relancer l'analyse (photos en erreur ou en attente)",
        "Forcer une nouvelle analyse (photos terminées)",
        "Mettre à jour l'inventaire du dossier",
        "Cuisine",  # the room type, in the list and its filter
    ):
        assert text in page, text
    assert "Re-run analysis" not in page


def _room_filter(page: str) -> list[str]:
    """The labels of the room type filter's choices, in their order."""
    links = re.findall(r'<a href="\?room_type=(\w+)"[^>]*>([^<]+)</a>', page)
    return [label for _key, label in links]


def test_the_admin_shows_room_types_in_french(french: None, staff_client: Client) -> None:
    kitchen = make_photo(room_type="kitchen")
    make_photo(room_type="living_room")

    changelist = _page(staff_client.get("/admin/photos/photo/"))
    change = _page(staff_client.get(f"/admin/photos/photo/{kitchen.pk}/change/"))

    assert re.search(r'<td class="field-room">\s*Cuisine\s*</td>', changelist)
    assert re.search(r'<td class="field-room">\s*Salon\s*</td>', changelist)
    assert _room_filter(changelist)[:3] == ["Salon", "Cuisine", "Chambre"]
    assert re.search(r'<option value="kitchen" selected>Cuisine</option>', change)
    assert '<option value="bathroom">Salle de bain</option>' in change
    assert "Living room" not in changelist + change


def test_the_admin_shows_room_types_in_english_to_an_english_browser(staff_client: Client) -> None:
    photo = make_photo(room_type="living_room")
    english = {"accept-language": "en-US,en;q=0.9"}

    changelist = _page(staff_client.get("/admin/photos/photo/", headers=english))
    change = _page(staff_client.get(f"/admin/photos/photo/{photo.pk}/change/", headers=english))

    assert re.search(r'<td class="field-room">\s*Living room\s*</td>', changelist)
    assert _room_filter(changelist)[:2] == ["Living room", "Kitchen"]
    assert '<option value="living_room" selected>Living room</option>' in change
    assert "Salon" not in changelist + change


def test_the_room_type_is_stored_as_its_key_whatever_the_staffs_language(
    french: None, staff_client: Client
) -> None:
    photo = make_photo(room_type="kitchen")

    url = f"/admin/photos/photo/{photo.pk}/change/"

    response = staff_client.post(url, {"room_type": "bedroom"})

    assert response.status_code == 302
    photo.refresh_from_db()
    assert photo.room_type == "bedroom"


def test_dashboard_is_in_french(french: None, staff_client: Client) -> None:
    page = _page(staff_client.get("/admin/aimetrics/dashboard/"))
    for text in (
        "Tableau de bord IA",
        "dernières 24 heures",
        "Taux de réussite",
        "Latence P95 par heure",
        "Échecs par type d'erreur",
        "Aucun appel sur cette période.",
    ):
        assert text in page, text


def test_queues_page_is_in_french(french: None, staff_client: Client) -> None:
    page = _page(staff_client.get("/admin/queues/"))
    for text in (
        "Files d'attente",
        "Photos bloquées",
        "Aucune photo bloquée.",
        "Messages abandonnés",
    ):
        assert text in page, text


def test_the_browser_language_wins_over_the_default(staff_client: Client) -> None:
    french = _page(staff_client.get("/admin/queues/", HTTP_ACCEPT_LANGUAGE="fr-FR,fr;q=0.9"))
    assert "Photos bloquées" in french
    english = _page(staff_client.get("/admin/queues/", HTTP_ACCEPT_LANGUAGE="en-US,en;q=0.9"))
    assert "Stuck photos" in english and "Photos bloquées" not in english
    default = _page(staff_client.get("/admin/queues/"))
    assert "Stuck photos" in default  # LANGUAGE_CODE is en-us


def test_action_messages_are_in_french(
    french: None, staff_client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    failed = [_error(make_photo()) for _ in range(2)]
    done = make_photo()
    Photo.objects.filter(pk=done.pk).update(status=Photo.Status.DONE)
    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client.post(
            "/admin/photos/photo/",
            {
                "action": "rerun_analysis",
                "_selected_action": [str(p.pk) for p in [*failed, done]],
                "index": 0,
            },
            follow=True,
        )
    assert response.status_code == 200
    messages = [str(message) for message in response.context["messages"]]
    assert messages == ["2 photos mises en file d'attente, 1 ignorée (ni en erreur ni en attente)"]


# --- the catalogue ------------------------------------------------------------------------------


@dataclass
class Entry:
    msgid: str = ""
    msgid_plural: str | None = None
    msgctxt: str | None = None
    msgstr: dict[int, str] = field(default_factory=dict)
    flags: set[str] = field(default_factory=set)
    obsolete: bool = False


def _po_entries(text: str) -> list[Entry]:
    """A small reader for the .po format: flags, context, singular, plural, translations."""
    entries: list[Entry] = []
    for block in text.strip().split("\n\n"):
        entry, current = Entry(), ""
        for line in block.splitlines():
            if line.startswith("#~"):
                entry.obsolete = True
            elif line.startswith("#,"):
                entry.flags |= {flag.strip() for flag in line[2:].split(",")}
            elif line.startswith("#"):
                continue
            else:
                match = re.match(r'^(msgctxt|msgid_plural|msgid|msgstr(?:\[(\d)\])?) (".*")$', line)
                if match:
                    current = match[1] if match[2] is None else f"msgstr[{match[2]}]"
                    value = ast.literal_eval(match[3])
                else:
                    value = ast.literal_eval(line)  # a continuation line
                if current == "msgid":
                    entry.msgid += value
                elif current == "msgid_plural":
                    entry.msgid_plural = (entry.msgid_plural or "") + value
                elif current == "msgctxt":
                    entry.msgctxt = (entry.msgctxt or "") + value
                else:
                    index = int(current[7]) if current.startswith("msgstr[") else 0
                    entry.msgstr[index] = entry.msgstr.get(index, "") + value
        entries.append(entry)
    return entries


def _catalogue() -> tuple[dict[str, str], list[Entry]]:
    header, *entries = _po_entries(PO.read_text(encoding="utf-8"))
    assert header.msgid == ""
    fields = dict(line.split(": ", 1) for line in header.msgstr[0].splitlines() if ": " in line)
    return fields, entries


def test_the_french_catalogue_is_complete_and_not_fuzzy() -> None:
    fields, entries = _catalogue()
    assert fields["Language"] == "fr"
    plurals = int(re.search(r"nplurals=(\d+)", fields["Plural-Forms"])[1])  # type: ignore[index]
    assert len(entries) > 200
    problems = []
    for entry in entries:
        name = entry.msgid if entry.msgctxt is None else f"{entry.msgctxt}|{entry.msgid}"
        if entry.obsolete:
            problems.append(f"obsolete: {name}")
        if "fuzzy" in entry.flags:
            problems.append(f"fuzzy: {name}")
        expected = range(plurals) if entry.msgid_plural is not None else range(1)
        if sorted(entry.msgstr) != list(expected) or not all(entry.msgstr.values()):
            problems.append(f"untranslated: {name}")
        if "python-format" in entry.flags:
            wanted = set(PLACEHOLDER.findall(entry.msgid))
            for translated in entry.msgstr.values():
                if set(PLACEHOLDER.findall(translated)) != wanted:
                    problems.append(f"placeholders differ: {name} → {translated}")
    assert problems == []


def test_the_compiled_catalogue_matches_the_po_file() -> None:
    """The .mo is committed (a machine without gettext still shows French): it must be the .po
    compiled, not an older one."""
    with MO.open("rb") as handle:
        compiled = gettext.GNUTranslations(handle)
    _fields, entries = _catalogue()
    for entry in entries:
        if entry.msgid_plural is not None:
            assert compiled.ngettext(entry.msgid, entry.msgid_plural, 1) == entry.msgstr[0]
            assert compiled.ngettext(entry.msgid, entry.msgid_plural, 5) == entry.msgstr[2]
        elif entry.msgctxt is not None:
            assert compiled.pgettext(entry.msgctxt, entry.msgid) == entry.msgstr[0]
        else:
            assert compiled.gettext(entry.msgid) == entry.msgstr[0], entry.msgid


@pytest.mark.skipif(shutil.which("xgettext") is None, reason="gettext tools are not installed")
def test_every_string_of_the_code_is_in_the_catalogue(tmp_path: Path) -> None:
    """makemessages over a copy of the code finds no string the catalogue lacks (run it, then
    translate and compilemessages, after adding or changing a string)."""
    copy = tmp_path / "repo"
    shutil.copytree(
        REPO,
        copy,
        ignore=shutil.ignore_patterns(
            ".*", "var", "bench", "tests", "docs", "scripts", "__pycache__", "*.mo"
        ),
    )
    subprocess.run(
        [sys.executable, "manage.py", "makemessages", "-l", "fr", "--no-obsolete"],
        cwd=copy,
        env={"PATH": "/usr/bin:/bin", "DEBUG": "1", "MOVERZ_VAR_DIR": str(tmp_path / "var")},
        check=True,
        capture_output=True,
    )
    _fields, ours = _catalogue()
    fresh = _po_entries((copy / PO.relative_to(REPO)).read_text(encoding="utf-8"))[1:]
    key = lambda e: (e.msgctxt, e.msgid, e.msgid_plural)  # noqa: E731
    missing = {key(e) for e in fresh} - {key(e) for e in ours}
    assert not missing, "run makemessages, translate, then compilemessages: " + repr(missing)

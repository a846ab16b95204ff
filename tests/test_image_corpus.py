"""Every file of the committed image corpus (tests/images/, made by its make_images.py) through
`POST /api/photos`: what we accept is stored (201) and can be prepared by the worker, everything
else is refused with a 4xx JSON error that says why, and nothing ever answers 5xx."""

from __future__ import annotations

import mimetypes
from pathlib import Path

import pytest
from rest_framework.test import APIClient

from imaging.preflight import image_preflight
from photos.models import Photo, Project
from tests.uploading import assert_nothing_stored, stored_files, upload

IMAGES = Path(__file__).parent / "images"
FOLDERS = ("good", "other", "broken")
FILES = sorted(path for folder in FOLDERS for path in (IMAGES / folder).iterdir())


def _id(path: Path) -> str:
    return f"{path.parent.name}/{path.name}"


def test_the_corpus_is_there_and_small() -> None:
    for folder in FOLDERS:
        assert any((IMAGES / folder).iterdir()), f"tests/images/{folder} is empty"
    assert sum(path.stat().st_size for path in FILES) < 1_000_000


@pytest.mark.parametrize("path", FILES, ids=_id)
def test_corpus_file_is_stored_or_refused_with_a_json_error_never_a_5xx(
    api: APIClient, project: Project, media_root: Path, path: Path
) -> None:
    content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"

    response = upload(
        api, project, path.read_bytes(), filename=path.name, content_type=content_type
    )

    assert response.status_code < 500
    assert response["Content-Type"].startswith("application/json")
    if path.parent.name == "good":
        assert response.status_code == 201, response.json()
        photo = Photo.objects.get(pk=response.json()["photo"]["id"])
        assert len(stored_files(media_root)) == 1
        assert photo.image_width and photo.image_height
        assert image_preflight(path.read_bytes()).data[:3] == b"\xff\xd8\xff"  # a JPEG
        return
    assert 400 <= response.status_code < 500
    error = response.json()["error"]
    assert isinstance(error, str) and error
    assert "Plugin" not in error and "MAX_" not in error  # words for the client, not Pillow's
    if path.parent.name == "other":
        assert "Unsupported image format" in error or "not an image" in error
    assert_nothing_stored(media_root)

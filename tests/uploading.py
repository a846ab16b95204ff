"""Upload helpers shared by the upload tests (the `media_root` fixture comes from tests/s3server.py,
`project` from tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from photos.models import Photo, Project


def upload(
    api: APIClient,
    project: Project,
    data: bytes,
    *,
    filename: str = "photo.jpg",
    content_type: str = "image/jpeg",
) -> Any:
    image = SimpleUploadedFile(filename, data, content_type=content_type)
    return api.post(
        "/api/photos", {"image": image, "projectId": str(project.pk)}, format="multipart"
    )


def stored_files(root: Path) -> list[Path]:
    return sorted(path for path in root.rglob("*") if path.is_file())


def assert_nothing_stored(media_root: Path) -> None:
    """No Photo row and no file: a rejected upload changed nothing."""
    assert not Photo.objects.exists()
    assert stored_files(media_root) == []

"""Photos on S3, for real: a local moto server in server mode, reached over HTTP on loopback.

In-process: the API stores to the bucket and the analysis reads the bytes back from it. End to
end: a real `rundramatiq` worker configured through the AWS_* environment variables does the same.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient
from storages.backends.s3 import S3Storage

from ai_engine.fake import FakeProvider
from aimetrics.models import AiMetric
from photos.models import Photo
from photos.services.analysis import Outcome, photo_analyze
from tests.factories import image_bytes, make_project
from tests.processes import Api, Worker, poll

REPO_ROOT = Path(__file__).resolve().parent.parent
REGION = "us-east-1"
ACCESS_KEY = "test"
SECRET_KEY = "test"  # noqa: S105 - moto accepts any key
POLL_TIMEOUT_S = 30.0


def _local_files(root: Path) -> list[Path]:
    return sorted(path for path in root.rglob("*") if path.is_file())


def _object_keys(s3: Any, bucket: str) -> list[str]:
    listing = s3.list_objects_v2(Bucket=bucket)
    return [item["Key"] for item in listing.get("Contents", [])]


def _metrics_original_bytes(photo_id: Any) -> list[int]:
    return [
        meta["originalBytes"]
        for meta in AiMetric.objects.filter(photo_id=photo_id).values_list("meta", flat=True)
    ]


# --- in-process ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_upload_goes_to_the_bucket_and_the_analysis_reads_it_back(
    api: APIClient, user: Any, s3_storage: str, s3: Any, media_root: Path
) -> None:
    assert isinstance(default_storage, S3Storage)
    assert default_storage.bucket_name == s3_storage
    image_field = Photo._meta.get_field("image")
    assert isinstance(image_field.storage, S3Storage)
    project = make_project(owner=user)
    data = image_bytes(width=640, height=480, seed=7)

    response = api.post(
        "/api/photos",
        {
            "image": SimpleUploadedFile("room.jpg", data, content_type="image/jpeg"),
            "projectId": str(project.pk),
            "enqueue": "true",
        },
        format="multipart",
    )

    assert response.status_code == 201, response.json()
    photo = Photo.objects.get(pk=response.json()["photo"]["id"])
    assert _object_keys(s3, s3_storage) == [photo.image.name]
    assert photo.image.name == f"photos/{project.pk}/{photo.pk}.jpg"
    assert s3.get_object(Bucket=s3_storage, Key=photo.image.name)["Body"].read() == data
    assert _local_files(media_root) == []

    outcome = photo_analyze(photo_id=str(photo.pk), provider=FakeProvider())

    assert outcome == Outcome.DONE
    photo.refresh_from_db()
    assert photo.status == Photo.Status.DONE
    sizes = _metrics_original_bytes(photo.pk)
    assert sizes and set(sizes) == {len(data)}
    assert _local_files(media_root) == []


# --- end to end: a real worker ------------------------------------------------------------------


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_worker_analyses_a_photo_stored_in_s3(
    start_worker: Callable[..., Worker],
    client_api: Api,
    s3_storage: str,
    s3_worker_env: dict[str, str],
    s3: Any,
    media_root: Path,
) -> None:
    worker = start_worker(threads=2, **s3_worker_env)
    status, project = client_api.post_json("/api/projects", {"name": "S3 move"})
    assert status == 201, project
    data = image_bytes(width=640, height=480, seed=31)

    status, created = client_api.post_multipart(
        "/api/photos",
        {"projectId": project["id"], "enqueue": "true"},
        {"image": ("room.jpg", data, "image/jpeg")},
    )

    assert status == 201, created
    photo_id = created["photo"]["id"]

    def finished() -> dict[str, Any] | None:
        status, polled = client_api.get(f"/api/photos/{photo_id}")
        assert status == 200, polled
        return polled["photo"] if polled["photo"]["status"] in {"DONE", "ERROR"} else None

    photo = poll(worker, "the photo to finish", finished)
    assert (photo["status"], photo["errorCode"], photo["attempts"]) == ("DONE", None, 1), photo
    key = Photo.objects.get(pk=photo_id).image.name
    assert _object_keys(s3, s3_storage) == [key]
    assert s3.get_object(Bucket=s3_storage, Key=key)["Body"].read() == data
    # The worker has no local copy: it measured the bytes it read from the bucket.
    sizes = _metrics_original_bytes(photo_id)
    assert sizes and set(sizes) == {len(data)}
    assert _local_files(media_root) == []

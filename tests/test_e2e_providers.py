"""End to end with real parts everywhere but the far side of the network: a real `rundramatiq`
worker talks to the Anthropic API (a local server speaking it) through the official SDK, and reads
the photo from S3 (a local moto server) — uploaded through the live server's API."""

from __future__ import annotations

import base64
import io
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest
from PIL import Image

from ai_engine.pricing import GENAI_PRICES
from aimetrics.models import AiMetric
from photos.models import Photo
from tests.fakeai import SONNET, FakeAiServer, running_fake_ai
from tests.processes import Api, Worker, poll

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def fake_ai() -> Iterator[FakeAiServer]:
    with running_fake_ai(tokens_in=1200, tokens_out=300) as server:
        yield server


def _big_photo() -> bytes:
    """A 3000×2000 photo: the worker must shrink it before the provider sees it."""
    image = Image.linear_gradient("L").resize((3000, 2000)).convert("RGB")
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def test_worker_analyses_an_s3_photo_with_claude(
    start_worker: Callable[..., Worker],
    client_api: Api,
    fake_ai: FakeAiServer,
    s3_worker_env: dict[str, str],
    s3: Any,
    s3_storage: str,
) -> None:
    worker = start_worker(
        threads=2,
        AI_PROVIDERS="anthropic",
        ANTHROPIC_API_KEY="sk-ant-e2e-secret-123456",
        ANTHROPIC_BASE_URL=fake_ai.url,
        ANTHROPIC_MODEL=SONNET,
        **s3_worker_env,
    )
    status, project = client_api.post_json("/api/projects", {"name": "Claude move"})
    assert status == 201, project
    data = _big_photo()

    status, created = client_api.post_multipart(
        "/api/photos",
        {"projectId": project["id"], "enqueue": "true"},
        {"image": ("salon.jpg", data, "image/jpeg")},
    )
    assert status == 201, created
    photo_id = created["photo"]["id"]

    def finished() -> dict[str, Any] | None:
        status, body = client_api.get(f"/api/photos/{photo_id}")
        assert status == 200, body
        return body["photo"] if body["photo"]["status"] in {"DONE", "ERROR"} else None

    photo = poll(worker, "the photo to finish", finished)

    assert photo["status"] == "DONE", photo
    analysis = photo["analysis"]
    assert (analysis["provider"], analysis["model"]) == ("anthropic", SONNET)
    assert analysis["items"] and photo["roomType"]
    # The SDK reached the Anthropic API once (the room and the items in one answer), with the
    # preflighted image: a JPEG within 1568 px and 1.15 MP, not the 6 MP original.
    requests = fake_ai.requests_for("anthropic")
    assert [r.body["tool_choice"]["name"] for r in requests] == ["report_items"]
    sent = Image.open(io.BytesIO(base64.b64decode(requests[0].image_b64)))
    assert (
        sent.format == "JPEG"
        and max(sent.size) <= 1568
        and sent.size[0] * sent.size[1] <= 1_150_000
    )
    # Usage and cost came back into AiMetric; the key never went anywhere but the request.
    metrics = list(AiMetric.objects.filter(photo_id=photo_id).order_by("created_at"))
    assert [(m.operation, m.success, m.meta.get("roomDetected")) for m in metrics] == [
        ("analyze_photo", True, True)
    ]
    for metric in metrics:
        assert (metric.tokens_in, metric.tokens_out) == (1200, 300)
        assert metric.cost_usd == Decimal("0.008100")  # 1200 × $3/M + 300 × $15/M
        assert metric.price_source == GENAI_PRICES
        assert metric.meta["originalBytes"] == len(data)
        assert metric.meta["sentWidth"] == sent.size[0]
    # The photo lives in the bucket, and the worker read it from there.
    key = Photo.objects.get(pk=photo_id).image.name
    assert s3.get_object(Bucket=s3_storage, Key=key)["Body"].read() == data
    assert "sk-ant-e2e-secret-123456" not in worker.log_path.read_text(errors="replace")

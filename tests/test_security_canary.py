"""A canary API key must never come out anywhere: not in logs (at DEBUG, ours and the SDKs'), API
answers, `Photo.error_message`, AiMetric rows, the admin, or the Dramatiq messages in Redis.

The real Anthropic and OpenAI SDKs talk to a local fake provider (tests/fakeai.py) scripted to do
what providers and proxies do: echo the key in a 401 or 400 body, in a quota message, in an
unexpected status, in a 500; answer with output that breaks our schema and quotes the key; time
out; refuse the connection. The canaries look like no known key format, so only a redaction of the
configured value itself (not a pattern) can hide them. One more test does the same through a real
`rundramatiq` worker and reads its log.
"""

from __future__ import annotations

import functools
import json
import logging
import secrets
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from ai_engine import registry
from ai_engine.errors import AiError, ErrorCode, register_secret
from aimetrics.models import AiMetric
from photos.lifecycle import photo_enqueue
from photos.models import Photo, Project
from photos.services.analysis import photo_analyze
from tests.factories import image_bytes, make_photo, make_project, make_token, make_user
from tests.fakeai import GPT, SONNET, FakeAiServer, anthropic_error, openai_error, running_fake_ai
from tests.processes import Api, Worker, poll

CANARY_ANTHROPIC = f"canary-anthropic-{secrets.token_hex(12)}"
CANARY_OPENAI = f"canary-openai-{secrets.token_hex(12)}"
CANARIES = (CANARY_ANTHROPIC, CANARY_OPENAI)

# The SDK warns about the default model's end of life on every call; not what is tested here.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


# --- what the fake provider answers ---------------------------------------------------------------


def _anthropic_tool_answer(tool_input: Any) -> dict[str, Any]:
    return {
        "id": "msg_canary",
        "type": "message",
        "role": "assistant",
        "model": SONNET,
        "content": [
            {"type": "tool_use", "id": "toolu_canary", "name": "report_room", "input": tool_input}
        ],
        "stop_reason": "tool_use",
        "stop_sequence": None,
        "usage": {"input_tokens": 10, "output_tokens": 5},
    }


def _openai_answer(content: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-canary",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": GPT,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
    }


@dataclass(frozen=True)
class Scenario:
    """Scripts for the fake server (each repeated for every attempt), and the providers asked."""

    scripts: list[dict[str, Any]] = field(default_factory=list)
    providers: tuple[str, ...] = ("anthropic", "openai")
    closed_port: bool = False


def _both(status: int, anthropic_body: Any, openai_body: Any, **extra: Any) -> list[dict[str, Any]]:
    return [
        {"status": status, "body": anthropic_body, "provider": "anthropic", **extra},
        {"status": status, "body": openai_body, "provider": "openai", **extra},
    ]


SCENARIOS = {
    "401-body-echoes-the-key": Scenario(
        _both(
            401,
            anthropic_error("authentication_error", f"invalid x-api-key {CANARY_ANTHROPIC}"),
            openai_error(
                f"Incorrect API key provided: {CANARY_OPENAI}.", "invalid_request_error", "x"
            ),
        )
    ),
    "401-openai-only": Scenario(
        [
            {
                "status": 401,
                "body": openai_error(
                    f"Incorrect API key provided: {CANARY_OPENAI}", "invalid_request_error"
                ),
            }
        ],
        providers=("openai",),
    ),
    "400-body-echoes-the-key": Scenario(
        _both(
            400,
            anthropic_error(
                "invalid_request_error", f"key {CANARY_ANTHROPIC} is not valid for this model"
            ),
            openai_error(f"Incorrect API key provided: {CANARY_OPENAI}", "invalid_request_error"),
        )
    ),
    "400-openai-only": Scenario(
        [
            {
                "status": 400,
                "body": openai_error(f"bad key {CANARY_OPENAI} sent", "invalid_request_error"),
            }
        ],
        providers=("openai",),
    ),
    "403-body-echoes-the-key": Scenario(
        _both(
            403,
            anthropic_error("permission_error", f"{CANARY_ANTHROPIC} may not use this model"),
            openai_error(f"{CANARY_OPENAI} may not use this model", "invalid_request_error"),
        )
    ),
    "429-quota-echoes-the-key": Scenario(
        _both(
            429,
            anthropic_error("rate_limit_error", f"spend limit reached for {CANARY_ANTHROPIC}"),
            openai_error(
                f"You exceeded your current quota ({CANARY_OPENAI})", "insufficient_quota"
            ),
            headers={"retry-after": "0", "x-echo-key": CANARY_ANTHROPIC},
        )
    ),
    "418-unexpected-status-echoes-the-key": Scenario(
        _both(
            418,
            {"error": {"message": f"teapot {CANARY_ANTHROPIC}"}},
            {"error": {"message": f"teapot {CANARY_OPENAI}"}},
        )
    ),
    "500-body-echoes-the-key": Scenario(
        _both(
            500,
            anthropic_error("api_error", f"internal error for {CANARY_ANTHROPIC}"),
            openai_error(f"internal error for {CANARY_OPENAI}", "server_error"),
        )
    ),
    "malformed-answer-quotes-the-key": Scenario(
        [
            {
                "body": _anthropic_tool_answer({"room_type": CANARY_ANTHROPIC, "confidence": 0.5}),
                "provider": "anthropic",
            },
            {
                "body": _openai_answer(json.dumps({"room_type": CANARY_OPENAI, "confidence": 0.5})),
                "provider": "openai",
            },
        ]
    ),
    "malformed-openai-answer-quotes-the-key": Scenario(
        [{"body": _openai_answer(json.dumps({"room_type": CANARY_OPENAI, "confidence": 0.5}))}],
        providers=("openai",),
    ),
    "malformed-answer-key-as-a-field-name": Scenario(
        [
            {
                "body": _anthropic_tool_answer({CANARY_ANTHROPIC: "x", "room_type": "kitchen"}),
                "provider": "anthropic",
            }
        ],
        providers=("anthropic",),
    ),
    "answer-is-not-json-and-quotes-the-key": Scenario(
        [
            {
                "body": _openai_answer(f"Sorry, I cannot use key {CANARY_OPENAI}"),
                "provider": "openai",
            }
        ],
        providers=("openai",),
    ),
    "200-with-a-body-that-is-not-json": Scenario(
        [{"body": f"<html>{CANARY_ANTHROPIC}</html>".encode(), "provider": "anthropic"}],
        providers=("anthropic",),
    ),
    "timeouts": Scenario([{"delay_s": 3.0}]),
    "connection-refused": Scenario(closed_port=True),
}


# --- fixtures -----------------------------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def fake_ai() -> Iterator[FakeAiServer]:
    with running_fake_ai() as server:
        yield server


@pytest.fixture
def canary_env(monkeypatch: pytest.MonkeyPatch, settings: Any) -> None:
    """The canary keys in the environment and in settings (read from the environment at start)."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", CANARY_ANTHROPIC)
    monkeypatch.setenv("OPENAI_API_KEY", CANARY_OPENAI)
    settings.ANTHROPIC_API_KEY = CANARY_ANTHROPIC
    settings.OPENAI_API_KEY = CANARY_OPENAI
    settings.AI_TIMEOUT_S = 0.5
    settings.PHOTO_MAX_ATTEMPTS = 2
    # The engine is built once per process from settings: build it again for these.
    monkeypatch.setattr(registry, "_cached", {})


def _configure(settings: Any, scenario: Scenario, server: FakeAiServer) -> None:
    settings.AI_PROVIDERS = list(scenario.providers)
    base = f"http://127.0.0.1:{_closed_port()}" if scenario.closed_port else server.url
    settings.ANTHROPIC_BASE_URL = base
    settings.OPENAI_BASE_URL = f"{base}/v1"
    registry._cached.clear()
    for script in scenario.scripts:
        server.script(**script, times=20)


# --- where the canary must not be -----------------------------------------------------------------


def _redis_dump(client: Any) -> str:
    parts = []
    for key in client.scan_iter(match=f"{django_settings.DRAMATIQ_NAMESPACE}*", count=1000):
        kind = client.type(key).decode()
        if kind == "string":
            parts.append(client.get(key))
        elif kind == "hash":
            parts += [*client.hkeys(key), *client.hvals(key)]
        elif kind == "list":
            parts += client.lrange(key, 0, -1)
        elif kind == "zset":
            parts += client.zrange(key, 0, -1)
        elif kind == "set":
            parts += list(client.smembers(key))
        parts.append(key)
    return "\n".join(part.decode(errors="replace") for part in parts)


def _admin_pages(photos: list[Photo]) -> dict[str, str]:
    staff = Client()
    staff.force_login(make_user(staff=True, is_superuser=True))
    urls = {
        "photo changelist": reverse("admin:photos_photo_changelist"),
        "AiMetric changelist": reverse("admin:aimetrics_aimetric_changelist"),
    }
    for photo in photos:
        urls[f"photo {photo.pk} change page"] = reverse(
            "admin:photos_photo_change", args=[photo.pk]
        )
    for metric in AiMetric.objects.all():
        urls[f"AiMetric {metric.pk} change page"] = reverse(
            "admin:aimetrics_aimetric_change", args=[metric.pk]
        )
    pages = {}
    for name, url in urls.items():
        response = staff.get(url)
        assert response.status_code == 200, (name, response.status_code)
        pages[name] = response.content.decode(errors="replace")
    return pages


def _api_answers(owner: Any, project: Project, photos: list[Photo]) -> dict[str, str]:
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {make_token(owner)}")
    answers = {
        "photo list": api.get("/api/photos"),
        "project": api.get(f"/api/projects/{project.pk}"),
        **{f"photo {photo.pk}": api.get(f"/api/photos/{photo.pk}") for photo in photos},
    }
    return {name: response.content.decode() for name, response in answers.items()}


def assert_no_canary(surfaces: dict[str, str]) -> None:
    leaks = [
        f"{name}: …{text[max(text.find(canary) - 120, 0) : text.find(canary) + 40]}…"
        for name, text in surfaces.items()
        for canary in CANARIES
        if canary in text
    ]
    assert not leaks, "the canary key leaked:\n" + "\n".join(leaks)


def _log_text(caplog: pytest.LogCaptureFixture) -> str:
    records = [
        f"[{record.name}] {record.getMessage()} {record.exc_text or ''}"
        for record in caplog.records
    ]
    return caplog.text + "\n" + "\n".join(records)


# --- in-process: every failure path, every surface ---------------------------------------------


@pytest.mark.django_db
@pytest.mark.usefixtures("canary_env")
@pytest.mark.parametrize("name", list(SCENARIOS))
def test_canary_key_never_leaks_from_a_failing_provider(
    name: str,
    fake_ai: FakeAiServer,
    settings: Any,
    caplog: pytest.LogCaptureFixture,
    redis_client: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    caplog.set_level(logging.DEBUG)
    scenario = SCENARIOS[name]
    _configure(settings, scenario, fake_ai)
    owner = make_user()
    project = make_project(owner=owner)
    photo = make_photo(project=project)

    with django_capture_on_commit_callbacks(execute=True):
        photo_enqueue(photo=photo)
    for _ in range(settings.PHOTO_MAX_ATTEMPTS):
        with django_capture_on_commit_callbacks(execute=True):
            photo_analyze(photo_id=str(photo.pk))
        photo.refresh_from_db()
        if photo.status != Photo.Status.PENDING:
            break

    assert photo.status == Photo.Status.ERROR, (photo.status, photo.error_message)
    assert fake_ai.requests or scenario.closed_port  # the providers were really asked
    metrics = list(AiMetric.objects.filter(photo_id=photo.pk).values())
    assert metrics and not any(row["success"] for row in metrics)
    assert_no_canary(
        {
            "logs": _log_text(caplog),
            "Photo row": json.dumps(list(Photo.objects.filter(pk=photo.pk).values()), default=str),
            "AiMetric rows": json.dumps(metrics, default=str),
            **_api_answers(owner, project, [photo]),
            **_admin_pages([photo]),
            "Dramatiq messages in Redis": _redis_dump(redis_client),
        }
    )
    # The key did go where it belongs: in the requests' headers, to the provider.
    for request in fake_ai.requests:
        sent = request.headers.get("x-api-key") or request.headers.get("authorization", "")
        assert sent.endswith(CANARY_ANTHROPIC if request.provider == "anthropic" else CANARY_OPENAI)


@pytest.mark.django_db
@pytest.mark.usefixtures("canary_env")
def test_canary_key_never_reaches_the_api_through_an_upload(
    fake_ai: FakeAiServer, settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # Errors the API itself can produce name no key either (the upload path has no provider).
    caplog.set_level(logging.DEBUG)
    owner = make_user()
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {make_token(owner)}")
    project = make_project(owner=owner)

    answers = [
        api.post("/api/photos", {"projectId": str(project.pk)}, format="multipart"),
        api.post("/api/photos/enqueue", {"photoId": CANARY_ANTHROPIC}, format="json"),
        api.get(f"/api/photos/{CANARY_OPENAI}x"),
    ]

    assert [answer.status_code for answer in answers] == [400, 400, 404]
    # The canary sent by the client itself may come back in a validation message; nothing else.
    assert CANARY_OPENAI not in answers[0].content.decode() + answers[1].content.decode()


def test_a_registered_secret_is_masked_in_every_error_message() -> None:
    register_secret("gw-key-7c2d9a1e5b")
    register_secret("short")  # too short to mask safely: ignored

    error = AiError(ErrorCode.BAD_INPUT, "gateway said: gw-key-7c2d9a1e5b is not allowed, short")

    assert error.message == "gateway said: [redacted] is not allowed, short"
    assert "gw-key" not in str(error)


# --- a real worker ------------------------------------------------------------------------------


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_canary_key_never_appears_in_a_worker_log_or_its_results(
    start_worker: Callable[..., Worker],
    client_api: Api,
    fake_ai: FakeAiServer,
    redis_client: Any,
) -> None:
    worker = start_worker(
        threads=2,
        AI_PROVIDERS="anthropic,openai",
        ANTHROPIC_API_KEY=CANARY_ANTHROPIC,
        OPENAI_API_KEY=CANARY_OPENAI,
        ANTHROPIC_BASE_URL=fake_ai.url,
        OPENAI_BASE_URL=fake_ai.openai_url,
        AI_TIMEOUT_S="0.5",
        PHOTO_MAX_ATTEMPTS="1",
        LOG_LEVEL="DEBUG",
    )
    malformed = _anthropic_tool_answer({"room_type": CANARY_ANTHROPIC, "confidence": 0.5})
    scripts: list[dict[str, Any]] = [
        # photo 0: Anthropic is down (and says the key), OpenAI refuses the request (and says it)
        {"status": 500, "body": anthropic_error("api_error", f"down for {CANARY_ANTHROPIC}")},
        {"status": 400, "body": openai_error(f"Incorrect API key provided: {CANARY_OPENAI}", "x")},
        # photo 1: Anthropic answers, twice, with output that quotes the key
        {"body": malformed, "provider": "anthropic"},
        {"body": malformed, "provider": "anthropic"},
        # photo 2: Anthropic is overloaded, OpenAI rejects the key and echoes it
        {"status": 529, "provider": "anthropic"},
        {
            "status": 401,
            "body": openai_error(f"Incorrect API key: {CANARY_OPENAI}", "x"),
            "provider": "openai",
        },
    ]
    for script in scripts:
        fake_ai.script(**script)
    status, project = client_api.post_json("/api/projects", {"name": "Canary move"})
    assert status == 201
    photo_ids = []
    for seed in range(3):
        status, created = client_api.post_multipart(
            "/api/photos",
            {"projectId": project["id"], "enqueue": "true"},
            {"image": ("room.jpg", image_bytes(seed=seed), "image/jpeg")},
        )
        assert status == 201, created
        photo_ids.append(created["photo"]["id"])
        # one photo at a time, so each meets its own scripted failure
        poll(
            worker, f"photo {seed} to fail", functools.partial(_finished, client_api, photo_ids[-1])
        )

    photos = list(Photo.objects.filter(pk__in=photo_ids))
    assert {photo.status for photo in photos} == {Photo.Status.ERROR}
    assert len(fake_ai.requests_for("anthropic")) == 4
    assert len(fake_ai.requests_for("openai")) == 2
    worker.stop()
    assert_no_canary(
        {
            "worker log": worker.log_path.read_text(errors="replace"),
            "Photo rows": json.dumps(
                list(Photo.objects.filter(pk__in=photo_ids).values()), default=str
            ),
            "AiMetric rows": json.dumps(list(AiMetric.objects.values()), default=str),
            **{f"API {pk}": json.dumps(client_api.get(f"/api/photos/{pk}")) for pk in photo_ids},
            "Dramatiq messages in Redis": _redis_dump(redis_client),
        }
    )


def _finished(api: Api, photo_id: str) -> dict[str, Any] | None:
    status, body = api.get(f"/api/photos/{photo_id}")
    assert status == 200, body
    return body["photo"] if body["photo"]["status"] in {"DONE", "ERROR"} else None

"""What one photo costs in provider calls: the room and the items in one call when the client gave
no room type (two only where AI_ROOM_SEPARATE_CALL asks for it), and a cut-off answer asked once
more with a larger output budget, never the identical request. Through the real SDKs, against the
fake AI server (tests/fakeai.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.test import override_settings

from ai_engine.engine import AiEngine
from ai_engine.errors import AiError, ErrorCode
from ai_engine.prompts import ITEMS_OUTPUT_TOKENS, MAX_OUTPUT_TOKENS, ROOM_ITEMS_SCHEMA
from aimetrics.models import AiMetric
from photos.lifecycle import photo_enqueue
from photos.models import Photo
from photos.services.analysis import Outcome, photo_analyze
from tests.factories import make_photo
from tests.fakeai import FakeAiServer, room_answer, running_fake_ai, schema_of, tool_of
from tests.test_providers import IMAGE, IMAGE_B64, PROVIDERS, Recorder, provider_for

TOKENS_IN, TOKENS_OUT = 1000, 500


@pytest.fixture
def fake_ai() -> Iterator[FakeAiServer]:
    with running_fake_ai(tokens_in=TOKENS_IN, tokens_out=TOKENS_OUT) as server:
        yield server


def _photo(capture: Any, **kwargs: Any) -> Photo:
    photo = make_photo(**kwargs)
    with capture(execute=True):
        photo_enqueue(photo=photo)
    return photo


def _analyze(capture: Any, photo: Photo, engine: AiEngine) -> Outcome:
    with capture(execute=True):
        outcome = photo_analyze(photo_id=str(photo.pk), engine=engine)
    photo.refresh_from_db()
    return outcome


def sent_image_b64(server: FakeAiServer) -> str:
    """The image the pipeline sent (its preflight re-encodes the stored one)."""
    return server.requests[0].image_b64


def _metrics(photo: Photo) -> list[AiMetric]:
    return list(AiMetric.objects.filter(photo_id=photo.pk).order_by("created_at", "pk"))


# -- one call for the room and the items ---------------------------------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
def test_without_a_room_type_one_request_asks_for_the_room_and_the_items(
    fake_ai: FakeAiServer, provider: str
) -> None:
    analysis = AiEngine([provider_for(provider, fake_ai)]).analyze_photo(IMAGE, None, ["chair"])

    [request] = fake_ai.requests
    schema = schema_of(request.body)
    assert {"room_type", "room_confidence", "items"} <= set(schema["required"])
    assert (
        schema["properties"]["room_type"]["enum"]
        == ROOM_ITEMS_SCHEMA["properties"]["room_type"]["enum"]
    )
    assert tool_of(request.body) in ("report_items", "items")
    expected = room_answer(IMAGE_B64)
    assert (analysis.room_type, analysis.room_confidence) == (
        expected["room_type"],
        expected["confidence"],
    )
    assert analysis.items


@pytest.mark.parametrize("provider", PROVIDERS)
def test_with_a_room_type_the_request_does_not_ask_for_the_room(
    fake_ai: FakeAiServer, provider: str
) -> None:
    analysis = AiEngine([provider_for(provider, fake_ai)]).analyze_photo(IMAGE, "kitchen")

    [request] = fake_ai.requests
    assert "room_type" not in schema_of(request.body)["properties"]
    assert analysis.room_type is None


@pytest.mark.django_db
@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_photo_without_a_room_type_costs_one_provider_call(
    fake_ai: FakeAiServer, provider: str, django_capture_on_commit_callbacks: Any
) -> None:
    photo = _photo(django_capture_on_commit_callbacks)
    engine = AiEngine([provider_for(provider, fake_ai)])

    assert _analyze(django_capture_on_commit_callbacks, photo, engine) == Outcome.DONE

    assert len(fake_ai.requests) == 1
    [metric] = _metrics(photo)
    assert metric.operation == "analyze_photo" and metric.success
    assert metric.meta["roomDetected"] is True
    assert (metric.tokens_in, metric.tokens_out) == (TOKENS_IN, TOKENS_OUT)
    expected = room_answer(sent_image_b64(fake_ai))
    assert photo.room_type == expected["room_type"]
    assert photo.analysis is not None
    assert photo.analysis["roomConfidence"] == expected["confidence"]


@pytest.mark.django_db
@override_settings(AI_ROOM_SEPARATE_CALL=True)
def test_the_setting_asks_for_the_room_in_a_call_of_its_own(
    fake_ai: FakeAiServer, django_capture_on_commit_callbacks: Any
) -> None:
    photo = _photo(django_capture_on_commit_callbacks)
    engine = AiEngine([provider_for("anthropic", fake_ai)])

    assert _analyze(django_capture_on_commit_callbacks, photo, engine) == Outcome.DONE

    assert [tool_of(r.body) for r in fake_ai.requests] == ["report_room", "report_items"]
    assert "room_type" not in schema_of(fake_ai.requests[1].body)["properties"]
    metrics = _metrics(photo)
    assert [m.operation for m in metrics] == ["detect_room", "analyze_photo"]
    assert "roomDetected" not in metrics[1].meta
    assert photo.room_type == room_answer(sent_image_b64(fake_ai))["room_type"]


@pytest.mark.django_db
def test_a_photo_with_a_room_type_keeps_it_and_says_no_room_was_detected(
    fake_ai: FakeAiServer, django_capture_on_commit_callbacks: Any
) -> None:
    photo = _photo(django_capture_on_commit_callbacks, room_type="office")

    engine = AiEngine([provider_for("openai", fake_ai)])
    assert _analyze(django_capture_on_commit_callbacks, photo, engine) == Outcome.DONE

    [metric] = _metrics(photo)
    assert "roomDetected" not in metric.meta
    assert photo.room_type == "office"
    assert photo.analysis is not None and "roomConfidence" not in photo.analysis


# -- a cut-off answer: once more, with a larger budget -------------------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_cut_off_answer_is_asked_once_more_with_twice_the_budget(
    fake_ai: FakeAiServer, provider: str
) -> None:
    fake_ai.script(outcome="truncated")
    recorder = Recorder()
    engine = AiEngine([provider_for(provider, fake_ai)], on_call=recorder)

    analysis = engine.analyze_photo(IMAGE, "kitchen")

    assert analysis.items
    budgets = [_budget(r.body) for r in fake_ai.requests]
    assert budgets == [ITEMS_OUTPUT_TOKENS, min(2 * ITEMS_OUTPUT_TOKENS, MAX_OUTPUT_TOKENS)]
    first, second = recorder.records
    assert not first.success and first.extra == {"answerProblem": "truncated"}
    assert first.tokens_in == TOKENS_IN and first.cost_usd > 0  # billed, and metered
    assert second.success and second.extra["outputBudget"] == budgets[1]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_an_answer_cut_off_twice_is_bad_input_answer_too_long_after_two_calls(
    fake_ai: FakeAiServer, provider: str
) -> None:
    fake_ai.script(outcome="truncated", times=2)
    recorder = Recorder()
    engine = AiEngine([provider_for(provider, fake_ai)], on_call=recorder)

    with pytest.raises(AiError) as info:
        engine.analyze_photo(IMAGE, "kitchen")

    assert (info.value.code, info.value.retryable) == (ErrorCode.BAD_INPUT, False)
    assert "answer too long" in info.value.message
    assert len(fake_ai.requests) == 2
    assert [r.extra.get("answerProblem") for r in recorder.records] == ["truncated"] * 2
    assert all(r.tokens_in == TOKENS_IN for r in recorder.records)


def test_a_budget_at_the_cap_is_not_asked_again(fake_ai: FakeAiServer) -> None:
    """The larger budget has a cap: an answer cut off at the cap is final."""
    fake_ai.script(outcome="truncated", times=2)
    provider = provider_for("anthropic", fake_ai)
    provider.max_tokens = MAX_OUTPUT_TOKENS  # type: ignore[attr-defined]

    with pytest.raises(AiError, match="answer too long"):
        AiEngine([provider]).analyze_photo(IMAGE, "kitchen")

    assert len(fake_ai.requests) == 1


@pytest.mark.django_db
def test_pipeline_a_photo_cut_off_twice_ends_in_error_answer_too_long(
    fake_ai: FakeAiServer, django_capture_on_commit_callbacks: Any
) -> None:
    photo = _photo(django_capture_on_commit_callbacks)
    fake_ai.script(outcome="truncated", times=2)

    engine = AiEngine([provider_for("anthropic", fake_ai)])
    assert _analyze(django_capture_on_commit_callbacks, photo, engine) == Outcome.ERROR

    assert (photo.status, photo.error_code) == (Photo.Status.ERROR, "BAD_INPUT")
    assert photo.error_message and "answer too long" in photo.error_message
    metrics = _metrics(photo)
    assert len(metrics) == 2 and all(m.meta["answerProblem"] == "truncated" for m in metrics)
    assert all(m.cost_usd > 0 for m in metrics)


def _budget(body: Any) -> int:
    return int(body.get("max_tokens") or body.get("max_completion_tokens"))

"""The SDK-backed providers through the real Anthropic and OpenAI SDKs, against a fake AI server
speaking their HTTP APIs (tests/fakeai.py): what is sent, how answers and errors come back, and
what the engine and the pipeline make of them."""

from __future__ import annotations

import base64
import json
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import anthropic
import pytest
import redis
from django.conf import settings

from ai_engine.anthropic_provider import AnthropicProvider
from ai_engine.breaker import CircuitBreaker
from ai_engine.engine import AiEngine, CallRecord
from ai_engine.errors import AiError, ErrorCode
from ai_engine.openai_provider import OpenAIProvider
from ai_engine.pricing import GENAI_PRICES, OVERRIDE, call_price
from ai_engine.prompts import (
    ITEMS_OUTPUT_TOKENS,
    ITEMS_SCHEMA,
    MAX_ITEMS,
    OPENAI_RANGE_KEYWORDS,
    ROOM_SCHEMA,
    items_prompt,
    provider_schema,
)
from ai_engine.structured import InvalidOutput
from ai_engine.types import AiProvider, ImageBytes, PhotoAnalysis, RoomGuess, Usage
from aimetrics.models import AiMetric
from photos.lifecycle import photo_enqueue
from photos.models import Photo
from photos.services.analysis import Outcome, photo_analyze
from tests.factories import image_bytes, make_photo
from tests.fakeai import (
    GPT,
    GPT_DATED,
    HAIKU_DATED,
    REFUSAL_TEXT,
    SONNET,
    FakeAiServer,
    RecordedRequest,
    anthropic_error,
    items_answer,
    openai_error,
    room_answer,
    running_fake_ai,
)

KEY = "test-key-123"
PROVIDERS = ("anthropic", "openai")
IMAGE = image_bytes(seed=7)
IMAGE_B64 = base64.b64encode(IMAGE).decode()
#: The fake server's default usage, and what it costs at genai-prices' claude-sonnet-4-6 prices
#: (3 / 15 $/M).
TOKENS_IN, TOKENS_OUT = 1000, 500
SONNET_COST = Decimal("0.010500")


@pytest.fixture
def fake_ai() -> Iterator[FakeAiServer]:
    with running_fake_ai(tokens_in=TOKENS_IN, tokens_out=TOKENS_OUT) as server:
        yield server


def anthropic_at(
    base_url: str, *, timeout_s: float = 2.0, model: str = SONNET
) -> AnthropicProvider:
    return AnthropicProvider(api_key=KEY, model=model, timeout_s=timeout_s, base_url=base_url)


def openai_at(base_url: str, *, timeout_s: float = 2.0, model: str = GPT) -> OpenAIProvider:
    return OpenAIProvider(api_key=KEY, model=model, timeout_s=timeout_s, base_url=base_url)


def provider_for(name: str, server: FakeAiServer, *, timeout_s: float = 2.0) -> AiProvider:
    if name == "anthropic":
        return anthropic_at(server.url, timeout_s=timeout_s)
    return openai_at(server.openai_url, timeout_s=timeout_s)


def raised(call: Any) -> AiError:
    with pytest.raises(AiError) as info:
        call()
    return info.value


def sent_key(request: RecordedRequest) -> str:
    bearer = request.headers.get("authorization", "").removeprefix("Bearer ")
    return request.headers.get("x-api-key") or bearer


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Recorder:
    def __init__(self) -> None:
        self.records: list[CallRecord] = []

    def __call__(self, record: CallRecord) -> None:
        self.records.append(record)

    @property
    def summary(self) -> list[tuple[str, bool, ErrorCode | None]]:
        return [(r.provider, r.success, r.error.code if r.error else None) for r in self.records]


def quota_body(provider: str) -> dict[str, Any]:
    if provider == "anthropic":
        return anthropic_error(
            "rate_limit_error", "This request would exceed your organization's spend limit."
        )
    return openai_error(
        "You exceeded your current quota, please check your plan and billing details.",
        "insufficient_quota",
        "insufficient_quota",
    )


def credentials_body(provider: str) -> dict[str, Any]:
    # Worse than the real APIs, which mask the key: the body echoes it whole.
    if provider == "anthropic":
        return anthropic_error("authentication_error", f"invalid x-api-key {KEY}")
    return openai_error(f"Incorrect API key provided: {KEY}.", "invalid_request_error", None)


# -- what the SDKs send ----------------------------------------------------------------------


def test_anthropic_request_puts_the_image_first_and_forces_the_tool(
    fake_ai: FakeAiServer,
) -> None:
    anthropic_at(fake_ai.url).analyze_photo(IMAGE, "kitchen", ["chair", "carton"])

    [request] = fake_ai.requests
    body = request.body
    assert (request.method, request.path) == ("POST", "/v1/messages")
    assert sent_key(request) == KEY
    assert body["model"] == SONNET
    assert body["max_tokens"] == ITEMS_OUTPUT_TOKENS
    [message] = body["messages"]
    image, text = message["content"]
    assert image == {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/jpeg", "data": IMAGE_B64},
    }
    assert text["type"] == "text" and "kitchen" in text["text"] and "carton" in text["text"]
    assert body["tool_choice"] == {"type": "tool", "name": "report_items"}
    [tool] = body["tools"]
    assert tool["name"] == "report_items"
    assert tool["input_schema"] == provider_schema(ITEMS_SCHEMA)
    assert tool["strict"] is True


def test_anthropic_request_is_the_one_the_sdks_messages_create_sends(
    fake_ai: FakeAiServer,
) -> None:
    """The provider encodes the request itself (the image's base64 spliced in, not JSON-encoded
    by the SDK): the same JSON and headers as the SDK's own `messages.create`."""
    anthropic_at(fake_ai.url).analyze_photo(ImageBytes(IMAGE), "kitchen", ["chair", "carton"])
    client = anthropic.Anthropic(api_key=KEY, base_url=fake_ai.url, timeout=2.0, max_retries=0)
    client.messages.create(
        model=SONNET,
        max_tokens=ITEMS_OUTPUT_TOKENS,
        messages=[
            {
                "role": "user",
                "content": [
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/jpeg", "data": IMAGE_B64},
                    },
                    {"type": "text", "text": items_prompt("kitchen", ["chair", "carton"])},
                ],
            }
        ],
        tools=[
            {
                "name": "report_items",
                "description": "Report the answer in this exact structure.",
                "input_schema": provider_schema(ITEMS_SCHEMA),
                "strict": True,
            }
        ],
        tool_choice={"type": "tool", "name": "report_items"},
    )

    ours, sdks = fake_ai.requests
    assert ours.body == sdks.body
    assert ours.path == sdks.path == "/v1/messages"
    assert ours.headers == sdks.headers  # content-length included


def test_anthropic_room_request_forces_the_room_tool(fake_ai: FakeAiServer) -> None:
    anthropic_at(fake_ai.url).detect_room(IMAGE)

    [request] = fake_ai.requests
    assert request.body["tool_choice"] == {"type": "tool", "name": "report_room"}
    assert request.body["tools"][0]["input_schema"] == provider_schema(ROOM_SCHEMA)


def test_openai_request_sends_a_data_url_and_a_strict_json_schema(fake_ai: FakeAiServer) -> None:
    openai_at(fake_ai.openai_url).analyze_photo(IMAGE, "office", ["desk"])

    [request] = fake_ai.requests
    body = request.body
    assert (request.method, request.path) == ("POST", "/v1/chat/completions")
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert body["model"] == GPT
    [message] = body["messages"]
    parts = {part["type"]: part for part in message["content"]}
    assert parts["image_url"]["image_url"]["url"] == f"data:image/jpeg;base64,{IMAGE_B64}"
    assert "office" in parts["text"]["text"]
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {
            "name": "items",
            "schema": provider_schema(ITEMS_SCHEMA, keep=OPENAI_RANGE_KEYWORDS),
            "strict": True,
        },
    }


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("status", [429, 500, 529])
def test_a_failed_call_is_exactly_one_http_request(
    fake_ai: FakeAiServer, provider: str, status: int
) -> None:
    fake_ai.script(status=status, headers={"retry-after": "0"})

    raised(lambda: provider_for(provider, fake_ai).detect_room(IMAGE))

    assert len(fake_ai.requests) == 1  # SDK retries are off: our policy owns retries
    assert fake_ai.requests[0].headers["x-stainless-retry-count"] == "0"


# -- answers ---------------------------------------------------------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
def test_room_answer_parses_into_a_room_guess_with_usage(
    fake_ai: FakeAiServer, provider: str
) -> None:
    guess = provider_for(provider, fake_ai).detect_room(IMAGE)

    expected = room_answer(IMAGE_B64)
    assert isinstance(guess, RoomGuess)
    assert (guess.room_type, guess.confidence) == (expected["room_type"], expected["confidence"])
    assert guess.usage.provider == provider
    assert guess.usage.model == (SONNET if provider == "anthropic" else GPT)
    assert (guess.usage.tokens_in, guess.usage.tokens_out) == (TOKENS_IN, TOKENS_OUT)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_items_answer_parses_into_a_photo_analysis_with_usage(
    fake_ai: FakeAiServer, provider: str
) -> None:
    analysis = provider_for(provider, fake_ai).analyze_photo(IMAGE, "living_room", ["sofa_3_seat"])

    expected = items_answer(IMAGE_B64)
    assert isinstance(analysis, PhotoAnalysis)
    assert analysis.confidence == expected["confidence"]
    assert [(i.key, i.quantity, i.fragile, i.volume_m3_estimate) for i in analysis.items] == [
        (i["key"], i["quantity"], i["fragile"], i["volume_m3_estimate"]) for i in expected["items"]
    ]
    assert (analysis.usage.tokens_in, analysis.usage.tokens_out) == (TOKENS_IN, TOKENS_OUT)


def test_the_same_image_always_gets_the_same_answer(fake_ai: FakeAiServer) -> None:
    provider = anthropic_at(fake_ai.url)

    first = provider.analyze_photo(IMAGE, "kitchen")
    second = provider.analyze_photo(IMAGE, "kitchen")

    assert first.items == second.items


@pytest.mark.parametrize("provider", PROVIDERS)
def test_an_answer_that_breaks_the_schema_is_invalid_output(
    fake_ai: FakeAiServer, provider: str
) -> None:
    fake_ai.script(malformed=True)
    fake_ai.script(malformed=True)
    ai = provider_for(provider, fake_ai)

    with pytest.raises(InvalidOutput) as room:
        ai.detect_room(IMAGE)
    with pytest.raises(InvalidOutput):
        ai.analyze_photo(IMAGE, "kitchen")

    assert room.value.code == ErrorCode.BAD_INPUT and not room.value.retryable


# -- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
def test_rate_limit_with_retry_after_is_retryable_after_that_delay(
    fake_ai: FakeAiServer, provider: str
) -> None:
    fake_ai.script(status=429, headers={"retry-after": "2"})

    error = raised(lambda: provider_for(provider, fake_ai).detect_room(IMAGE))

    assert (error.code, error.retryable, error.retry_after_s) == (ErrorCode.RATE_LIMIT, True, 2.0)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_exhausted_quota_is_a_rate_limit_not_worth_retrying(
    fake_ai: FakeAiServer, provider: str
) -> None:
    fake_ai.script(status=429, body=quota_body(provider), headers={"retry-after": "30"})

    error = raised(lambda: provider_for(provider, fake_ai).detect_room(IMAGE))

    assert (error.code, error.retryable) == (ErrorCode.RATE_LIMIT, False)


def test_anthropics_spend_limit_is_known_by_its_error_code_not_its_words(
    fake_ai: FakeAiServer,
) -> None:
    body = anthropic_error(
        "rate_limit_error", "Request rejected.", error_code="enforced_spend_limit_reached"
    )
    fake_ai.script(status=429, body=body, headers={"retry-after": "30"})

    error = raised(lambda: anthropic_at(fake_ai.url).detect_room(IMAGE))

    assert (error.code, error.retryable) == (ErrorCode.RATE_LIMIT, False)


def test_anthropics_cached_input_tokens_are_counted_as_input() -> None:
    with running_fake_ai(
        tokens_in=TOKENS_IN, tokens_out=TOKENS_OUT, cache_read_tokens=300, cache_creation_tokens=50
    ) as server:
        guess = anthropic_at(server.url).detect_room(IMAGE)

    assert (guess.usage.tokens_in, guess.usage.tokens_out) == (TOKENS_IN + 350, TOKENS_OUT)


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("status", [500, 502, 503, 504, 529])
def test_server_errors_are_provider_down(fake_ai: FakeAiServer, provider: str, status: int) -> None:
    fake_ai.script(status=status)

    error = raised(lambda: provider_for(provider, fake_ai).detect_room(IMAGE))

    assert (error.code, error.retryable) == (ErrorCode.PROVIDER_DOWN, True)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_an_answer_slower_than_the_timeout_is_timeout(fake_ai: FakeAiServer, provider: str) -> None:
    fake_ai.script(delay_s=3)
    started = time.monotonic()

    error = raised(lambda: provider_for(provider, fake_ai, timeout_s=0.4).detect_room(IMAGE))

    assert (error.code, error.retryable) == (ErrorCode.TIMEOUT, True)
    assert time.monotonic() - started < 2


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_refused_connection_is_network(provider: str) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    ai: AiProvider = (
        anthropic_at(url, timeout_s=1) if provider == "anthropic" else openai_at(f"{url}/v1")
    )

    error = raised(lambda: ai.detect_room(IMAGE))

    assert (error.code, error.retryable) == (ErrorCode.NETWORK, True)


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("status", [400, 413, 422])
def test_refused_requests_are_bad_input(fake_ai: FakeAiServer, provider: str, status: int) -> None:
    fake_ai.script(status=status)

    error = raised(lambda: provider_for(provider, fake_ai).detect_room(IMAGE))

    assert (error.code, error.retryable) == (ErrorCode.BAD_INPUT, False)
    assert f"({status})" in error.message


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("status", [401, 403])
def test_rejected_credentials_are_unknown_and_never_show_the_key(
    fake_ai: FakeAiServer, provider: str, status: int
) -> None:
    fake_ai.script(status=status, body=credentials_body(provider))

    error = raised(lambda: provider_for(provider, fake_ai).detect_room(IMAGE))

    assert (error.code, error.retryable) == (ErrorCode.UNKNOWN, False)
    assert "rejected the credentials" in error.message
    assert KEY not in error.message and KEY not in str(error)


# -- the engine: one more try for bad output, fallback, breaker, cost -------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
def test_engine_tries_a_malformed_answer_once_more_then_gives_bad_input(
    fake_ai: FakeAiServer, provider: str
) -> None:
    fake_ai.script(malformed=True, times=2)
    recorder = Recorder()
    engine = AiEngine([provider_for(provider, fake_ai)], on_call=recorder)

    error = raised(lambda: engine.detect_room(IMAGE))

    assert (error.code, error.retryable) == (ErrorCode.BAD_INPUT, False)
    assert len(fake_ai.requests) == 2
    assert recorder.summary == [(provider, False, ErrorCode.BAD_INPUT)] * 2


def test_engine_accepts_a_good_answer_after_a_malformed_one(fake_ai: FakeAiServer) -> None:
    fake_ai.script(malformed=True)
    recorder = Recorder()
    engine = AiEngine([anthropic_at(fake_ai.url)], on_call=recorder)

    analysis = engine.analyze_photo(IMAGE, "bedroom")

    assert analysis.items
    assert len(fake_ai.requests) == 2
    assert recorder.summary == [
        ("anthropic", False, ErrorCode.BAD_INPUT),
        ("anthropic", True, None),
    ]


def test_engine_falls_back_to_openai_when_anthropic_is_overloaded(fake_ai: FakeAiServer) -> None:
    fake_ai.script(status=529, provider="anthropic")
    recorder = Recorder()
    engine = AiEngine([anthropic_at(fake_ai.url), openai_at(fake_ai.openai_url)], on_call=recorder)

    guess = engine.detect_room(IMAGE)

    assert guess.usage.provider == "openai"
    assert [r.provider for r in fake_ai.requests] == ["anthropic", "openai"]
    assert recorder.summary == [
        ("anthropic", False, ErrorCode.PROVIDER_DOWN),
        ("openai", True, None),
    ]


def test_engine_does_not_fall_back_on_bad_input(fake_ai: FakeAiServer) -> None:
    fake_ai.script(status=400, provider="anthropic")
    engine = AiEngine([anthropic_at(fake_ai.url), openai_at(fake_ai.openai_url)])

    error = raised(lambda: engine.detect_room(IMAGE))

    assert error.code == ErrorCode.BAD_INPUT
    assert fake_ai.requests_for("openai") == []


def _breaker(redis_client: Any, *, threshold: int) -> CircuitBreaker:
    prefix = f"{settings.DRAMATIQ_NAMESPACE}:test-breaker:{uuid.uuid4().hex}"
    return CircuitBreaker(redis_client, prefix=prefix, threshold=threshold, cooldown_s=1)


def test_breaker_skips_a_failing_provider_until_the_cooldown_ends(
    fake_ai: FakeAiServer, redis_client: Any
) -> None:
    breaker = _breaker(redis_client, threshold=2)
    engine = AiEngine([anthropic_at(fake_ai.url), openai_at(fake_ai.openai_url)], breaker=breaker)
    fake_ai.script(status=529, provider="anthropic", times=2)

    answers = [engine.detect_room(IMAGE).usage.provider for _ in range(3)]

    assert answers == ["openai"] * 3
    assert len(fake_ai.requests_for("anthropic")) == 2  # the third call skipped it
    assert breaker.is_open("anthropic")

    deadline = time.monotonic() + 3
    while breaker.is_open("anthropic") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert engine.detect_room(IMAGE).usage.provider == "anthropic"  # tried again, and answered
    assert len(fake_ai.requests_for("anthropic")) == 3


def test_breaker_opens_on_redis_6_2(redis_6_2: str) -> None:
    # The failure count once used EXPIRE … NX, which Redis 6.2 refuses: each outage raised.
    client = redis.Redis.from_url(redis_6_2, protocol=2)
    breaker = CircuitBreaker(client, prefix="test-breaker", threshold=2, window_s=60)

    assert breaker.record_failure("anthropic") is False
    assert 55 <= client.ttl("test-breaker:anthropic:failures") <= 60  # the window, set once
    assert breaker.record_failure("anthropic") is True
    assert breaker.is_open("anthropic")


def test_breaker_count_is_reset_by_a_success(fake_ai: FakeAiServer, redis_client: Any) -> None:
    breaker = _breaker(redis_client, threshold=2)
    engine = AiEngine([anthropic_at(fake_ai.url), openai_at(fake_ai.openai_url)], breaker=breaker)
    fake_ai.script(status=529, provider="anthropic")
    fake_ai.script(status=200, provider="anthropic")
    fake_ai.script(status=529, provider="anthropic")

    answers = [engine.detect_room(IMAGE).usage.provider for _ in range(4)]

    # outage, success (count cleared), outage (1 of 2): never open, so anthropic is still asked
    assert answers == ["openai", "anthropic", "openai", "anthropic"]
    assert len(fake_ai.requests_for("anthropic")) == 4
    assert not breaker.is_open("anthropic")


def test_breaker_never_skips_the_last_provider(fake_ai: FakeAiServer, redis_client: Any) -> None:
    breaker = _breaker(redis_client, threshold=1)
    engine = AiEngine([anthropic_at(fake_ai.url)], breaker=breaker)
    fake_ai.script(status=529, times=2)

    first = raised(lambda: engine.detect_room(IMAGE))
    assert breaker.is_open("anthropic")
    second = raised(lambda: engine.detect_room(IMAGE))

    assert first.code == second.code == ErrorCode.PROVIDER_DOWN
    assert len(fake_ai.requests) == 2  # asked again although its circuit is open


def test_provider_schema_strips_range_keywords_not_properties_named_like_them() -> None:
    schema = {
        "type": "object",
        "properties": {
            "maximum": {"type": "integer", "minimum": 0, "maximum": 9},
            "size": {"anyOf": [{"type": "number", "maximum": 5}, {"type": "null"}]},
            "tags": {"type": "array", "items": {"type": "string", "maxLength": 9}, "maxItems": 3},
        },
        "required": ["maximum", "size", "tags"],
    }

    assert provider_schema(schema) == {
        "type": "object",
        "properties": {
            "maximum": {"type": "integer"},
            "size": {"anyOf": [{"type": "number"}, {"type": "null"}]},
            "tags": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["maximum", "size", "tags"],
    }
    kept = provider_schema(schema, keep=OPENAI_RANGE_KEYWORDS)
    assert kept["properties"]["maximum"] == {"type": "integer", "minimum": 0, "maximum": 9}
    assert kept["properties"]["size"]["anyOf"][0] == {"type": "number", "maximum": 5}
    assert kept["properties"]["tags"] == {
        "type": "array",
        "items": {"type": "string"},
        "maxItems": 3,
    }


def test_the_output_budget_holds_the_most_items_the_schema_allows() -> None:
    """A busy room must not be cut off below the schema's own limit. Tokens are estimated at
    3.5 characters each (JSON with short words: 3.5-4 in practice), i.e. on the high side."""
    item = {
        "key": "wardrobe_two_doors",
        "name": "Two-door wooden wardrobe",
        "category": "furniture",
        "quantity": 1,
        "confidence": 0.87,
        "fragile": False,
        "dismantle": True,
        "volume_m3_estimate": 1.8,
    }
    answer = {"items": [item] * MAX_ITEMS, "confidence": 0.9}

    assert ITEMS_SCHEMA["properties"]["items"]["maxItems"] == MAX_ITEMS
    assert len(json.dumps(answer)) / 3.5 <= ITEMS_OUTPUT_TOKENS


def test_openai_request_keeps_the_ranges_its_strict_mode_accepts(fake_ai: FakeAiServer) -> None:
    openai_at(fake_ai.openai_url).analyze_photo(ImageBytes(IMAGE), "kitchen")

    [request] = fake_ai.requests
    schema = request.body["response_format"]["json_schema"]["schema"]
    assert schema["properties"]["items"]["maxItems"] == MAX_ITEMS
    item = schema["properties"]["items"]["items"]["properties"]
    assert (item["quantity"]["minimum"], item["quantity"]["maximum"]) == (1, 500)
    assert "maxLength" not in item["key"]


def test_engine_call_record_carries_the_cost_and_who_priced_it(fake_ai: FakeAiServer) -> None:
    recorder = Recorder()
    engine = AiEngine([anthropic_at(fake_ai.url, model=HAIKU_DATED)], on_call=recorder)

    engine.detect_room(IMAGE)

    [record] = recorder.records
    assert record.model == HAIKU_DATED  # echoed by the server
    assert (record.tokens_in, record.tokens_out) == (TOKENS_IN, TOKENS_OUT)
    assert record.cost_usd == Decimal("0.003500")  # claude-haiku-4-5: 1000 × $1 + 500 × $5, per M
    assert record.price_source == GENAI_PRICES


def test_engine_prices_with_ai_prices_over_genai_prices(fake_ai: FakeAiServer) -> None:
    recorder = Recorder()
    engine = AiEngine(
        [anthropic_at(fake_ai.url)],
        on_call=recorder,
        prices={SONNET: (Decimal("1"), Decimal("2"))},
    )

    engine.detect_room(IMAGE)

    [record] = recorder.records
    assert (record.cost_usd, record.price_source) == (Decimal("0.002000"), OVERRIDE)


@pytest.mark.parametrize(
    ("provider", "cost"),
    [
        # claude-sonnet-4-6: 1000 uncached × $3, 200 cache reads × $0.30, 40 cache writes × $3.75,
        # 500 out × $15, per million (all input at $3 would be $0.011220).
        ("anthropic", Decimal("0.010710")),
        # gpt-5.4-mini: 1000 uncached × $0.75, 200 cached × $0.075, 500 out × $4.50, per million
        # (OpenAI reports no cache writes; all input at $0.75 would be $0.003150).
        ("openai", Decimal("0.003015")),
    ],
)
def test_cache_reads_and_writes_are_priced_at_the_caches_rates(
    provider: str, cost: Decimal
) -> None:
    recorder = Recorder()
    with running_fake_ai(
        tokens_in=TOKENS_IN, tokens_out=TOKENS_OUT, cache_read_tokens=200, cache_creation_tokens=40
    ) as server:
        AiEngine([provider_for(provider, server)], on_call=recorder).detect_room(IMAGE)

    [record] = recorder.records
    assert record.tokens_in == TOKENS_IN + (240 if provider == "anthropic" else 200)
    assert (record.cost_usd, record.price_source) == (cost, GENAI_PRICES)


@pytest.mark.parametrize("name", ["anthropic", "openai"])
def test_a_billed_malformed_answer_is_metered_with_its_tokens_and_cost(name: str) -> None:
    """The provider charged for both answers it sent, broken or not: so does the metric."""
    recorder = Recorder()
    with running_fake_ai(malformed=True, tokens_in=TOKENS_IN, tokens_out=TOKENS_OUT) as server:
        engine = AiEngine([provider_for(name, server)], on_call=recorder)
        error = raised(lambda: engine.detect_room(IMAGE))

    assert isinstance(error, InvalidOutput)
    assert len(recorder.records) == 2  # the answer and the one repeat
    for record in recorder.records:
        assert not record.success
        assert (record.tokens_in, record.tokens_out) == (TOKENS_IN, TOKENS_OUT)
        usage = Usage(name, record.model, TOKENS_IN, TOKENS_OUT)
        assert record.cost_usd == call_price(usage, {}).cost_usd
        assert record.cost_usd > 0 and record.price_source == GENAI_PRICES


def test_engine_prices_openais_dated_answer_model_as_the_model_asked_for() -> None:
    recorder = Recorder()
    with running_fake_ai(response_model=GPT_DATED) as server:
        AiEngine([openai_at(server.openai_url)], on_call=recorder).detect_room(IMAGE)

    [record] = recorder.records
    assert record.model == GPT_DATED
    assert record.cost_usd == Decimal("0.003000")  # 1000 × 0.75 + 500 × 4.5, per million


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize(
    ("outcome", "says", "problem"),
    [
        ("refusal", "the model declined to answer: " + REFUSAL_TEXT, "refused"),
        ("content_filter", "the model declined to answer", "refused"),
    ],
)
def test_a_refused_or_filtered_answer_is_not_asked_again_and_is_metered(
    fake_ai: FakeAiServer, provider: str, outcome: str, says: str, problem: str
) -> None:
    """What the real APIs send instead of an answer: the identical request would be paid again
    and answered the same, so the engine does not repeat it (it did, as a 'malformed' answer).
    A cut-off answer: tests/test_provider_answers.py."""
    fake_ai.script(outcome=outcome)
    recorder = Recorder()
    engine = AiEngine([provider_for(provider, fake_ai)], on_call=recorder)

    error = raised(lambda: engine.analyze_photo(IMAGE, "kitchen"))

    assert (error.code, error.retryable) == (ErrorCode.BAD_INPUT, False)
    assert says in error.message
    assert len(fake_ai.requests) == 1
    [record] = recorder.records
    assert not record.success and record.extra == {"answerProblem": problem}
    assert (record.tokens_in, record.tokens_out) == (TOKENS_IN, TOKENS_OUT)
    assert record.cost_usd > 0


# -- through the pipeline --------------------------------------------------------------------


def _enqueued_photo(capture: Any, **kwargs: Any) -> Photo:
    photo = make_photo(**kwargs)
    with capture(execute=True):
        photo_enqueue(photo=photo)
    return photo


@pytest.mark.django_db
def test_pipeline_stores_done_with_tokens_and_exact_cost_from_the_provider(
    fake_ai: FakeAiServer, django_capture_on_commit_callbacks: Any
) -> None:
    photo = _enqueued_photo(django_capture_on_commit_callbacks)
    engine = AiEngine([anthropic_at(fake_ai.url)])

    with django_capture_on_commit_callbacks(execute=True):
        outcome = photo_analyze(photo_id=str(photo.pk), engine=engine)

    photo.refresh_from_db()
    assert outcome == Outcome.DONE
    assert photo.status == Photo.Status.DONE
    assert photo.analysis is not None
    assert (photo.analysis["provider"], photo.analysis["model"]) == ("anthropic", SONNET)
    metrics = AiMetric.objects.filter(photo_id=photo.pk).order_by("created_at", "pk")
    assert [m.operation for m in metrics] == ["analyze_photo"]  # the room in the same call
    sent = base64.b64decode(fake_ai.requests[0].image_b64)
    for metric in metrics:
        assert metric.success and metric.provider == "anthropic"
        assert (metric.tokens_in, metric.tokens_out) == (TOKENS_IN, TOKENS_OUT)
        assert (metric.cost_usd, metric.price_source) == (SONNET_COST, GENAI_PRICES)
        assert metric.meta["sentBytes"] == len(sent)
        for key in ("originalBytes", "sentWidth", "sentHeight", "estimatedImageTokens"):
            assert isinstance(metric.meta[key], int) and metric.meta[key] > 0


@pytest.mark.django_db
def test_pipeline_a_refusal_ends_in_error_saying_so_after_one_paid_call(
    fake_ai: FakeAiServer, django_capture_on_commit_callbacks: Any
) -> None:
    photo = _enqueued_photo(django_capture_on_commit_callbacks, room_type="kitchen")
    fake_ai.script(outcome="refusal")

    with django_capture_on_commit_callbacks(execute=True):
        outcome = photo_analyze(
            photo_id=str(photo.pk), engine=AiEngine([anthropic_at(fake_ai.url)])
        )

    photo.refresh_from_db()
    assert outcome == Outcome.ERROR
    assert (photo.status, photo.error_code) == (Photo.Status.ERROR, "BAD_INPUT")
    assert photo.error_message and "declined" in photo.error_message
    [metric] = AiMetric.objects.filter(photo_id=photo.pk)
    assert not metric.success and metric.cost_usd == SONNET_COST
    assert metric.meta["answerProblem"] == "refused"


@pytest.mark.django_db
def test_pipeline_rate_limit_schedules_the_retry_after_the_providers_delay(
    fake_ai: FakeAiServer, django_capture_on_commit_callbacks: Any, photo_queue: Any
) -> None:
    photo = _enqueued_photo(django_capture_on_commit_callbacks)
    fake_ai.script(status=429, headers={"retry-after": "7"})
    engine = AiEngine([anthropic_at(fake_ai.url)])

    before_ms = time.time() * 1000
    with django_capture_on_commit_callbacks(execute=True):
        outcome = photo_analyze(photo_id=str(photo.pk), engine=engine)
    after_ms = time.time() * 1000

    photo.refresh_from_db()
    assert outcome == Outcome.RETRY
    assert (photo.status, photo.error_code) == (Photo.Status.PENDING, "RATE_LIMIT")
    [message] = photo_queue.delayed()
    assert message["args"] == [str(photo.pk)]
    eta = message["options"]["eta"]
    assert eta - before_ms >= 7000
    assert eta - after_ms <= 7500


@pytest.mark.django_db
def test_pipeline_rejected_credentials_are_a_terminal_error_without_the_key(
    fake_ai: FakeAiServer,
    django_capture_on_commit_callbacks: Any,
    photo_queue: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    photo = _enqueued_photo(django_capture_on_commit_callbacks)
    fake_ai.script(status=401, body=credentials_body("anthropic"))
    engine = AiEngine([anthropic_at(fake_ai.url)])

    with django_capture_on_commit_callbacks(execute=True):
        outcome = photo_analyze(photo_id=str(photo.pk), engine=engine)

    photo.refresh_from_db()
    assert outcome == Outcome.ERROR
    assert (photo.status, photo.error_code) == (Photo.Status.ERROR, "UNKNOWN")
    assert photo.error_message and KEY not in photo.error_message
    assert photo_queue.delayed() == []  # no retry (the ready message is the enqueue's own)
    metric = AiMetric.objects.get(photo_id=photo.pk)
    assert metric.error_type == "UNKNOWN" and KEY not in json.dumps(metric.meta)
    assert KEY not in caplog.text


# -- the fake server itself ------------------------------------------------------------------


def test_fake_server_faults_are_rate_limits_outages_and_slow_answers() -> None:
    with running_fake_ai(fault_rate=1.0, fault_delay_s=1.0, seed=3) as server:
        ai = anthropic_at(server.url, timeout_s=0.2)
        codes = {raised(lambda: ai.detect_room(IMAGE)).code for _ in range(8)}

    assert codes <= {ErrorCode.RATE_LIMIT, ErrorCode.PROVIDER_DOWN, ErrorCode.TIMEOUT}
    assert len(codes) >= 2


def test_fake_server_malformed_mode_breaks_every_answer() -> None:
    with running_fake_ai(malformed=True, latency_ms=20) as server:
        engine = AiEngine([openai_at(server.openai_url)])
        started = time.monotonic()
        error = raised(lambda: engine.detect_room(IMAGE))

    assert isinstance(error, InvalidOutput)
    assert len(server.requests) == 2
    assert time.monotonic() - started >= 0.04


def test_fake_server_runs_as_its_own_process() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.fakeai", "--port", "0", "--latency-ms", "1"],
        cwd=Path(__file__).resolve().parent.parent,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        port = int(process.stdout.readline())
        guess = openai_at(f"http://127.0.0.1:{port}/v1").detect_room(IMAGE)
        assert guess.room_type == room_answer(IMAGE_B64)["room_type"]
    finally:
        process.terminate()
        process.wait(timeout=5)
    assert process.returncode == 0

"""The fake AI server's rate limits (tests/fakeai_limits.py), through the real Anthropic and
OpenAI SDKs and our providers: refused beyond the limit with the APIs' own 429, their headers on
every answer, the limit recovering as its bucket refills, and images counted as the APIs count
them."""

from __future__ import annotations

import math
import time
from datetime import datetime
from typing import Any

import anthropic
import openai
import pytest

from ai_engine.anthropic_provider import AnthropicProvider
from ai_engine.errors import AiError, ErrorCode
from ai_engine.openai_provider import OpenAIProvider
from ai_engine.types import AiProvider
from tests.factories import image_bytes
from tests.fakeai import GPT, SONNET, FakeAiServer, running_fake_ai
from tests.fakeai_limits import anthropic_image_tokens, openai_image_tokens

KEY = "test-key-123"
PROVIDERS = ("anthropic", "openai")
IMAGE = image_bytes(seed=3)
HELLO: Any = [{"role": "user", "content": "hello"}]  # the SDKs type it per provider


def provider_for(name: str, server: FakeAiServer) -> AiProvider:
    if name == "anthropic":
        return AnthropicProvider(api_key=KEY, model=SONNET, timeout_s=5, base_url=server.url)
    return OpenAIProvider(api_key=KEY, model=GPT, timeout_s=5, base_url=server.openai_url)


def anthropic_client(server: FakeAiServer, *, max_retries: int = 0) -> anthropic.Anthropic:
    return anthropic.Anthropic(
        api_key=KEY, base_url=server.url, timeout=10, max_retries=max_retries
    )


def openai_client(server: FakeAiServer, *, max_retries: int = 0) -> openai.OpenAI:
    return openai.OpenAI(
        api_key=KEY, base_url=server.openai_url, timeout=10, max_retries=max_retries
    )


def ask(provider: str, server: FakeAiServer, *, max_retries: int = 0) -> Any:
    """One call through the SDK itself; its raw response (headers and all)."""
    if provider == "anthropic":
        return anthropic_client(server, max_retries=max_retries).messages.with_raw_response.create(
            model=SONNET, max_tokens=256, messages=HELLO
        )
    return openai_client(server, max_retries=max_retries).chat.completions.with_raw_response.create(
        model=GPT, messages=HELLO
    )


def test_anthropic_beyond_rpm_is_its_rate_limit_error_with_retry_after() -> None:
    with running_fake_ai(rpm=3) as server:
        remaining = [
            ask("anthropic", server).headers["anthropic-ratelimit-requests-remaining"]
            for _ in range(3)
        ]
        with pytest.raises(anthropic.RateLimitError) as refused:
            ask("anthropic", server)

    assert remaining == ["2", "1", "0"]
    error = refused.value
    assert error.status_code == 429
    assert isinstance(error.body, dict) and error.body["type"] == "error"
    assert error.body["error"]["type"] == "rate_limit_error"
    assert "3 requests per minute" in error.body["error"]["message"]
    headers = error.response.headers
    # One request comes back every 60 s / 3: the wait is whole seconds, at most that.
    assert 1 <= int(headers["retry-after"]) <= 20
    assert headers["anthropic-ratelimit-requests-limit"] == "3"
    assert headers["anthropic-ratelimit-requests-remaining"] == "0"
    reset = datetime.fromisoformat(headers["anthropic-ratelimit-requests-reset"])
    assert 0 < reset.timestamp() - time.time() <= 61
    assert server.stats()["accepted"] == 3
    assert server.stats()["rate_limited:requests"] == 1
    calls = server.calls()
    assert (len(calls["accepted"]), len(calls["rejected"])) == (3, 1)
    assert calls["accepted"] == sorted(calls["accepted"]) <= calls["rejected"]


def test_openai_beyond_rpm_is_rate_limit_exceeded_of_type_requests() -> None:
    with running_fake_ai(rpm=2, tpm=100_000) as server:
        first = ask("openai", server)
        ask("openai", server)
        with pytest.raises(openai.RateLimitError) as refused:
            ask("openai", server)

    headers = first.headers
    assert (headers["x-ratelimit-limit-requests"], headers["x-ratelimit-remaining-requests"]) == (
        "2",
        "1",
    )
    prompt_tokens = first.parse().usage.prompt_tokens
    remaining = int(headers["x-ratelimit-remaining-tokens"])
    assert 100_000 - prompt_tokens <= remaining <= 100_000 - prompt_tokens + 5
    assert headers["x-ratelimit-reset-requests"].endswith("s")
    error = refused.value
    assert (error.status_code, error.code, error.type) == (429, "rate_limit_exceeded", "requests")
    assert "requests per min (RPM): Limit 2" in error.message
    assert int(error.response.headers["retry-after"]) >= 1
    assert server.stats()["rate_limited"] == 1


def test_without_limits_nothing_is_refused_and_no_limit_header_is_sent() -> None:
    with running_fake_ai() as server:
        answers = [ask("anthropic", server) for _ in range(5)]

    assert not any("ratelimit" in name for name in answers[-1].headers)
    assert "rate_limited" not in server.stats()


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_refused_call_is_our_retryable_rate_limit_and_the_limit_recovers(
    provider: str,
) -> None:
    # A one-second "minute": the bucket refills two requests a second.
    with running_fake_ai(rpm=2, limit_window_s=1.0) as server:
        ai = provider_for(provider, server)
        ai.detect_room(IMAGE)
        ai.detect_room(IMAGE)
        with pytest.raises(AiError) as refused:
            ai.detect_room(IMAGE)
        error = refused.value
        assert (error.code, error.retryable) == (ErrorCode.RATE_LIMIT, True)
        assert error.retry_after_s == 1.0
        time.sleep(error.retry_after_s)
        ai.detect_room(IMAGE)

        assert server.stats()["accepted"] == 3
        assert server.stats()["rate_limited"] == 1


@pytest.mark.parametrize("provider", PROVIDERS)
def test_the_sdks_own_retry_waits_the_retry_after_and_gets_through(provider: str) -> None:
    with running_fake_ai(rpm=1, limit_window_s=1.0) as server:
        ask(provider, server)
        started = time.monotonic()
        ask(provider, server, max_retries=1)  # refused, then let through after retry-after
        waited = time.monotonic() - started

    assert server.stats()["rate_limited"] == 1
    assert server.stats()["accepted"] == 2
    assert waited >= 0.9


def test_input_tokens_count_the_image_as_anthropic_does() -> None:
    image = image_bytes(width=1200, height=900)
    image_tokens = anthropic_image_tokens(1200, 900)
    # Room for one call (the image and its prompt), not for two.
    with running_fake_ai(itpm=2 * image_tokens, tokens_in=None) as server:
        ai = provider_for("anthropic", server)
        first = ai.detect_room(image)
        with pytest.raises(AiError) as refused:
            ai.detect_room(image)

    assert image_tokens < first.usage.tokens_in <= 2 * image_tokens
    assert refused.value.code == ErrorCode.RATE_LIMIT
    assert server.stats()["rate_limited:input_tokens"] == 1


def test_output_tokens_are_reserved_at_max_tokens_and_the_unused_part_given_back() -> None:
    with running_fake_ai(otpm=2500, tokens_out=500) as server:
        client = anthropic_client(server)
        first = client.messages.with_raw_response.create(
            model=SONNET, max_tokens=2048, messages=HELLO
        )
        remaining = int(first.headers["anthropic-ratelimit-output-tokens-remaining"])
        with pytest.raises(anthropic.RateLimitError):  # 2,048 more do not fit in what is left
            client.messages.create(model=SONNET, max_tokens=2048, messages=HELLO)
        client.messages.create(model=SONNET, max_tokens=256, messages=HELLO)

    assert 2000 <= remaining <= 2005  # 2,500 - the 500 used (and a few refilled meanwhile)
    assert first.headers["anthropic-ratelimit-tokens-limit"] == "2500"
    assert server.stats()["rate_limited:output_tokens"] == 1


def test_openai_counts_the_maximum_output_against_tpm_and_keeps_it_counted() -> None:
    with running_fake_ai(tpm=10_000, tokens_out=500) as server:
        first = openai_client(server).chat.completions.with_raw_response.create(
            model=GPT, messages=HELLO, max_completion_tokens=2048
        )

    usage = first.parse().usage
    assert usage is not None
    prompt_tokens = usage.prompt_tokens
    remaining = int(first.headers["x-ratelimit-remaining-tokens"])
    # The prompt and all 2,048 of the budget, not the 500 used (a few refilled meanwhile).
    assert 10_000 - prompt_tokens - 2048 <= remaining <= 10_000 - prompt_tokens - 2048 + 5


def test_image_token_rules_match_the_providers_published_examples() -> None:
    # Anthropic's vision docs: 1092 × 1092 is ~1,590 tokens, 200 × 200 ~54; larger images are
    # downscaled first, so a 12 MP phone photo costs no more than ~1,600.
    assert anthropic_image_tokens(1092, 1092) == 1590
    assert anthropic_image_tokens(200, 200) == 54
    assert 1500 < anthropic_image_tokens(4032, 3024) <= 1600
    # OpenAI's: 1024 × 1024 high detail is 4 tiles, 765 tokens; 2048 × 4096 is 6 tiles, 1,105;
    # low detail is 85 whatever the size.
    assert openai_image_tokens(1024, 1024) == 765
    assert openai_image_tokens(2048, 4096) == 1105
    assert openai_image_tokens(4096, 8192, detail="low") == 85
    assert math.isclose(openai_image_tokens(512, 512), 85 + 170)

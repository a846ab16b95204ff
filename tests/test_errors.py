"""Unit tests of errors as data (`ai_engine.errors`) and of the retry backoff."""

from __future__ import annotations

from typing import Any

import pytest

from ai_engine.errors import (
    MESSAGE_MAX_LENGTH,
    AiError,
    ErrorCode,
    error_from_exception,
    redact,
    safe_message,
)
from photos.services.analysis import retry_delay_ms


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (TimeoutError("read timed out"), ErrorCode.TIMEOUT),
        (ConnectionError("connection reset"), ErrorCode.NETWORK),
        (ConnectionRefusedError("refused"), ErrorCode.NETWORK),  # a ConnectionError subclass
        (ValueError("bad json"), ErrorCode.UNKNOWN),
        (KeyError("items"), ErrorCode.UNKNOWN),
    ],
)
def test_error_from_exception_maps_exception_types_to_codes(
    exc: BaseException, code: ErrorCode
) -> None:
    error = error_from_exception(exc)

    assert isinstance(error, AiError)
    assert error.code == code


def test_error_from_exception_keeps_the_cause_in_the_message() -> None:
    assert error_from_exception(TimeoutError("read timed out")).message == (
        "timed out: read timed out"
    )
    assert error_from_exception(ValueError("bad json")).message == "ValueError: bad json"


def test_error_from_exception_passes_an_ai_error_through_unchanged() -> None:
    original = AiError(ErrorCode.RATE_LIMIT, "slow down", retry_after_s=3.0)

    assert error_from_exception(original) is original


@pytest.mark.parametrize(
    ("code", "retryable"),
    [
        (ErrorCode.TIMEOUT, True),
        (ErrorCode.PROVIDER_DOWN, True),
        (ErrorCode.RATE_LIMIT, True),
        (ErrorCode.NETWORK, True),
        (ErrorCode.BAD_INPUT, False),
        (ErrorCode.UNKNOWN, False),
    ],
)
def test_retryable_follows_the_code(code: ErrorCode, retryable: bool) -> None:
    assert AiError(code, "x").retryable is retryable


def test_retryable_can_be_overridden_by_the_provider() -> None:
    assert AiError(ErrorCode.TIMEOUT, "x", retryable=False).retryable is False
    assert AiError(ErrorCode.UNKNOWN, "x", retryable=True).retryable is True


def test_code_given_as_string_becomes_an_error_code() -> None:
    error = AiError("TIMEOUT", "x")  # type: ignore[arg-type]

    assert error.code is ErrorCode.TIMEOUT
    with pytest.raises(ValueError):
        AiError("NOT_A_CODE", "x")  # type: ignore[arg-type]


def test_safe_message_truncates_to_200_characters() -> None:
    message = safe_message("word " * 300)

    assert len(message) == MESSAGE_MAX_LENGTH == 200
    assert message.endswith("…")


def test_safe_message_leaves_short_messages_alone_but_on_one_line() -> None:
    assert safe_message("a" * 200) == "a" * 200
    assert safe_message("first line\n  second\tline ") == "first line second line"


def test_ai_error_message_is_safe() -> None:
    error = AiError(ErrorCode.UNKNOWN, "key sk-ant-abcdef123456 " + "x" * 500)

    assert len(error.message) <= 200
    assert "sk-ant" not in error.message
    assert "abcdef123456" not in error.message


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("invalid key sk-ant-abcdef123456 given", "abcdef123456"),
        ("openai said sk-proj-ZZZ999yyy888", "ZZZ999yyy888"),
        ("api_key=XYZ123", "XYZ123"),
        ("request failed: api-key: XYZ123, retry", "XYZ123"),
        ('{"x-api-key": "XYZ123"}', "XYZ123"),
        ("token=abc123;", "abc123"),
    ],
)
def test_safe_message_redacts_credentials(text: str, secret: str) -> None:
    message = safe_message(text)

    assert secret not in message
    assert "[redacted]" in message


def test_redaction_keeps_the_rest_of_the_message() -> None:
    assert redact("api_key=XYZ123 was refused") == "api_key=[redacted] was refused"
    assert redact("key sk-ant-abcdef123456 bad") == "key [redacted] bad"


@pytest.mark.parametrize(
    ("header", "secret"),
    [
        ("Authorization: Bearer abc.def", "abc.def"),
        ("authorization: bearer abc.def", "abc.def"),
        ("Authorization: Basic dXNlcjpwYXNz", "dXNlcjpwYXNz"),
        ("Authorization: Token 0123456789abcdef", "0123456789abcdef"),
    ],
)
def test_authorization_header_token_is_redacted(header: str, secret: str) -> None:
    # The scheme after "Authorization:" was masked and the token itself left in clear.
    message = safe_message(f"401 with header {header}")

    assert secret not in message
    assert "[redacted]" in message


def test_bare_bearer_token_is_redacted() -> None:
    assert "abc.def" not in safe_message("sent Bearer abc.def")


def test_redaction_happens_before_truncation() -> None:
    # A key straddling the 200th character must not survive as a prefix.
    text = "x" * 190 + " sk-ant-abcdef123456"

    message = safe_message(text)

    assert "sk-ant" not in message
    assert "abcdef" not in message


@pytest.fixture
def backoff(settings: Any) -> Any:
    settings.PHOTO_RETRY_BASE_MS = 1_000
    settings.PHOTO_RETRY_MAX_MS = 10_000
    return settings


@pytest.mark.parametrize(
    ("attempt", "ceiling"),
    [(1, 1_000), (2, 2_000), (3, 4_000), (4, 8_000), (5, 10_000), (9, 10_000)],
)
def test_retry_delay_is_jittered_below_an_exponential_ceiling(
    backoff: Any, attempt: int, ceiling: int
) -> None:
    delays = [retry_delay_ms(attempt=attempt) for _ in range(200)]

    assert all(ceiling // 2 <= delay <= ceiling for delay in delays)
    assert len(set(delays)) > 1  # jittered, not a fixed value


def test_retry_delay_grows_with_attempts(backoff: Any) -> None:
    # The ranges of successive attempts overlap only at their edges, so the means must grow.
    means = [
        sum(retry_delay_ms(attempt=attempt) for _ in range(100)) / 100 for attempt in range(1, 5)
    ]

    assert means == sorted(means)
    assert means[-1] > 4 * means[0]


def test_retry_delay_is_capped_by_the_setting(backoff: Any) -> None:
    backoff.PHOTO_RETRY_MAX_MS = 3_000

    assert max(retry_delay_ms(attempt=30) for _ in range(200)) <= 3_000


@pytest.mark.parametrize("retry_after", [0.5, 2.0, 30.0])
def test_retry_after_sets_the_delay(backoff: Any, retry_after: float) -> None:
    delays = [retry_delay_ms(attempt=1, retry_after_s=retry_after) for _ in range(200)]

    low = int(retry_after * 1000)
    assert all(low <= delay <= low + 250 for delay in delays)


def test_retry_after_wins_over_the_cap(backoff: Any) -> None:
    # The provider knows when it will accept calls again; our cap does not shorten that.
    assert retry_delay_ms(attempt=1, retry_after_s=60.0) >= 60_000

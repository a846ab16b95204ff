"""Errors as data: every provider failure becomes one `AiError` with a stable code."""

from __future__ import annotations

import re
from enum import StrEnum


class ErrorCode(StrEnum):
    TIMEOUT = "TIMEOUT"
    PROVIDER_DOWN = "PROVIDER_DOWN"
    BAD_INPUT = "BAD_INPUT"
    RATE_LIMIT = "RATE_LIMIT"
    NETWORK = "NETWORK"
    UNKNOWN = "UNKNOWN"


RETRYABLE_CODES = frozenset(
    {ErrorCode.TIMEOUT, ErrorCode.PROVIDER_DOWN, ErrorCode.RATE_LIMIT, ErrorCode.NETWORK}
)
MESSAGE_MAX_LENGTH = 200

# Anything that looks like a credential is masked before a message is stored or logged: the
# configured keys themselves (whatever they look like: a gateway's keys need not start with
# "sk-"), then the usual shapes of keys and auth headers.
_known_secrets: set[str] = set()
_MIN_SECRET_LENGTH = 8  # shorter values would mask ordinary words
_SECRET_PATTERNS = [
    re.compile(r"sk-[A-Za-z0-9_\-]{6,}"),
    re.compile(
        r"(?i)(api[_-]?key|authorization|x-api-key|token|bearer)([\"'=:\s]+)"
        r"((?:bearer|basic|token)\s+)?[^\s,\"';]+"
    ),
]


def register_secret(value: str | None) -> None:
    """Mask this exact value in every message from now on. Providers register their API keys:
    a provider or a proxy may echo the key in an error body, or a model in its answer."""
    if value and len(value) >= _MIN_SECRET_LENGTH:
        _known_secrets.add(value)


def redact(text: str) -> str:
    """Mask the registered secrets, API keys and auth headers in free text."""
    for secret in sorted(_known_secrets, key=len, reverse=True):
        text = text.replace(secret, "[redacted]")
    text = _SECRET_PATTERNS[0].sub("[redacted]", text)
    return _SECRET_PATTERNS[1].sub(r"\1\2\3[redacted]", text)


def safe_message(text: str) -> str:
    """A message fit for the database and the API: redacted, one line, at most 200 characters."""
    one_line = " ".join(redact(text).split())
    if len(one_line) <= MESSAGE_MAX_LENGTH:
        return one_line
    return one_line[: MESSAGE_MAX_LENGTH - 1] + "…"


class AiError(Exception):
    """A provider call failed. `code` is stable; `retryable` says whether trying again can help."""

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        *,
        retryable: bool | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        self.code = ErrorCode(code)
        self.message = safe_message(message)
        self.retryable = self.code in RETRYABLE_CODES if retryable is None else retryable
        self.retry_after_s = retry_after_s
        super().__init__(f"{self.code}: {self.message}")


def error_from_exception(exc: BaseException) -> AiError:
    """Map any exception raised while analysing to an `AiError` (unknown ones are UNKNOWN)."""
    if isinstance(exc, AiError):
        return exc
    if isinstance(exc, TimeoutError):
        return AiError(ErrorCode.TIMEOUT, f"timed out: {exc}")
    if isinstance(exc, ConnectionError):
        return AiError(ErrorCode.NETWORK, f"connection failed: {exc}")
    return AiError(ErrorCode.UNKNOWN, f"{type(exc).__name__}: {exc}")

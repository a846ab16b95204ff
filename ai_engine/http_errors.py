"""HTTP status → stable error code, shared by the SDK providers (which pass in what the SDK saw)."""

from __future__ import annotations

import email.utils
import time
from collections.abc import Mapping

from ai_engine.errors import AiError, ErrorCode

#: Error codes that say "no more spending until someone pays", whatever the status.
QUOTA_CODES = frozenset({"enforced_spend_limit_reached", "insufficient_quota"})
#: The same said in words, for answers without such a code (a proxy's, an older API's).
_QUOTA_MARKERS = (
    "insufficient_quota",
    "quota",
    "spend limit",
    "spend_limit",
    "credit balance",
    "billing",
    "usage limit",
)


def parse_retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds to wait, from `retry-after-ms` or `retry-after` (seconds or an HTTP date)."""
    if not headers:
        return None
    lowered = {key.lower(): value for key, value in headers.items()}
    if "retry-after-ms" in lowered:
        try:
            return max(float(lowered["retry-after-ms"]) / 1000, 0.0)
        except ValueError:
            pass
    value = lowered.get("retry-after")
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        return max(parsed.timestamp() - time.time(), 0.0) if parsed else None


def error_for_status(
    provider: str,
    status: int,
    *,
    headers: Mapping[str, str] | None = None,
    detail: str = "",
    codes: frozenset[str] = frozenset(),
) -> AiError:
    """Map a provider's HTTP error to our codes. `detail` is the provider's own error text
    (type, code, message), `codes` its machine-readable error codes. Providers and proxies may
    echo the key in it: `AiError` redacts every message (the configured keys, and anything shaped
    like a key)."""
    lowered = detail.lower()
    worded = any(marker in lowered for marker in _QUOTA_MARKERS)
    if status in (400, 402, 403, 429) and (codes & QUOTA_CODES or worded):
        # A spend limit or exhausted quota: retrying cannot help until someone pays. Anthropic
        # has been seen to say so with a 400 ("workspace API usage limits"), OpenAI with a 429.
        return AiError(
            ErrorCode.RATE_LIMIT,
            f"{provider}: quota or spend limit exhausted ({status}): {detail}",
            retryable=False,
        )
    if status == 429:
        return AiError(
            ErrorCode.RATE_LIMIT,
            f"{provider}: rate limited (429)",
            retry_after_s=parse_retry_after(headers),
        )
    if status in (401, 403):
        return AiError(
            ErrorCode.UNKNOWN,
            f"{provider}: the provider rejected the credentials ({status})",
            retryable=False,
        )
    if status in (400, 413, 422):
        return AiError(ErrorCode.BAD_INPUT, f"{provider}: request refused ({status}): {detail}")
    if status == 408:
        return AiError(ErrorCode.TIMEOUT, f"{provider}: request timeout ({status})")
    if status in (500, 502, 503, 504, 529) or status >= 500:
        return AiError(ErrorCode.PROVIDER_DOWN, f"{provider}: unavailable ({status})")
    return AiError(ErrorCode.UNKNOWN, f"{provider}: unexpected status {status}: {detail}")

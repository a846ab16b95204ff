"""The AI engine: runs one operation over the ordered providers, with fallback, a shared circuit
breaker, one more try for an answer that breaks our schema (or, with a larger output budget, for
one that was cut off), and a record of every call."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from ai_engine.breaker import CircuitBreaker
from ai_engine.errors import AiError, ErrorCode, error_from_exception
from ai_engine.pricing import Overrides, call_price
from ai_engine.prompts import MAX_OUTPUT_TOKENS
from ai_engine.quota import Cost, QuotaLimiter, Slot, Wait
from ai_engine.structured import AnswerTruncated, BilledAnswer, InvalidOutput
from ai_engine.types import AiProvider, PhotoAnalysis, RoomGuess, Usage, answer_to_json

logger = logging.getLogger(__name__)

#: Failures that say "this provider is not answering": try the next one, count toward the breaker.
OUTAGE_CODES = frozenset({ErrorCode.PROVIDER_DOWN, ErrorCode.TIMEOUT, ErrorCode.NETWORK})
#: How long every worker holds off a provider's model after a 429 that names no `retry-after`.
RATE_LIMIT_BACK_OFF_S = 1.0


@dataclass(frozen=True)
class CallRecord:
    """One provider call, as the caller will store it (an AiMetric row)."""

    provider: str
    model: str
    operation: str
    latency_ms: int
    success: bool
    error: AiError | None = None
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: Decimal = Decimal("0")
    #: Who priced the call (`ai_engine.pricing`); empty when no answer came, so nothing was billed.
    price_source: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    #: The successful answer as plain JSON (`answer_to_json`), for the caller to keep and reuse.
    answer: dict[str, Any] | None = None


#: One provider call: the provider, and an output budget replacing its own (None: its own).
type Call[T] = Callable[[AiProvider, int | None], T]


def _ignore(record: CallRecord) -> None:
    return None


def calls_cost(calls: Sequence[CallRecord], slot: Slot) -> Cost:
    """What the calls made under `slot` (those to its provider) really cost its quotas."""
    mine = [record for record in calls if record.provider == slot.provider]
    per_call_in = slot.cost.tokens_in // max(slot.cost.requests, 1)
    # A failed call reports no usage; the provider still counted its input against us.
    tokens_in = sum(record.tokens_in or per_call_in for record in mine)
    return Cost(len(mine), tokens_in, sum(record.tokens_out for record in mine))


class AiEngine:
    """Ask the providers, in order, until one answers."""

    def __init__(
        self,
        providers: Sequence[AiProvider],
        *,
        on_call: Callable[[CallRecord], None] = _ignore,
        breaker: CircuitBreaker | None = None,
        prices: Overrides | None = None,  # AI_PRICES: over genai-prices for the models it names
        quota: QuotaLimiter | None = None,  # AI_QUOTAS: shared slots; a 429's back-off
        slot: Slot | None = None,  # the first provider's slot, taken by the caller
    ) -> None:
        if not providers:
            raise ValueError("AiEngine needs at least one provider")
        self.providers = list(providers)
        self.on_call = on_call
        self.breaker = breaker
        self.prices = prices or {}
        self.quota = quota
        self.slot = slot

    def with_recorder(self, on_call: Callable[[CallRecord], None]) -> AiEngine:
        return AiEngine(
            self.providers,
            on_call=on_call,
            breaker=self.breaker,
            prices=self.prices,
            quota=self.quota,
            slot=self.slot,
        )

    def with_slot(self, slot: Slot) -> AiEngine:
        """This engine for one photo whose first provider's slot is `slot`: a call that falls
        back to another provider takes a slot of that provider's quota for the same project,
        priority and estimated cost."""
        engine = self.with_recorder(self.on_call)
        engine.slot = slot
        return engine

    def detect_room(self, image: bytes) -> RoomGuess:
        return self._run(
            "detect_room",
            lambda provider, budget: provider.detect_room(image, max_tokens=budget),
        )

    def analyze_photo(
        self, image: bytes, room_type: str | None, catalogue_keys: Sequence[str] = ()
    ) -> PhotoAnalysis:
        """The items; with `room_type` None, the room is detected by the same call (its metric
        row says so: `roomDetected`)."""
        return self._run(
            "analyze_photo",
            lambda provider, budget: provider.analyze_photo(
                image, room_type, catalogue_keys, max_tokens=budget
            ),
            extra={"roomDetected": True} if room_type is None else {},
        )

    def _run[T: (RoomGuess, PhotoAnalysis)](
        self, operation: str, call: Call[T], extra: dict[str, Any] | None = None
    ) -> T:
        last_error: AiError | None = None
        last = len(self.providers) - 1
        for index, provider in enumerate(self.providers):
            # An open circuit skips a provider only when there is another one after it: the last
            # one is always asked (a half-open try), so an outage never fails faster than it must.
            if self.breaker and index < last and self.breaker.is_open(provider.name):
                last_error = AiError(
                    ErrorCode.PROVIDER_DOWN, f"{provider.name}: skipped, circuit open after outages"
                )
                continue
            fallback = self._fallback_slot(provider) if index > 0 else None
            if isinstance(fallback, AiError):
                last_error = fallback
                continue  # no slot of its quota free now: as if its circuit were open
            made: list[CallRecord] = []
            try:
                result = self._call_checked(provider, operation, call, extra or {}, made)
            except AiError as error:
                last_error = error
                if error.code == ErrorCode.RATE_LIMIT and error.retryable and self.quota:
                    # The provider's view of our usage differs from ours: every worker waits.
                    self.quota.back_off(
                        provider=provider.name,
                        model=provider.model,
                        seconds=error.retry_after_s or RATE_LIMIT_BACK_OFF_S,
                    )
                if error.code in OUTAGE_CODES:
                    if self.breaker and self.breaker.record_failure(provider.name):
                        logger.warning("circuit opened for provider %s", provider.name)
                    continue  # fall back to the next provider, in the same attempt
                raise
            finally:
                if fallback is not None and self.quota is not None:
                    self.quota.release(fallback, used=calls_cost(made, fallback))
            if self.breaker:
                self.breaker.record_success(provider.name)
            return result
        raise last_error or AiError(ErrorCode.UNKNOWN, "no provider was asked")

    def _fallback_slot(self, provider: AiProvider) -> Slot | AiError | None:
        """A slot of `provider`'s quota for a call that fell back to it (the first provider's
        slot is taken by the caller, before the photo is claimed); None when its calls are not
        gated (no quota configured for it, or no first slot to take the project from). Denied:
        the RATE_LIMIT error to report if no provider after it answers."""
        if self.quota is None or self.slot is None:
            return None
        if not self.quota.quotas_for(provider.name, provider.model):
            return None
        got = self.quota.acquire(
            provider=provider.name,
            model=provider.model,
            tenant=self.slot.tenant,
            cost=self.slot.cost,
            high=self.slot.high,
        )
        if isinstance(got, Wait):
            return AiError(
                ErrorCode.RATE_LIMIT,
                f"{provider.name}: no slot of its quota free for {got.delay_ms} ms ({got.reason})",
                retryable=True,
                retry_after_s=got.delay_ms / 1000,
            )
        return got

    def _call_checked[T: (RoomGuess, PhotoAnalysis)](
        self,
        provider: AiProvider,
        operation: str,
        call: Call[T],
        extra: dict[str, Any],
        made: list[CallRecord],
    ) -> T:
        """An answer that breaks our schema gets one more try, then is BAD_INPUT. One that was
        cut off gets one more with twice the budget (at most MAX_OUTPUT_TOKENS), then is
        BAD_INPUT "answer too long". A refusal is final. `made` gets the calls' records."""
        try:
            return self._timed(provider, operation, call, None, extra, made)
        except InvalidOutput:
            return self._timed(provider, operation, call, None, extra, made)
        except AnswerTruncated as cut:
            larger = min(cut.budget * 2, MAX_OUTPUT_TOKENS)
            if larger <= cut.budget:
                raise
            return self._timed(provider, operation, call, larger, extra, made)

    def _timed[T: (RoomGuess, PhotoAnalysis)](
        self,
        provider: AiProvider,
        operation: str,
        call: Call[T],
        budget: int | None,
        extra: dict[str, Any],
        made: list[CallRecord],
    ) -> T:
        started = time.perf_counter()
        if budget is not None:
            extra = extra | {"outputBudget": budget}
        try:
            result = call(provider, budget)
        except Exception as exc:
            error = error_from_exception(exc)
            # An answer we cannot use was still billed: meter what it cost, and say what was
            # wrong with it.
            billed = exc.usage if isinstance(exc, BilledAnswer) else None
            self._record(
                made,
                CallRecord(
                    provider=provider.name,
                    model=billed.model if billed else getattr(provider, "model", ""),
                    operation=operation,
                    latency_ms=_elapsed_ms(started),
                    success=False,
                    error=error,
                    **(self._cost(billed) if billed else {}),
                    extra=extra | {"answerProblem": exc.problem}
                    if isinstance(exc, BilledAnswer)
                    else extra,
                ),
            )
            if error is exc:
                raise
            raise error from exc
        usage = result.usage
        if isinstance(result, PhotoAnalysis):
            extra = extra | {"itemsCount": sum(item.quantity for item in result.items)}
        self._record(
            made,
            CallRecord(
                provider=usage.provider,
                model=usage.model,
                operation=operation,
                latency_ms=_elapsed_ms(started),
                success=True,
                **self._cost(usage),
                extra=extra,
                answer=answer_to_json(result),
            ),
        )
        return result

    def _record(self, made: list[CallRecord], record: CallRecord) -> None:
        made.append(record)
        self.on_call(record)

    def _cost(self, usage: Usage) -> dict[str, Any]:
        price = call_price(usage, self.prices)
        return {
            "tokens_in": usage.tokens_in,
            "tokens_out": usage.tokens_out,
            "cost_usd": price.cost_usd,
            "price_source": price.source,
        }


def _elapsed_ms(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)

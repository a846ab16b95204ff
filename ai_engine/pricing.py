"""The cost of a call: the prices of the installed `genai-prices`, unless the AI_PRICES setting
names the model. What we know of genai-prices lives here: this module is its upgrade checklist.

genai-prices can download newer prices at run time (its `UpdatePrices` thread, which swaps the
process-wide snapshot). We never start it, and we read the price data bundled in the pinned
wheel through a snapshot of our own, so an update started by anything else in the process cannot
change our prices either: a cost depends on the installed version alone, and no call of ours ever
waits on, or fails for, a download. Newer prices arrive by upgrading the pin.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from importlib.metadata import version
from typing import TYPE_CHECKING

from ai_engine.types import Usage

if TYPE_CHECKING:
    from genai_prices.data_snapshot import DataSnapshot

logger = logging.getLogger(__name__)

MILLION = Decimal(1_000_000)
MICRO = Decimal("0.000001")

#: Where a call's price came from (AiMetric.price_source).
GENAI_PRICES = f"genai-prices {version('genai-prices')}"
OVERRIDE = "AI_PRICES"
FREE = "free"  # the fake provider: nothing is billed
UNPRICED = "unpriced"  # nobody knows the model: recorded as $0, and logged once

#: AI_PRICES, parsed: USD per million (input, output) tokens, per model. The input price applies
#: to every input token, cache reads and writes included.
Overrides = Mapping[str, tuple[Decimal, Decimal]]


@dataclass(frozen=True)
class Price:
    cost_usd: Decimal
    source: str


def override_for(overrides: Overrides, model: str) -> tuple[Decimal, Decimal] | None:
    """The model's AI_PRICES entry; a dated id uses the LONGEST undated entry it extends, so
    `gpt-5.4-mini-2026-03-17` is priced as gpt-5.4-mini, not as gpt-5.4."""
    if model in overrides:
        return overrides[model]
    extended = [key for key in overrides if model.startswith(f"{key}-")]
    return overrides[max(extended, key=len)] if extended else None


def call_price(usage: Usage, overrides: Overrides) -> Price:
    """Exact cost in USD (6 decimals) of one answered call, and who priced it: AI_PRICES if it
    names the model, else genai-prices (cache reads and writes at their own rates, tiers by the
    call's input, the price in force now). A model neither knows costs 0: never an error."""
    override = override_for(overrides, usage.model)
    if override is not None:
        price_in, price_out = override
        cost = (price_in * usage.tokens_in + price_out * usage.tokens_out) / MILLION
        return Price(cost.quantize(MICRO), OVERRIDE)
    if usage.provider == "fake":
        return Price(Decimal("0"), FREE)
    from genai_prices import Usage as PricedUsage

    try:
        calculation = _snapshot().calc(
            PricedUsage(
                input_tokens=usage.tokens_in,
                cache_read_tokens=usage.cache_read_tokens,
                cache_write_tokens=usage.cache_write_tokens,
                output_tokens=usage.tokens_out,
            ),
            usage.model,
            usage.provider,
            None,
            None,
        )
    except (LookupError, ValueError) as exc:  # an unknown provider or model; usage it refuses
        _warn_unpriced(usage, exc)
        return Price(Decimal("0"), UNPRICED)
    return Price(calculation.total_price.quantize(MICRO), GENAI_PRICES)


def genai_prices_model(provider: str, model: str) -> str | None:
    """The id genai-prices prices `model` as (None: it does not know it)."""
    try:
        return _snapshot().find_provider_model(model, None, provider, None)[1].id
    except LookupError:
        return None


_lock = threading.Lock()
_loaded: list[DataSnapshot] = []
_warned: set[tuple[str, str]] = set()


def _snapshot() -> DataSnapshot:
    """The bundled price data, loaded on the first call (about a second: the web processes,
    which price nothing, never pay it)."""
    if not _loaded:
        with _lock:
            if not _loaded:
                from genai_prices.data import providers
                from genai_prices.data_snapshot import DataSnapshot

                _loaded.append(DataSnapshot(providers=providers, from_auto_update=False))
    return _loaded[0]


def _warn_unpriced(usage: Usage, exc: Exception) -> None:
    key = (usage.provider, usage.model)
    if key in _warned:
        return
    _warned.add(key)
    logger.warning(
        "no price for %s model %s (%s): its calls are recorded at $0; set AI_PRICES for it",
        usage.provider,
        usage.model,
        exc,
    )

"""Cost of a call from the price table (USD per million tokens, per model)."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

MILLION = Decimal(1_000_000)
MICRO = Decimal("0.000001")

#: USD per million (input, output) tokens. Overridable with the AI_PRICES setting.
DEFAULT_PRICES: dict[str, tuple[Decimal, Decimal]] = {
    # Sonnet-tier list price; check the providers' current price lists and override with AI_PRICES.
    "claude-sonnet-4-6": (Decimal("3"), Decimal("15")),
    "claude-sonnet-5": (Decimal("3"), Decimal("15")),
    "claude-sonnet-4-5": (Decimal("3"), Decimal("15")),
    "claude-haiku-4-5": (Decimal("1"), Decimal("5")),
    "claude-opus-4-1": (Decimal("15"), Decimal("75")),
    "gpt-4.1": (Decimal("2"), Decimal("8")),
    "gpt-4.1-mini": (Decimal("0.4"), Decimal("1.6")),
    "gpt-4o": (Decimal("2.5"), Decimal("10")),
    "gpt-4o-mini": (Decimal("0.15"), Decimal("0.6")),
    "fake-vision-1": (Decimal("0"), Decimal("0")),
}


def price_for(
    prices: Mapping[str, tuple[Decimal, Decimal]], model: str
) -> tuple[Decimal, Decimal] | None:
    """The model's prices; a dated id uses the LONGEST undated entry it extends, so
    `gpt-4.1-mini-2025-04-14` is priced as gpt-4.1-mini, not gpt-4.1."""
    if model in prices:
        return prices[model]
    extended = [key for key in prices if model.startswith(f"{key}-")]
    return prices[max(extended, key=len)] if extended else None


def call_cost(
    prices: Mapping[str, tuple[Decimal, Decimal]], model: str, tokens_in: int, tokens_out: int
) -> Decimal:
    """Exact cost in USD (6 decimals). A model missing from the table costs 0, and is logged by
    the caller; a dated model id (`claude-sonnet-4-5-20250929`) uses its undated entry."""
    price = price_for(prices, model)
    if price is None:
        return Decimal("0")
    price_in, price_out = price
    return ((price_in * tokens_in + price_out * tokens_out) / MILLION).quantize(MICRO)

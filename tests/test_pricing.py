"""The cost of a call (ai_engine/pricing.py): genai-prices' bundled prices, AI_PRICES over them,
$0 and one warning for a model no one knows, and never a download."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from decimal import Decimal
from importlib.metadata import version
from typing import Any

import genai_prices
import httpx2
import pytest
from genai_prices.data_snapshot import DataSnapshot, set_custom_snapshot

from ai_engine.pricing import (
    FREE,
    GENAI_PRICES,
    OVERRIDE,
    UNPRICED,
    Price,
    call_price,
    genai_prices_model,
)
from ai_engine.registry import prices_from_settings
from ai_engine.types import Usage
from tests.fakeai import GPT, GPT_DATED, SONNET


def price(provider: str, model: str, tokens_in: int, tokens_out: int, **kwargs: Any) -> Price:
    return call_price(Usage(provider, model, tokens_in, tokens_out, **kwargs), {})


def test_the_source_names_the_installed_genai_prices_version() -> None:
    assert GENAI_PRICES == f"genai-prices {version('genai-prices')}" == "genai-prices 0.2.3"


def test_genai_prices_prices_a_call_exact_to_the_micro_dollar() -> None:
    assert price("anthropic", SONNET, 1000, 500) == Price(Decimal("0.010500"), GENAI_PRICES)
    # gpt-5.4-mini: 1 × $0.75 + 1 × $4.50 per million = $0.00000525
    assert price("openai", GPT, 1, 1) == Price(Decimal("0.000005"), GENAI_PRICES)


def test_a_dated_model_id_is_priced_as_its_model() -> None:
    assert price("openai", GPT_DATED, 1000, 500) == price("openai", GPT, 1000, 500)
    assert genai_prices_model("openai", GPT_DATED) == GPT


def test_cache_reads_and_writes_are_part_of_the_input_at_their_own_rates() -> None:
    # 1000 input tokens of which 200 read from the cache ($0.30/M) and 40 written ($3.75/M).
    cached = price("anthropic", SONNET, 1000, 0, cache_read_tokens=200, cache_write_tokens=40)

    assert cached.cost_usd == Decimal("0.002490")  # (760 × 3 + 200 × 0.3 + 40 × 3.75) / 1M
    assert price("anthropic", SONNET, 1000, 0).cost_usd == Decimal("0.003000")


def test_ai_prices_wins_over_genai_prices() -> None:
    usage = Usage("anthropic", SONNET, 1000, 500, cache_read_tokens=200)

    priced = call_price(usage, {SONNET: (Decimal("1"), Decimal("2"))})

    assert priced == Price(Decimal("0.002000"), OVERRIDE)  # every input token at the input price


def test_ai_prices_of_a_dated_model_uses_the_longest_undated_entry() -> None:
    overrides = {"gpt-5.4": (Decimal("9"), Decimal("9")), GPT: (Decimal("0.5"), Decimal("0"))}

    assert call_price(Usage("openai", GPT_DATED, 1_000_000, 0), overrides) == Price(
        Decimal("0.5"), OVERRIDE
    )


def test_ai_prices_from_settings_holds_only_the_overrides(settings: Any) -> None:
    settings.AI_PRICES = {"my-model": [1.5, 3]}

    assert prices_from_settings() == {"my-model": (Decimal("1.5"), Decimal("3"))}


def test_the_fake_provider_is_free() -> None:
    assert price("fake", "fake-vision-1", 1000, 500) == Price(Decimal("0"), FREE)


@pytest.mark.parametrize(
    ("provider", "model"), [("anthropic", "mystery-model-9"), ("acme", "acme-large")]
)
def test_a_model_no_one_prices_costs_zero_and_is_logged_once(
    provider: str, model: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="ai_engine.pricing"):
        first = price(provider, model, 1000, 500)
        second = price(provider, model, 1000, 500)

    assert first == second == Price(Decimal("0"), UNPRICED)
    [warning] = [r for r in caplog.records if r.name == "ai_engine.pricing"]
    assert model in warning.getMessage() and "AI_PRICES" in warning.getMessage()


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Any HTTP request genai-prices might make (it uses httpx2) fails the test."""
    attempts: list[str] = []

    def refuse(self: Any, request: Any, **kwargs: Any) -> Any:
        attempts.append(str(request.url))
        raise AssertionError(f"genai-prices tried to download: {request.url}")

    monkeypatch.setattr(httpx2.Client, "send", refuse)
    yield attempts


def test_prices_come_from_the_bundled_data_without_a_download(no_network: list[str]) -> None:
    assert price("openai", GPT, 1000, 500).source == GENAI_PRICES
    assert no_network == []
    # No background updater was started either: prices change only with the installed version.
    assert not genai_prices.wait_prices_updated_sync(timeout=0)


def test_prices_ignore_a_snapshot_that_an_update_installed() -> None:
    """genai-prices' updater swaps a process-wide snapshot; ours reads the pinned data only."""
    before = price("anthropic", SONNET, 1000, 500)
    set_custom_snapshot(DataSnapshot(providers=[], from_auto_update=True))
    try:
        with pytest.raises(LookupError):  # the library's own lookup now knows nothing...
            genai_prices.calc_price(genai_prices.Usage(input_tokens=1), SONNET)
        assert price("anthropic", SONNET, 1000, 500) == before  # ...ours is unchanged
    finally:
        set_custom_snapshot(None)

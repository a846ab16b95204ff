"""The model ids we send are current: every default in moverz/settings.py and every id the tests
name (tests.fakeai.TEST_MODELS) is listed by the installed SDK, not marked deprecated by it, and
priced by genai-prices. A default the providers retire fails CI here (the SDKs are upgraded with
the providers' lists), not in production."""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path
from typing import Any, get_args

import anthropic
import openai
import pytest
from anthropic.resources.messages.messages import DEPRECATED_MODELS
from openai.types.shared import chat_model

from ai_engine.pricing import GENAI_PRICES, call_price
from ai_engine.types import Usage
from tests.fakeai import TEST_MODELS

SETTINGS = Path(__file__).resolve().parent.parent / "moverz" / "settings.py"
MODEL_SETTINGS = {"anthropic": "ANTHROPIC_MODEL", "openai": "OPENAI_MODEL"}


def _literals(alias: Any) -> set[str]:
    """The string values of a `Literal[...]` (or `Union[Literal[...], str]`) type alias."""
    values: set[str] = set()
    for arg in get_args(alias):
        if isinstance(arg, str):
            values.add(arg)
        else:
            values |= _literals(arg)
    return values


def _openai_deprecated() -> set[str]:
    """The ids that the docstring under `ChatModel` lists as deprecated (with a shutdown date):
    the SDK says so nowhere else."""
    source = inspect.getsource(chat_model)
    _, marker, notes = source.partition('"""Deprecated values:')
    assert marker, "the OpenAI SDK no longer lists deprecated models under ChatModel: update this"
    return set(re.findall(r'"([^"\s]+)"', notes.partition('"""')[0]))


LISTED = {
    "anthropic": _literals(anthropic.types.Model) | _literals(anthropic.types.ModelParam),
    "openai": _literals(openai.types.ChatModel),
}
DEPRECATED = {"anthropic": set(DEPRECATED_MODELS), "openai": _openai_deprecated()}


def _defaults() -> dict[str, str]:
    """The defaults written in moverz/settings.py (`os.environ.get("ANTHROPIC_MODEL", "...")`),
    whatever the environment of this run says."""
    found = {}
    for node in ast.walk(ast.parse(SETTINGS.read_text())):
        if (
            isinstance(node, ast.Call)
            and ast.unparse(node.func) == "os.environ.get"
            and len(node.args) == 2
            and all(isinstance(arg, ast.Constant) for arg in node.args)
        ):
            name, default = (arg.value for arg in node.args)  # type: ignore[attr-defined]
            found[name] = default
    return {provider: found[setting] for provider, setting in MODEL_SETTINGS.items()}


def _models() -> list[tuple[str, str, str]]:
    models = [(provider, model, "default") for provider, model in _defaults().items()]
    models += [(p, model, "a test's") for p, ids in TEST_MODELS.items() for model in ids]
    return sorted(set(models))


@pytest.mark.parametrize(("provider", "model", "whose"), _models())
def test_the_model_is_current_in_the_installed_sdk_and_priced(
    provider: str, model: str, whose: str
) -> None:
    assert model in LISTED[provider], f"{whose} model {model} is not in the {provider} SDK's list"
    assert model not in DEPRECATED[provider], f"{whose} model {model} is deprecated by its SDK"
    priced = call_price(Usage(provider, model, 1000, 500), {})
    assert priced.source == GENAI_PRICES and priced.cost_usd > 0, f"genai-prices lacks {model}"


@pytest.mark.parametrize(
    ("provider", "model"),
    [
        ("anthropic", "claude-sonnet-4-5"),  # end of life 2026-11-30: the tests' model until now
        ("anthropic", "claude-sonnet-4-5-20250929"),
        ("openai", "gpt-4.1-mini"),  # shutdown announced for 2027-01-14: our default until now
        ("openai", "gpt-5-mini"),
    ],
)
def test_the_check_knows_the_sdks_deprecations(provider: str, model: str) -> None:
    """The check above has teeth: the SDKs still list these ids, and mark them deprecated."""
    assert model in LISTED[provider]
    assert model in DEPRECATED[provider]


def test_a_retired_model_is_no_longer_listed() -> None:
    # In the hand-written price table until now: the SDK lists it no more.
    assert "claude-opus-4-1" not in LISTED["anthropic"]


def test_the_defaults_are_found_in_the_settings_file() -> None:
    assert set(_defaults()) == {"anthropic", "openai"}

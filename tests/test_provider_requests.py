"""The request bodies both providers send, validated against JSON Schema subsets of the public API
references (tests/schemas/; its README says where each comes from), and the structured-output
schema inside each checked against what that provider's strict mode accepts. Through the real
SDKs, against the fake AI server (tests/fakeai.py): a change that breaks the request shape, or
sends a schema strict mode would refuse, fails here rather than at the provider."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from ai_engine.engine import AiEngine
from ai_engine.prompts import ITEMS_OUTPUT_TOKENS, ROOM_ITEMS_SCHEMA
from ai_engine.types import AiProvider
from tests.fakeai import FakeAiServer, running_fake_ai, schema_of
from tests.test_providers import IMAGE, PROVIDERS, provider_for

SCHEMAS = Path(__file__).parent / "schemas"
REQUEST_SCHEMA_FILES = {
    "anthropic": "anthropic-messages-request.json",
    "openai": "openai-chat-completions-request.json",
}

#: Keywords that only shape a schema (no constraint on values): accepted by both strict modes.
STRUCTURE_KEYWORDS = frozenset(
    {
        "type",
        "properties",
        "required",
        "additionalProperties",
        "items",
        "enum",
        "const",
        "anyOf",
        "$defs",
        "$ref",
        "description",
        "title",
    }
)
#: OpenAI strict mode (Structured Outputs guide, "Supported schemas"): strings may add `pattern`
#: and `format`, numbers `minimum`, `maximum`, their exclusive forms and `multipleOf`, arrays
#: `minItems` and `maxItems`; `minLength` / `maxLength` are not among them.
OPENAI_STRICT_KEYWORDS = STRUCTURE_KEYWORDS | {
    "pattern",
    "format",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
    "minItems",
    "maxItems",
}
#: Anthropic strict tools (structured outputs, "JSON Schema limitations"; the anthropic SDK
#: 2.10.0 keeps exactly these in anthropic/lib/_parse/_transform.py `transform_schema` and moves
#: every other keyword into the description): no numerical, string-length or maxItems
#: constraints; `allOf`, string `format`, and `minItems` of 0 or 1 only.
ANTHROPIC_STRICT_KEYWORDS = STRUCTURE_KEYWORDS | {"allOf", "format", "minItems"}


def request_validator(provider: str) -> Draft202012Validator:
    schema = json.loads((SCHEMAS / REQUEST_SCHEMA_FILES[provider]).read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


VALIDATORS = {provider: request_validator(provider) for provider in PROVIDERS}


def request_problems(provider: str, body: Any) -> list[str]:
    """What breaks the committed request schema, one line per error (the image cut short)."""
    return sorted(
        f"{error.json_path}: {error.message[:160]}"
        for error in VALIDATORS[provider].iter_errors(body)
    )


def subschemas(schema: dict[str, Any], path: str = "$") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every schema inside `schema`, itself first: the values of `properties` and `$defs` are
    schemas (their keys are names, never keywords), as are `items` and each of a list's."""
    yield path, schema
    for key in ("properties", "$defs", "definitions"):
        for name, sub in schema.get(key, {}).items():
            yield from subschemas(sub, f"{path}.{key}.{name}")
    if isinstance(schema.get("items"), dict):
        yield from subschemas(schema["items"], f"{path}.items")
    for key in ("anyOf", "allOf", "oneOf", "prefixItems"):
        for index, sub in enumerate(schema.get(key, [])):
            yield from subschemas(sub, f"{path}.{key}[{index}]")


def _objects_closed(path: str, node: dict[str, Any]) -> list[str]:
    is_object = node.get("type") == "object" or "properties" in node
    if is_object and node.get("additionalProperties") is not False:
        return [f"{path}: an object without additionalProperties: false"]
    return []


def openai_strict_problems(schema: dict[str, Any]) -> list[str]:
    """Why OpenAI's strict mode would refuse `schema`: the root is an object (not anyOf), every
    object is closed and lists every property in `required`, and only supported keywords."""
    problems = []
    if schema.get("type") != "object" or "anyOf" in schema:
        problems.append("$: the root must be an object, not anyOf")
    for path, node in subschemas(schema):
        problems += _objects_closed(path, node)
        if unsupported := sorted(set(node) - OPENAI_STRICT_KEYWORDS):
            problems.append(f"{path}: not supported in strict mode: {unsupported}")
        if missing := sorted(set(node.get("properties", {})) - set(node.get("required", []))):
            problems.append(f"{path}: properties not in required: {missing}")
    return problems


def anthropic_strict_problems(schema: dict[str, Any]) -> list[str]:
    """Why Anthropic's strict tool use would refuse `schema`: every object closed, only the
    keywords its JSON Schema subset supports, enums of plain values, minItems 0 or 1."""
    problems = []
    for path, node in subschemas(schema):
        problems += _objects_closed(path, node)
        if unsupported := sorted(set(node) - ANTHROPIC_STRICT_KEYWORDS):
            problems.append(f"{path}: not supported by strict tools: {unsupported}")
        if node.get("minItems", 0) not in (0, 1):
            problems.append(f"{path}: minItems other than 0 or 1")
        if any(isinstance(value, dict | list) for value in node.get("enum", [])):
            problems.append(f"{path}: an enum of objects or lists")
    return problems


STRICT_PROBLEMS = {"anthropic": anthropic_strict_problems, "openai": openai_strict_problems}

OPERATIONS: dict[str, Callable[[AiProvider], object]] = {
    "detect_room": lambda provider: provider.detect_room(IMAGE),
    "analyze_photo_of_a_kitchen": lambda provider: provider.analyze_photo(
        IMAGE, "kitchen", ["chair", "carton"]
    ),
    "analyze_photo_room_and_items": lambda provider: provider.analyze_photo(IMAGE, None, ["chair"]),
}


@pytest.fixture
def fake_ai() -> Iterator[FakeAiServer]:
    with running_fake_ai() as server:
        yield server


def sent_body(server: FakeAiServer, provider: str, operation: str) -> dict[str, Any]:
    OPERATIONS[operation](provider_for(provider, server))
    [request] = server.requests
    body: dict[str, Any] = request.body
    return body


# -- what is sent --------------------------------------------------------------------------------


@pytest.mark.parametrize("operation", OPERATIONS)
@pytest.mark.parametrize("provider", PROVIDERS)
def test_every_request_matches_the_api_references_schema(
    fake_ai: FakeAiServer, provider: str, operation: str
) -> None:
    body = sent_body(fake_ai, provider, operation)

    assert request_problems(provider, body) == []
    if provider == "anthropic":  # the tool it must call is one it is given
        assert body["tool_choice"]["name"] in [tool["name"] for tool in body["tools"]]


@pytest.mark.parametrize("operation", OPERATIONS)
@pytest.mark.parametrize("provider", PROVIDERS)
def test_every_structured_output_schema_is_one_strict_mode_accepts(
    fake_ai: FakeAiServer, provider: str, operation: str
) -> None:
    body = sent_body(fake_ai, provider, operation)

    assert STRICT_PROBLEMS[provider](schema_of(body)) == []


@pytest.mark.parametrize("provider", PROVIDERS)
def test_the_larger_budget_retry_of_a_cut_off_answer_matches_the_schema_too(
    fake_ai: FakeAiServer, provider: str
) -> None:
    fake_ai.script(outcome="truncated")

    AiEngine([provider_for(provider, fake_ai)]).analyze_photo(IMAGE, None, ["chair"])

    first, retry = (request.body for request in fake_ai.requests)
    budget = "max_tokens" if provider == "anthropic" else "max_completion_tokens"
    assert (first[budget], retry[budget]) == (ITEMS_OUTPUT_TOKENS, 2 * ITEMS_OUTPUT_TOKENS)
    assert request_problems(provider, first) == request_problems(provider, retry) == []
    assert STRICT_PROBLEMS[provider](schema_of(retry)) == []


# -- the checks can fail -------------------------------------------------------------------------


def _renamed(body: dict[str, Any], old: str, new: str) -> dict[str, Any]:
    broken = copy.deepcopy(body)
    broken[new] = broken.pop(old)
    return broken


def test_the_anthropic_schema_rejects_a_misspelt_or_missing_field(fake_ai: FakeAiServer) -> None:
    body = sent_body(fake_ai, "anthropic", "detect_room")
    without = copy.deepcopy(body)
    del without["max_tokens"]
    bad_block = copy.deepcopy(body)
    bad_block["messages"][0]["content"][0]["source"]["media_typ"] = "image/jpeg"
    bad_tool = copy.deepcopy(body)
    bad_tool["tools"][0]["name"] = "report room"

    assert request_problems("anthropic", _renamed(body, "max_tokens", "max_token")) == [
        "$: 'max_tokens' is a required property",
        "$: Additional properties are not allowed ('max_token' was unexpected)",
    ]
    assert request_problems("anthropic", without) == ["$: 'max_tokens' is a required property"]
    assert request_problems("anthropic", bad_block)  # an unknown key inside the image block
    assert request_problems("anthropic", bad_tool)  # a space breaks the tool name pattern


def test_the_openai_schema_rejects_a_misspelt_field_or_a_bad_schema_name(
    fake_ai: FakeAiServer,
) -> None:
    body = sent_body(fake_ai, "openai", "detect_room")
    bad_name = copy.deepcopy(body)
    bad_name["response_format"]["json_schema"]["name"] = "room answer"
    old_field = _renamed(body, "max_completion_tokens", "max_completion_token")

    assert request_problems("openai", old_field) == [
        "$: Additional properties are not allowed ('max_completion_token' was unexpected)"
    ]
    assert request_problems("openai", bad_name)


def test_the_strict_checks_find_an_open_object_an_optional_property_and_a_length_limit() -> None:
    schema = copy.deepcopy(ROOM_ITEMS_SCHEMA)  # as written, before provider_schema trims it
    del schema["properties"]["items"]["items"]["additionalProperties"]
    schema["required"].remove("confidence")

    openai = openai_strict_problems(schema)
    anthropic = anthropic_strict_problems(schema)

    item = "$.properties.items.items"
    assert f"{item}: an object without additionalProperties: false" in openai
    assert "$: properties not in required: ['confidence']" in openai
    assert f"{item}.properties.key: not supported in strict mode: ['maxLength', 'minLength']" in (
        openai
    )
    assert f"{item}: an object without additionalProperties: false" in anthropic
    room = "$.properties.room_confidence"
    assert f"{room}: not supported by strict tools: ['maximum', 'minimum']" in anthropic

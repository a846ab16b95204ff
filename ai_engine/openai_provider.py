"""GPT vision through the official OpenAI SDK: Chat Completions, image as a data URL, strict JSON
schema output."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import openai

from ai_engine.errors import AiError, ErrorCode, register_secret
from ai_engine.http_errors import error_for_status
from ai_engine.prompts import (
    ITEMS_OUTPUT_TOKENS,
    OPENAI_RANGE_KEYWORDS,
    ROOM_OUTPUT_TOKENS,
    ROOM_SCHEMA,
    items_prompt,
    items_schema,
    provider_schema,
    room_prompt,
)
from ai_engine.sdk_common import error_codes, error_detail, image_b64_text
from ai_engine.structured import (
    AnswerRefused,
    AnswerTruncated,
    InvalidOutput,
    parse_items,
    parse_room,
)
from ai_engine.types import PhotoAnalysis, RoomGuess, Usage


class OpenAIProvider:
    """OpenAI vision. SDK retries are off: our retry policy owns retries."""

    name = "openai"

    def __init__(
        self,
        *,
        api_key: str,
        model: str,
        timeout_s: float,
        base_url: str | None = None,
        max_tokens: int = ITEMS_OUTPUT_TOKENS,
    ) -> None:
        self.model = model
        self.max_tokens = max_tokens
        register_secret(api_key)  # never in a message, whatever the provider echoes
        self._client = openai.OpenAI(
            api_key=api_key, base_url=base_url or None, timeout=timeout_s, max_retries=0
        )

    def detect_room(self, image: bytes, *, max_tokens: int | None = None) -> RoomGuess:
        payload, usage = self._ask(
            image, room_prompt(), "room", ROOM_SCHEMA, max_tokens or ROOM_OUTPUT_TOKENS
        )
        return parse_room(self.name, payload, usage)

    def analyze_photo(
        self,
        image: bytes,
        room_type: str | None,
        catalogue_keys: Sequence[str] = (),
        *,
        max_tokens: int | None = None,
    ) -> PhotoAnalysis:
        payload, usage = self._ask(
            image,
            items_prompt(room_type, catalogue_keys),
            "items",
            items_schema(room_type),
            max_tokens or self.max_tokens,
        )
        return parse_items(self.name, payload, usage, with_room=room_type is None)

    def _ask(
        self, image: bytes, prompt: str, schema_name: str, schema: dict[str, Any], max_tokens: int
    ) -> tuple[Any, Usage]:
        try:
            completion = self._client.chat.completions.create(
                model=self.model,
                max_completion_tokens=max_tokens,
                messages=[
                    {
                        "role": "user",
                        "content": [
                            {"type": "text", "text": prompt},
                            {
                                "type": "image_url",
                                "image_url": {
                                    "url": f"data:image/jpeg;base64,{image_b64_text(image)}"
                                },
                            },
                        ],
                    }
                ],
                response_format={
                    "type": "json_schema",
                    "json_schema": {
                        "name": schema_name,
                        "schema": provider_schema(schema, keep=OPENAI_RANGE_KEYWORDS),
                        "strict": True,
                    },
                },
            )
        except openai.APITimeoutError:
            raise AiError(ErrorCode.TIMEOUT, f"{self.name}: timed out") from None
        except openai.APIConnectionError as exc:
            raise AiError(ErrorCode.NETWORK, f"{self.name}: connection failed: {exc}") from None
        except openai.APIStatusError as exc:
            raise error_for_status(
                self.name,
                exc.status_code,
                headers=dict(exc.response.headers),
                detail=error_detail(exc.body),
                codes=error_codes(exc.body),
            ) from None
        details = completion.usage.prompt_tokens_details if completion.usage else None
        usage = Usage(
            self.name,
            completion.model or self.model,
            # prompt_tokens includes the cached ones, which are billed at the cache's rate.
            tokens_in=completion.usage.prompt_tokens if completion.usage else 0,
            tokens_out=completion.usage.completion_tokens if completion.usage else 0,
            cache_read_tokens=(details.cached_tokens or 0) if details else 0,
        )
        if not completion.choices:
            raise InvalidOutput(self.name, "empty answer", usage=usage)
        choice = completion.choices[0]
        if choice.message.refusal:
            raise AnswerRefused(self.name, choice.message.refusal, usage=usage)
        if choice.finish_reason == "content_filter":
            raise AnswerRefused(self.name, "the provider's content filter", usage=usage)
        if choice.finish_reason == "length":
            raise AnswerTruncated(self.name, budget=max_tokens, usage=usage)
        if not choice.message.content:
            raise InvalidOutput(self.name, "empty answer", usage=usage)
        return choice.message.content, usage

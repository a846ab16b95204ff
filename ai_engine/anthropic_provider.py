"""Claude through the official Anthropic SDK: Messages API, image block first, forced tool use."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import anthropic
from anthropic.types import Message

from ai_engine.errors import AiError, ErrorCode, register_secret
from ai_engine.http_errors import error_for_status
from ai_engine.prompts import (
    ITEMS_OUTPUT_TOKENS,
    ROOM_OUTPUT_TOKENS,
    ROOM_SCHEMA,
    items_prompt,
    items_schema,
    provider_schema,
    room_prompt,
)
from ai_engine.sdk_common import error_codes, error_detail
from ai_engine.structured import (
    AnswerRefused,
    AnswerTruncated,
    InvalidOutput,
    parse_items,
    parse_room,
)
from ai_engine.types import PhotoAnalysis, RoomGuess, Usage, image_b64

ROOM_TOOL = "report_room"
ITEMS_TOOL = "report_items"
#: Stands for the image in the encoded request; JSON writes NUL as \u0000, which no text of ours
#: contains.
IMAGE_SLOT = "\x00image\x00"
IMAGE_SLOT_JSON = json.dumps(IMAGE_SLOT).encode()


class AnthropicProvider:
    """Claude vision. SDK retries are off: our retry policy owns retries."""

    name = "anthropic"

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
        self._client = anthropic.Anthropic(
            api_key=api_key, base_url=base_url or None, timeout=timeout_s, max_retries=0
        )

    def detect_room(self, image: bytes, *, max_tokens: int | None = None) -> RoomGuess:
        payload, usage = self._ask(
            image, room_prompt(), ROOM_TOOL, ROOM_SCHEMA, max_tokens or ROOM_OUTPUT_TOKENS
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
            ITEMS_TOOL,
            items_schema(room_type),
            max_tokens or self.max_tokens,
        )
        return parse_items(self.name, payload, usage, with_room=room_type is None)

    def _ask(
        self, image: bytes, prompt: str, tool: str, schema: dict[str, Any], max_tokens: int
    ) -> tuple[Any, Usage]:
        body = self._body(image, prompt, tool, schema, max_tokens)
        try:
            # The SDK's generic `post` with the body already encoded (`content`): the request
            # `messages.create` would send, minus its JSON pass over the base64 image.
            message = self._client.post("/v1/messages", cast_to=Message, content=body)
        except anthropic.APITimeoutError:
            raise AiError(ErrorCode.TIMEOUT, f"{self.name}: timed out") from None
        except anthropic.APIConnectionError as exc:
            raise AiError(ErrorCode.NETWORK, f"{self.name}: connection failed: {exc}") from None
        except anthropic.APIStatusError as exc:
            raise error_for_status(
                self.name,
                exc.status_code,
                headers=dict(exc.response.headers),
                detail=error_detail(exc.body),
                codes=error_codes(exc.body),
            ) from None
        cache_write = message.usage.cache_creation_input_tokens or 0
        cache_read = message.usage.cache_read_input_tokens or 0
        usage = Usage(
            self.name,
            message.model or self.model,
            # Cached prompt tokens are billed input too, at the cache's own rates.
            tokens_in=message.usage.input_tokens + cache_write + cache_read,
            tokens_out=message.usage.output_tokens,
            cache_read_tokens=cache_read,
            cache_write_tokens=cache_write,
        )
        if message.stop_reason == "refusal":
            said = " ".join(block.text for block in message.content if block.type == "text")
            raise AnswerRefused(self.name, said.strip() or "refusal", usage=usage)
        if message.stop_reason == "max_tokens":  # a tool input cut off mid-JSON
            raise AnswerTruncated(self.name, budget=max_tokens, usage=usage)
        for block in message.content:
            if block.type == "tool_use" and block.name == tool:
                return block.input, usage
        raise InvalidOutput(self.name, f"no {tool} tool call in the answer", usage=usage) from None

    def _body(
        self, image: bytes, prompt: str, tool: str, schema: dict[str, Any], max_tokens: int
    ) -> bytes:
        """The Messages API request, as JSON bytes: the image block first, then the prompt, and
        the one tool the model must call.

        The image's base64 string is most of the request, and the SDK's JSON encoder would check
        every character of it for escapes, which base64 never needs: the rest of the request is
        encoded with a placeholder, and the base64 bytes go in its place.
        """
        request = {
            "max_tokens": max_tokens,
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "image",
                            "source": {
                                "type": "base64",
                                "media_type": "image/jpeg",
                                "data": IMAGE_SLOT,
                            },
                        },
                        {"type": "text", "text": prompt},
                    ],
                }
            ],
            "model": self.model,
            "tool_choice": {"type": "tool", "name": tool},
            "tools": [
                {
                    "name": tool,
                    "description": "Report the answer in this exact structure.",
                    "input_schema": provider_schema(schema),
                    # Structured outputs: the input is guaranteed to match the schema's types.
                    "strict": True,
                }
            ],
        }
        encoded = json.dumps(request, ensure_ascii=False, separators=(",", ":")).encode()
        head, slot, tail = encoded.partition(IMAGE_SLOT_JSON)
        if not slot or IMAGE_SLOT_JSON in tail:
            raise AssertionError("the image placeholder must appear exactly once")
        return b"".join((head, b'"', image_b64(image), b'"', tail))

"""The streaming LLM: OpenAI Chat Completions, or any server that speaks them (vLLM, Ollama,
llama.cpp) by base URL.

One request per agent answer with `stream=True` (docs/openai.md §5). Text deltas are yielded as
they arrive; tool-call fragments are reassembled by their `index`, and the calls and the token
counts go into the caller's `LlmUsage` when the stream ends. Closing the generator (barge-in)
closes the HTTP response, which drops the connection so the server stops generating.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Iterable
from dataclasses import dataclass
from typing import Literal, cast

import httpx2
import openai
from openai import AsyncOpenAI, omit
from openai.types import CompletionUsage
from openai.types.chat import (
    ChatCompletionChunk,
    ChatCompletionMessageParam,
    ChatCompletionToolParam,
)
from openai.types.chat.chat_completion_chunk import ChoiceDeltaToolCall

from voice_server.providers.base import ChatMessage, LlmRequest, LlmUsage, ToolCall, ToolSpec
from voice_server.providers.openai_clients import provider_error

PROVIDER = "openai-llm"


@dataclass(frozen=True, slots=True)
class ChatOptions:
    """How to talk to one chat endpoint.

    `max_tokens_field`: OpenAI wants `max_completion_tokens` (reasoning models reject
    `max_tokens`); many compatible servers only know `max_tokens` (§5, §9).
    `include_usage`: ask for the final usage chunk; off for servers that reject `stream_options`.
    """

    max_tokens_field: Literal["max_completion_tokens", "max_tokens"] = "max_completion_tokens"
    include_usage: bool = True


class OpenAiLanguageModel:
    """`LanguageModel` over `chat.completions.create(stream=True)`."""

    def __init__(self, client: AsyncOpenAI, options: ChatOptions | None = None) -> None:
        self._client = client
        self._options = options or ChatOptions()

    async def stream(self, request: LlmRequest, usage: LlmUsage) -> AsyncGenerator[str, None]:
        """Yield the answer's text; the request's tools are offered, and the calls the model
        makes are put in `usage.tool_calls` once the stream has ended. Raises `ProviderError`;
        closing the generator closes the request."""
        calls = _ToolCallFragments()
        try:
            chunks = await self._open(request)
            async with chunks:
                async for chunk in chunks:
                    _record_usage(chunk.usage, usage)
                    for choice in chunk.choices[:1]:
                        calls.add(choice.delta.tool_calls or ())
                        if choice.delta.content:
                            yield choice.delta.content
        except (openai.OpenAIError, httpx2.TransportError) as error:
            raise provider_error(error, PROVIDER) from error
        usage.tool_calls.extend(calls.finish())

    async def _open(self, request: LlmRequest) -> openai.AsyncStream[ChatCompletionChunk]:
        options = self._options
        limit = request.max_tokens
        return await self._client.chat.completions.create(
            model=request.model,
            messages=[_message(m) for m in request.messages],
            stream=True,
            temperature=request.temperature,
            max_completion_tokens=limit
            if options.max_tokens_field == "max_completion_tokens"
            else omit,
            max_tokens=limit if options.max_tokens_field == "max_tokens" else omit,
            stream_options={"include_usage": True} if options.include_usage else omit,
            tools=[_tool(spec) for spec in request.tools] or omit,
        )


def _message(message: ChatMessage) -> ChatCompletionMessageParam:
    return cast(ChatCompletionMessageParam, {"role": message.role, "content": message.content})


def _tool(spec: ToolSpec) -> ChatCompletionToolParam:
    """The nested Chat Completions form of a function tool (§5)."""
    return {
        "type": "function",
        "function": {
            "name": spec.name,
            "description": spec.description,
            "parameters": dict(spec.parameters),
        },
    }


def _record_usage(reported: CompletionUsage | None, usage: LlmUsage) -> None:
    """With `include_usage` the last chunk has no choices and carries the counts (§5)."""
    if reported is not None:
        usage.prompt_tokens = reported.prompt_tokens
        usage.completion_tokens = reported.completion_tokens


class _ToolCallFragments:
    """Streamed tool calls by `index`: the first fragment names the call (with its id, which
    `ToolCall` does not keep), later ones append to its arguments. Compatible servers may send
    a call whole."""

    def __init__(self) -> None:
        self._calls: dict[int, dict[str, str]] = {}

    def add(self, fragments: Iterable[ChoiceDeltaToolCall]) -> None:
        for fragment in fragments:
            call = self._calls.setdefault(fragment.index, {"name": "", "arguments": ""})
            if fragment.function is not None:
                call["name"] = fragment.function.name or call["name"]
                call["arguments"] += fragment.function.arguments or ""

    def finish(self) -> list[ToolCall]:
        return [ToolCall(**call) for _, call in sorted(self._calls.items())]

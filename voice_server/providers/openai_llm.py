"""The streaming LLM: OpenAI Chat Completions, or any server that speaks them (vLLM, Ollama,
llama.cpp) by base URL.

One request per agent answer with `stream=True` (docs/openai.md §5). Text deltas are yielded as
they arrive; tool-call fragments are reassembled by their `index`, and the calls and the token
counts go into the caller's `LlmUsage` when the stream ends. Closing the generator (barge-in)
closes the HTTP response, which drops the connection so the server stops generating.

The request is one of the two a caller waits on, sent by `openai_live`, and the server-sent
events are read raw: each `data:` line is parsed by orjson and read as dicts, not built into the
SDK's typed chunk models (four times the CPU per answer). An event whose data carries `error`
fails the stream as the SDK's own reader does.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Iterable
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any, Literal

import aiohttp
import orjson

from voice_server.providers.base import (
    LlmRequest,
    LlmUsage,
    ProviderError,
    ToolCall,
    ToolSpec,
)
from voice_server.providers.openai_live import READ_BYTES, LiveRequests

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
    """`LanguageModel` over `/chat/completions` with `stream: true`."""

    def __init__(self, requests: LiveRequests, options: ChatOptions | None = None) -> None:
        self._requests = requests
        self._options = options or ChatOptions()

    async def stream(self, request: LlmRequest, usage: LlmUsage) -> AsyncGenerator[str, None]:
        """Yield the answer's text; the request's tools are offered, and the calls the model
        makes are put in `usage.tool_calls` once the stream has ended. Raises `ProviderError`;
        closing the generator closes the request."""
        calls = _ToolCallFragments()
        body = self._body(request)
        async with (
            self._requests.post("chat/completions", body, PROVIDER) as events,
            aclosing(_chunks(events)) as chunks,
        ):
            async for chunk in chunks:
                _record_usage(chunk.get("usage"), usage)
                for choice in (chunk.get("choices") or ())[:1]:
                    delta = choice.get("delta") or {}
                    calls.add(delta.get("tool_calls") or ())
                    if content := delta.get("content"):
                        yield content
        usage.tool_calls.extend(calls.finish())

    def _body(self, request: LlmRequest) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": request.model,
            "messages": [{"role": m.role, "content": m.content} for m in request.messages],
            "stream": True,
            "temperature": request.temperature,
            self._options.max_tokens_field: request.max_tokens,
        }
        if self._options.include_usage:
            body["stream_options"] = {"include_usage": True}
        if request.tools:
            body["tools"] = [_tool(spec) for spec in request.tools]
        return body


async def _chunks(events: aiohttp.StreamReader) -> AsyncGenerator[dict[str, Any], None]:
    """The stream's chunks, until `data: [DONE]`. One event is one `data:` line, as OpenAI and
    the compatible servers send them; blank lines, comments and `event:` lines are skipped."""
    pending = b""
    async for received in events.iter_chunked(READ_BYTES):
        lines = (pending + received).split(b"\n")
        pending = lines.pop()
        for line in lines:
            if not line.startswith(b"data:"):
                continue
            data = line[5:].strip()
            if data == b"[DONE]":
                return
            try:
                chunk = orjson.loads(data)
            except orjson.JSONDecodeError as error:
                raise ProviderError(f"an event is not JSON: {error}", provider=PROVIDER) from error
            if not isinstance(chunk, dict):
                raise ProviderError("an event is not an object", provider=PROVIDER)
            if reported := chunk.get("error"):
                raise _stream_error(reported)
            yield chunk


def _stream_error(error: object) -> ProviderError:
    """An error reported inside the stream, with its message as the SDK's own reader gives it
    (not retryable: the answer had begun)."""
    message = error.get("message") if isinstance(error, dict) else None
    if not isinstance(message, str) or not message:
        message = "An error occurred during streaming"
    return ProviderError(message, provider=PROVIDER)


def _tool(spec: ToolSpec) -> dict[str, Any]:
    """The nested Chat Completions form of a function tool (§5)."""
    return {
        "type": "function",
        "function": {
            "name": spec.name,
            "description": spec.description,
            "parameters": dict(spec.parameters),
        },
    }


def _record_usage(reported: dict[str, Any] | None, usage: LlmUsage) -> None:
    """With `include_usage` the last chunk has no choices and carries the counts (§5)."""
    if reported:
        usage.prompt_tokens = reported.get("prompt_tokens") or 0
        usage.completion_tokens = reported.get("completion_tokens") or 0


class _ToolCallFragments:
    """Streamed tool calls by `index`: the first fragment names the call (with its id, which
    `ToolCall` does not keep), later ones append to its arguments. Compatible servers may send
    a call whole."""

    def __init__(self) -> None:
        self._calls: dict[int, dict[str, str]] = {}

    def add(self, fragments: Iterable[dict[str, Any]]) -> None:
        for fragment in fragments:
            call = self._calls.setdefault(fragment.get("index", 0), {"name": "", "arguments": ""})
            if function := fragment.get("function"):
                call["name"] = function.get("name") or call["name"]
                call["arguments"] += function.get("arguments") or ""

    def finish(self) -> list[ToolCall]:
        return [ToolCall(**call) for _, call in sorted(self._calls.items())]

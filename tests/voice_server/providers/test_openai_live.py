"""The chat and speech requests sent straight over aiohttp (`openai_live`), against the HTTP
stand-in: what they carry besides the body, and the edges of the retry policy and of the
errors that `test_openai_providers` does not reach."""

from __future__ import annotations

import time

import pytest

from tests.voice_server.openai_fakes import TUNING, FakeOpenAiHttp, HttpFailure, text_deltas
from voice_server.providers.base import ChatMessage, LlmRequest, LlmUsage, ProviderError, TtsRequest
from voice_server.providers.openai_live import env_proxy
from voice_server.providers.openai_registry import OpenAiProviders, openai_defaults

HI = LlmRequest("gpt-5.4-mini", [ChatMessage("user", "Hi")])
SPEECH = TtsRequest(model="gpt-4o-mini-tts", voice="marin", text="Hi.")


async def answer(providers: OpenAiProviders) -> list[str]:
    return [token async for token in providers.llm.stream(HI, LlmUsage())]


async def collect_into(tokens: list[str], providers: OpenAiProviders) -> None:
    """The answer's tokens into `tokens`, as they come, until the stream ends or fails."""
    async for token in providers.llm.stream(HI, LlmUsage()):
        tokens.append(token)


async def test_requests_carry_the_key_organisation_and_project_as_the_sdk_sends_them(
    http_fake: FakeOpenAiHttp, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_ORG_ID", "org-test")
    monkeypatch.setenv("OPENAI_PROJECT_ID", "proj-test")
    providers = openai_defaults("test-key", f"{http_fake.base_url}/v1", tuning=TUNING)
    try:
        await answer(providers)
        [_ async for _ in providers.tts.stream(SPEECH)]
    finally:
        await providers.aclose()

    assert [r.path for r in http_fake.requests] == ["/v1/chat/completions", "/v1/audio/speech"]
    for sent in http_fake.requests:
        assert sent.headers["authorization"] == "Bearer test-key"
        assert sent.headers["openai-organization"] == "org-test"
        assert sent.headers["openai-project"] == "proj-test"
        assert sent.headers["content-type"] == "application/json"


async def test_a_short_retry_after_is_waited_for_then_the_request_is_sent_again(
    openai_providers: OpenAiProviders, http_fake: FakeOpenAiHttp
) -> None:
    http_fake.failures.append(HttpFailure(429, {"retry-after-ms": "300"}))
    started = time.monotonic()
    assert await answer(openai_providers) == ["Hello", " there."]

    assert time.monotonic() - started >= 0.3
    assert len(http_fake.requests) == 2


async def test_a_server_that_says_not_to_retry_is_not_retried(
    openai_providers: OpenAiProviders, http_fake: FakeOpenAiHttp
) -> None:
    http_fake.failures.append(HttpFailure(503, {"x-should-retry": "false"}))
    with pytest.raises(ProviderError, match="HTTP 503: scripted failure") as raised:
        [_ async for _ in openai_providers.tts.stream(SPEECH)]

    assert raised.value.retryable  # the caller may still try again later
    assert len(http_fake.requests) == 1


async def test_a_client_error_is_reported_with_its_message_and_not_retried(
    openai_providers: OpenAiProviders, http_fake: FakeOpenAiHttp
) -> None:
    http_fake.failures.append(HttpFailure(400))
    with pytest.raises(ProviderError, match="HTTP 400: scripted failure") as raised:
        await answer(openai_providers)

    assert not raised.value.retryable
    assert len(http_fake.requests) == 1


async def test_an_error_inside_the_stream_ends_it_with_its_message(
    openai_providers: OpenAiProviders, http_fake: FakeOpenAiHttp
) -> None:
    http_fake.chat_deltas = text_deltas("Hel")
    http_fake.chat_error = {"message": "The server had an error", "type": "server_error"}
    tokens: list[str] = []
    with pytest.raises(ProviderError, match="The server had an error") as raised:
        await collect_into(tokens, openai_providers)

    assert tokens == ["Hel"]
    assert not raised.value.retryable  # the answer had begun: not sent again
    assert len(http_fake.requests) == 1


async def test_a_refused_connection_is_reported_as_worth_trying_again() -> None:
    providers = openai_defaults("test-key", "http://127.0.0.1:9/v1", tuning=TUNING)
    try:
        with pytest.raises(ProviderError, match="connection failed") as raised:
            await answer(providers)
    finally:
        await providers.aclose()

    assert raised.value.retryable


def test_the_proxy_is_the_one_the_environment_names_for_the_scheme_unless_the_host_is_exempt(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("https_proxy", "http_proxy", "no_proxy", "HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    assert env_proxy("https://api.openai.com/v1") is None

    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    monkeypatch.setenv("NO_PROXY", "localhost,vllm.internal")
    assert env_proxy("https://api.openai.com/v1") == "http://proxy.internal:3128"
    assert env_proxy("http://api.openai.com/v1") is None  # no HTTP_PROXY
    assert env_proxy("https://vllm.internal:8000/v1") is None

"""The process's providers with an OpenAI key: notices about an agent's model names are logged
once per version of the agent, however many times its calls look their providers up."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import SecretStr

from tests.voice_server.call.harness import make_agent
from tests.voice_server.conftest import logged
from voice_server.provider_setup import agent_models, build_providers
from voice_server.providers.registry import UnknownModel
from voice_server.settings import Settings

DEPRECATED = {"sttModel": "gpt-4o-mini-transcribe", "ttsModel": "gpt-4o-mini-tts"}


async def test_model_notices_are_logged_once_per_agent_version(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    keyed = settings.model_copy(update={"openai_api_key": SecretStr("test-key")})
    registry, close = build_providers(keyed, None)
    agent = make_agent().model_copy(update={**DEPRECATED, "inferenceModel": "gpt-5.4-mini"})
    edited = agent.model_copy(update={"updated_at": agent.updated_at + timedelta(seconds=1)})
    another = agent.model_copy(update={"id": "agent-2"})
    try:
        for version in (agent, agent, agent, edited, edited, another, agent):
            registry.for_models(agent_models(version))
    finally:
        await close()

    notices = [
        (entry.get("agent_version"), entry["notice"]) for entry in logged(caplog, "model notice")
    ]
    assert len(notices) == 3 * len(DEPRECATED), "each once for each of three versions"
    versions = [agent_models(a).version for a in (agent, edited, another)]
    assert [version for version, _ in notices] == [v for v in versions for _ in DEPRECATED]
    assert [notice.split(" ")[0] for _, notice in notices] == [*DEPRECATED] * 3
    assert all("deprecated" in notice for _, notice in notices)


@pytest.mark.parametrize(
    ("model", "speech"),
    [("gpt-realtime-2", True), ("gpt-realtime-mini-2025-12-15", True), ("gpt-5.4-mini", False),
     ("llama3.1:8b", False)],
)  # fmt: skip
async def test_a_realtime_inference_model_makes_the_agent_speech_to_speech(
    settings: Settings, model: str, speech: bool
) -> None:
    agent = make_agent().model_copy(update={"inferenceModel": model})
    keyed = settings.model_copy(update={"openai_api_key": SecretStr("test-key")})
    registry, close = build_providers(keyed, None)
    try:
        providers = registry.for_models(agent_models(agent))
    finally:
        await close()

    assert agent_models(agent).speech is speech
    assert (providers.speech is not None) is speech


def test_a_speech_to_speech_agent_needs_a_provider_for_it(settings: Settings) -> None:
    registry, _ = build_providers(settings, None)  # no OpenAI key: local providers only
    agent = make_agent().model_copy(update={"inferenceModel": "gpt-realtime-2"})

    with pytest.raises(UnknownModel, match="no provider for inferenceModel='gpt-realtime-2'"):
        registry.for_models(agent_models(agent))

"""Which providers a process runs with: the local ones always, OpenAI's when a key is set.

With `OPENAI_API_KEY`, every model name that is not a local one goes to OpenAI (or to the
OpenAI-compatible server at `OPENAI_BASE_URL` / `OPENAI_LLM_BASE_URL`), through one client per
configuration for the whole process, and each agent's model names are checked against what the
installed OpenAI library knows: a model of the wrong kind or already shut down refuses the call
up front with the reason, a deprecated or unknown one is logged (once per agent version).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from stores.agents import Agent
from voice_server.providers.openai_clients import OpenAiEndpoint
from voice_server.providers.openai_llm import ChatOptions
from voice_server.providers.openai_registry import (
    ModelNotice,
    check_models,
    openai_defaults,
    speaks_directly,
)
from voice_server.providers.registry import ModelChoice, ProviderRegistry, local_registry
from voice_server.settings import Settings


def agent_models(agent: Agent) -> ModelChoice:
    """The agent's model names, as the provider registry takes them, versioned by the agent's
    last update (notices about them are logged once per version). An `inferenceModel` that is a
    Realtime speech model makes the agent speech-to-speech."""
    return ModelChoice(
        stt=agent.sttModel,
        llm=agent.inferenceModel,
        tts=agent.ttsModel,
        speech=speaks_directly(agent.inferenceModel),
        version=f"{agent.id}@{agent.updated_at.isoformat()}",
    )


def text_models(agent: Agent, speech_agent_text_model: str) -> ModelChoice:
    """The agent's models for answering a text: a speech-to-speech agent's Realtime model
    cannot, so its texts go to `speech_agent_text_model` (SPEECH_AGENT_TEXT_MODEL)."""
    models = agent_models(agent)
    if not models.speech:
        return models
    return dataclasses.replace(models, llm=speech_agent_text_model, speech=False)


async def _nothing() -> None:
    return None


def build_providers(
    settings: Settings, injected: ProviderRegistry | None
) -> tuple[ProviderRegistry, Callable[[], Awaitable[None]]]:
    """The registry for the app, and how to close what it opened."""
    if injected is not None:
        return injected, _nothing
    registry = local_registry()
    if settings.openai_api_key is None:
        return registry, _nothing
    key = settings.openai_api_key.get_secret_value()
    llm_endpoint = None
    if settings.openai_llm_base_url is not None:
        llm_key = settings.openai_llm_api_key or settings.openai_api_key
        llm_endpoint = OpenAiEndpoint(llm_key.get_secret_value(), settings.openai_llm_base_url)
    chat = ChatOptions(max_tokens_field="max_tokens") if llm_endpoint else None
    openai = openai_defaults(
        key,
        settings.openai_base_url,
        websocket_base_url=settings.openai_websocket_base_url,
        llm_endpoint=llm_endpoint,
        chat=chat,
    )
    local_names = {*registry.stt, *registry.llm, *registry.tts}
    compatible_llm = llm_endpoint is not None

    def check(models: ModelChoice) -> list[ModelNotice]:
        served = local_names | ({models.llm} if compatible_llm else set())
        return check_models(models, today=datetime.now(UTC).date(), served_elsewhere=served)

    registry = dataclasses.replace(
        registry,
        default_stt=openai.stt,
        default_llm=openai.llm,
        default_tts=openai.tts,
        default_speech=openai.speech,
        model_check=check,
    )
    return registry, openai.aclose

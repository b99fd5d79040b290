"""The OpenAI providers as the registry's defaults, and what is known about OpenAI model names.

`openai_defaults()` builds the three default providers over one `OpenAiClients` (one client per
endpoint for the whole process); the app's lifespan closes them with `aclose()`. Speech-to-text
goes to a Realtime transcription session for models that stream, and to per-utterance HTTP for
the rest (whisper-1, and whatever a compatible server names its models).

`KNOWN_MODELS` joins the model literals of the installed SDK with the announced shutdown dates
of docs/openai.md §11; `check_models()` turns an agent's model names into notices to show
at start-up, on agent save and in the call log, instead of a failure mid-call.
"""

from __future__ import annotations

import re
from collections.abc import Container, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import date
from typing import Literal, get_args, get_type_hints

from openai.types import AudioModel, ChatModel
from openai.types.audio import SpeechModel
from openai.types.realtime import RealtimeSessionCreateRequestParam

from voice_server.providers.base import SpeechToText, SttOptions, SttSession
from voice_server.providers.openai_clients import OpenAiClients, OpenAiEndpoint
from voice_server.providers.openai_live import LiveTuning
from voice_server.providers.openai_llm import ChatOptions, OpenAiLanguageModel
from voice_server.providers.openai_speech import OpenAiSpeechToSpeech
from voice_server.providers.openai_stt import (
    OpenAiRealtimeSpeechToText,
    OpenAiUtteranceSpeechToText,
)
from voice_server.providers.openai_tts import OpenAiTextToSpeech
from voice_server.providers.registry import ModelChoice

# Transcription models a Realtime session streams (§4a); whisper-1 sends its text in one piece,
# so it is served per utterance over HTTP.
REALTIME_STT_MODELS = frozenset(
    {
        "gpt-4o-mini-transcribe",
        "gpt-4o-transcribe",
        "gpt-transcribe",
        "gpt-live-transcribe",
        "gpt-realtime-whisper",
    }
)


class RoutedSpeechToText:
    """Realtime for the models in `streaming_models`, per-utterance HTTP for any other."""

    def __init__(
        self,
        realtime: SpeechToText,
        utterance: SpeechToText,
        streaming_models: Container[str] = REALTIME_STT_MODELS,
    ) -> None:
        self._realtime = realtime
        self._utterance = utterance
        self._streaming_models = streaming_models

    def open_session(self, options: SttOptions) -> AbstractAsyncContextManager[SttSession]:
        streams = options.model in self._streaming_models
        return (self._realtime if streams else self._utterance).open_session(options)


@dataclass(frozen=True, slots=True)
class OpenAiProviders:
    """The registry's `default_stt` / `default_llm` / `default_tts` / `default_speech`, and the
    clients under them."""

    stt: RoutedSpeechToText
    llm: OpenAiLanguageModel
    tts: OpenAiTextToSpeech
    speech: OpenAiSpeechToSpeech
    clients: OpenAiClients

    async def aclose(self) -> None:
        await self.clients.aclose()


def openai_defaults(
    api_key: str,
    base_url: str | None,
    *,
    websocket_base_url: str | None = None,
    tuning: LiveTuning | None = None,
    llm_endpoint: OpenAiEndpoint | None = None,
    chat: ChatOptions | None = None,
) -> OpenAiProviders:
    """The OpenAI providers for a process. `llm_endpoint` sends the LLM elsewhere (a vLLM,
    Ollama or llama.cpp server), typically with `ChatOptions(max_tokens_field="max_tokens")`."""
    clients = OpenAiClients()
    endpoint = OpenAiEndpoint(api_key, base_url, websocket_base_url, tuning or LiveTuning())
    client = clients.client(endpoint)
    return OpenAiProviders(
        stt=RoutedSpeechToText(
            OpenAiRealtimeSpeechToText(client), OpenAiUtteranceSpeechToText(client)
        ),
        llm=OpenAiLanguageModel(clients.live(llm_endpoint or endpoint), chat),
        tts=OpenAiTextToSpeech(clients.live(endpoint)),
        speech=OpenAiSpeechToSpeech(client),
        clients=clients,
    )


ModelKind = Literal["chat", "stt", "tts", "realtime"]


@dataclass(frozen=True, slots=True)
class ModelInfo:
    kind: ModelKind
    shutdown: date | None = None  # announced shutdown: the model is deprecated


_SHUTDOWNS: dict[tuple[ModelKind, date], tuple[str, ...]] = {  # docs/openai.md §11
    ("chat", date(2027, 1, 14)): ("gpt-4o-mini", "gpt-4o", "gpt-4.1", "gpt-4.1-mini"),
    ("chat", date(2026, 12, 11)): ("gpt-5", "gpt-5-mini", "gpt-5-nano"),
    ("chat", date(2026, 10, 23)): ("gpt-4.1-nano", "o4-mini"),
    ("chat", date(2027, 4, 1)): ("gpt-5.4-nano", "gpt-5.1"),
    ("stt", date(2027, 2, 26)): (
        "whisper-1",
        "gpt-4o-transcribe",
        "gpt-4o-mini-transcribe",
        "gpt-4o-transcribe-diarize",
    ),
    ("tts", date(2027, 1, 6)): ("tts-1", "tts-1-hd", "gpt-4o-mini-tts"),
    ("realtime", date(2027, 1, 20)): ("gpt-realtime", "gpt-realtime-mini", "gpt-audio-mini"),
}
_CURRENT: dict[ModelKind, tuple[str, ...]] = {
    "chat": get_args(ChatModel),
    "stt": (*get_args(AudioModel), "gpt-live-transcribe", "gpt-realtime-whisper"),
    "tts": get_args(SpeechModel),
    "realtime": tuple(  # the models a Realtime conversation session takes
        name
        for arg in get_args(get_type_hints(RealtimeSessionCreateRequestParam)["model"])
        for name in get_args(arg)
    ),
}

_SNAPSHOT = re.compile(r"-\d{4}-\d{2}-\d{2}$")  # a dated snapshot shares its family's fate


def _known_models() -> dict[str, ModelInfo]:
    shutdowns = {name: day for (_, day), names in _SHUTDOWNS.items() for name in names}
    known = {
        name: ModelInfo(kind, day) for (kind, day), names in _SHUTDOWNS.items() for name in names
    }
    for kind, names in _CURRENT.items():
        for name in names:
            known.setdefault(name, ModelInfo(kind, shutdowns.get(_SNAPSHOT.sub("", name))))
    return known


KNOWN_MODELS: Mapping[str, ModelInfo] = _known_models()
# The kinds each agent field takes: an inferenceModel that is a Realtime model makes the agent
# speech-to-speech (`speaks_directly`).
_FIELDS: dict[str, tuple[ModelKind, ...]] = {
    "sttModel": ("stt",),
    "inferenceModel": ("chat", "realtime"),
    "ttsModel": ("tts",),
}


@dataclass(frozen=True, slots=True)
class ModelNotice:
    """Something to tell the agent's owner about one model name; `blocking` means calls with
    it cannot work and should be refused."""

    field: str
    model: str
    message: str
    blocking: bool


def model_info(model: str) -> ModelInfo | None:
    """What is known of `model`, looking through a dated snapshot to its family."""
    return KNOWN_MODELS.get(model) or KNOWN_MODELS.get(_SNAPSHOT.sub("", model))


def speaks_directly(inference_model: str) -> bool:
    """Whether an agent with this `inferenceModel` runs speech to speech (a Realtime model)."""
    info = model_info(inference_model)
    return info is not None and info.kind == "realtime"


def check_model(field: str, model: str, *, today: date) -> ModelNotice | None:
    """A notice when `model` is unknown, of the wrong kind for `field`, deprecated or shut down."""
    kinds = _FIELDS[field]
    info = model_info(model)
    if info is None:
        return ModelNotice(field, model, f"{field} {model!r} is not an OpenAI model", False)
    if info.kind not in kinds:
        message = f"{field} {model!r} is a {info.kind} model, not a {' or '.join(kinds)} one"
        return ModelNotice(field, model, message, True)
    if info.shutdown is None:
        return None
    if info.shutdown <= today:
        message = f"{field} {model!r} was shut down on {info.shutdown.isoformat()}"
        return ModelNotice(field, model, message, True)
    message = f"{field} {model!r} is deprecated; OpenAI shuts it down on {info.shutdown}"
    return ModelNotice(field, model, message, False)


def check_models(
    models: ModelChoice, *, today: date, served_elsewhere: Container[str] = frozenset()
) -> list[ModelNotice]:
    """Notices for the models that go to OpenAI; names in `served_elsewhere` (local providers,
    a compatible LLM server) are not OpenAI's to judge."""
    names = {"sttModel": models.stt, "inferenceModel": models.llm, "ttsModel": models.tts}
    return [
        notice
        for field, model in names.items()
        if model not in served_elsewhere
        and (notice := check_model(field, model, today=today)) is not None
    ]

"""Pick each call's providers from its agent's `sttModel` / `inferenceModel` / `ttsModel`.

Local models are registered by exact name. Any other name goes to the default provider of its
kind (the OpenAI ones in production); without a default, the name is unknown and the call is
refused up front with a clear reason instead of failing mid-call.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from stores.agents import Agent
from voice_server.providers import local
from voice_server.providers.base import LanguageModel, SpeechToText, TextToSpeech


class UnknownModel(LookupError):
    """No provider serves a model an agent names."""


@dataclass(frozen=True)
class CallProviders:
    stt: SpeechToText
    llm: LanguageModel
    tts: TextToSpeech


@dataclass(frozen=True)
class ProviderRegistry:
    stt: Mapping[str, SpeechToText] = field(default_factory=dict)
    llm: Mapping[str, LanguageModel] = field(default_factory=dict)
    tts: Mapping[str, TextToSpeech] = field(default_factory=dict)
    default_stt: SpeechToText | None = None
    default_llm: LanguageModel | None = None
    default_tts: TextToSpeech | None = None

    def for_agent(self, agent: Agent) -> CallProviders:
        """The agent's three providers; raises UnknownModel naming every model nobody serves."""
        picks = (
            ("sttModel", agent.sttModel, self.stt.get(agent.sttModel) or self.default_stt),
            (
                "inferenceModel",
                agent.inferenceModel,
                self.llm.get(agent.inferenceModel) or self.default_llm,
            ),
            ("ttsModel", agent.ttsModel, self.tts.get(agent.ttsModel) or self.default_tts),
        )
        if missing := [
            f"{field_name}={model!r}" for field_name, model, found in picks if found is None
        ]:
            raise UnknownModel("no provider for " + ", ".join(missing))
        stt, llm, tts = (found for _, _, found in picks)
        return CallProviders(stt=stt, llm=llm, tts=tts)  # type: ignore[arg-type]


def local_registry() -> ProviderRegistry:
    """The offline providers, under their model names."""
    return ProviderRegistry(
        stt={local.STT_MODEL: local.PocketSphinxSpeechToText()},
        llm={local.LLM_MODEL: local.StandInLanguageModel()},
        tts={local.TTS_MODEL: local.EspeakTextToSpeech()},
    )

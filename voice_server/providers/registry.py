"""Pick each call's providers from three model names: an agent's `sttModel` / `inferenceModel` /
`ttsModel`, given as a `ModelChoice` (plain values: the registry knows nothing of stores).

Local models are registered by exact name. Any other name goes to the default provider of its
kind (the OpenAI ones in production); without a default, the name is unknown and the call is
refused up front with a clear reason instead of failing mid-call. A speech-to-speech choice
(`ModelChoice.speech`) goes to `default_speech` in place of a language model. A notice that
does not refuse the call (a deprecated or unknown model) is logged once per version of the
choice and process, not at every lookup (a call looks its providers up more than once).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from voice_server.log import get_logger
from voice_server.providers import local, local_whisper
from voice_server.providers.base import (
    LanguageModel,
    SpeechToSpeech,
    SpeechToText,
    TextToSpeech,
)

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class ModelChoice:
    """The model names one agent uses for each seam."""

    stt: str
    llm: str
    tts: str
    speech: bool = False
    """`llm` is a speech-to-speech model: one session hears the caller and speaks back."""
    version: str = ""
    """Whose choice this is and as of when (an agent's id and last update): a notice about
    it is logged the first time this version is looked up."""


class UnknownModel(LookupError):
    """No provider serves a model an agent names."""


@dataclass(frozen=True)
class CallProviders:
    stt: SpeechToText
    llm: LanguageModel
    tts: TextToSpeech
    speech: SpeechToSpeech | None = None
    """A speech-to-speech agent's conversation provider (then `llm` is not used)."""


class ModelNotice(Protocol):
    """Something to say about one of an agent's model names; `blocking` refuses the call."""

    @property
    def message(self) -> str: ...

    @property
    def blocking(self) -> bool: ...


class FirstTimes:
    """Tells whether a key is new, remembering the latest `limit` keys (older ones count as
    new again, so that memory stays bounded however many agents change)."""

    def __init__(self, limit: int = 4096) -> None:
        self._limit = limit
        self._seen: dict[Hashable, None] = {}

    def first(self, key: Hashable) -> bool:
        if key in self._seen:
            return False
        self._seen[key] = None
        if len(self._seen) > self._limit:
            del self._seen[next(iter(self._seen))]
        return True


@dataclass(frozen=True)
class ProviderRegistry:
    stt: Mapping[str, SpeechToText] = field(default_factory=dict)
    llm: Mapping[str, LanguageModel] = field(default_factory=dict)
    tts: Mapping[str, TextToSpeech] = field(default_factory=dict)
    default_stt: SpeechToText | None = None
    default_llm: LanguageModel | None = None
    default_tts: TextToSpeech | None = None
    default_speech: SpeechToSpeech | None = None
    model_check: Callable[[ModelChoice], Sequence[ModelNotice]] | None = None
    _noticed: FirstTimes = field(default_factory=FirstTimes, init=False, repr=False, compare=False)

    def for_models(self, models: ModelChoice) -> CallProviders:
        """The providers of the three models. Raises UnknownModel naming every model nobody
        serves, or that the model check says cannot work; other notices are logged, once per
        `models.version`."""
        stt = self.stt.get(models.stt) or self.default_stt
        llm = self.llm.get(models.llm) or self.default_llm
        tts = self.tts.get(models.tts) or self.default_tts
        speech = self.default_speech if models.speech else None
        found = {
            "sttModel": (models.stt, stt is not None),
            # A speech-to-speech agent's calls need its speech provider; its texts (SMS) still
            # go to a language model.
            "inferenceModel": (
                models.llm,
                llm is not None and (speech is not None or not models.speech),
            ),
            "ttsModel": (models.tts, tts is not None),
        }
        problems = [f"no provider for {f}={m!r}" for f, (m, ok) in found.items() if not ok]
        for notice in self.model_check(models) if self.model_check else ():
            if notice.blocking:
                problems.append(notice.message)
            elif self._noticed.first((models.version, notice.message)):
                log.warning("model notice", notice=notice.message, agent_version=models.version)
        if problems or stt is None or llm is None or tts is None:
            raise UnknownModel("; ".join(problems))
        return CallProviders(stt=stt, llm=llm, tts=tts, speech=speech)


def local_registry() -> ProviderRegistry:
    """The offline providers, under their model names."""
    return ProviderRegistry(
        stt={
            local_whisper.STT_MODEL: local_whisper.WhisperSpeechToText(),
            local.STT_MODEL: local.PocketSphinxSpeechToText(),
        },
        llm={local.LLM_MODEL: local.StandInLanguageModel()},
        tts={local.TTS_MODEL: local.EspeakTextToSpeech()},
    )

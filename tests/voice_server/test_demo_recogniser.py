"""The demo agent's recogniser hears the demo's caller, as the phone line carries them."""

from __future__ import annotations

from media.codec import FRAME_BYTES, ULAW_SILENCE
from tests.voice_server.providers.test_local_providers import frames, next_final
from voice_server.providers.base import SttOptions
from voice_server.providers.registry import local_registry
from voice_server.seed import OFFLINE_MODELS
from voice_server.simulation.caller_script import CallerScript, Say, render_steps
from voice_server.simulation.demo import DEMO_TURNS

KEY_WORDS = ("opening", "table", "goodbye")  # one word of each demo turn that must come through


async def test_the_demo_agent_hears_a_key_word_of_each_demo_turn() -> None:
    model = OFFLINE_MODELS.sttModel
    assert model is not None
    audio = await render_steps(CallerScript(turns=DEMO_TURNS))
    heard = []

    async with local_registry().stt[model].open_session(SttOptions(model)) as session:
        for turn in DEMO_TURNS:
            for _ in range(15):  # a caller's pause before speaking
                session.push_audio(ULAW_SILENCE * FRAME_BYTES, speech=False)
            session.speech_started()
            for frame in frames(audio[Say(turn)]):
                session.push_audio(frame, speech=True)
            session.speech_ended()
            heard.append((await next_final(session)).text.lower())

    assert [word in text for word, text in zip(KEY_WORDS, heard, strict=True)] == [True] * 3, heard

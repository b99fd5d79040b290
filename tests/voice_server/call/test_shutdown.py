"""The server stops while a call is on: the caller hears the goodbye, then the call ends."""

from __future__ import annotations

import pytest

from tests.voice_server.call.harness import SHUTDOWN_TEXT, running_call
from tests.voice_server.call.scripted import ScriptedLanguageModel

pytestmark = pytest.mark.looptime

QUESTION = "What are your opening hours?"
HOURS = "We open at nine on weekdays and at ten on weekends."


@pytest.mark.parametrize("moment", ["after the answer", "during the answer"])
async def test_a_shut_down_call_hears_the_goodbye_and_ends(moment: str) -> None:
    async with running_call(llm=ScriptedLanguageModel(HOURS), caller_says=[QUESTION]) as call:
        phone = call.phone
        await phone.agent_done()
        await phone.say(QUESTION)
        if moment == "after the answer":
            await phone.agent_done()
            await phone.wait(2.0)
        else:
            await phone.agent_playing_for(1.0)
        call.call.shut_down(goodbye=True)
        reason = await call.ended(timeout_s=20)

    assert reason == "server-shutdown"
    assert call.said("assistant")[-1] == SHUTDOWN_TEXT


async def test_words_over_the_goodbye_do_not_cut_it_short_and_the_call_still_ends() -> None:
    llm = ScriptedLanguageModel(HOURS, "This answer is never given.")
    async with running_call(llm=llm, caller_says=[QUESTION, "Wait, one more thing."]) as call:
        phone = call.phone
        await phone.agent_done()
        await phone.say(QUESTION)
        await phone.agent_done()
        call.call.shut_down(goodbye=True)
        await phone.agent_playing_for(0.5)
        await phone.say("Wait, one more thing.")
        reason = await call.ended(timeout_s=20)

    assert reason == "server-shutdown"
    assert phone.clears() == [], "the goodbye was not cut short"
    assert call.said("assistant")[-1] == SHUTDOWN_TEXT
    assert len(llm.requests) == 1, "nothing answered after the goodbye began"

"""The scripted conversation set: callers who pause (also for 700 ms mid-sentence), talk over the
agent or its greeting, cough (also right after asking), make a noise, say "mm-hm", stay silent,
press keys (and then talk), hang up mid-answer, say goodbye, or reach the time limit while the
agent answers. The tests play each of them and `scripts/conversations` measures them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from voice_server.simulation.caller_script import (
    AwaitHangUp,
    CallerScript,
    HangUp,
    Noise,
    Pause,
    Press,
    Say,
)

QUESTION = "What are your opening hours?"
STATEMENT = "I would like a table for two tonight."
MENU = "Tell me about your menu."
OVER = "Stop. What time do you close?"
BOOKING = "Hello, I would like to book an appointment for next Tuesday please."


@dataclass(frozen=True)
class Conversation:
    script: CallerScript
    turn_taking: Mapping[str, Any] = field(default_factory=dict)  # the agent's overrides


CONVERSATIONS: dict[str, Conversation] = {
    "one-question": Conversation(CallerScript(steps=(Say(QUESTION),))),
    "one-statement": Conversation(CallerScript(steps=(Say(STATEMENT),))),
    "pause-mid-sentence": Conversation(
        CallerScript(
            steps=(Say("I would like to book"), Pause(300), Say("a table for two", when="now"))
        )
    ),
    # Pauses long enough to end a turn on silence alone; the words before them cannot end one.
    "pause-700-after-a-fragment": Conversation(
        CallerScript(
            steps=(Say("I would like to book"), Pause(700), Say("a table for two.", when="now"))
        )
    ),
    "pause-700-after-and": Conversation(
        CallerScript(
            steps=(
                Say("I need a table for four, and"),
                Pause(700),
                Say("a high chair, please.", when="now"),
            )
        )
    ),
    "talk-over-the-agent": Conversation(
        CallerScript(steps=(Say(QUESTION), Say(OVER, when="during-agent", delay_ms=1500)))
    ),
    "speaks-over-the-greeting": Conversation(
        CallerScript(steps=(Say(BOOKING, when="during-agent", delay_ms=500),))
    ),
    "cough-right-after-a-question": Conversation(
        CallerScript(steps=(Say(QUESTION), Noise(250, when="now", delay_ms=700)))
    ),
    "cough-while-agent-speaks": Conversation(
        CallerScript(steps=(Say(MENU), Noise(250, delay_ms=1500)))
    ),
    "noise-while-agent-speaks": Conversation(
        CallerScript(steps=(Say(MENU), Noise(600, delay_ms=1500)))
    ),
    "backchannel-while-agent-speaks": Conversation(
        CallerScript(steps=(Say(MENU), Say("mm-hm", when="during-agent", delay_ms=1500)))
    ),
    "silent-caller": Conversation(
        CallerScript(steps=(AwaitHangUp(timeout_s=40),)),
        {"silenceRepromptMs": 1500, "maxReprompts": 2},
    ),
    "presses-keys": Conversation(CallerScript(steps=(Press("42#"),))),
    "keys-then-speech": Conversation(
        CallerScript(steps=(Press("42"), Say(QUESTION, when="now", delay_ms=400)))
    ),
    "hangs-up-mid-answer": Conversation(
        CallerScript(steps=(Say(QUESTION), HangUp(when="during-agent", delay_ms=1200)))
    ),
    "says-goodbye": Conversation(
        CallerScript(steps=(Say("Thank you, goodbye."), AwaitHangUp(timeout_s=20)))
    ),
    "legal-notice-no-barge-in": Conversation(
        CallerScript(steps=(Say(QUESTION), Say(OVER, when="during-agent", delay_ms=1500))),
        {"bargeIn": False},
    ),
    "too-long": Conversation(
        CallerScript(steps=(AwaitHangUp(timeout_s=30),)),
        {"maxCallSeconds": 10, "silenceRepromptMs": 60_000},
    ),
    # The goodbye replaces an answer whose audio is still queued at Twilio.
    "time-limit-mid-answer": Conversation(
        CallerScript(steps=(Say(QUESTION), AwaitHangUp(timeout_s=30))),
        {"maxCallSeconds": 10, "silenceRepromptMs": 60_000},
    ),
}

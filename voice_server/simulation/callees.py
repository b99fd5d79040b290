"""Who answers an outbound call on the stand-in's phone network, and what they do on the line.

A callee is a person (`human`), an answering machine (`machine`), or a line that never picks up
(`busy`, `no-answer`, `failed`). The person and the machine are played over a `Player`, from the
moment the call's first media stream starts: the person says their first words, then their
script, and then waits for the agent to hang up; the machine plays its greeting, then a beep,
then records in silence.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Literal

from media.codec import FRAME_BYTES, ULAW_SILENCE
from voice_server.simulation.caller_script import (
    AwaitHangUp,
    CallerScript,
    HangUp,
    Pause,
    Say,
    Step,
    render_steps,
    tone,
)
from voice_server.simulation.phone_line import Player
from voice_server.simulation.simulator import play_script

CalleeKind = Literal["human", "machine", "busy", "no-answer", "failed"]

DEFAULT_GREETING = (
    "Hi, you have reached Sam. I can't take your call right now. Please leave a message after "
    "the tone."
)


@dataclass(frozen=True)
class Callee:
    """What happens when a destination is dialled. The default: a person who answers after a
    second of ringing, says "Hello?", then "Yes, I can talk now." once the agent has spoken,
    and waits (at most `hang_up_after_s`) for the agent to hang up."""

    kind: CalleeKind = "human"
    # human, machine: rings this long, then answers (past the call's `Timeout`: no-answer);
    # busy, failed: rings this long before the network says so; no-answer: rings this long, or
    # the call's `Timeout` when that is shorter, before the network gives up.
    ring_s: float = 1.0
    first_words: str = "Hello?"  # human: said as soon as the agent's stream is up ("" for none)
    first_words_after_ms: float = 300.0
    script: CallerScript = field(
        default_factory=lambda: CallerScript(turns=("Yes, I can talk now.",))
    )
    # human: the longest it stays on the line after its script; machine: the recording's limit
    hang_up_after_s: float = 30.0
    greeting: str = DEFAULT_GREETING  # machine
    beep_hz: float = 1000.0
    beep_ms: float = 500.0
    amd_after_s: float = 1.5  # answering-machine detection decides `human` / `machine_start`

    @property
    def answers(self) -> bool:
        return self.kind in ("human", "machine")


def human_script(callee: Callee) -> CallerScript:
    """The person's whole part: first words, the script, then waiting for the agent to hang up
    (after the agent's answer to the last turn) unless the script ends the call itself."""
    opening: list[Step] = []
    if callee.first_words:
        opening = [Pause(callee.first_words_after_ms), Say(callee.first_words, when="now")]
    steps = opening + callee.script.all_steps()
    hang_up = next((i for i, step in enumerate(steps) if isinstance(step, HangUp)), None)
    if hang_up is not None:  # hanging up ends the person's part, whatever the script says next
        del steps[hang_up + 1 :]
    if not steps or not isinstance(steps[-1], (HangUp, AwaitHangUp)):
        steps.append(AwaitHangUp(callee.hang_up_after_s, when="after-agent"))
    return replace(callee.script, turns=(), steps=tuple(steps))


@dataclass(frozen=True)
class CalleeVoice:
    """A callee's audio, rendered before the call is answered."""

    script: CallerScript
    audio: dict[Step, bytes]
    greeting: bytes = b""
    beep: bytes = b""


async def render_callee(callee: Callee) -> CalleeVoice:
    if callee.kind == "machine":
        machine = CallerScript(steps=(Say(callee.greeting, when="now"),), voice=callee.script.voice)
        audio = await render_steps(machine)
        greeting = audio[machine.steps[0]]
        return CalleeVoice(machine, audio, greeting, tone(callee.beep_hz, callee.beep_ms))
    script = human_script(callee)
    return CalleeVoice(script, await render_steps(script) if callee.answers else {})


async def play_human(player: Player, voice: CalleeVoice, on_event: Callable[[str], None]) -> None:
    """The person's part, until they hang up (a `stop` on the stream) or the line closes."""
    await play_script(player, voice.script, voice.audio, on_event)
    if not player.closed.is_set():
        await player.stop()


async def play_greeting(player: Player, voice: CalleeVoice) -> int:
    """The machine's greeting, then its beep; the tick at which the beep ended."""
    await player.send_audio(voice.greeting, overlapping=False)
    await player.send_audio(voice.beep, overlapping=False)
    return len(player.result.played)


async def record_message(player: Player, callee: Callee) -> None:
    """Record in silence until the agent hangs up or the recording's limit, then hang up."""
    await player.wait_for_hang_up(callee.hang_up_after_s)
    if not player.closed.is_set():
        await player.stop()


def agent_audio_since(player: Player, tick: int) -> tuple[bytes, float]:
    """The agent's audio the line played from `tick` on (silence where none played), and how
    many milliseconds of it were the agent's."""
    result = player.result
    audio = bytes(result.agent_audio[tick * FRAME_BYTES :]).rstrip(ULAW_SILENCE)
    return audio, result.played.count(1, tick) * 20.0

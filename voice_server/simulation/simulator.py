"""A caller simulator that does what Twilio does, for the demo, the tests and benchmarks.

It posts a signed incoming-call webhook, reads the TwiML for the stream URL and parameters, opens
the media stream, sends `connected` and `start`, then sends 20 ms μ-law frames at real-time pace
(speech synthesised with espeak-ng, silence in between). Agent audio is "played" at real time
too: a `mark` is echoed only once the audio queued before it has played, and `clear` drops the
queue and echoes every pending mark, as Twilio does. Both sides are recorded.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp
from websockets.asyncio.client import connect

from voice_server.simulation.caller_script import (
    AwaitHangUp,
    Burst,
    CallerScript,
    Drop,
    Garbage,
    HangUp,
    Noise,
    Pause,
    Press,
    Say,
    Step,
    render_steps,
)
from voice_server.simulation.phone_line import (
    CallResult,
    Player,
    Turn,
    inbound_start,
    incoming_call,
    stream_from_twiml,
)

__all__ = [
    "CallNotPlaced",
    "CallResult",
    "CallerScript",
    "Line",
    "new_call_sid",
    "place_call",
    "play_script",
]


class CallNotPlaced(Exception):
    """The server could not be reached, or refused the incoming-call webhook."""


@dataclass(frozen=True)
class Line:
    """Who is calling whom, and where the server is."""

    base_url: str  # the server's public base URL, as in PUBLIC_BASE_URL
    auth_token: str
    caller: str
    dialled: str
    account_sid: str = "AC" + "0" * 32


def new_call_sid() -> str:
    return "CA" + secrets.token_hex(16)


async def place_call(
    line: Line,
    script: CallerScript,
    *,
    call_sid: str | None = None,
    on_event: Callable[[str], None] = lambda _: None,
) -> CallResult:
    """Make one call, play the script, hang up (unless the server did); what happened.

    Raises CallNotPlaced when no server answers at `line.base_url` or it refuses the call.
    """
    call_sid = call_sid or new_call_sid()
    audio = await render_steps(script)
    twiml = await _post_webhook(line, call_sid)
    result = CallResult(call_sid=call_sid, twiml=twiml)
    stream = stream_from_twiml(twiml)
    if stream is None:
        on_event(f"call not connected: {twiml}")
        return result
    url, parameters = stream
    async with connect(url, max_size=2**20) as websocket:
        result.connected = True
        player = Player(websocket, result)
        await player.begin(inbound_start(call_sid, line.account_sid, parameters))
        receiver = asyncio.create_task(player.receive())
        try:
            await play_script(player, script, audio, on_event)
            if not player.closed.is_set():
                await player.stop()
            # Hang up, then wait for the server to finish the call and close the socket.
            await asyncio.wait_for(asyncio.shield(receiver), timeout=30)
        finally:
            receiver.cancel()
    return result


async def _post_webhook(line: Line, call_sid: str) -> str:
    url = f"{line.base_url}/twilio/voice"
    form, headers = incoming_call(
        url,
        line.auth_token,
        call_sid=call_sid,
        account_sid=line.account_sid,
        caller=line.caller,
        dialled=line.dialled,
    )
    try:
        async with (
            aiohttp.ClientSession() as http,
            http.post(url, data=form, headers=headers) as response,
        ):
            body = await response.text()
    except aiohttp.ClientConnectionError as error:
        raise CallNotPlaced(
            f"no server answers at {line.base_url} ({error.__class__.__name__}); start one with "
            "`voice-server serve`, or set HOST/PORT or PUBLIC_BASE_URL to where it listens"
        ) from error
    if response.status == 403:
        raise CallNotPlaced(
            f"the server at {line.base_url} refused the call's signature (403): the auth token "
            f"is not the one registered for {line.dialled}"
        )
    if response.status != 200:
        raise CallNotPlaced(f"the server at {line.base_url} answered {response.status}: {body}")
    return body


async def play_script(
    player: Player,
    script: CallerScript,
    audio: dict[Step, bytes],
    on_event: Callable[[str], None],
) -> None:
    """Each step at its moment; after the last one, wait for the agent's answer."""
    last_speech = time.monotonic()
    steps = script.all_steps()
    for step in steps:
        if player.closed.is_set():
            return
        if step.when == "after-agent":
            await _await_answer(player, script, last_speech, on_event)
        elif step.when == "during-agent" and not await player.agent_playing(
            step.delay_ms, script.reply_timeout_s
        ):
            on_event(f"the agent was not speaking for {type(step).__name__}")
            continue
        last_speech = await _perform(player, step, audio, on_event) or last_speech
    if not steps or not isinstance(steps[-1], (HangUp, AwaitHangUp)):
        await _await_answer(player, script, last_speech, on_event)


async def _await_answer(
    player: Player, script: CallerScript, since: float, on_event: Callable[[str], None]
) -> None:
    first_audio = await player.wait_for_agent(
        since, script.reply_timeout_s, script.agent_done_after_s
    )
    pending = [turn for turn in player.result.turns if turn.reply_latency_ms is None]
    if first_audio is None:
        on_event("the agent did not answer in time")
    elif pending:
        pending[-1].reply_latency_ms = round((first_audio - since) * 1000, 1)


async def _perform(
    player: Player, step: Step, audio: dict[Step, bytes], on_event: Callable[[str], None]
) -> float | None:
    """Do one step; the time its last loud frame went out, for steps that make sound."""
    if isinstance(step, Say):
        on_event(f"caller says: {step.text}")
        turn = Turn(said=step.text)
        player.result.turns.append(turn)
        first = len(player.result.played)
        turn.ticks = (first, first)  # so far: a turn cut off by a hang-up still says when it began
        last_loud = await player.send_audio(audio[step], overlapping=step.when == "during-agent")
        turn.ticks = (first, len(player.result.played))
        return last_loud
    if isinstance(step, Noise):
        on_event(f"caller coughs ({step.ms:.0f} ms)")
        return await player.send_audio(audio[step], overlapping=True)
    if isinstance(step, Press):
        on_event(f"caller presses {step.digits}")
        await player.press(step.digits)
        return time.monotonic()
    await _perform_quietly(player, step, audio, on_event)
    return None


async def _perform_quietly(
    player: Player,
    step: Pause | Burst | HangUp | AwaitHangUp | Garbage | Drop,
    audio: dict[Step, bytes],
    on_event: Callable[[str], None],
) -> None:
    """Do a step that is not the caller making a sound."""
    if isinstance(step, Pause):
        await player.send_audio(audio[step], overlapping=False)
    elif isinstance(step, Burst):
        on_event(f"the line sends {step.frames} frames of {step.frame_bytes} bytes at once")
        await player.burst(step.frames, step.frame_bytes)
    elif isinstance(step, Garbage):
        on_event(f"the line sends malformed frames ({step.repeat} of each kind)")
        await player.send_garbage(step.repeat, step.oversized_bytes)
    elif isinstance(step, Drop):
        on_event("the line goes dead" if step.reset else "the socket closes with no stop")
        await player.drop(reset=step.reset)
    elif isinstance(step, HangUp):
        on_event("caller hangs up")
        await player.stop()
    else:
        on_event("caller waits for the agent to hang up")
        await player.wait_for_hang_up(step.timeout_s)

"""The load generator's process: `calls` slots placing scripted calls back to back.

    python -m bench_lib.calls --calls 100 --seconds 60 --ramp-s 5 \\
        --base-url http://127.0.0.1:8000 --auth-token TOKEN --to +15550100100

With several `--base-url`s (one per server process) call i posts its webhook to server
i mod W and opens its stream on server i+1 mod W: the stream never reaches the process that
minted its token, as with a kernel's SO_REUSEPORT spread, the worst case for per-process state.
Each webhook is timed from its post to its TwiML read, and every call's sid is reported so that
the bench can read back what the server said.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import sys
import time
from dataclasses import asdict, dataclass
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import uvloop
from picows import WSError, ws_connect

from bench_lib.loadgen import (
    INTERRUPTION,
    QUESTION,
    Phrase,
    Script,
    Stream,
    Tally,
    Target,
    phrase,
)
from media import twilio as protocol
from voice_server.simulation.phone_line import inbound_start, incoming_call, stream_from_twiml


@dataclass(frozen=True)
class Phrases:
    question: Phrase
    interruption: Phrase


FAILED_CALL_PAUSE_S = 10.0


class CallFailed(Exception):
    """The call could not be placed, or the server ended it early."""


class Run:
    """One run: the tally, the deadline, and the count of connected calls over time."""

    def __init__(self, target: Target, script: Script, phrases: Phrases, deadline: float) -> None:
        self.target = target
        self.script = script
        self.phrases = phrases
        self.deadline = deadline
        self.tally = Tally()
        self._active = 0
        self._since = time.monotonic()
        self._steady: float | None = None
        self._draining = False

    def connected(self, change: int) -> None:
        now = time.monotonic()
        if self._steady is not None and not self._draining:
            self.tally.call_seconds_steady += self._active * (now - self._since)
        self._active += change
        self._since = now

    def mark(self, phase: str) -> None:
        """Start (`steady`) or stop (`draining`) counting call-seconds; tell the parent."""
        self.connected(0)
        if phase == "steady":
            self._steady = time.monotonic()
        else:
            self._draining = True
        print(json.dumps({"phase": phase, "t": time.monotonic()}), flush=True)


async def place(run: Run, http: aiohttp.ClientSession, index: int) -> None:
    """One call, start to hang-up, into `run.tally`."""
    target, tally = run.target, run.tally
    call_sid = "CA" + secrets.token_hex(16)
    tally.call_sids.append(call_sid)
    webhook = target.base_urls[index % len(target.base_urls)]
    stream_base = target.base_urls[(index + 1) % len(target.base_urls)]
    url, parameters = await _answer(http, run, webhook, call_sid)
    if len(target.base_urls) > 1:
        url = _rehost(url, stream_base)
    start = inbound_start(call_sid, target.account_sid, parameters)
    transport, stream = await ws_connect(
        lambda: Stream(start.stream_sid, tally), url, websocket_handshake_timeout=10
    )
    assert isinstance(stream, Stream)
    stream.send(protocol.build_connected())
    stream.send(protocol.build_start(1, start))
    run.connected(+1)
    try:
        await _converse(run, stream, barge=index % run.script.barge_in_every == 0)
        if stream.closed:
            raise CallFailed("the server closed the stream during the call")
        stream.hang_up(call_sid, target.account_sid)
        await asyncio.wait_for(stream.ended(), timeout=10)
    finally:
        run.connected(-1)
        transport.disconnect()


async def _answer(
    http: aiohttp.ClientSession, run: Run, base_url: str, call_sid: str
) -> tuple[str, dict[str, str]]:
    """Post the voice webhook as Twilio does, timing it (an answer of any status counts)."""
    target = run.target
    url = f"{base_url}/twilio/voice"
    form, headers = incoming_call(
        url,
        target.auth_token,
        call_sid=call_sid,
        account_sid=target.account_sid,
        caller=target.caller,
        dialled=target.dialled,
    )
    posted = time.monotonic()
    async with http.post(url, data=form, headers=headers) as response:
        body = await response.text()
    run.tally.webhook_ms.append((time.monotonic() - posted) * 1000)
    if response.status != 200:
        raise CallFailed(f"voice webhook answered {response.status}")
    if (stream := stream_from_twiml(body)) is None:
        raise CallFailed("the TwiML has no stream")
    return stream


def _rehost(url: str, base_url: str) -> str:
    return urlunsplit(urlsplit(url)._replace(netloc=urlsplit(base_url).netloc))


async def _converse(run: Run, stream: Stream, *, barge: bool) -> None:
    script, tally, phrases = run.script, run.tally, run.phrases
    if await stream.await_reply(time.monotonic(), script.reply_timeout_s) is None:
        raise CallFailed("no greeting")
    await stream.await_quiet(script.quiet_s, 30)
    interrupting = False
    for turn in range(script.turns):
        if turn and time.monotonic() > run.deadline:
            return
        stream.clear_at = None
        onset = time.monotonic()
        said = phrases.interruption if interrupting else phrases.question
        last = await stream.say(said.frames)
        if interrupting:
            tally.barge_ins += 1
            if stream.clear_at is None:
                tally.missed_clears += 1
            else:
                tally.clear_ms.append((stream.clear_at - onset) * 1000)
        stream.first_media = None
        tally.turns += 1
        first_audio = await stream.await_reply(last, script.reply_timeout_s)
        if first_audio is None:
            tally.unanswered += 1
            continue
        tally.latencies_ms.append((first_audio - last) * 1000)
        tally.endpointing_ms.append(said.endpointing_ms)
        interrupting = barge and turn == 0
        if interrupting:
            await stream.await_playing(script.barge_in_after_s, script.reply_timeout_s)
        else:
            await stream.await_quiet(script.quiet_s, 30)


async def slot(run: Run, http: aiohttp.ClientSession, index: int, calls: int, delay: float) -> None:
    """Calls back to back from one slot, from `delay` on, until the deadline. After a failed
    call the slot waits `FAILED_CALL_PAUSE_S`: callers do not redial at once, and a server that
    refuses calls would otherwise get thousands more a minute than N calls make."""
    await asyncio.sleep(delay)
    while time.monotonic() < run.deadline:
        run.tally.calls += 1
        try:
            await place(run, http, index)
        except (CallFailed, OSError, TimeoutError, WSError, aiohttp.ClientError) as e:
            run.tally.failed += 1
            if len(run.tally.errors) < 20:
                run.tally.errors.append(f"{type(e).__name__}: {e}")
            await asyncio.sleep(FAILED_CALL_PAUSE_S)
        index += calls


async def main_async(args: argparse.Namespace) -> Tally:
    silence_ms = args.silence_ms
    phrases = Phrases(await phrase(QUESTION, silence_ms), await phrase(INTERRUPTION, silence_ms))
    target = Target(tuple(args.base_url), args.auth_token, args.to)
    script = Script(turns=args.turns, barge_in_every=args.barge_in_every)
    begin = time.monotonic()
    run = Run(target, script, phrases, deadline=begin + args.ramp_s + args.seconds)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as http:
        slots = [
            asyncio.create_task(slot(run, http, i, args.calls, args.ramp_s * i / args.calls))
            for i in range(args.calls)
        ]
        await asyncio.sleep(args.ramp_s + args.settle_s)
        run.mark("steady")
        await asyncio.sleep(max(0.0, run.deadline - time.monotonic()))
        run.mark("draining")
        await asyncio.gather(*slots)
    return run.tally


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, required=True, help="concurrent calls")
    parser.add_argument("--seconds", type=float, default=60.0, help="after the ramp")
    parser.add_argument("--ramp-s", type=float, default=5.0, help="call starts spread over")
    parser.add_argument("--settle-s", type=float, default=3.0, help="ramp → steady")
    parser.add_argument("--turns", type=int, default=4)
    parser.add_argument("--barge-in-every", type=int, default=3)
    parser.add_argument(
        "--silence-ms", type=float, default=500.0, help="the stand-ins' end-of-turn silence"
    )
    parser.add_argument("--base-url", action="append", required=True)
    parser.add_argument("--auth-token", required=True)
    parser.add_argument("--to", required=True)
    tally = uvloop.run(main_async(parser.parse_args()))
    # The loop leaves stdout non-blocking, and a pipe takes 64-128 KiB at once: the tally of
    # hundreds of calls is longer, and would be cut.
    os.set_blocking(sys.stdout.fileno(), True)
    print(json.dumps({"tally": asdict(tally)}), flush=True)
    sys.exit(0)


if __name__ == "__main__":
    main()

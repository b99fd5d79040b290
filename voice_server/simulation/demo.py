"""`voice-server demo`: one simulated phone call, end to end, with nothing configured.

It works on the database `serve` uses (DATA_DIR's embedded one, or MONGODB_URI), seeds a demo
number and agent, starts the real server on a loopback port, places a call with the caller
simulator, prints the conversation as it is stored (what the caller said beside what the
recogniser heard), and writes the call's audio to a stereo WAV file (caller left, agent right).
The server's log goes to DATA_DIR/demo.log, so the terminal holds only the conversation.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from contextlib import suppress
from pathlib import Path

from stores import migrations
from stores.agents import AgentStore
from stores.calls import CallStore
from stores.database import Database, connect, database_name
from voice_server.command_database import open_database
from voice_server.log import send_logs_to
from voice_server.security.secret_key import secret_box
from voice_server.seed import DEMO_CALLER, DEMO_USER, OFFLINE_MODELS, DemoLine, seed_demo
from voice_server.serving import serve_in_background
from voice_server.settings import Settings
from voice_server.simulation.simulator import (
    CallerScript,
    CallResult,
    Line,
    new_call_sid,
    place_call,
)

DEMO_TURNS = (
    "Hello, what are your opening hours?",
    "Can I book a table for two?",
    "Thank you, goodbye.",
)


def run_demo(settings: Settings, wav_path: Path, turns: tuple[str, ...] = DEMO_TURNS) -> int:
    """Run the demo on the database `serve` uses (see voice_server.command_database), so its
    number, agent and call are there for `serve` afterwards."""
    wav_path = wav_path.resolve()
    with open_database(settings, "demo") as database:
        return asyncio.run(_demo(settings, database.uri, wav_path, turns))


def demo_command(settings: Settings, wav_path: Path) -> int:
    """`voice-server demo`: the demo, with the server's log in DATA_DIR/demo.log."""
    log_path = (settings.data_dir / "demo.log").resolve()
    with suppress(OSError):  # a DATA_DIR that cannot be made is told by open_database
        log_path.parent.mkdir(parents=True, exist_ok=True)
        send_logs_to(log_path)
    code = run_demo(settings, wav_path)
    print(f"the server's log: {log_path}")
    return code


async def _demo(settings: Settings, uri: str, wav_path: Path, turns: tuple[str, ...]) -> int:
    client = connect(uri)
    try:
        db = client[database_name(uri)]
        await migrations.upgrade(db)
        line = await seed_demo(db, secret_box(settings))
        # The demo database is kept between runs: its agent may name older offline models.
        await AgentStore(db).update(DEMO_USER, line.agent_id, OFFLINE_MODELS)
        async with serve_in_background(settings, db) as base_url:
            result = await _call_and_watch(db, base_url, line, turns)
    finally:
        await client.close()
    await asyncio.to_thread(wav_path.parent.mkdir, parents=True, exist_ok=True)
    await asyncio.to_thread(wav_path.write_bytes, result.recording_wav())
    answered = sum(turn.reply_latency_ms is not None for turn in result.turns)
    seconds = len(result.caller_audio) / 8000
    print(f"\nrecording (caller left, agent right): {wav_path} ({seconds:.1f} s)")
    print(f"turns answered: {answered}/{len(result.turns)}")
    return 0 if result.connected and answered == len(result.turns) else 1


async def _call_and_watch(
    db: Database, base_url: str, line: DemoLine, turns: tuple[str, ...]
) -> CallResult:
    calls = CallStore(db)
    script = CallerScript(turns=turns)
    target = Line(
        base_url=base_url,
        auth_token=line.auth_token,
        caller=DEMO_CALLER,
        dialled=line.number,
        account_sid=line.account_sid,
    )
    call_sid = new_call_sid()
    call = asyncio.create_task(place_call(target, script, call_sid=call_sid, on_event=_problem))
    await watch_transcript(calls, call_sid, print, until=call, said=turns)
    return await call


def _problem(event: str) -> None:
    """The simulator's events, but the caller's own turns (the transcript shows them)."""
    if not event.startswith("caller says"):
        print(f"  · {event}")


async def watch_transcript(
    calls: CallStore,
    call_sid: str,
    show: Callable[[str], None],
    *,
    until: asyncio.Future[object] | asyncio.Task[CallResult],
    poll_s: float = 0.1,
    said: Sequence[str] = (),
) -> None:
    """Show transcript entries as they are stored, until the call is completed (or `until` is
    done and no call record appeared). Given what the caller `said`, in order, each of the
    caller's entries shows it beside what was recognised."""
    seen = heard = 0
    while True:
        update = await calls.transcript_since(call_sid, seen)
        if update is None:
            if until.done():
                return
            await asyncio.sleep(poll_s)
            continue
        status, entries = update
        for entry in entries:
            who = "caller" if entry.role == "user" else "agent "
            figures = ""
            if entry.metrics and "first_audio_ms" in entry.metrics:
                parts = ", ".join(
                    f"{k.removesuffix('_ms')} {v:.0f} ms"
                    for k, v in entry.metrics.items()
                    if k.endswith("_ms")
                )
                figures = f"   [{parts}]"
            cut = " (interrupted)" if entry.interrupted else ""
            text = entry.text
            if entry.role == "user" and heard < len(said):
                text = f"{said[heard]}\n{'':11}  (heard: {entry.text})"
                heard += 1
            show(f"[{entry.timestamp:%H:%M:%S}] {who}: {text}{cut}{figures}")
        seen += len(entries)
        if status == "completed":
            show(f"call {call_sid} completed")
            return
        await asyncio.sleep(poll_s)

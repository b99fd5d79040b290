"""The real `voice-server serve`, stopped during live simulated calls: SIGTERM drains them (each
hears the goodbye), a second signal ends them at once, and after a SIGKILL another server's
sweeper finalises what was left. Nothing is lost: every record ends completed."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
from pymongo.asynchronous.database import AsyncDatabase

from stores.calls import Call, CallStore
from stores.secrets import SecretBox
from tests.voice_server.child_server import ChildServer, serve
from voice_server.seed import DEMO_CALLER, DemoLine, seed_demo
from voice_server.simulation.caller_script import AwaitHangUp, CallerScript
from voice_server.simulation.phone_line import CallResult, incoming_call
from voice_server.simulation.simulator import Line, place_call

Db = AsyncDatabase[dict[str, Any]]
GOODBYE = "We are closing for a moment. Goodbye!"
SILENT_CALLER = CallerScript(steps=(AwaitHangUp(timeout_s=60),))


async def until(condition: Callable[[], Awaitable[bool]], timeout_s: float = 30) -> None:
    """Poll the database (another process changes it; there is nothing to wait on)."""
    async with asyncio.timeout(timeout_s):
        while not await condition():  # noqa: ASYNC110
            await asyncio.sleep(0.05)


async def demo_line(database: Db, key: str) -> DemoLine:
    return await seed_demo(database, SecretBox(key))


async def live_calls(server: ChildServer, line: DemoLine, database: Db, n: int) -> list[Any]:
    """`n` silent callers on the demo number, once each one's media stream has started."""
    caller = Line(server.base_url, line.auth_token, DEMO_CALLER, line.number)
    placed = [asyncio.create_task(place_call(caller, SILENT_CALLER)) for _ in range(n)]

    async def streaming() -> bool:
        return await database["calls"].count_documents({"stream_sid": {"$exists": True}}) == n

    await until(streaming)
    return placed


async def stopping_server(
    mongo_uri: str, database: Db, data_dir: Path, drain_seconds: str, calls: int
) -> tuple[ChildServer, DemoLine, list[Any]]:
    """A `serve` child on the demo number with `calls` silent callers live on it."""
    key = SecretBox.generate_key()
    line = await demo_line(database, key)
    server = await serve(
        mongo_uri, database.name, data_dir, secrets_key=key,
        drain_seconds=drain_seconds, shutdown_goodbye_text=GOODBYE,
    )  # fmt: skip
    return server, line, await live_calls(server, line, database, calls)


async def records(database: Db) -> list[Call]:
    calls = CallStore(database)
    found = await database["calls"].find({}, {"call_sid": 1}).to_list()
    return [c for d in found if (c := await calls.get(d["call_sid"])) is not None]


async def test_sigterm_drains_the_live_calls_each_with_a_goodbye(
    mongo_uri: str, database: Db, tmp_path: Path
) -> None:
    server, line, placed = await stopping_server(mongo_uri, database, tmp_path, "1", calls=3)

    async with httpx.AsyncClient(base_url=server.base_url) as http:
        was_ready = await http.get("/ready")
        server.process.send_signal(signal.SIGTERM)
        await server.logged("stop requested: draining")
        ready = await http.get("/ready")
        url = f"{server.base_url}/twilio/voice"
        form, headers = incoming_call(
            url, line.auth_token, call_sid="CA" + "9" * 32, account_sid="AC" + "0" * 32,
            caller=DEMO_CALLER, dialled=line.number,
        )  # fmt: skip
        webhook = await http.post("/twilio/voice", data=form, headers=headers)
    results: list[CallResult] = await asyncio.gather(*placed)
    code = await asyncio.wait_for(server.process.wait(), 30)

    assert (was_ready.status_code, ready.status_code) == (200, 503), "no new work once draining"
    assert webhook.status_code == 200, "webhooks are still answered"
    assert "<Connect>" in webhook.text
    assert code == 0
    assert all(result.server_hung_up for result in results)
    ended = [c for c in await records(database) if c.stream_sid]
    assert len(ended) == 3
    for call in ended:
        assert (call.status, call.end_reason) == ("completed", "server-shutdown")
        said = [(entry.role, entry.text) for entry in call.transcript]
        assert said[-1:] == [("assistant", GOODBYE)], "each caller heard the goodbye"


async def test_a_second_signal_ends_the_calls_at_once(
    mongo_uri: str, database: Db, tmp_path: Path
) -> None:
    server, _, placed = await stopping_server(mongo_uri, database, tmp_path, "600", calls=2)

    server.process.send_signal(signal.SIGTERM)
    await asyncio.sleep(0)  # two signals, one after the other
    server.process.send_signal(signal.SIGINT)
    await asyncio.gather(*placed)
    code = await asyncio.wait_for(server.process.wait(), 30)

    assert code == 0
    calls = await records(database)
    assert [(c.status, c.end_reason) for c in calls] == [("completed", "server-shutdown")] * 2
    assert not any(GOODBYE in entry.text for c in calls for entry in c.transcript)


async def test_a_killed_servers_call_is_finalised_by_another_servers_sweeper(
    mongo_uri: str, database: Db, tmp_path: Path
) -> None:
    key = SecretBox.generate_key()
    line = await demo_line(database, key)
    quick = {"heartbeat_seconds": "0.2", "call_lost_after_seconds": "1.5"}
    server = await serve(mongo_uri, database.name, tmp_path, secrets_key=key, **quick)
    (placed,) = await live_calls(server, line, database, 1)
    (started,) = await records(database)
    first_beat = started.heartbeat_at
    assert first_beat is not None

    async def beating() -> bool:
        (call,) = await records(database)
        return call.heartbeat_at is not None and call.heartbeat_at > first_beat

    await until(beating)
    server.process.kill()
    await server.process.wait()
    await placed  # the caller's line went dead
    (orphan,) = await records(database)
    assert orphan.status == "active"

    other = await serve(mongo_uri, database.name, tmp_path / "2", secrets_key=key, **quick)

    async def swept() -> bool:
        (call,) = await records(database)
        return call.status == "completed"

    try:
        await until(swept)
    finally:
        other.process.terminate()
        await other.process.wait()
    (call,) = await records(database)
    assert call.end_reason == "server-lost"
    assert call.end_time == orphan.heartbeat_at, "it ended when its server was last alive"

"""Two `voice-server serve` processes on one database behind nginx (round robin, WebSockets
passed through): a call whose webhook lands on one server and whose media stream lands on the
other is answered end to end, the Twilio signature checked against the public URL."""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from stores.calls import CallStore
from stores.secrets import SecretBox
from tests.voice_server.child_server import ChildServer, serve
from tests.voice_server.commands import free_port
from tests.voice_server.nginx import nginx_executable, nginx_in_front
from voice_server.seed import DEMO_CALLER, seed_demo
from voice_server.simulation.caller_script import CallerScript
from voice_server.simulation.simulator import Line, new_call_sid, place_call

pytestmark = pytest.mark.skipif(
    nginx_executable() is None, reason="no nginx (Debian's package; `scripts/setup --test`)"
)


def logged_for(server: ChildServer, call_sid: str) -> list[str]:
    """The events `server` logged for the call."""
    lines = [json.loads(line) for line in server.lines if line.startswith("{")]
    return [line["event"] for line in lines if line.get("call_sid") == call_sid]


async def test_a_call_split_across_two_servers_behind_nginx_is_answered(
    mongo_uri: str, database: AsyncDatabase[dict[str, Any]], tmp_path: Path
) -> None:
    key = SecretBox.generate_key()
    line = await seed_demo(database, SecretBox(key))
    port = free_port()
    public = f"http://127.0.0.1:{port}"  # nginx's: the servers know no other address
    shared = {"public_base_url": public, "stream_token_secret": secrets.token_urlsafe(32)}
    servers: list[ChildServer] = []
    try:
        for name in ("a", "b"):
            servers.append(
                await serve(mongo_uri, database.name, tmp_path / name, secrets_key=key, **shared)
            )
        upstreams = [urlsplit(server.base_url).netloc for server in servers]
        async with nginx_in_front(upstreams, port, tmp_path / "nginx"):
            call_sid = new_call_sid()
            caller = Line(public, line.auth_token, DEMO_CALLER, line.number)
            result = await place_call(caller, CallerScript(turns=("Hello",)), call_sid=call_sid)
    finally:
        for server in servers:
            server.process.terminate()
            await server.process.wait()
    call = await CallStore(database).get(call_sid)

    assert result.connected, "the webhook's signature verified behind the proxy"
    assert [turn.reply_latency_ms is not None for turn in result.turns] == [True]
    webhook = [s for s in servers if "call accepted" in logged_for(s, call_sid)]
    stream = [s for s in servers if "media stream started" in logged_for(s, call_sid)]
    assert len(webhook) == len(stream) == 1
    assert webhook != stream, "the webhook on one server, the stream on the other"
    assert call is not None
    assert call.status == "completed"
    roles = [entry.role for entry in call.transcript]
    assert "assistant" in roles[roles.index("user") :], "the caller's turn was answered"

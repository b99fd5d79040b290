"""The call log's event streams over HTTP, against the real app and database: entries as they
are appended, the end, resuming after `Last-Event-ID`, the active-calls list, and refusals."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from stores.api_keys import ApiKeyStore, IssuedKey
from stores.calls import Call, CallStore, TranscriptEntry
from tests.stores.factories import call
from tests.voice_server.calllog.event_stream import Event, read_events
from tests.voice_server.conftest import Server
from voice_server.calllog.event_tokens import EventTokens
from voice_server.seed import DEMO_USER
from voice_server.settings import Settings

RECHECK_S = 0.05


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Open streams re-check their API key every 50 ms, so a revocation shows in milliseconds."""
    return Settings(
        data_dir=tmp_path, log_format="console", api_key_recheck_seconds=RECHECK_S, scheduler=False
    )


def said(text: str) -> TranscriptEntry:
    return TranscriptEntry(role="user", text=text, timestamp=datetime.now(UTC))


@pytest.fixture
async def key(server: Server) -> IssuedKey:
    return await ApiKeyStore(server.db).create(DEMO_USER)


@pytest.fixture
async def token(server: Server, key: IssuedKey) -> str:
    return await mint(server, key)


async def mint(server: Server, key: IssuedKey) -> str:
    headers = {"Authorization": f"Bearer {key.secret}"}
    async with httpx.AsyncClient(base_url=server.base_url, headers=headers) as http:
        minted = await http.post("/api/event-tokens")
    assert minted.status_code == 201, minted.text
    assert minted.json()["data"]["expires_at"] <= time.time() + 61  # a minute, rounded up
    value: str = minted.json()["data"]["token"]
    return value


@asynccontextmanager
async def events(
    server: Server, path: str, token: str, since: int | None = None, last_event_id: str = ""
) -> AsyncIterator[AsyncIterator[Event]]:
    headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
    params = {"token": token} | ({} if since is None else {"since": str(since)})
    async with (
        httpx.AsyncClient(base_url=server.base_url, timeout=30) as http,
        http.stream("GET", path, params=params, headers=headers) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        yield read_events(response)


async def live_call(server: Server, sid: str = "CA1") -> tuple[CallStore, Call]:
    calls = CallStore(server.db)
    return calls, await calls.create(call(sid, userId=DEMO_USER))


async def test_entries_arrive_as_they_are_appended_then_the_end(server: Server, token: str) -> None:
    calls, created = await live_call(server)
    await calls.append_transcript("CA1", said("already there"))
    async with events(server, f"/api/events/calls/{created.id}", token) as stream:
        first = await anext(stream)
        assert (first.name, first.id, first.data["text"]) == ("entry", "0", "already there")
        await calls.append_transcript("CA1", said("hello"))
        second = await anext(stream)
        assert (second.id, second.data["index"], second.data["text"]) == ("1", 1, "hello")
        await calls.finalize("CA1", ended_at=datetime.now(UTC), reason="stop")
        end = await anext(stream)
        assert (end.name, end.data["status"]) == ("end", "completed")
        assert [event async for event in stream] == []


async def test_a_reconnect_resumes_after_the_last_event_id(server: Server, token: str) -> None:
    calls, created = await live_call(server)
    for text in ("one", "two", "three"):
        await calls.append_transcript("CA1", said(text))
    path = f"/api/events/calls/{created.id}"
    async with events(server, path, token, last_event_id="1") as stream:
        resumed = await anext(stream)
        assert (resumed.id, resumed.data["text"]) == ("2", "three")
    async with events(server, path, token, since=1) as stream:
        assert (await anext(stream)).data["text"] == "two"


async def test_the_active_calls_list_follows_calls_starting_and_ending(
    server: Server, token: str
) -> None:
    async with events(server, "/api/events/calls", token) as stream:
        assert (await anext(stream)).data == []
        calls, created = await live_call(server)
        started = await anext(stream)
        assert (started.name, [c["id"] for c in started.data]) == ("calls", [created.id])
        await calls.append_transcript("CA1", said("hello"))  # not a change of the list
        await calls.create(call("CA-other-user", userId="someone-else"))
        await calls.finalize("CA1", ended_at=datetime.now(UTC), reason="stop")
        assert (await anext(stream)).data == []


async def test_streams_refuse_bad_tokens_and_other_users_calls(server: Server, token: str) -> None:
    calls = CallStore(server.db)
    theirs = await calls.create(call("CA2", userId="someone-else"))
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        forged = await http.get("/api/events/calls", params={"token": token[:-2] + "xx"})
        assert forged.status_code == 401
        assert forged.json()["error"]["code"] == "invalid_event_token"
        other = await http.get(f"/api/events/calls/{theirs.id}", params={"token": token})
        assert other.status_code == 404
        bad_resume = await http.get(
            f"/api/events/calls/{theirs.id}",
            params={"token": token},
            headers={"Last-Event-ID": "x"},
        )
        assert bad_resume.status_code == 422


async def test_an_open_stream_ends_soon_after_its_key_is_revoked(
    server: Server, key: IssuedKey, token: str
) -> None:
    other_key = await ApiKeyStore(server.db).create(DEMO_USER)  # the user keeps a live key
    other_token = await mint(server, other_key)
    async with (
        events(server, "/api/events/calls", token) as revoked_stream,
        events(server, "/api/events/calls", other_token) as live_stream,
    ):
        assert (await anext(revoked_stream)).data == []
        assert (await anext(live_stream)).data == []
        assert await ApiKeyStore(server.db).revoke(key.key.id)
        async with asyncio.timeout(50 * RECHECK_S):
            assert [event async for event in revoked_stream] == []
        _, created = await live_call(server)
        assert [c["id"] for c in (await anext(live_stream)).data] == [created.id]
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        refused = await http.get("/api/events/calls", params={"token": token})
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "invalid_event_token"


def test_a_token_names_its_key_and_lasts_a_minute() -> None:
    tokens = EventTokens("s" * 32, ttl_seconds=60)
    token, expiry = tokens.mint("65f0c0ffee0000000000abcd", now=1000.0)
    assert expiry == 1060
    assert tokens.key_for(token, now=1060.0) == "65f0c0ffee0000000000abcd"
    assert tokens.key_for(token, now=1061.0) is None
    assert EventTokens("t" * 32, ttl_seconds=60).key_for(token, now=1000.0) is None

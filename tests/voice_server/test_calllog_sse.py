"""The call log's event streams over HTTP, against the real app and database: entries as they
are appended, the end, resuming after `Last-Event-ID`, the active-calls list, and refusals."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import httpx
import pytest

from stores.api_keys import ApiKeyStore
from stores.calls import Call, CallStore, TranscriptEntry
from tests.stores.factories import call
from tests.voice_server.conftest import Server
from tests.voice_server.event_stream import Event, read_events
from voice_server.seed import DEMO_USER


def said(text: str) -> TranscriptEntry:
    return TranscriptEntry(role="user", text=text, timestamp=datetime.now(UTC))


@pytest.fixture
async def token(server: Server) -> str:
    key = await ApiKeyStore(server.db).create(DEMO_USER)
    headers = {"Authorization": f"Bearer {key.secret}"}
    async with httpx.AsyncClient(base_url=server.base_url, headers=headers) as http:
        minted = await http.post("/api/event-tokens")
    assert minted.status_code == 201, minted.text
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

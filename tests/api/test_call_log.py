"""The call log's REST side: the list's order, filters and pages, the incremental transcript
read a poller uses, and the event-stream tokens."""

from __future__ import annotations

from datetime import timedelta

from stores.calls import CallStore, TranscriptEntry
from tests.api.conftest import Api, data, error, failing_fields
from tests.stores.factories import START, call


def said(text: str, role: str = "user") -> TranscriptEntry:
    return TranscriptEntry.model_validate({"role": role, "text": text, "timestamp": START})


async def three_calls(calls: CallStore) -> None:
    """CA1 oldest and completed, CA2 active, CA3 newest and completed; CA9 is bob's."""
    for sid, hours in (("CA1", 0), ("CA2", 1), ("CA3", 2)):
        at = START + timedelta(hours=hours)
        await calls.create(
            call(sid, userId="alice", start_time=at, from_number=f"+1555000000{hours}")
        )
    await calls.create(call("CA9", userId="bob", start_time=START + timedelta(hours=5)))

    for sid in ("CA1", "CA3"):
        await calls.finalize(sid, ended_at=START + timedelta(hours=3), reason="stop")


async def test_the_list_shows_active_calls_first_then_the_newest(api: Api) -> None:
    await three_calls(CallStore(api.db))
    listed = data(await api.alice.get("/calls"))
    assert [c["call_sid"] for c in listed] == ["CA2", "CA3", "CA1"]
    assert [c["status"] for c in listed] == ["active", "completed", "completed"]
    oldest_first = data(await api.alice.get("/calls", params={"sort": "start_time"}))
    assert [c["call_sid"] for c in oldest_first] == ["CA1", "CA2", "CA3"]


async def test_the_list_filters_and_pages(api: Api) -> None:
    await three_calls(CallStore(api.db))

    async def sids(**params: str) -> list[str]:
        return [c["call_sid"] for c in data(await api.alice.get("/calls", params=params))]

    assert await sids(number="+1 555 000 0002") == ["CA3"]  # either side, normalised
    assert await sids(number="+15551234567") == ["CA2", "CA3", "CA1"]  # the dialled number
    assert await sids(agent_id="agent-1", status="completed") == ["CA3", "CA1"]
    hour = (START + timedelta(hours=1)).isoformat()
    assert await sids(started_after=hour) == ["CA2", "CA3"]
    assert await sids(started_before=hour) == ["CA1"]
    first = await api.alice.get("/calls", params={"limit": "2"})
    assert first.json()["pagination"]["hasMore"] is True
    assert await sids(limit="2", offset="2") == ["CA1"]
    assert failing_fields(await api.alice.get("/calls", params={"number": "x"})) == {"query.number"}
    naive = {"started_after": "2026-01-01T00:00:00"}
    assert failing_fields(await api.alice.get("/calls", params=naive)) == {"query.started_after"}


async def test_the_list_filters_calls_we_placed_and_their_scheduled_call(api: Api) -> None:
    calls = CallStore(api.db)
    await three_calls(calls)
    scheduled = "6" * 24
    await calls.create(
        call("CA4", userId="alice", direction="outbound", scheduled_call_id=scheduled)
    )
    await api.db["calls"].update_one({"call_sid": "CA1"}, {"$unset": {"direction": ""}})

    async def sids(**params: str) -> list[str]:
        return [c["call_sid"] for c in data(await api.alice.get("/calls", params=params))]

    assert await sids(direction="outbound") == ["CA4"]
    assert await sids(direction="inbound") == ["CA2", "CA3", "CA1"], "CA1 as stored before"
    assert await sids(scheduled_call_id=scheduled) == ["CA4"]
    assert failing_fields(await api.alice.get("/calls", params={"direction": "sideways"})) == {
        "query.direction"
    }


async def test_a_poller_reads_only_the_new_entries_and_the_status(api: Api) -> None:
    calls = CallStore(api.db)
    created = await calls.create(call("CA1", userId="alice"))
    path = f"/calls/{created.id}/transcript"
    await calls.append_transcript("CA1", said("hello"))
    await calls.append_transcript("CA1", said("hi there", role="assistant"))
    first = data(await api.alice.get(path))
    assert (first["status"], first["since"], first["next"]) == ("active", 0, 2)
    assert [(e["index"], e["text"]) for e in first["entries"]] == [(0, "hello"), (1, "hi there")]
    nothing_new = data(await api.alice.get(path, params={"since": first["next"]}))
    assert (nothing_new["entries"], nothing_new["next"]) == ([], 2)
    await calls.append_transcript("CA1", said("bye"))
    await calls.finalize("CA1", ended_at=START + timedelta(minutes=2), reason="stop")
    last = data(await api.alice.get(path, params={"since": "2"}))
    assert [(e["index"], e["text"]) for e in last["entries"]] == [(2, "bye")]
    assert (last["status"], last["duration_seconds"]) == ("completed", 120.0)


async def test_the_transcript_read_is_the_owners_only(api: Api) -> None:
    created = await CallStore(api.db).create(call("CA1", userId="alice"))
    assert error(await api.bob.get(f"/calls/{created.id}/transcript"), 404, "not_found")
    assert error(await api.alice.get("/calls/nonsense/transcript"), 404, "not_found")
    bad = await api.alice.get(f"/calls/{created.id}/transcript", params={"since": "-1"})
    assert failing_fields(bad) == {"query.since"}
    extra = await api.alice.get(f"/calls/{created.id}/transcript", params={"after": "1"})
    assert failing_fields(extra) == {"query.after"}


async def test_event_tokens_need_a_key_and_name_the_user(api: Api) -> None:
    minted = data(await api.alice.post("/event-tokens"), 201)
    assert set(minted) == {"token", "expires_at"}
    assert api.alice_key.secret not in minted["token"]
    async with api.alice.stream("GET", f"{api.base_url}/api/events/calls") as refused:
        assert refused.status_code == 401
    openapi = (await api.alice.get("/openapi.json")).json()
    parameters = openapi["paths"]["/api/calls/{id}/transcript"]["get"]["parameters"]
    assert [p["name"] for p in parameters] == ["id", "since"]

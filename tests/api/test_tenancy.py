"""Two users: whatever bob does with alice's ids, he is refused, and alice's data is unchanged."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from stores.calls import CallStore
from stores.messages import MessageStore, NewMessage
from tests.api.conftest import Api, agent_body, data, error, failing_fields, make, number_body
from tests.api.test_resources import prompt_body, scheduled_body
from tests.stores.factories import call

RESOURCES = ("/phone-numbers", "/prompts", "/agents", "/scheduled-calls")
CHANGES = {
    "/phone-numbers": {"isActive": False},
    "/prompts": {"name": "mine now"},
    "/agents": {"name": "mine now"},
    "/scheduled-calls": {"toPhoneNumbers": ["+15550002222"]},
}


@pytest.fixture
async def alices(api: Api) -> dict[str, dict[str, Any]]:
    """One of each of alice's documents, by collection path."""
    number = await make(api.alice, "/phone-numbers", number_body())
    prompt = await make(api.alice, "/prompts", prompt_body(number["id"]))
    agent = await make(api.alice, "/agents", agent_body())
    scheduled = await make(
        api.alice,
        "/scheduled-calls",
        scheduled_body(number["id"], callType="ai", promptId=prompt["id"]),
    )
    return {
        "/phone-numbers": number,
        "/prompts": prompt,
        "/agents": agent,
        "/scheduled-calls": scheduled,
    }


@pytest.mark.parametrize("path", RESOURCES)
async def test_bob_cannot_read_change_or_delete_alices_documents(
    api: Api, alices: dict[str, dict[str, Any]], path: str
) -> None:
    doc_id = alices[path]["id"]
    assert data(await api.bob.get(path)) == []
    assert error(await api.bob.get(f"{path}/{doc_id}"), 404, "not_found")
    assert error(await api.bob.patch(f"{path}/{doc_id}", json=CHANGES[path]), 404)
    assert error(await api.bob.delete(f"{path}/{doc_id}"), 404)
    # Alice still sees it exactly as it was.
    assert data(await api.alice.get(f"{path}/{doc_id}")) == alices[path]


async def test_bob_cannot_reference_alices_documents(
    api: Api, alices: dict[str, dict[str, Any]]
) -> None:
    number_id = alices["/phone-numbers"]["id"]
    prompt_id = alices["/prompts"]["id"]
    refused = await api.bob.post("/prompts", json=prompt_body(number_id))
    assert failing_fields(refused) == {"body.phoneNumberId"}
    assert failing_fields(await api.bob.post("/agents", json=agent_body())) == {"body.phoneNumber"}
    refused = await api.bob.post("/scheduled-calls", json=scheduled_body(number_id))
    assert failing_fields(refused) == {"body.fromPhoneNumberId"}
    # With a number of his own, alice's prompt is still not his to use or move onto.
    bobs = await make(api.bob, "/phone-numbers", number_body("+15551239999"))
    with_alices_prompt = scheduled_body(bobs["id"], callType="ai", promptId=prompt_id)
    refused = await api.bob.post("/scheduled-calls", json=with_alices_prompt)
    assert failing_fields(refused) == {"body.promptId"}
    bobs_prompt = await make(api.bob, "/prompts", prompt_body(bobs["id"]))
    moved = await api.bob.patch(f"/prompts/{bobs_prompt['id']}", json={"phoneNumberId": number_id})
    assert failing_fields(moved) == {"body.phoneNumberId"}
    assert error(await api.bob.get(f"/phone-numbers/{number_id}"), 404)


async def test_bob_cannot_see_alices_calls_or_conversations(api: Api) -> None:
    alices_call = await CallStore(api.db).create(call("CA-alice", userId="alice"))
    message = NewMessage(
        agent_id="+15551230001",
        user_number="+15550001111",
        userId="alice",
        message_sid="SM1",
        body="Hello",
        conversation_id="c1",
        timestamp=datetime(2030, 1, 1, tzinfo=UTC),
    )
    assert await MessageStore(api.db).create_message(message)
    conversation = data(await api.alice.get("/conversations"))[0]
    assert error(await api.bob.get(f"/calls/{alices_call.id}"), 404)
    assert error(await api.bob.get(f"/conversations/{conversation['id']}"), 404)
    assert data(await api.bob.get("/calls")) == []
    assert data(await api.bob.get("/conversations")) == []
    assert data(await api.bob.get("/messages")) == []
    assert data(await api.alice.get(f"/calls/{alices_call.id}"))["call_sid"] == "CA-alice"

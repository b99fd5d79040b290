"""/api/prompts, /api/agents and /api/scheduled-calls: operations, references and errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from stores.scheduled_call_runs import ScheduledCallRuns
from tests.api.conftest import (
    Api,
    agent_body,
    data,
    error,
    failing_fields,
    make,
    number_body,
)

WHEN = "2030-01-02T03:04:05Z"


async def numbers(api: Api) -> tuple[str, str]:
    first = await make(api.alice, "/phone-numbers", number_body("+15551230001"))
    second = await make(api.alice, "/phone-numbers", number_body("+15551230002"))
    return first["id"], second["id"]


def prompt_body(number_id: str, **fields: Any) -> dict[str, Any]:
    return {"name": "Reminder", "content": "Remind them.", "phoneNumberId": number_id, **fields}


def scheduled_body(number_id: str, **fields: Any) -> dict[str, Any]:
    values = {
        "callType": "normal",
        "message": "Your table is ready.",
        "toPhoneNumbers": ["(555) 000-1111"],
        "scheduledDateTime": WHEN,
    }
    return {**values, "fromPhoneNumberId": number_id, **fields}


async def test_prompt_lifecycle(api: Api) -> None:
    first, second = await numbers(api)
    prompt = await make(api.alice, "/prompts", prompt_body(first))
    assert (prompt["category"], prompt["description"]) == ("general", None)
    assert prompt["phoneNumberId"] == first
    await make(api.alice, "/prompts", prompt_body(second, category="sales"))
    only = data(await api.alice.get("/prompts", params={"phoneNumberId": first}))
    assert [p["id"] for p in only] == [prompt["id"]]
    sales = data(await api.alice.get("/prompts", params={"category": "sales"}))
    assert [p["phoneNumberId"] for p in sales] == [second]
    moved = data(await api.alice.patch(f"/prompts/{prompt['id']}", json={"phoneNumberId": second}))
    assert moved["phoneNumberId"] == second
    assert data(await api.alice.delete(f"/prompts/{prompt['id']}"))["deleted"] is True
    assert error(await api.alice.get(f"/prompts/{prompt['id']}"), 404)


async def test_prompt_needs_a_live_number_of_the_owner(api: Api) -> None:
    first, _ = await numbers(api)
    missing = prompt_body("0" * 24)
    assert failing_fields(await api.alice.post("/prompts", json=missing)) == {"body.phoneNumberId"}
    malformed = prompt_body("nope", name="")
    assert failing_fields(await api.alice.post("/prompts", json=malformed)) == {
        "body.phoneNumberId",
        "body.name",
    }
    prompt = await make(api.alice, "/prompts", prompt_body(first))
    await api.alice.delete(f"/phone-numbers/{first}")
    moved = await api.alice.patch(f"/prompts/{prompt['id']}", json={"phoneNumberId": first})
    assert failing_fields(moved) == {"body.phoneNumberId"}


async def test_agent_lifecycle(api: Api) -> None:
    await numbers(api)
    agent = await make(api.alice, "/agents", agent_body("555 123 0001"))
    assert (agent["phoneNumber"], agent["direction"], agent["active"]) == (
        "+15551230001",
        "incoming",
        True,
    )
    changed = data(
        await api.alice.patch(f"/agents/{agent['id']}", json={"active": False, "greeting": "Hi"})
    )
    assert (changed["active"], changed["greeting"], changed["name"]) == (False, "Hi", "Front desk")
    assert data(await api.alice.get("/agents", params={"active": "true"})) == []
    assert [a["id"] for a in data(await api.alice.get("/agents", params={"active": "false"}))] == [
        agent["id"]
    ]
    assert data(await api.alice.delete(f"/agents/{agent['id']}"))["deleted"] is True
    assert data(await api.alice.get("/agents")) == []


async def test_agent_needs_one_of_the_owners_numbers(api: Api) -> None:
    await numbers(api)
    response = await api.alice.post("/agents", json=agent_body("+15559999999"))
    assert failing_fields(response) == {"body.phoneNumber"}
    bad = agent_body(temperature=3, maxTokens=0, direction="sideways")
    assert failing_fields(await api.alice.post("/agents", json=bad)) == {
        "body.temperature",
        "body.maxTokens",
        "body.direction",
    }
    agent = await make(api.alice, "/agents", agent_body())
    moved = await api.alice.patch(f"/agents/{agent['id']}", json={"phoneNumber": "+15559999999"})
    assert failing_fields(moved) == {"body.phoneNumber"}


async def test_scheduled_ai_call_snapshots_its_prompt(api: Api) -> None:
    first, _ = await numbers(api)
    prompt = await make(api.alice, "/prompts", prompt_body(first))
    call = await make(
        api.alice, "/scheduled-calls", scheduled_body(first, callType="ai", promptId=prompt["id"])
    )
    assert (call["status"], call["promptContent"]) == ("pending", "Remind them.")
    assert call["toPhoneNumbers"] == ["+15550001111"]
    assert call["scheduledDateTime"] == "2030-01-02T03:04:05Z"
    await api.alice.patch(f"/prompts/{prompt['id']}", json={"content": "Changed."})
    moved = data(
        await api.alice.patch(
            f"/scheduled-calls/{call['id']}", json={"scheduledDateTime": "2030-02-02T00:00:00Z"}
        )
    )
    assert moved["promptContent"] == "Remind them."  # the snapshot stays
    other = await make(api.alice, "/prompts", prompt_body(first, content="Other."))
    switched = await api.alice.patch(
        f"/scheduled-calls/{call['id']}", json={"promptId": other["id"]}
    )
    assert data(switched)["promptContent"] == "Other."
    pending_ai = {"status": "pending", "callType": "ai"}
    listed = await api.alice.get("/scheduled-calls", params=pending_ai)
    assert [c["id"] for c in data(listed)] == [call["id"]]


async def test_scheduled_call_references_and_rules(api: Api) -> None:
    first, second = await numbers(api)
    prompt = await make(api.alice, "/prompts", prompt_body(first))
    no_prompt = await api.alice.post("/scheduled-calls", json=scheduled_body(first, callType="ai"))
    assert failing_fields(no_prompt) == {"body"}
    other_number = scheduled_body(second, callType="ai", promptId=prompt["id"])
    assert failing_fields(await api.alice.post("/scheduled-calls", json=other_number)) == {
        "body.promptId"
    }
    no_targets = scheduled_body(first, toPhoneNumbers=[])
    assert failing_fields(await api.alice.post("/scheduled-calls", json=no_targets)) == {
        "body.toPhoneNumbers"
    }
    call = await make(api.alice, "/scheduled-calls", scheduled_body(first))
    to_ai = await api.alice.patch(f"/scheduled-calls/{call['id']}", json={"callType": "ai"})
    assert failing_fields(to_ai) == {"body"}


async def test_a_claimed_call_cannot_be_changed(api: Api) -> None:
    first, _ = await numbers(api)
    call = await make(api.alice, "/scheduled-calls", scheduled_body(first))
    due = datetime(2031, 1, 1, tzinfo=UTC)
    claimed = await ScheduledCallRuns(api.db).claim_due(due, "worker", timedelta(minutes=1))
    assert claimed is not None
    assert claimed.id == call["id"]
    change = await api.alice.patch(f"/scheduled-calls/{call['id']}", json={"toPhoneNumbers": []})
    assert failing_fields(change) == {"body.toPhoneNumbers"}
    later = await api.alice.patch(
        f"/scheduled-calls/{call['id']}", json={"scheduledDateTime": "2032-01-01T00:00:00Z"}
    )
    assert error(later, 409, "conflict")
    assert data(await api.alice.delete(f"/scheduled-calls/{call['id']}"))["deleted"] is True

"""/api/phone-numbers: every operation, its errors, and the sealed auth token."""

from __future__ import annotations

import httpx
from twilio.request_validator import RequestValidator

from tests.api.conftest import NUMBER, Api, data, error, failing_fields, make, number_body
from voice_server.security.secret_key import secret_box


async def test_create_read_and_the_token_never_comes_back(api: Api) -> None:
    created = await make(api.alice, "/phone-numbers", number_body("(555) 123-0001"))
    assert created["phoneNumber"] == NUMBER
    assert created["userId"] == "alice"
    assert created["isActive"] is True
    assert "twilioAuthToken" not in created
    assert data(await api.alice.get(f"/phone-numbers/{created['id']}")) == created
    listed = data(await api.alice.get("/phone-numbers"))
    assert listed == [created]
    assert "tok-1" not in (await api.alice.get("/phone-numbers")).text


async def test_the_token_is_sealed_at_rest_and_opened_for_signatures(api: Api) -> None:
    created = await make(api.alice, "/phone-numbers", number_body())
    stored = await api.db["registered_phone_numbers"].find_one({"uuid": created["uuid"]})
    assert stored is not None
    assert stored["twilioAuthToken"] != "tok-1"
    assert secret_box(api.settings).open(stored["twilioAuthToken"]) == "tok-1"
    # The webhook opens it to check a signature made with the plain token.
    url = f"{api.base_url}/twilio/voice"
    form = {"CallSid": "CA" + "2" * 32, "AccountSid": "AC1", "From": "+15550100199", "To": NUMBER}
    signature = RequestValidator("tok-1").compute_signature(url, form)
    async with httpx.AsyncClient() as http:
        answer = await http.post(url, data=form, headers={"X-Twilio-Signature": signature})
    assert answer.status_code == 200  # no agent yet: the apology, but the signature held


async def test_a_live_number_is_registered_once(api: Api) -> None:
    alices = await make(api.alice, "/phone-numbers", number_body())
    again = error(await api.alice.post("/phone-numbers", json=number_body()), 409, "conflict")
    assert again["message"] == "you have already registered this phone number"
    # Not by another user either: a number has one owner. The stranger learns only that the
    # number is not available, whether asking to create it or to move a number of theirs to it.
    bobs = await make(api.bob, "/phone-numbers", number_body("+15551230002"))
    moved = f"/phone-numbers/{bobs['id']}"
    for refused in (
        await api.bob.post("/phone-numbers", json=number_body()),
        await api.bob.patch(moved, json={"phoneNumber": NUMBER}),
    ):
        assert error(refused, 409, "conflict") == {
            "code": "conflict",
            "message": "this phone number is not available",
            "details": [],
        }
        assert "alice" not in refused.text
        assert alices["id"] not in refused.text
    assert data(await api.bob.get(moved))["phoneNumber"] == "+15551230002"


async def test_update_changes_fields_and_refuses_a_taken_number(api: Api) -> None:
    first = await make(api.alice, "/phone-numbers", number_body())
    second = await make(api.alice, "/phone-numbers", number_body("+15551230002"))
    changed = data(await api.alice.patch(f"/phone-numbers/{first['id']}", json={"isActive": False}))
    assert changed["isActive"] is False
    assert changed["updated_at"] >= first["updated_at"]
    assert changed["created_at"] == first["created_at"]
    taken = await api.alice.patch(f"/phone-numbers/{second['id']}", json={"phoneNumber": NUMBER})
    assert error(taken, 409)


async def test_new_token_by_patch(api: Api) -> None:
    created = await make(api.alice, "/phone-numbers", number_body())
    await api.alice.patch(f"/phone-numbers/{created['id']}", json={"twilioAuthToken": "tok-2"})
    stored = await api.db["registered_phone_numbers"].find_one({"uuid": created["uuid"]})
    assert stored is not None
    assert secret_box(api.settings).open(stored["twilioAuthToken"]) == "tok-2"


async def test_validation_names_the_failing_fields(api: Api) -> None:
    bad = {"phoneNumber": "call me", "twilioAccountSid": "", "provider": "vonage"}
    assert failing_fields(await api.alice.post("/phone-numbers", json=bad)) == {
        "body.phoneNumber",
        "body.twilioAccountSid",
        "body.twilioAuthToken",
        "body.provider",
    }
    assert failing_fields(await api.alice.post("/phone-numbers", json=[1])) == {"body"}


async def test_a_body_that_is_not_json_is_400(api: Api) -> None:
    for content in (b"{", b"\xff", b'{"phoneNumber": NaN}'):
        response = await api.alice.post("/phone-numbers", content=content)
        assert error(response, 400, "invalid_json")
    lone_surrogate = b'{"phoneNumber": "\\ud800"}'
    assert error(await api.alice.post("/phone-numbers", content=lone_surrogate), 400)


async def test_delete_is_soft_and_then_404(api: Api) -> None:
    created = await make(api.alice, "/phone-numbers", number_body())
    deleted = data(await api.alice.delete(f"/phone-numbers/{created['id']}"))
    assert deleted == {"id": created["id"], "deleted": True}
    for method in ("GET", "PATCH", "DELETE"):
        response = await api.alice.request(
            method, f"/phone-numbers/{created['id']}", json={} if method == "PATCH" else None
        )
        assert error(response, 404, "not_found")
    assert data(await api.alice.get("/phone-numbers")) == []
    assert await api.db["registered_phone_numbers"].count_documents({}) == 1
    # A deleted number can be registered again.
    await make(api.alice, "/phone-numbers", number_body())


async def test_unknown_and_malformed_ids_are_404(api: Api) -> None:
    for number_id in ("nope", "0" * 24, "ffffffffffffffffffffffff"):
        assert error(await api.alice.get(f"/phone-numbers/{number_id}"), 404)


async def test_list_filters_sorts_and_pages(api: Api) -> None:
    numbers = [f"+1555123000{i}" for i in range(1, 6)]
    for number in numbers:
        await make(api.alice, "/phone-numbers", number_body(number, isActive=number[-1] != "3"))
    newest = data(await api.alice.get("/phone-numbers"))
    assert [n["phoneNumber"] for n in newest] == numbers[::-1]
    page = await api.alice.get("/phone-numbers", params={"sort": "phoneNumber", "limit": 2})
    assert [n["phoneNumber"] for n in data(page)] == numbers[:2]
    assert page.json()["pagination"] == {"limit": 2, "offset": 0, "hasMore": True}
    last = await api.alice.get(
        "/phone-numbers", params={"sort": "phoneNumber", "limit": 2, "offset": 4}
    )
    assert [n["phoneNumber"] for n in data(last)] == numbers[4:]
    assert last.json()["pagination"]["hasMore"] is False
    inactive = data(await api.alice.get("/phone-numbers", params={"isActive": "false"}))
    assert [n["phoneNumber"] for n in inactive] == [numbers[2]]
    one = data(await api.alice.get("/phone-numbers", params={"phoneNumber": "555-123-0004"}))
    assert [n["phoneNumber"] for n in one] == [numbers[3]]


async def test_bad_list_queries_are_422(api: Api) -> None:
    for params, field in [
        ({"limit": "0"}, "query.limit"),
        ({"limit": "101"}, "query.limit"),
        ({"offset": "-1"}, "query.offset"),
        ({"sort": "twilioAuthToken"}, "query.sort"),
        ({"isActive": "maybe"}, "query.isActive"),
        ({"userId": "bob"}, "query.userId"),
    ]:
        response = await api.alice.get("/phone-numbers", params=params)
        assert failing_fields(response) == {field}, params

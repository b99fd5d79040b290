"""API keys: who may call the API at all, and the envelope of a refusal."""

from __future__ import annotations

import pytest

from stores.api_keys import ApiKeyStore
from tests.api.conftest import Api, client, data, error


@pytest.mark.parametrize("authorization", [None, "", "Bearer", "Basic abc", "Token vsk_x", "vsk_x"])
async def test_no_usable_key_is_401(api: Api, authorization: str | None) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    async with client(api.base_url, None) as anonymous:
        response = await anonymous.get("/agents", headers=headers)
    assert error(response, 401, "unauthorized")
    assert response.headers["www-authenticate"] == "Bearer"


async def test_unknown_key_is_401(api: Api) -> None:
    async with client(api.base_url, "vsk_not-a-key") as stranger:
        assert error(await stranger.get("/calls"), 401, "invalid_api_key")


async def test_revoked_key_is_401(api: Api) -> None:
    assert data(await api.alice.get("/agents")) == []
    assert await ApiKeyStore(api.db).revoke(api.alice_key.key.id) is True
    assert error(await api.alice.get("/agents"), 401, "invalid_api_key")
    assert await ApiKeyStore(api.db).revoke(api.alice_key.key.id) is False


async def test_keys_are_stored_hashed(api: Api) -> None:
    stored = await api.db["api_keys"].find_one({"userId": "alice"})
    assert stored is not None
    assert api.alice_key.secret not in str(stored)
    assert api.alice_key.secret.startswith("vsk_")


async def test_a_key_needs_a_user(api: Api) -> None:
    with pytest.raises(ValueError, match="user id"):
        await ApiKeyStore(api.db).create("  ")


async def test_openapi_is_served_without_a_key(api: Api) -> None:
    async with client(api.base_url, None) as anonymous:
        response = await anonymous.get("/openapi.json")
    assert response.status_code == 200
    document = response.json()
    assert document["openapi"].startswith("3.")
    assert "/api/agents/{id}" in document["paths"]
    fields = document["components"]["schemas"]["PhoneNumberView"]["properties"]
    assert "twilioAuthToken" not in fields


async def test_paths_no_route_takes_answer_in_the_envelope(api: Api) -> None:
    assert error(await api.alice.get("/nothing-here"), 404, "not_found")
    assert error(await api.alice.get("/agents/%0Aline"), 404, "not_found")
    refused = await api.alice.put("/agents")
    assert error(refused, 405, "method_not_allowed")
    assert refused.headers["allow"]
    async with client(api.base_url, None) as anonymous:
        elsewhere = await anonymous.get(f"{api.base_url}/nothing-here")
    assert (elsewhere.status_code, elsewhere.text) == (404, "Not Found")

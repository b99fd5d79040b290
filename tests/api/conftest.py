"""The real app under uvicorn on a fresh database, and two users with an API key each."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from pymongo.asynchronous.database import AsyncDatabase

from stores.api_keys import ApiKeyStore, IssuedKey
from voice_server.serving import serve_in_background
from voice_server.settings import Settings

Db = AsyncDatabase[dict[str, Any]]


@dataclass(frozen=True)
class Api:
    base_url: str
    db: Db
    settings: Settings
    alice: httpx.AsyncClient
    bob: httpx.AsyncClient
    alice_key: IssuedKey


@pytest.fixture
async def api(database: Db, tmp_path: Path) -> AsyncIterator[Api]:
    settings = Settings(data_dir=tmp_path, log_format="console", scheduler=False)
    keys = ApiKeyStore(database)
    alice, bob = await keys.create("alice"), await keys.create("bob")
    async with (
        serve_in_background(settings, database) as base_url,
        client(base_url, alice.secret) as as_alice,
        client(base_url, bob.secret) as as_bob,
    ):
        with_url = settings.model_copy(update={"public_base_url": base_url})
        yield Api(base_url, database, with_url, as_alice, as_bob, alice)


def client(base_url: str, secret: str | None) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {secret}"} if secret else {}
    return httpx.AsyncClient(base_url=f"{base_url}/api", headers=headers)


def data(response: httpx.Response, status: int = 200) -> Any:
    """The envelope's `data`, once the status and `success` are what they should be."""
    assert response.status_code == status, response.text
    body = response.json()
    assert body["success"] is True
    return body["data"]


def error(response: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    """The envelope's `error`, once the status and `success: false` are what they should be."""
    assert response.status_code == status, response.text
    body = response.json()
    assert body["success"] is False
    assert set(body["error"]) == {"code", "message", "details"}
    if code is not None:
        assert body["error"]["code"] == code
    result: dict[str, Any] = body["error"]
    return result


def failing_fields(response: httpx.Response) -> set[str]:
    return {problem["field"] for problem in error(response, 422)["details"]}


NUMBER = "+15551230001"


def number_body(number: str = NUMBER, **fields: Any) -> dict[str, Any]:
    return {"phoneNumber": number, "twilioAccountSid": "AC1", "twilioAuthToken": "tok-1", **fields}


def agent_body(number: str = NUMBER, **fields: Any) -> dict[str, Any]:
    values = {
        "name": "Front desk",
        "sttModel": "whisper-1",
        "inferenceModel": "gpt-4o-mini",
        "ttsModel": "tts-1",
        "ttsVoice": "alloy",
        "systemPrompt": "Be kind.",
    }
    return {**values, "phoneNumber": number, **fields}


async def make(http: httpx.AsyncClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    created: dict[str, Any] = data(await http.post(path, json=body), 201)
    return created

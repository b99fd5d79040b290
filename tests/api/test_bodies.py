"""REST bodies that are too large, too deep, or that the database refuses: a clear 4xx in the
envelope, never a 500; on the real server and database."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from stores.api_keys import ApiKeyStore
from tests.api.conftest import Api, Db, agent_body, client, error, make, number_body
from voice_server.serving import serve_in_background
from voice_server.settings import Settings

MB = 1024 * 1024


def nested(depth: int) -> str:
    return '{"a": ' * depth + "1" + "}" * depth


async def post_raw(http: httpx.AsyncClient, path: str, text: str) -> httpx.Response:
    return await http.post(path, content=text, headers={"Content-Type": "application/json"})


async def test_a_body_over_a_megabyte_is_refused_unread(api: Api) -> None:
    await make(api.alice, "/phone-numbers", number_body())
    body = agent_body(systemPrompt="p" * 17 * MB)
    response = await api.alice.post("/agents", json=body)
    assert error(response, 413, "body_too_large")["message"].endswith(f"{MB} bytes")


async def test_deep_nesting_is_refused_before_parsing(api: Api) -> None:
    await make(api.alice, "/phone-numbers", number_body())
    brackets = await post_raw(api.alice, "/agents", "[" * 100_000)
    assert error(brackets, 422, "validation_error")["details"][0]["field"] == "body"
    body = json.dumps(agent_body(turnTaking="@")).replace('"@"', nested(2000))
    deep = await post_raw(api.alice, "/agents", body)
    assert error(deep, 422, "validation_error")["details"][0]["field"] == "body"
    shallow = json.dumps(agent_body(turnTaking="@")).replace('"@"', nested(20))
    assert (await post_raw(api.alice, "/agents", shallow)).status_code == 201


async def test_a_document_the_database_refuses_is_the_clients_error(
    database: Db, tmp_path: Path
) -> None:
    """With the body cap raised past MongoDB's 16 MB document limit, the database refuses."""
    settings = Settings(
        data_dir=tmp_path, log_format="console", api_body_max_bytes=64 * MB, scheduler=False
    )
    key = await ApiKeyStore(database).create("alice")
    async with (
        serve_in_background(settings, database) as base_url,
        client(base_url, key.secret) as http,
    ):
        await make(http, "/phone-numbers", number_body())
        response = await http.post("/agents", json=agent_body(systemPrompt="p" * 17 * MB))
    assert error(response, 413, "too_large")

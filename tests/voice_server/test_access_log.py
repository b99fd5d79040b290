"""What `voice-server serve` writes to its log for requests: one structured line each, of our
own, with no query value in it (event-stream tokens travel in the query). Runs the real command
as a child process on the test database and reads what it wrote."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from pymongo.asynchronous.database import AsyncDatabase

from stores.api_keys import ApiKeyStore
from tests.voice_server.child_server import serve
from voice_server.log import redact_query_values


async def test_no_log_line_holds_an_event_token_and_each_request_has_one_line(
    mongo_uri: str, database: AsyncDatabase[dict[str, Any]], tmp_path: Path
) -> None:
    key = await ApiKeyStore(database).create("alice")
    child = await serve(mongo_uri, database.name, tmp_path)
    process, base_url = child.process, child.base_url
    try:
        headers = {"Authorization": f"Bearer {key.secret}"}
        async with httpx.AsyncClient(base_url=base_url, headers=headers) as http:
            token = (await http.post("/api/event-tokens")).json()["data"]["token"]
            missing = await http.get(
                "/api/events/calls/000000000000000000000000", params={"token": token, "since": 0}
            )
            forged = await http.get("/api/events/calls", params={"token": token + "x"})
        assert (missing.status_code, forged.status_code) == (404, 401)
    finally:
        process.terminate()
        written = await child.output()
    assert token.split(".")[2] not in written
    assert key.secret not in written
    lines = [json.loads(line) for line in written.splitlines() if line.startswith("{")]
    requests = [
        (line["method"], line["path"], line["query"], line["status"])
        for line in lines
        if line["event"] == "request" and line["path"] != "/health"
    ]
    assert requests == [
        ("POST", "/api/event-tokens", [], 201),
        ("GET", "/api/events/calls/000000000000000000000000", ["token", "since"], 404),
        ("GET", "/api/events/calls", ["token"], 401),
    ]
    assert all(
        isinstance(line["duration_ms"], float) for line in lines if line["event"] == "request"
    )


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        (
            '"WebSocket /twilio/stream?token=abc.1.mac&x=1"',
            '"WebSocket /twilio/stream?token=…&x=…"',
        ),
        ("GET https://h/p?a=1#f", "GET https://h/p?a=…#f"),
        ("no query here: a = b", "no query here: a = b"),
    ],
)
def test_query_values_are_dropped_from_any_line(text: str, shown: str) -> None:
    assert redact_query_values(None, "info", {"event": text, "url": text}) == {
        "event": shown,
        "url": shown,
    }

"""A restart against a migrated database: nothing pending, data and keys still good; and
`serve` refusing what it must."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from stores import migrations
from stores.api_keys import ApiKeyStore
from stores.database import connect
from stores.embedded import EmbeddedDatabase
from stores.secrets import SecretBox
from tests.api.conftest import client, data, make, number_body
from voice_server.cli import main
from voice_server.security.secret_key import secret_box
from voice_server.seed import seed_demo
from voice_server.serving import serve_in_background
from voice_server.settings import Settings


async def test_restart_against_a_migrated_database(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, log_format="console", scheduler=False)
    with EmbeddedDatabase(tmp_path / "db") as server:
        db_client = connect(server.uri)
        db = db_client["voice_agent"]
        assert len(await migrations.upgrade(db)) == len(migrations.MIGRATIONS)
        issued = await ApiKeyStore(db).create("alice")
        async with (
            serve_in_background(settings, db) as base_url,
            client(base_url, issued.secret) as http,
        ):
            created = await make(http, "/phone-numbers", number_body())
        await db_client.close()

    with EmbeddedDatabase(tmp_path / "db") as server:
        db_client = connect(server.uri)
        db = db_client["voice_agent"]
        assert await migrations.pending(db) == []
        assert await migrations.upgrade(db) == []
        async with (
            serve_in_background(settings, db) as base_url,
            client(base_url, issued.secret) as http,
        ):
            assert data(await http.get(f"/phone-numbers/{created['id']}")) == created
        number = await db["registered_phone_numbers"].find_one({})
        assert number is not None
        assert secret_box(settings).open(number["twilioAuthToken"]) == "tok-1"
        await db_client.close()


def test_serve_refuses_mongodb_uri_without_secrets_key(
    mongo_uri: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MONGODB_URI", mongo_uri)
    monkeypatch.delenv("SECRETS_KEY", raising=False)
    assert main(["serve"]) == 2
    assert "SECRETS_KEY is required" in capsys.readouterr().err


async def test_seeding_again_under_a_new_key_gives_the_demo_number_a_new_token(
    database: AsyncDatabase[dict[str, Any]],
) -> None:
    first_key, second_key = SecretBox(SecretBox.generate_key()), SecretBox(SecretBox.generate_key())
    first = await seed_demo(database, first_key)
    again = await seed_demo(database, first_key)
    assert again == first
    rotated = await seed_demo(database, second_key)
    assert rotated.auth_token != first.auth_token
    assert (rotated.number, rotated.agent_id) == (first.number, first.agent_id)
    assert await seed_demo(database, second_key) == rotated

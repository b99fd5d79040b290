"""The real app under uvicorn on a loopback port, on a fresh database, with a demo line."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from voice_server.demo import serve_in_background
from voice_server.log import configure_logging
from voice_server.secret_key import secret_box
from voice_server.seed import DemoLine, seed_demo
from voice_server.settings import Settings


@dataclass(frozen=True)
class Server:
    base_url: str
    db: AsyncDatabase[dict[str, Any]]
    line: DemoLine
    settings: Settings


@pytest.fixture(scope="session", autouse=True)
def _logging() -> Iterator[None]:
    configure_logging("INFO", "console")
    yield
    logging.getLogger().handlers.clear()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path, log_format="console")


@pytest.fixture
async def server(
    database: AsyncDatabase[dict[str, Any]], settings: Settings
) -> AsyncIterator[Server]:
    line = await seed_demo(database, secret_box(settings))
    async with serve_in_background(settings, database) as base_url:
        yield Server(
            base_url, database, line, settings.model_copy(update={"public_base_url": base_url})
        )


def logged(caplog: pytest.LogCaptureFixture, event: str) -> list[dict[str, Any]]:
    """The structured log entries whose event text contains `event`."""
    return [
        record.msg
        for record in caplog.records
        if isinstance(record.msg, dict) and event in str(record.msg.get("event", ""))
    ]

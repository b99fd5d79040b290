"""GET /metrics: the gauges read when the page is served."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.voice_server.conftest import Server
from tests.voice_server.telephony.test_stream import connect


async def gauge(server: Server, name: str) -> float:
    async with httpx.AsyncClient() as http:
        response = await http.get(f"{server.base_url}/metrics")
    for family in text_string_to_metric_families(response.text):
        if family.name == name:
            return family.samples[0].value
    raise AssertionError(f"/metrics has no {name}")


async def test_the_task_gauge_follows_the_streams_the_server_holds(server: Server) -> None:
    before = await gauge(server, "voice_event_loop_tasks")
    async with AsyncExitStack() as streams:
        for _ in range(5):  # anonymous streams, each held open awaiting its `start`
            await streams.enter_async_context(connect(server.settings.stream_url))
        # The server shares the test's loop, so every task the test sees is counted too.
        seen = len(asyncio.all_tasks())
        during = await gauge(server, "voice_event_loop_tasks")

    assert during >= seen
    assert during >= before + 5

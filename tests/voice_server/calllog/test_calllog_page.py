"""The call-log page in a real browser: Debian's headless Chromium, driven by Playwright, watches
a live simulated call through the real server and database. A screenshot goes to
`test-artifacts/calllog.png`."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from playwright.async_api import Page, Response, async_playwright, expect

from stores.api_keys import ApiKeyStore
from stores.calls import CallStore, TranscriptEntry
from tests.stores.factories import call
from tests.voice_server.conftest import Server
from voice_server.seed import DEMO_USER
from voice_server.settings import Settings
from voice_server.simulation.simulator import CallerScript, Line, place_call

CHROMIUM = "/usr/bin/chromium"
# As root in a container, on a machine with no way out: no sandbox, no background requests.
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[3] / "test-artifacts"
WAIT_MS = 60_000

pytestmark = pytest.mark.skipif(shutil.which(CHROMIUM) is None, reason="needs Debian chromium")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Event streams that close after a second and tokens that expire after one: the page
    reconnects all the time, each time with a token of its own."""
    return Settings(
        data_dir=tmp_path,
        log_format="console",
        event_token_ttl_seconds=1,
        event_stream_max_seconds=1,
    )


@pytest.fixture
async def page(server: Server) -> AsyncIterator[Page]:
    """The call-log page, opened with a new API key for the demo line's user."""
    key = await ApiKeyStore(server.db).create(DEMO_USER)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            opened = await browser.new_page(viewport={"width": 1280, "height": 800})
            await opened.goto(f"{server.base_url}/calllog")
            await opened.fill("#api-key", key.secret)
            await opened.click("#key-form button")
            await expect(opened.locator("#log")).to_be_visible()
            assert await opened.evaluate("sessionStorage.length") == 1
            assert await opened.evaluate("localStorage.length") == 0
            yield opened
        finally:
            await browser.close()


async def test_a_live_call_grows_on_the_page_then_ends(server: Server, page: Page) -> None:
    line = Line(server.base_url, server.line.auth_token, "+15550100199", server.line.number)
    script = CallerScript(turns=["Hello, what are your opening hours?", "Thank you, goodbye."])
    placed = asyncio.create_task(place_call(line, script))
    try:
        row = page.locator("#calls tbody tr", has_text="+15550100199")
        await expect(row.locator(".status")).to_have_text("active", timeout=WAIT_MS)
        await row.click()
        caller = page.locator("#transcript .entry.user").first
        await expect(caller).to_be_visible(timeout=WAIT_MS)
        assert not placed.done(), "the caller's words should appear while the call runs"
        await expect(page.locator("#call-status")).to_have_text("completed", timeout=WAIT_MS)
        result = await placed
    finally:
        placed.cancel()
    stored = await CallStore(server.db).get(result.call_sid)
    assert stored is not None
    shown = await page.locator("#transcript .entry .text").all_inner_texts()
    assert shown == [entry.text for entry in stored.transcript]
    assert await page.locator("#transcript .entry.assistant .metrics").count() >= 2
    await expect(row.locator(".status")).to_have_text("completed")
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=ARTIFACTS / "calllog.png", full_page=True)


async def test_interrupted_turns_and_latency_figures_are_marked(server: Server, page: Page) -> None:
    calls = CallStore(server.db)
    created = await calls.create(call("CA1", userId=DEMO_USER, start_time=datetime.now(UTC)))
    await page.goto(f"{server.base_url}/calllog#call={created.id}")
    await expect(page.locator("#call-status")).to_have_text("active")
    cut = TranscriptEntry(
        role="assistant",
        text="We open at nine and",
        timestamp=datetime.now(UTC),
        interrupted=True,
        metrics={"llm_first_token_ms": 412.4, "first_audio_ms": 655.0},
    )
    await calls.append_transcript("CA1", cut)
    entry = page.locator("#transcript .entry.assistant")
    await expect(entry.locator(".interrupted")).to_have_text("interrupted")
    await expect(entry.locator(".metrics")).to_have_text("llm_first_token 412 msfirst_audio 655 ms")
    await calls.finalize("CA1", ended_at=datetime.now(UTC), reason="stop")
    await expect(page.locator("#call-status")).to_have_text("completed")


async def test_the_page_reconnects_with_a_new_token_each_time(server: Server, page: Page) -> None:
    calls = CallStore(server.db)
    created = await calls.create(call("CA1", userId=DEMO_USER, start_time=datetime.now(UTC)))
    asked: list[str] = []  # stream URLs in the order the page asked for them
    opened: list[Response] = []  # their answers, in the order they came (under load, not the same)
    page.on("request", lambda r: asked.append(r.url) if "/api/events/calls/" in r.url else None)
    page.on("response", lambda r: opened.append(r) if "/api/events/calls/" in r.url else None)
    await page.goto(f"{server.base_url}/calllog#call={created.id}")
    await expect(page.locator("#call-status")).to_have_text("active")
    async with asyncio.timeout(WAIT_MS / 1000):
        while len(opened) < 4:  # three reconnects, each after the last token expired
            await page.wait_for_event("response")
    await calls.append_transcript(
        "CA1", TranscriptEntry(role="user", text="still here?", timestamp=datetime.now(UTC))
    )
    await expect(page.locator("#transcript .entry .text")).to_have_text(["still here?"])
    # Every reconnect was accepted, the later ones after the first token had expired.
    assert {response.status for response in opened} == {200}
    expiries = [int(url.partition("token=")[2].split(".")[1]) for url in asked]
    assert expiries == sorted(expiries)
    assert expiries[-1] > expiries[0]

"""The call-log page in a real browser: Debian's headless Chromium, driven by Playwright, watches
a live simulated call through the real server and database. A screenshot of the live call goes to
`test-artifacts/calllog.png`; the layout test keeps its laptop and phone screenshots in its
tmp_path."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from playwright.async_api import (
    Page,
    Response,
    Route,
    ViewportSize,
    async_playwright,
    expect,
)

from stores.agents import AgentStore
from stores.api_keys import ApiKeyStore
from stores.calls import CallStore, TranscriptEntry
from tests.stores.factories import agent, call
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
LAPTOP: ViewportSize = {"width": 1280, "height": 800}
PHONE: ViewportSize = {"width": 390, "height": 844}

pytestmark = pytest.mark.skipif(shutil.which(CHROMIUM) is None, reason="needs Debian chromium")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Event streams that close after a second and tokens that expire after one: the page
    reconnects all the time, each time with a token of its own."""
    return Settings(
        data_dir=tmp_path,
        scheduler=False,
        log_format="console",
        event_token_ttl_seconds=1,
        event_stream_max_seconds=1,
    )


@pytest.fixture
async def keyless(server: Server) -> AsyncIterator[Page]:
    """The call-log page as a newcomer first sees it: no API key yet, on a laptop's screen."""
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            opened = await browser.new_page(viewport=LAPTOP)
            await opened.goto(f"{server.base_url}/calllog")
            yield opened
        finally:
            await browser.close()


@pytest.fixture
async def page(server: Server, keyless: Page) -> Page:
    """The call-log page, opened with a new API key for the demo line's user."""
    key = await ApiKeyStore(server.db).create(DEMO_USER)
    await keyless.fill("#api-key", key.secret)
    await keyless.click("#key-form button")
    await expect(keyless.locator("#log")).to_be_visible()
    assert await keyless.evaluate("sessionStorage.length") == 1
    assert await keyless.evaluate("localStorage.length") == 0
    return keyless


async def test_before_a_key_only_the_key_form_shows(keyless: Page) -> None:
    await expect(keyless.locator("#key-form")).to_be_visible()
    await expect(keyless.locator("#log")).to_be_hidden()
    await expect(keyless.locator("#calls")).to_be_hidden()
    await expect(keyless.locator("#forget-key")).to_be_hidden()


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


async def test_calls_show_their_agents_names(server: Server, page: Page) -> None:
    agents_read: list[str] = []
    page.on("request", lambda r: agents_read.append(r.url) if "/api/agents" in r.url else None)
    calls = CallStore(server.db)
    demo = call("CA1", userId=DEMO_USER, from_number="+15550100201", agent_id=server.line.agent_id)
    await calls.create(demo)
    rows = page.locator("#calls tbody tr")
    await expect(rows.filter(has_text="+15550100201").locator(".agent")).to_have_text("Demo agent")
    # An agent added after the page read the agents, and one that is gone (deleted).
    night = await AgentStore(server.db).create(
        agent("+15550100300", userId=DEMO_USER, name="Night desk")
    )
    await calls.create(call("CA2", userId=DEMO_USER, from_number="+15550100202", agent_id=night.id))
    await expect(rows.filter(has_text="+15550100202").locator(".agent")).to_have_text("Night desk")
    gone = "66a1f0c2e4b0a1b2c3d4e5f6"
    await calls.create(call("CA3", userId=DEMO_USER, from_number="+15550100203", agent_id=gone))
    await expect(rows.filter(has_text="+15550100203").locator(".agent")).to_have_text(
        "unknown agent"
    )
    # The list is read again when a call ends; the agents are not.
    await calls.finalize("CA1", ended_at=datetime.now(UTC), reason="stop")
    await expect(rows.filter(has_text="+15550100201").locator(".status")).to_have_text("completed")
    await rows.filter(has_text="+15550100201").click()
    await expect(page.locator("#call-agent")).to_have_text("Demo agent")
    assert len(agents_read) == 3, agents_read  # the first call, the new agent, the gone one


# What the page looks like to the person using it, measured in the page: every element within
# the window's width; each column header and each cell of the list seen at both its edges
# (the topmost element there is the cell or inside it: not clipped by a scrolling box, not covered).
MEASURE_LAYOUT = """() => {
  const width = document.documentElement.clientWidth;
  const name = (e) => `${e.tagName}#${e.id}.${e.className} ${e.textContent.slice(0, 24)}`;
  const overflowing = [...document.body.querySelectorAll("*")].filter((e) => {
    const box = e.getBoundingClientRect();
    return box.width > 0 && (box.left < 0 || box.right > width);
  });
  const seen = (cell) => {
    const box = cell.getBoundingClientRect();
    const middle = box.top + box.height / 2;
    const edges = [box.left + 1, box.right - 1];
    return edges.every((x) => cell.contains(document.elementFromPoint(x, middle)));
  };
  const cells = [...document.querySelectorAll("#calls th, #calls td")];
  return {
    headers: [...document.querySelectorAll("#calls th")].map((th) => th.textContent),
    pageWidth: document.documentElement.scrollWidth,
    width,
    overflowing: overflowing.map(name),
    unseen: cells.filter((cell) => !seen(cell)).map(name),
  };
}"""


async def test_the_page_fits_a_laptop_and_a_phone(
    server: Server, page: Page, tmp_path: Path
) -> None:
    calls = CallStore(server.db)
    agent_id = server.line.agent_id
    # Today's calls and one of two days ago (a start with a date), on long (UK) numbers.
    two_days_ago = datetime.now(UTC) - timedelta(days=2)
    for n, start in enumerate((two_days_ago, datetime.now(UTC), datetime.now(UTC))):
        fields = {"from_number": f"+4479460{n:05d}", "agent_id": agent_id, "start_time": start}
        await calls.create(call(f"CA{n}", userId=DEMO_USER, **fields))
    said = "Could you read me https://example.com/a-very-long-address-with-no-place-to-break-it?"
    answer = "Of course; it is on the card we sent."
    for entry in (
        TranscriptEntry(role="user", text=said, timestamp=datetime.now(UTC)),
        TranscriptEntry(role="assistant", text=answer, timestamp=datetime.now(UTC),
                        metrics={"llm_first_token_ms": 412.0, "first_audio_ms": 655.0}),
    ):  # fmt: skip
        await calls.append_transcript("CA0", entry)
    await calls.finalize("CA0", ended_at=two_days_ago + timedelta(seconds=95), reason="stop")
    await page.locator("#calls tbody tr", has_text="+447946000000").click()
    await expect(page.locator("#transcript .entry")).to_have_count(2)
    for name, size in (("laptop", LAPTOP), ("phone", PHONE)):
        await page.set_viewport_size(size)
        layout = await page.evaluate(MEASURE_LAYOUT)
        await page.screenshot(path=tmp_path / f"calllog-{name}.png", full_page=True)
        assert layout["headers"] == ["Status", "Caller", "Agent", "Started", "Duration"]
        assert layout["overflowing"] == [], name
        assert layout["unseen"] == [], name
        assert layout["pageWidth"] == layout["width"] == size["width"], name


async def test_a_changed_fragment_opens_that_call(server: Server, page: Page) -> None:
    calls = CallStore(server.db)
    opened = {}
    for sid, number in (("CA1", "+15550100201"), ("CA2", "+15550100202")):
        created = await calls.create(call(sid, userId=DEMO_USER, from_number=number))
        said = TranscriptEntry(role="user", text=f"this is {sid}", timestamp=datetime.now(UTC))
        await calls.append_transcript(sid, said)
        opened[sid] = created.id
    texts = page.locator("#transcript .entry .text")
    await page.evaluate("id => { location.hash = `call=${id}`; }", opened["CA1"])
    await expect(texts).to_have_text(["this is CA1"])
    await page.evaluate("id => { location.hash = `call=${id}`; }", opened["CA2"])
    await expect(texts).to_have_text(["this is CA2"])
    await expect(page.locator("#call-caller")).to_have_text("+15550100202")
    await page.go_back()
    await expect(texts).to_have_text(["this is CA1"])


async def test_the_call_asked_for_last_is_shown_when_answers_cross(
    server: Server, page: Page
) -> None:
    calls = CallStore(server.db)
    first = await calls.create(call("CA1", userId=DEMO_USER, from_number="+15550100201"))
    second = await calls.create(call("CA2", userId=DEMO_USER, from_number="+15550100202"))
    release = asyncio.Event()

    async def answer_late(route: Route) -> None:
        await release.wait()
        await route.continue_()

    await page.route(f"**/api/calls/{first.id}", answer_late)
    await page.evaluate("id => { location.hash = `call=${id}`; }", first.id)
    await page.evaluate("id => { location.hash = `call=${id}`; }", second.id)
    await expect(page.locator("#call-caller")).to_have_text("+15550100202")
    async with page.expect_request_finished(lambda request: first.id in request.url):
        release.set()
    # The first call's late answer is dropped: the second call stays, and its stream is followed.
    said = TranscriptEntry(role="user", text="still the second", timestamp=datetime.now(UTC))
    await calls.append_transcript("CA2", said)
    await expect(page.locator("#transcript .entry .text")).to_have_text(["still the second"])
    await expect(page.locator("#call-caller")).to_have_text("+15550100202")
    assert page.url.endswith(f"#call={second.id}")

"""The call-log page in a real browser: Debian's headless Chromium, driven by Playwright, watches
a live simulated call through the real server and database, and scheduled calls as the worker's
own store writes leave them. A screenshot of the live call goes to `test-artifacts/calllog.png`;
the layout tests keep their laptop and phone screenshots in their tmp_path."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

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
from stores.scheduled_call_runs import Claim, Placed, ScheduledCallRuns
from stores.scheduled_calls import ScheduledCallCreate, ScheduledCallStore
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
            failures: list[str] = []  # the page's uncaught script errors
            opened.on("pageerror", lambda error: failures.append(str(error)))
            await opened.goto(f"{server.base_url}/calllog")
            yield opened
            assert failures == []
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
  const cells = [...document.querySelectorAll("#calls th, #calls td")]
    .filter((cell) => cell.getClientRects().length); // the list's tab is shown
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
    # And an outbound call, marked and linked to its scheduled call.
    outbound = {"to_number": "+447946000003", "agent_id": agent_id, "direction": "outbound",
                "scheduled_call_id": "0" * 24, "start_time": datetime.now(UTC)}  # fmt: skip
    await calls.create(call("CA3", userId=DEMO_USER, **outbound))
    await expect(page.locator("#calls .direction")).to_have_text("outbound")
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
        assert layout["headers"] == ["Status", "Number", "Agent", "Started", "Duration"]
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
    await expect(page.locator("#call-number")).to_have_text("+15550100202")
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
    await expect(page.locator("#call-number")).to_have_text("+15550100202")
    async with page.expect_request_finished(lambda request: first.id in request.url):
        release.set()
    # The first call's late answer is dropped: the second call stays, and its stream is followed.
    said = TranscriptEntry(role="user", text="still the second", timestamp=datetime.now(UTC))
    await calls.append_transcript("CA2", said)
    await expect(page.locator("#transcript .entry .text")).to_have_text(["still the second"])
    await expect(page.locator("#call-number")).to_have_text("+15550100202")
    assert page.url.endswith(f"#call={second.id}")


# Scheduled calls, laid out and settled through the worker's own writes.

NUMBER_ID, PROMPT_ID = "a" * 24, "b" * 24
ANSWERED, BUSY, REFUSED, LATE = "+447946000101", "+447946000102", "+447946000103", "+447946000104"
POLL_MS = 2000  # the page's SCHEDULED_POLL_MS
REFUSAL = "Twilio refused the call (21215): the account may not call this country"
LATE_ERROR = (
    "due 2026-12-05T09:00:00+00:00, 3600 s ago: "
    "later than SCHEDULED_CALL_MAX_LATENESS_SECONDS (900)"
)
NORMAL = {"callType": "normal", "message": "Your table is ready."}


async def scheduled(server: Server, due: datetime, *numbers: str, **fields: Any) -> str:
    """A scheduled call of the demo user's to `numbers`, due at `due`; its id."""
    data = {"userId": DEMO_USER, "fromPhoneNumberId": NUMBER_ID, "scheduledDateTime": due}
    created = await ScheduledCallStore(server.db).create(
        ScheduledCallCreate.model_validate(data | {"toPhoneNumbers": numbers} | fields)
    )
    return created.id


async def claimed(server: Server, due: datetime, *numbers: str, **fields: Any) -> Claim:
    """A scheduled call, as `scheduled` makes it, taken by a worker."""
    call_id = await scheduled(server, due, *numbers, **fields)
    taken = await ScheduledCallRuns(server.db).claim_due(
        datetime.now(UTC), "worker-a", timedelta(minutes=1)
    )
    assert taken is not None
    assert taken.id == call_id
    return Claim(call_id, "worker-a")


async def dialled(server: Server, claim: Claim, *call_sids: str) -> ScheduledCallRuns:
    """The claimed call's first destinations dialled, as `call_sids`."""
    runs = ScheduledCallRuns(server.db)
    for index, sid in enumerate(call_sids):
        assert await runs.dialling(claim, index)
        assert await runs.dialled(claim, index, sid, attempts=1)
    return runs


async def outbound_call(server: Server, claim: Claim, sid: str, to: str, said: list[str]) -> str:
    """The record of the destination `to` answered as `sid`: the agent spoke, the callee
    answered (`said`), and the call ended."""
    calls = CallStore(server.db)
    fields = {"to_number": to, "from_number": server.line.number, "direction": "outbound"}
    created = await calls.create(
        call(sid, userId=DEMO_USER, agent_id=server.line.agent_id, start_time=datetime.now(UTC),
             scheduled_call_id=claim.call_id, **fields)
    )  # fmt: skip
    greeting, reply = said
    for entry in (
        TranscriptEntry(role="assistant", text=greeting, timestamp=datetime.now(UTC)),
        TranscriptEntry(role="user", text=reply, timestamp=datetime.now(UTC)),
    ):
        await calls.append_transcript(sid, entry)
    await calls.finalize(sid, ended_at=datetime.now(UTC), reason="stop")
    return created.id


async def test_scheduled_calls_show_how_each_number_went(
    server: Server, page: Page, tmp_path: Path
) -> None:
    now = datetime.now(UTC)
    done = await claimed(
        server, now - timedelta(hours=2), ANSWERED, BUSY, REFUSED, callType="ai", promptId=PROMPT_ID
    )
    runs = await dialled(server, done, "CA" + "1" * 32, "CA" + "2" * 32)
    assert await runs.dialling(done, 2)
    assert await runs.not_dialled(done, 2, REFUSAL, attempts=1)
    await runs.release(done)
    said = ["Hello, this is the clinic calling about tomorrow.", "Yes, I will be there."]
    answered = await outbound_call(server, done, "CA" + "1" * 32, ANSWERED, said)
    first, second = (
        Placed(done.call_id, 0, "CA" + "1" * 32),
        Placed(done.call_id, 1, "CA" + "2" * 32),
    )
    assert await runs.answered(first, answered)
    assert await runs.outcome(first, "answered")
    assert await runs.outcome(second, "busy")
    late = await claimed(server, now - timedelta(hours=1), LATE, **NORMAL)
    assert await runs.fail(late, LATE_ERROR)

    await page.click("#scheduled-tab")
    entries = page.locator("#scheduled > li")
    await expect(entries).to_have_count(2)
    await expect(page.locator("#calls")).to_be_hidden()
    failed, completed = entries.nth(0), entries.nth(1)  # the latest first
    await expect(failed.locator(".head .status")).to_have_text("failed")
    await expect(failed.locator(".type")).to_have_text("normal")
    await expect(failed.locator("p.error")).to_have_text(LATE_ERROR)
    await expect(failed.locator(".destination")).to_have_text(f"{LATE}failed")  # its error above
    await expect(completed.locator(".head .status")).to_have_text("completed")
    await expect(completed.locator(".type")).to_have_text("ai")
    await expect(completed.locator(".destination .to")).to_have_text([ANSWERED, BUSY, REFUSED])
    outcomes = ["answered", "busy", "failed"]
    await expect(completed.locator(".destination .status")).to_have_text(outcomes)
    await expect(completed.locator(".destination .error")).to_have_text([REFUSAL])
    await expect(completed.locator(".destination a")).to_have_count(1)
    for name, size in (("phone", PHONE), ("laptop", LAPTOP)):
        await page.set_viewport_size(size)
        layout = await page.evaluate(MEASURE_LAYOUT)
        await page.screenshot(path=tmp_path / f"scheduled-{name}.png", full_page=True)
        assert layout["overflowing"] == [], name
        assert layout["pageWidth"] == layout["width"] == size["width"], name

    # The answered number's link opens its transcript, an outbound call...
    await completed.locator(".destination a", has_text="transcript").click()
    await expect(page.locator("#transcript .entry .text")).to_have_text(said)
    await expect(page.locator("#transcript .entry .who")).to_have_text(["Agent", "Callee"])
    await expect(page.locator("#call-direction")).to_have_text("outbound")
    await expect(page.locator("#call-parties")).to_have_text(f"Demo agent → {ANSWERED}")
    # ...which links back to its scheduled call, from the call and from its row in the list.
    await page.click("#calls-tab")
    await page.click("#call-scheduled a")
    await expect(page.locator("#scheduled > li.selected")).to_have_attribute(
        "data-id", done.call_id
    )
    await page.click("#calls-tab")
    row = page.locator("#calls tbody tr", has_text=ANSWERED)
    await row.locator(".direction", has_text="outbound").click()  # the same link again
    await expect(page.locator("#scheduled-section")).to_be_visible()
    await expect(page.locator("#scheduled > li.selected")).to_have_attribute(
        "data-id", done.call_id
    )
    assert page.url.endswith(f"#scheduled={done.call_id}")
    await expect(page.locator("#call-number")).to_have_text(ANSWERED)  # still open


async def test_the_list_is_read_again_while_a_call_runs_or_is_due(
    server: Server, page: Page
) -> None:
    reads: list[str] = []
    page.on("request", lambda r: reads.append(r.url) if "/scheduled-calls" in r.url else None)
    running = await claimed(server, datetime.now(UTC), ANSWERED, BUSY, **NORMAL)
    runs = await dialled(server, running, "CA" + "3" * 32)
    later = await scheduled(server, datetime.now(UTC) + timedelta(minutes=10), LATE, **NORMAL)
    await page.clock.install()
    await page.click("#scheduled-tab")
    numbers = page.locator(f"#scheduled > li[data-id='{running.call_id}'] .destination .status")
    await expect(numbers).to_have_text(["dialled", "waiting"])
    first = Placed(running.call_id, 0, "CA" + "3" * 32)
    assert await runs.outcome(first, "voicemail", final=False)
    await page.clock.run_for(POLL_MS)
    await expect(numbers).to_have_text(["voicemail", "waiting"])
    assert await runs.dialling(running, 1)
    assert await runs.dialled(running, 1, "CA" + "4" * 32, attempts=1)
    await runs.release(running)
    assert await runs.outcome(first, "answered")
    assert await runs.outcome(Placed(running.call_id, 1, "CA" + "4" * 32), "busy")
    await page.clock.run_for(POLL_MS)
    await expect(numbers).to_have_text(["voicemail", "busy"])
    # Nothing runs now: the list is read again when the pending call is due, not before.
    assert await page.evaluate("scheduled.timer") is not None
    read = len(reads)
    await ScheduledCallStore(server.db).delete(DEMO_USER, later)
    await page.clock.run_for(9 * 60_000)
    await expect(page.locator("#scheduled > li")).to_have_count(2)
    assert len(reads) == read
    await page.clock.run_for(60_000)
    await expect(page.locator("#scheduled > li")).to_have_count(1)  # the deleted call is gone
    assert await page.evaluate("scheduled.timer") is None  # and nothing is left to wait for
    assert len(reads) == read + 1


async def test_a_link_to_a_call_past_the_first_page_shows_it(server: Server, page: Page) -> None:
    tomorrow = datetime.now(UTC) + timedelta(days=1)
    oldest = await scheduled(server, tomorrow, LATE, **NORMAL)
    for n in range(50):  # a page of later ones
        await scheduled(server, tomorrow + timedelta(hours=1, minutes=n), ANSWERED, **NORMAL)
    await page.evaluate("id => { location.hash = `scheduled=${id}`; }", oldest)
    shown = page.locator("#scheduled > li.selected")
    await expect(shown).to_have_attribute("data-id", oldest)
    await expect(shown.locator(".destination")).to_have_text(f"{LATE}waiting")
    await expect(page.locator("#scheduled > li")).to_have_count(51)
    await expect(shown).to_be_in_viewport()

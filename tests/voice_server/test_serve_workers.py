"""`voice-server serve --workers 2`, as a child process on its embedded database: two worker
processes answer on one port, a simulated call completes, /metrics counts every worker's calls
whichever answers, and SIGTERM drains both (a live call hears the goodbye)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pymongo.asynchronous.database import AsyncDatabase

from stores.secrets import SecretBox
from stores.shared_embedded import Address, address_path
from tests.voice_server import child_server
from tests.voice_server.commands import Served, command_env, run, serving, wait_until
from voice_server.command_database import on_database
from voice_server.seed import DEMO_CALLER, DemoLine, seed_demo
from voice_server.simulation.caller_script import AwaitHangUp, CallerScript
from voice_server.simulation.phone_line import CallResult
from voice_server.simulation.simulator import Line, place_call

GOODBYE = "We are closing for a moment. Goodbye!"
_PROBES = 200  # fresh connections to find both workers; in practice a handful suffices


def records(log: str) -> list[dict[str, Any]]:
    """The JSON lines of a log the server may be writing: the last one only once it is whole."""
    lines = log.splitlines(keepends=True)
    return [json.loads(line) for line in lines if line.startswith("{") and line.endswith("\n")]


def parent_of(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rpartition(")")[2].split()[1])


async def seeded_line(folder: Path, secrets_key: str) -> DemoLine:
    """The demo number on the database `serve` owns in `folder`."""
    address = Address(**json.loads(address_path(folder / "var" / "db").read_text()))
    return await on_database(address.uri, lambda db: seed_demo(db, SecretBox(secrets_key)))


async def answering_pids(base_url: str, log: Callable[[], str], path: str) -> set[int]:
    """The processes that answered GET `path`, each asked on a new connection, until two have
    (uvicorn's workers accept from one socket: whichever is first takes the connection). Call
    it once both have started."""
    for _ in range(_PROBES):
        async with httpx.AsyncClient(base_url=base_url) as http:
            assert (await http.get(path)).status_code == 200
        pids = {r["pid"] for r in records(log()) if r.get("path") == path}
        if len(pids) == 2:
            return pids
    return pids


async def scrape(served: Served) -> tuple[int, str]:
    """GET /metrics: the pid of the worker that answered, and what it showed."""

    def scraped() -> list[dict[str, Any]]:
        return [r for r in records(served.log()) if r.get("path") == "/metrics"]

    before = len(scraped())
    async with httpx.AsyncClient(base_url=served.base_url) as http:
        text = (await http.get("/metrics")).text
    # The worker logs the request once its answer is sent: wait for the line.
    await wait_until(lambda: len(scraped()) > before, 10)
    return int(scraped()[-1]["pid"]), text


def events(served: Served, event: str) -> list[dict[str, Any]]:
    return [r for r in records(served.log()) if r["event"] == event]


async def silent_call(served: Served, line: DemoLine) -> asyncio.Task[CallResult]:
    """A caller who says nothing and waits to be hung up on, once its stream has started."""
    caller = Line(served.base_url, line.auth_token, DEMO_CALLER, line.number)
    streams = len(events(served, "media stream started"))
    call = asyncio.create_task(place_call(caller, CallerScript(steps=(AwaitHangUp(60),))))
    await wait_until(lambda: len(events(served, "media stream started")) > streams, 30)
    return call


def samples(text: str, name: str) -> list[Any]:
    found = [f for f in text_string_to_metric_families(text) if f.name == name]
    return found[0].samples if found else []


async def test_two_workers_serve_one_port_count_together_and_both_drain(tmp_path: Path) -> None:
    env = command_env(
        tmp_path, DRAIN_SECONDS="1", SHUTDOWN_GOODBYE_TEXT=GOODBYE, HEARTBEAT_SECONDS="0.2"
    )
    async with serving(env, "--workers", "2") as served:
        line = await seeded_line(tmp_path, env["SECRETS_KEY"])
        simulated = await run(env, "simulate", "--say", "Hello")
        assert simulated.code == 0, simulated.stderr
        assert "agent answered after" in simulated.stdout

        await wait_until(lambda: len(events(served, "Application startup complete.")) == 2, 30)
        workers = await answering_pids(served.base_url, served.log, "/health")
        parents = {parent_of(pid) for pid in workers}
        scrapes: dict[int, str] = {}
        while len(scrapes) < 2:  # /metrics as each worker shows it
            pid, text = await scrape(served)
            scrapes[pid] = text

        live = await silent_call(served, line)
        served.process.send_signal(signal.SIGTERM)
        result = await live
        assert await served.stopped() == 0
    lines = records(served.log())

    assert len(workers) == 2, "two processes answered on the one port"
    assert parents == {served.process.pid}, "the supervisor's workers"
    for text in scrapes.values():  # whichever worker answers, the same figures
        answered = [s for s in samples(text, "voice_calls") if s.name == "voice_calls_total"]
        assert sum(s.value for s in answered) == 1
        tasks = samples(text, "voice_event_loop_tasks")
        assert {int(s.labels["pid"]) for s in tasks} == workers, "one series per live worker"
    assert result.server_hung_up, "the live call heard the goodbye, then the server hung up"
    ended = [r for r in lines if r["event"] == "call ended" and r.get("reason")]
    assert [r["reason"] for r in ended][-1:] == ["server-shutdown"]
    for pid in workers:
        said = [r["event"] for r in lines if r.get("pid") == pid]
        assert "stop requested: draining" in said
        assert "drained: stopping" in said
    assert "Traceback" not in served.log()


async def test_a_killed_worker_is_replaced_and_its_call_finalised(tmp_path: Path) -> None:
    env = command_env(tmp_path, HEARTBEAT_SECONDS="0.2", CALL_LOST_AFTER_SECONDS="1.5")
    async with serving(env, "--workers", "2") as served:
        live = await silent_call(served, await seeded_line(tmp_path, env["SECRETS_KEY"]))
        (started,) = events(served, "media stream started")
        os.kill(started["pid"], signal.SIGKILL)
        await live  # the caller's line went dead
        await wait_until(lambda: bool(events(served, "a lost call was finalised")), 30)
        await wait_until(lambda: len(events(served, "Application startup complete.")) == 3, 30)
        async with httpx.AsyncClient(base_url=served.base_url) as http:
            health = await http.get("/health")
            metrics = (await http.get("/metrics")).text
        served.process.terminate()
        assert await served.stopped() == 0

    (finalised,) = events(served, "a lost call was finalised")
    assert (finalised["call_sid"], finalised["reason"]) == (started["call_sid"], "server-lost")
    assert finalised["pid"] != started["pid"], "another worker's sweeper"
    (replacement,) = events(served, "Application startup complete.")[2:]
    assert replacement["pid"] != started["pid"]
    assert health.status_code == 200
    shown = {int(s.labels["pid"]) for s in samples(metrics, "voice_event_loop_tasks")}
    assert started["pid"] not in shown, "the killed worker's gauges are gone from /metrics"
    assert "Traceback" not in served.log()


async def test_a_second_signal_to_the_supervisor_ends_the_calls_at_once(tmp_path: Path) -> None:
    env = command_env(tmp_path, DRAIN_SECONDS="600", SHUTDOWN_GOODBYE_TEXT=GOODBYE)
    async with serving(env, "--workers", "2") as served:
        live = await silent_call(served, await seeded_line(tmp_path, env["SECRETS_KEY"]))
        served.process.send_signal(signal.SIGTERM)
        await wait_until(lambda: len(events(served, "stop requested: draining")) == 2, 30)
        served.process.send_signal(signal.SIGINT)
        result = await live
        assert await served.stopped() == 0
    (ended,) = [r for r in events(served, "call ended") if r.get("reason")]

    assert result.server_hung_up
    assert ended["reason"] == "server-shutdown"
    hurried = events(served, "stop requested again: ending the live calls now")
    assert {r["signal"] for r in hurried} == {"SIGINT"}
    assert {r["pid"] for r in hurried} >= {ended["pid"]}
    assert GOODBYE not in served.log(), "no goodbye once hurried"


@pytest.mark.parametrize("option", ["0", "two", "-1", "257"])
async def test_a_wrong_number_of_workers_is_one_line(tmp_path: Path, option: str) -> None:
    refused = await run(command_env(tmp_path), "serve", "--workers", option)
    assert refused.code == 1
    assert refused.problems == [
        f"--workers takes a number of processes from 1 to 256, not {option!r}"
    ]


async def test_a_server_on_a_shared_database_without_a_stream_secret_says_so(
    mongo_uri: str, database: AsyncDatabase[dict[str, Any]], tmp_path: Path
) -> None:
    server = await child_server.serve(mongo_uri, database.name, tmp_path)
    try:
        warned = await server.logged(
            "STREAM_TOKEN_SECRET is not set: this server made up its own, so it refuses the "
            "media streams of calls another instance answered; set the same one on every "
            "instance"
        )
    finally:
        server.process.terminate()
        await server.process.wait()
    assert warned["level"] == "warning"

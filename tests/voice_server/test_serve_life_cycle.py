"""`voice-server serve` and its embedded database live and die together, and every other
command works beside it on the same data folder. Real child processes throughout."""

from __future__ import annotations

import asyncio
import signal
import wave
from pathlib import Path

import httpx
import pytest

from stores.embedded import EmbeddedDatabase
from stores.shared_embedded import address_path
from tests.voice_server.calllog.event_stream import read_events
from tests.voice_server.commands import command_env, run, running, serving, wait_until
from voice_server.seed import DEMO_NUMBER, DEMO_USER
from voice_server.settings import load_settings
from voice_server.simulation.demo import run_demo


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
async def test_a_stopped_server_stops_its_database(tmp_path: Path, stop: signal.Signals) -> None:
    async with serving(command_env(tmp_path)) as served:
        assert running(served.database_pid)
        served.process.send_signal(stop)
        assert await served.stopped() == 0
        assert not running(served.database_pid)  # stopped and reaped before the server exited
    assert not address_path(tmp_path / "var" / "db").exists()
    assert "Traceback" not in served.log()


async def test_commands_beside_serve_and_a_restart_after_sigkill_keep_the_data(
    tmp_path: Path,
) -> None:
    env = command_env(tmp_path)
    async with serving(env) as served:
        created = await run(env, "api-key", "create", "--user", "alice")
        assert created.code == 0, created.stderr
        secret = created.stdout.split("Bearer …`): ")[1].strip()
        served.process.kill()
        await served.stopped()
        await wait_until(lambda: not running(served.database_pid), within_s=15)

    async with serving(env) as again, httpx.AsyncClient(base_url=again.base_url) as http:
        listed = await http.get("/api/phone-numbers", headers={"Authorization": f"Bearer {secret}"})
        assert listed.status_code == 200
        again.process.terminate()
        await again.stopped()
    log = again.log()
    assert log.count("was not stopped cleanly last time") == 1
    assert "Traceback" not in log


async def test_a_second_serve_on_the_same_folder_refuses_in_one_line(tmp_path: Path) -> None:
    env = command_env(tmp_path)
    async with serving(env) as served:
        second = await run(env | {"PORT": "0"}, "serve")
    assert second.code == 1
    assert second.problems == [
        f"the database in {tmp_path / 'var' / 'db'} is in use by `serve` "
        f"(pid {served.process.pid}); stop it first, or set DATA_DIR to another folder"
    ]


async def test_a_database_locked_by_another_program_is_one_line(tmp_path: Path) -> None:
    env = command_env(tmp_path)
    with EmbeddedDatabase(tmp_path / "var" / "db") as stranger:  # not through voice-server
        refused = await run(env, "api-key", "create", "--user", "alice")
        assert refused.code == 1
        assert refused.problems == [
            f"the database in {tmp_path / 'var' / 'db'} is locked by another process "
            f"(pid {stranger.pid}), not by voice-server; stop that process, "
            "or set DATA_DIR to another folder"
        ]


async def test_the_newcomers_walkthrough_from_a_clean_data_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The README's first steps: the demo, `serve`, an API key for the demo's owner, the demo
    call in the call log's API, then a simulated call of one's own appearing there live."""
    env = command_env(tmp_path)
    settings = load_settings(
        data_dir=tmp_path / "var", secrets_key=env["SECRETS_KEY"], log_format="console"
    )
    # The demo, as `voice-server demo` runs it, with one caller turn instead of three.
    monkeypatch.chdir(tmp_path)  # the recording's path is given relative, as users do
    demo = await asyncio.to_thread(run_demo, settings, Path("demo.wav"), ("Hello",))
    assert demo == 0
    printed = capsys.readouterr().out.splitlines()
    said = printed.index(next(line for line in printed if line.endswith("caller: Hello")))
    assert printed[said + 1].strip().startswith("(heard: "), "what the recogniser heard, beside"
    assert not any(line.startswith("{") for line in printed), "no log lines in the conversation"
    recorded = next(line for line in printed if line.startswith("recording"))
    recording = Path(recorded.split(": ", 1)[1].rsplit(" (", 1)[0])
    assert recording.is_absolute()
    with wave.open(str(recording)) as wav:
        assert wav.getnchannels() == 2, "the caller left, the agent right"

    async with serving(env) as served:
        created = await run(env, "api-key", "create", "--user", DEMO_USER)
        assert created.code == 0, created.stderr
        secret = created.stdout.split("Bearer …`): ")[1].strip()
        headers = {"Authorization": f"Bearer {secret}"}
        async with httpx.AsyncClient(base_url=served.base_url, headers=headers) as http:
            calls = (await http.get("/api/calls")).json()["data"]
            agents = (await http.get("/api/agents")).json()["data"]
            assert [(call["to_number"], call["status"]) for call in calls] == [
                (DEMO_NUMBER, "completed")
            ]
            assert [agent["name"] for agent in agents] == ["Demo agent"]

            token = (await http.post("/api/event-tokens")).json()["data"]["token"]
            # The next event comes once `simulate` (a new process) has placed its call: on a
            # busy machine that takes longer than httpx's 5 s default.
            patient = httpx.Timeout(5.0, read=60.0)
            path = f"/api/events/calls?token={token}"
            async with http.stream("GET", path, timeout=patient) as feed:
                events = read_events(feed)
                assert (await anext(events)).data == [], "no call is live yet"
                simulated = asyncio.create_task(run(env, "simulate", "--say", "Hello"))
                live = (await anext(events)).data
            finished = await simulated
            listed = (await http.get("/api/calls")).json()["data"]

    assert finished.code == 0, finished.stderr
    assert f"calling {DEMO_NUMBER} at {served.base_url}" in finished.stdout
    assert [(call["to_number"], call["status"]) for call in live] == [(DEMO_NUMBER, "active")]
    assert live[0]["id"] not in {call["id"] for call in calls}, "a new call, not the demo's"
    assert sorted(call["status"] for call in listed) == ["completed", "completed"]

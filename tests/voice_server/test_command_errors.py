"""What a new user sees when a command cannot do its work: one line on stderr and exit code 1
(the traceback only with LOG_LEVEL=DEBUG); and `seed` then `simulate` placing a call with
nothing copied by hand. Each command runs as a child process."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

from tests.voice_server.commands import command_env, free_port, run, serving

NO_SERVER = (
    "no server answers at http://127.0.0.1:{port} (ClientConnectorError); start one with "
    "`voice-server serve`, or set HOST/PORT or PUBLIC_BASE_URL to where it listens"
)


@pytest.mark.parametrize("args", [("migrate", "status"), ("serve",)])
async def test_an_unreachable_mongodb_uri_is_one_line_without_its_password(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    port = free_port()
    env = command_env(tmp_path, MONGODB_URI=f"mongodb://admin:hunter2@127.0.0.1:{port}/")
    failed = await run(env, *args)
    assert failed.code == 1
    (line,) = failed.stderr.splitlines()
    # PyMongo's own reason follows: "Connection refused", or, when the machine is busy and no
    # connection attempt has finished in the 3 s, "No servers found yet".
    assert line.startswith(f"cannot reach MongoDB at 127.0.0.1:{port} (MONGODB_URI) within 3 s: ")
    assert "hunter2" not in line
    assert "admin" not in line


@pytest.mark.parametrize("level", ["INFO", "DEBUG"])
async def test_seeding_an_impossible_number_is_one_line(tmp_path: Path, level: str) -> None:
    failed = await run(command_env(tmp_path, LOG_LEVEL=level), "seed", "--number", "12345")
    assert failed.code == 1
    assert failed.problems[-1] == (
        "phone number '12345' is not a possible number: write it in E.164, like +15550100100"
    )
    assert ("Traceback" in failed.stderr) == (level == "DEBUG")
    assert not (tmp_path / "var" / "db").exists()  # refused before anything started


async def test_serve_on_a_busy_port_is_one_line_and_starts_no_database(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        failed = await run(command_env(tmp_path, PORT=str(port)), "serve")
    assert failed.code == 1
    assert failed.stderr.splitlines() == [
        f"cannot listen on 127.0.0.1:{port} (HOST, PORT): Address already in use"
    ]
    assert not (tmp_path / "var" / "db").exists()


async def test_the_twilio_standin_on_a_busy_port_is_one_line(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        failed = await run(command_env(tmp_path), "twilio-standin", "--port", str(port))
    assert failed.code == 1
    assert failed.stderr.splitlines() == [
        f"cannot listen on 127.0.0.1:{port} (--host, --port): Address already in use"
    ]


async def test_a_data_dir_that_cannot_be_made_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "a-file").touch()
    env = command_env(tmp_path) | {"DATA_DIR": str(tmp_path / "a-file" / "var")}
    failed = await run(env, "api-key", "create", "--user", "alice")
    assert failed.code == 1
    assert failed.stderr.splitlines() == [
        f"cannot use DATA_DIR {tmp_path / 'a-file' / 'var'}: Not a directory"
    ]


async def test_simulating_with_no_server_running_is_one_line(tmp_path: Path) -> None:
    env = command_env(tmp_path)
    failed = await run(env, "simulate", "--auth-token", "x", "--say", "Hi")
    assert failed.code == 1
    assert failed.problems == [NO_SERVER.format(port=env["PORT"])]


async def test_simulate_says_where_it_calls(tmp_path: Path) -> None:
    shown = await run(command_env(tmp_path), "simulate", "--help")
    assert "PUBLIC_BASE_URL" in shown.stdout
    assert "http://HOST:PORT" in shown.stdout


async def test_seed_then_simulate_calls_the_running_server_with_no_token_copied(
    tmp_path: Path,
) -> None:
    env = command_env(tmp_path)
    async with serving(env) as served:
        seeded, forged = await asyncio.gather(
            run(env, "seed"), run(env, "simulate", "--auth-token", "wrong", "--say", "Hi")
        )
        assert seeded.code == 0, seeded.stderr
        assert "call it with `voice-server simulate` while `voice-server serve` runs" in (
            seeded.stdout
        )
        called = await run(env, "simulate", "--say", "Hello")
        served.process.terminate()
        await served.stopped()
    assert forged.code == 1
    assert forged.problems == [
        f"the server at {served.base_url} refused the call's signature (403): the auth token "
        "is not the one registered for +15550100100"
    ]
    assert called.code == 0, called.stderr
    assert "agent answered after" in called.stdout

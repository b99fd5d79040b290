"""`voice-server` commands run as child processes, as a user runs them: a data folder and a
secrets key of their own, no MONGODB_URI, the log on stderr (a file, so it can never fill a pipe
and stall the server)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from stores.secrets import SecretBox

READY_S = 30.0


def command_env(folder: Path, **more: str) -> dict[str, str]:
    """The environment of a command on `folder` (DATA_DIR is `folder / "var"`)."""
    env = {k: v for k, v in os.environ.items() if k not in ("MONGODB_URI", "PUBLIC_BASE_URL")}
    return env | {
        "DATA_DIR": str(folder / "var"),
        "SECRETS_KEY": SecretBox.generate_key(),
        "PORT": str(free_port()),
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "INFO",
        "WEB_WORKERS": "1",  # one process, whatever the machine (`serve --workers` overrides it)
        **more,
    }


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass(frozen=True)
class Finished:
    code: int
    stdout: str
    stderr: str

    @property
    def problems(self) -> list[str]:
        """stderr without the JSON log lines: what the command told its user."""
        return [line for line in self.stderr.splitlines() if not line.startswith("{")]


async def run(env: dict[str, str], *args: str, within_s: float = 60.0) -> Finished:
    """Run `voice-server ARGS…` to its end."""
    process = await asyncio.create_subprocess_exec(
        *command(*args),
        env=env,
        cwd=_folder(env),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(within_s):
        stdout, stderr = await process.communicate()
    assert process.returncode is not None
    return Finished(process.returncode, stdout.decode(), stderr.decode())


def _folder(env: dict[str, str]) -> Path:
    """Where a command runs: the nearest folder above DATA_DIR that exists."""
    return next(path for path in Path(env["DATA_DIR"]).parents if path.is_dir())


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "voice_server.cli", *args]


@dataclass(frozen=True)
class Served:
    """A running `voice-server serve`, and the embedded database it started."""

    process: asyncio.subprocess.Process
    base_url: str
    database_pid: int
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text()

    async def stopped(self, within_s: float = 30.0) -> int:
        async with asyncio.timeout(within_s):
            return await self.process.wait()


@asynccontextmanager
async def serving(env: dict[str, str], *args: str) -> AsyncIterator[Served]:
    """`voice-server serve ARGS…` for the block, from when it answers /health; whatever of it
    still runs at the end (the block may have failed half-way) is killed."""
    served = await _serve(env, *args)
    try:
        yield served
    finally:
        for pid in (served.process.pid, served.database_pid):
            if running(pid):
                os.kill(pid, signal.SIGKILL)
        await served.stopped()


async def _serve(env: dict[str, str], *args: str) -> Served:
    folder = _folder(env)
    log_path = folder / f"serve-{time.monotonic_ns()}.log"
    with log_path.open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            *command("serve", *args), env=env, cwd=folder, stdout=log, stderr=log
        )
    base_url = f"http://127.0.0.1:{env['PORT']}"
    async with asyncio.timeout(READY_S), httpx.AsyncClient(base_url=base_url) as http:
        while True:  # readiness has no event to wait on but the port answering
            assert process.returncode is None, log_path.read_text()
            try:
                if (await http.get("/health")).status_code == 200:
                    break
            except httpx.TransportError:
                await asyncio.sleep(0.05)
    return Served(process, base_url, database_child(process.pid), log_path)


def database_child(parent: int) -> int:
    """The SecantusDB process `parent` started."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            pid, rest = stat.read_text().split(" (", 1)
        except OSError:
            continue  # it ended meanwhile
        name, _, fields = rest.rpartition(") ")
        if name.startswith("secantusd") and int(fields.split()[1]) == parent:
            return int(pid)
    raise AssertionError(f"process {parent} has no SecantusDB child")


def running(pid: int) -> bool:
    """Whether `pid` is a live process (a zombie waiting for its parent is not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


async def wait_until(condition: Callable[[], bool], within_s: float) -> None:
    """Poll `condition` until it holds (a process ending offers nothing else to wait on)."""
    async with asyncio.timeout(within_s):
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.05)

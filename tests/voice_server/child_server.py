"""`voice-server serve` as a child process on the test database, for tests of what the real
command does: its log lines, its signals, its life."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from stores.secrets import SecretBox

READY_S = 30.0


@dataclass
class ChildServer:
    process: asyncio.subprocess.Process
    base_url: str
    lines: list[str] = field(default_factory=list)  # its log so far, read as it is written
    _read: asyncio.Condition = field(default_factory=asyncio.Condition)
    _reader: asyncio.Task[None] | None = None

    def __post_init__(self) -> None:
        self._reader = asyncio.create_task(self._read_log())

    async def _read_log(self) -> None:
        assert self.process.stderr is not None
        async for line in self.process.stderr:
            async with self._read:
                self.lines.append(line.decode())
                self._read.notify_all()

    async def logged(self, event: str, timeout_s: float = 10.0) -> dict[str, Any]:
        """The first JSON log line of `event`, once the server has written it."""
        async with asyncio.timeout(timeout_s), self._read:
            while True:
                for line in self.lines:
                    if line.startswith("{") and (record := json.loads(line))["event"] == event:
                        return dict(record)
                await self._read.wait()

    async def output(self) -> str:
        """Everything it wrote, once it has exited."""
        await self.process.wait()
        assert self._reader is not None
        await self._reader
        return "".join(self.lines)


async def serve(
    mongo_uri: str,
    database: str,
    data_dir: Path,
    *,
    secrets_key: str | None = None,
    **settings: str,
) -> ChildServer:
    """Start `voice-server serve` on a free port with JSON logs on its stderr and `settings` as
    extra environment (drain_seconds="1" is DRAIN_SECONDS=1); return once /health answers."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    base_url = f"http://127.0.0.1:{port}"
    env = os.environ | {
        "MONGODB_URI": mongo_uri.replace("/?", f"/{database}?"),
        "SECRETS_KEY": secrets_key or SecretBox.generate_key(),
        "PORT": str(port),
        "PUBLIC_BASE_URL": base_url,
        "DATA_DIR": str(data_dir),
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "INFO",
        "WEB_WORKERS": "1",
        **{name.upper(): value for name, value in settings.items()},
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "voice_server.cli", "serve", env=env, stderr=asyncio.subprocess.PIPE
    )
    async with asyncio.timeout(READY_S), httpx.AsyncClient(base_url=base_url) as http:
        while True:  # readiness has no event to wait on but the port answering
            try:
                if (await http.get("/health")).status_code == 200:
                    return ChildServer(process, base_url)
            except httpx.TransportError:
                await asyncio.sleep(0.05)

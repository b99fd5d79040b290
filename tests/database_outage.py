"""A database a test can take away: a SecantusDB child process of the test's own.

Two kinds of outage, as a server sees them:
- `stopped`: the process is shut down (connections are refused) and started again on the same
  port and data, as a restarted or failed-over database;
- `frozen`: the process is suspended (SIGSTOP): connections open and requests go out, but nothing
  answers, as behind a dead network link; resumed (SIGCONT), it answers what it was sent.
"""

from __future__ import annotations

import asyncio
import os
import signal
from typing import Any, Literal

from pymongo.asynchronous.database import AsyncDatabase

from stores.embedded import EmbeddedDatabase

OutageKind = Literal["stopped", "frozen"]


class DatabaseOutage:
    def __init__(
        self, server: EmbeddedDatabase, db: AsyncDatabase[dict[str, Any]], kind: OutageKind
    ) -> None:
        self.db = db
        self.kind = kind
        self._server = server
        self._frozen_pid: int | None = None

    @property
    def uri(self) -> str:
        """The database's URI, for a client of a test's own."""
        return self._server.uri

    async def begin(self) -> None:
        """Take the database away; returns once it is gone."""
        if self.kind == "stopped":
            await asyncio.to_thread(self._server.stop)
            return
        pid = self._frozen_pid = self._server.pid
        os.kill(pid, signal.SIGSTOP)
        await asyncio.to_thread(os.waitpid, pid, os.WUNTRACED)  # returns once it is stopped

    async def end(self) -> None:
        """Bring the database back; returns once it answers."""
        if self.kind == "stopped":
            await asyncio.to_thread(self._server.start)
        elif self._frozen_pid is not None:
            pid, self._frozen_pid = self._frozen_pid, None
            os.kill(pid, signal.SIGCONT)
            await asyncio.to_thread(os.waitpid, pid, os.WCONTINUED)

"""What every provider contract suite checks the same way: promptness and leftovers.

Model: trio's `testing/_check_streams.py`, one set of checks run against many implementations.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import voice_server

PROMPTLY_S = 0.5  # "at once" for a cancelled provider: far below any network or decoder wait
_OURS = str(Path(voice_server.__file__).parent)


def our_tasks() -> set[asyncio.Task[object]]:
    """Running tasks whose code is the server's (a fake server's own tasks are not counted)."""
    return {
        task
        for task in asyncio.all_tasks()
        if not task.done()
        and (code := getattr(task.get_coro(), "cr_code", None)) is not None
        and code.co_filename.startswith(_OURS)
    }


def child_processes() -> set[str]:
    """This process's living children (an espeak-ng per sentence being synthesised)."""
    pid = os.getpid()
    return set(Path(f"/proc/{pid}/task/{pid}/children").read_text().split())


async def cancel_promptly(task: asyncio.Task[object]) -> None:
    """Cancel `task` and check that it ends, cancelled, within `PROMPTLY_S`."""
    task.cancel()
    async with asyncio.timeout(PROMPTLY_S):
        await asyncio.wait({task})
    assert task.cancelled(), f"the cancel was swallowed: {task!r}"

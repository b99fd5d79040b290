"""The background work of an open provider session, owned by one TaskGroup.

A recognition session needs tasks besides its reader (sending audio, receiving events, decoding);
`running()` gives them a nursery whose lifetime is the session's `async with` block, so none
outlives it and none is left to the garbage collector.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from typing import Any


@asynccontextmanager
async def running(*workers: Coroutine[Any, Any, None]) -> AsyncIterator[None]:
    """Run `workers` in a TaskGroup for the life of the block.

    Leaving the block cancels them and waits until they have ended; a cancellation of the block's
    owner that arrives meanwhile is kept, not swallowed. An error raised in the block comes out as
    itself, not in an ExceptionGroup. A worker that fails cancels the block, and its error comes
    out in an ExceptionGroup, as a TaskGroup's does (workers report expected failures as results).
    """
    raised: Exception | None = None
    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(worker) for worker in workers]
        try:
            yield
        except Exception as error:  # re-raised below as itself, once the workers have ended
            raised = error
        finally:
            for task in tasks:
                task.cancel()
    if raised is not None:
        raise raised

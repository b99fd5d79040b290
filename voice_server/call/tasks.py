"""The call's nursery: its background tasks, and the one response the agent is giving.

Every task of a call is created here, in the call's TaskGroup; none outlives the call. At most one
response runs at a time: a new one cancels the current one (or, when the agent may not be
interrupted, waits for it), and cancelling it closes its LLM and TTS streams through their
`async with` blocks. A response that replaces another first runs `make_way`, so that nothing the
replaced one sent plays under the new one (it is told whether a running response was cancelled).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from types import TracebackType
from typing import Any

from voice_server.call.supervision import Supervision

Work = Coroutine[Any, Any, object]


class CallTasks:
    """`async with` it for the length of the call; leaving it waits for every task."""

    def __init__(
        self, supervision: Supervision, make_way: Callable[[bool], Awaitable[None]]
    ) -> None:
        self._group: asyncio.TaskGroup | None = None
        self._supervision = supervision
        self._make_way = make_way
        self._response: asyncio.Task[object] | None = None

    async def __aenter__(self) -> CallTasks:
        self._group = asyncio.TaskGroup()
        await self._group.__aenter__()
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        assert self._group is not None
        await self._group.__aexit__(kind, error, trace)

    @property
    def responding(self) -> bool:
        return self._response is not None and not self._response.done()

    def spawn(self, work: Work, name: str) -> asyncio.Task[object]:
        assert self._group is not None, "the call is not running"
        return self._group.create_task(work, name=name)

    def respond(self, work: Work, *, replace: bool = True) -> None:
        """Run `work` as the response: after cancelling the current one and making way for the
        new one (`replace`), or after it has finished (a queued answer, when the agent may not
        be interrupted)."""
        self._supervision.responding()
        previous = self._response
        self._response = self.spawn(self._after(previous, work, replace), "response")
        # `work` never started if it was cancelled while waiting for `previous`, or before the
        # response task ran at all (the call ended at once): it is closed, not left unawaited.
        self._response.add_done_callback(lambda _: work.close())

    async def stop_response(self) -> None:
        """Cancel the response in progress and wait until it has closed its streams."""
        if self._response is not None and not self._response.done():
            self._response.cancel()
            await asyncio.wait([self._response])

    async def _after(
        self, previous: asyncio.Task[object] | None, work: Work, replace: bool
    ) -> None:
        try:
            cancelled = replace and previous is not None and not previous.done()
            if previous is not None and not previous.done():
                if replace:
                    previous.cancel()
                await asyncio.wait([previous])
            if replace:
                await self._make_way(cancelled)
            await work
        finally:
            self._supervision.wake()  # the agent may have gone quiet

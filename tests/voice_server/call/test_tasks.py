"""The call's nursery (`CallTasks`): a response that never got to run is closed, not leaked
(an unawaited coroutine is a warning at best, and its `finally` blocks never run)."""

from __future__ import annotations

import asyncio
from inspect import CORO_CLOSED, getcoroutinestate

from tests.voice_server.call.harness import make_agent
from voice_server.call.supervision import Supervision
from voice_server.call.tasks import CallTasks


async def _nothing_to_clear(cancelled: bool) -> None:
    """`make_way`: nothing was playing."""


def _tasks() -> CallTasks:
    return CallTasks(Supervision(make_agent().turnTaking), _nothing_to_clear)


async def test_a_response_the_call_ended_before_it_ran_is_closed_unstarted() -> None:
    ran: list[str] = []

    async def response() -> None:
        ran.append("response")

    work = response()
    async with _tasks() as tasks:
        tasks.respond(work)
        await tasks.stop_response()  # the call ends in the same step, before the task ran
    assert ran == []
    assert getcoroutinestate(work) == CORO_CLOSED


async def test_a_queued_response_replaced_while_it_waited_is_closed_unstarted() -> None:
    ran: list[str] = []
    release = asyncio.Event()

    async def response(name: str) -> None:
        ran.append(name)
        await release.wait()

    queued = response("queued")
    async with _tasks() as tasks:
        tasks.respond(response("first"))
        tasks.respond(queued, replace=False)  # waits for the first to finish
        await asyncio.sleep(0)  # both are under way: the first speaks, the second waits
        tasks.respond(response("last"))  # replaces the one that waits
        release.set()
    assert ran == ["first", "last"]
    assert getcoroutinestate(queued) == CORO_CLOSED

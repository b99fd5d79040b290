"""How uvicorn serves the app (`voice_server.serving`): the start-up freeze."""

from __future__ import annotations

import gc

from starlette.types import Message, Receive, Scope, Send

from voice_server.serving import frozen_after_startup


async def test_the_heap_is_frozen_once_the_lifespan_has_started() -> None:
    before = gc.get_freeze_count()
    during_startup: list[int] = []
    sent: list[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        assert (await receive())["type"] == "lifespan.startup"
        during_startup.append(gc.get_freeze_count())
        await send({"type": "lifespan.startup.complete"})

    async def receive() -> Message:
        return {"type": "lifespan.startup"}

    async def send(message: Message) -> None:
        sent.append(message)

    try:
        await frozen_after_startup(app)({"type": "lifespan"}, receive, send)
        assert during_startup == [before]
        assert sent == [{"type": "lifespan.startup.complete"}]
        assert gc.get_freeze_count() > before
    finally:
        gc.unfreeze()

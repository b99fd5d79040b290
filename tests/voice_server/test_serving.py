"""How uvicorn serves the app (`voice_server.serving`): the collector tuned after start-up."""

from __future__ import annotations

import gc

from starlette.types import Message, Receive, Scope, Send

from voice_server.serving import YOUNG_COLLECTION_ALLOCATIONS, collector_tuned_after_startup


async def test_the_heap_is_frozen_and_young_collections_spaced_once_the_app_has_started() -> None:
    before = gc.get_freeze_count()
    thresholds = gc.get_threshold()
    during_startup: list[tuple[int, tuple[int, int, int]]] = []
    sent: list[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        assert (await receive())["type"] == "lifespan.startup"
        during_startup.append((gc.get_freeze_count(), gc.get_threshold()))
        await send({"type": "lifespan.startup.complete"})

    async def receive() -> Message:
        return {"type": "lifespan.startup"}

    async def send(message: Message) -> None:
        sent.append(message)

    try:
        await collector_tuned_after_startup(app)({"type": "lifespan"}, receive, send)
        assert during_startup == [(before, thresholds)]
        assert sent == [{"type": "lifespan.startup.complete"}]
        assert gc.get_freeze_count() > before
        assert gc.get_threshold() == (YOUNG_COLLECTION_ALLOCATIONS, *thresholds[1:])
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)

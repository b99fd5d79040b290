"""How a call's events reach its session: handed to it as they arrive, by an `EventFeed`.

Why handed rather than read: a call takes 50 frames a second, and a session that read them from
a queue in a task of its own would wake that task for nearly every frame. A socket that can call
back on each frame (picows', `voice_server.telephony.stream_socket`) hands the events straight to
the session, in the callback that parsed the frame; a socket that can only be read returns the
coroutine that reads it, which the session runs as its inbound task.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from media.twilio import Event

EventHandler = Callable[[Event], None]
"""Takes one event of the stream, synchronously: it never waits on anything."""


class EventFeed(Protocol):
    def start(
        self, on_event: EventHandler, on_end: Callable[[], None]
    ) -> Coroutine[Any, Any, None] | None:
        """Hand every event to `on_event`, in order, from now on, then call `on_end` once when
        the stream ends. Returns the coroutine that reads the events if the feed must read them
        (the session runs it as its inbound task, and cancels it when the call ends), or None
        if they are handed over from the socket's own callbacks. The session calls this once,
        when it is ready for events."""
        ...

"""The call log's live side: one shared watcher per watched call (and per user's list of active
calls), fanned out in memory to every client that follows it.

A watcher re-reads its call only when the `calls` change stream says the call changed, so the
database cost is one read per change per watched call, whatever the number of clients. Where
the server has no change streams, or while the stream is down, each watcher polls instead
(`CallLogOptions.poll_s`), still once per call and not once per client. A watcher keeps every
transcript entry it has read, so a client that reconnects from any index costs no read.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Protocol

from pymongo.errors import PyMongoError

from stores.call_changes import CallChange, open_call_changes
from stores.calls import Call, CallStore, CallSummary, TranscriptEntry
from stores.change_streams import ChangeStreamsUnsupported
from stores.database import Database
from stores.owned import MAX_PAGE, ListQuery
from voice_server.log import get_logger

log = get_logger(__name__)


@dataclass(frozen=True)
class CallLogOptions:
    change_streams: bool = True  # False: always poll (tests of the fallback)
    poll_s: float = 0.5  # how often a watcher re-reads while there is no change stream
    retry_s: float = 5.0  # how long to poll after the change stream fails before reopening


class _Watched(Protocol):
    stale: asyncio.Event

    async def refresh(self, calls: CallStore) -> bool:
        """Read what changed and wake the followers; True once nothing more can change."""


class CallFeed:
    """One call as far as it has been read: its summary (None until loaded, or if there is no
    such call) and all its transcript entries, index = position in `entries`."""

    def __init__(self, call_id: str) -> None:
        self.call_id = call_id
        self.summary: CallSummary | None = None
        self.entries: list[TranscriptEntry] = []
        self.loaded = asyncio.Event()
        self.stale = asyncio.Event()
        self._updated = asyncio.Condition()

    @property
    def ended(self) -> bool:
        return self.summary is None or self.summary.status == "completed"

    async def refresh(self, calls: CallStore) -> bool:
        found = await calls.get_since(self.call_id, len(self.entries))
        async with self._updated:
            if found is not None:
                self.entries.extend(found.transcript)
                self.summary = _summary(found)
            self.loaded.set()
            self._updated.notify_all()
        return self.ended

    async def wait_past(self, count: int) -> None:
        """Return once there are more than `count` entries or the call has ended."""
        async with self._updated:
            await self._updated.wait_for(lambda: len(self.entries) > count or self.ended)


class ActiveCallsFeed:
    """One user's active calls, oldest first, re-read when a call of theirs starts or ends."""

    def __init__(self, user_id: str) -> None:
        self.user_id = user_id
        self.calls: list[CallSummary] = []
        self.version = 0
        self.stale = asyncio.Event()
        self._updated = asyncio.Condition()

    async def refresh(self, calls: CallStore) -> bool:
        query = ListQuery(
            filters={"status": "active"}, sort="start_time", descending=False, limit=MAX_PAGE
        )
        page = await calls.page(self.user_id, query)
        async with self._updated:
            if page.items != self.calls or not self.version:
                self.calls = page.items
                self.version += 1
                self._updated.notify_all()
        return False

    async def wait_past(self, version: int) -> None:
        """Return once the list is newer than `version`."""
        async with self._updated:
            await self._updated.wait_for(lambda: self.version > version)


def _summary(call: Call) -> CallSummary:
    return CallSummary.model_validate(call.model_dump(exclude={"transcript"}))


@dataclass
class _Watcher:
    watched: _Watched
    task: asyncio.Task[None]
    followers: int = 0


class CallLog:
    """The watchers. `running()` (for the app's lifetime) owns the change stream and every
    watcher task; `follow_call` / `follow_active` share a watcher among their callers."""

    def __init__(self, db: Database, calls: CallStore, options: CallLogOptions) -> None:
        self._db = db
        self._calls = calls
        self._options = options
        self._pushed = False  # the change stream is open: watchers wait for its word
        self._watchers: dict[str, _Watcher] = {}
        self._tasks: asyncio.TaskGroup | None = None

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        async with asyncio.TaskGroup() as tasks:
            self._tasks = tasks
            changes = tasks.create_task(self._follow_changes())
            try:
                yield
            finally:
                changes.cancel()
                for watcher in self._watchers.values():
                    watcher.task.cancel()
                self._tasks = None

    @contextlib.asynccontextmanager
    async def follow_call(self, call_id: str) -> AsyncIterator[CallFeed]:
        """The call's shared feed, loaded (`summary` None if there is no such call)."""
        async with self._follow(f"call:{call_id}", lambda: CallFeed(call_id)) as feed:
            assert isinstance(feed, CallFeed)
            await feed.loaded.wait()
            yield feed

    @contextlib.asynccontextmanager
    async def follow_active(self, user_id: str) -> AsyncIterator[ActiveCallsFeed]:
        async with self._follow(f"active:{user_id}", lambda: ActiveCallsFeed(user_id)) as feed:
            assert isinstance(feed, ActiveCallsFeed)
            yield feed

    def loaded_feed(self, call_id: str) -> CallFeed | None:
        """The call's feed if someone follows it and it is loaded (to answer without a read)."""
        watcher = self._watchers.get(f"call:{call_id}")
        feed = None if watcher is None else watcher.watched
        return feed if isinstance(feed, CallFeed) and feed.loaded.is_set() else None

    @contextlib.asynccontextmanager
    async def _follow(self, key: str, make: Callable[[], _Watched]) -> AsyncIterator[_Watched]:
        if self._tasks is None:
            raise RuntimeError("the call log is not running")
        watcher = self._watchers.get(key)
        if watcher is None:
            watched = make()
            watcher = _Watcher(watched, self._tasks.create_task(self._watch(watched)))
            self._watchers[key] = watcher
        watcher.followers += 1
        try:
            yield watcher.watched
        finally:
            watcher.followers -= 1
            if not watcher.followers:
                del self._watchers[key]
                watcher.task.cancel()

    async def _watch(self, watched: _Watched) -> None:
        """Read once at once (changes before the watcher existed were told to nobody), then
        after each change, or each `poll_s` while no change stream is open."""
        while not await self._refresh(watched):
            timeout = None if self._pushed else self._options.poll_s
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await watched.stale.wait()
            watched.stale.clear()

    async def _refresh(self, watched: _Watched) -> bool:
        """A failed read is tried again after `poll_s`; it never ends the watcher."""
        try:
            return await watched.refresh(self._calls)
        except PyMongoError as error:
            log.warning("call log read failed; trying again", error=error)
            watched.stale.set()
            await asyncio.sleep(self._options.poll_s)
            return False

    async def _follow_changes(self) -> None:
        if not self._options.change_streams:
            return
        while True:
            try:
                async with open_call_changes(self._db) as changes:
                    self._set_pushed(True)
                    async for change in changes:
                        self._dispatch(change)
            except ChangeStreamsUnsupported as error:
                log.info("no change streams on this database; the call log polls", reason=error)
                return
            except PyMongoError as error:
                log.warning("call change stream failed; polling until it reopens", error=error)
            finally:
                self._set_pushed(False)
            await asyncio.sleep(self._options.retry_s)

    def _set_pushed(self, pushed: bool) -> None:
        """Switch modes and wake every watcher: a reopened stream may have missed changes."""
        self._pushed = pushed
        for watcher in self._watchers.values():
            watcher.watched.stale.set()

    def _dispatch(self, change: CallChange) -> None:
        watcher = self._watchers.get(f"call:{change.call_id}")
        if watcher is not None:
            watcher.watched.stale.set()
        if not change.membership:
            return
        for key, other in self._watchers.items():
            if key.startswith("active:") and change.user_id in (None, key[len("active:") :]):
                other.watched.stale.set()

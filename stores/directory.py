"""The in-process view call set-up reads instead of the database: registered numbers by their
E.164 text, the agent each number's incoming calls go to, and agents by id.

The view is filled by reading through on a miss (nothing is loaded up front, and what is not
there, an unknown number or a number without an agent, is read every time) and emptied on
every write to `registered_phone_numbers` or `agents`:

- the stores' own writes (`PhoneNumberStore`, `AgentStore` given the directory) empty it at
  once, so whoever writes through them in this process sees the change on the next read;
- writes by anyone else (another server, a shell) arrive on the database's change stream
  (`stores.directory_changes`), which the app follows, within a second;
- while no change stream is open (a standalone `mongod`, or one that broke and is being
  reopened) an entry is trusted for `unfollowed_max_age_s` only, and a stream that opens
  (again) starts from an empty view, as it may have missed writes.

Writes to numbers and agents are an owner's edits, rare next to calls, so each one empties the
whole view rather than working out which entries it touched.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TypeVar

T = TypeVar("T")
Key = tuple[str, str]
"""What an entry holds and for which E.164 number or id: ("number", "+1555…")."""

UNFOLLOWED_MAX_AGE_S = 1.0


class Directory:
    """The view; one per app, shared by the stores that read and write numbers and agents.

    `clock` is monotonic seconds (tests pass their own). A directory that is never followed
    and has `unfollowed_max_age_s=0` keeps nothing: every read goes to the database.
    """

    def __init__(
        self,
        unfollowed_max_age_s: float = UNFOLLOWED_MAX_AGE_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._unfollowed_max_age_s = unfollowed_max_age_s
        self._max_age_s = unfollowed_max_age_s
        self._clock = clock
        self._entries: dict[Key, tuple[float, object]] = {}
        # Bumped by every `forget`: a read that began before it may have read what changed.
        self._generation = 0

    @property
    def followed(self) -> bool:
        """Whether a change stream is open, so entries are kept until a write empties them."""
        return self._max_age_s == math.inf

    def cached(self, key: Key, kind: type[T]) -> T | None:
        """The entry for `key` if there is one still to be trusted."""
        entry = self._entries.get(key)
        if entry is None or self._clock() - entry[0] >= self._max_age_s:
            return None
        value = entry[1]
        return value if isinstance(value, kind) else None

    def _keep(self, generation: int, entries: Mapping[Key, object]) -> None:
        """Keep what a read found, unless the view was emptied since `generation` was taken
        (what was read may then be older than the write that emptied it)."""
        if generation == self._generation and self._max_age_s > 0:
            now = self._clock()
            self._entries.update({key: (now, value) for key, value in entries.items()})

    async def through(
        self,
        key: Key,
        kind: type[T],
        read: Callable[[], Awaitable[T | None]],
        related: Callable[[T], Mapping[Key, object]] | None = None,
    ) -> T | None:
        """The entry for `key`, or what `read` finds, kept if it found something, along with
        the `related` entries it gives (the same value under other keys)."""
        if (hit := self.cached(key, kind)) is not None:
            return hit
        generation = self._generation
        value = await read()
        if value is not None:
            self._keep(generation, {key: value, **(related(value) if related else {})})
        return value

    async def written(self, write: Awaitable[T]) -> T:
        """What a write to numbers or agents returns; the view is emptied after it, also when
        it failed (it may have been made)."""
        try:
            return await write
        finally:
            self.forget()

    def forget(self) -> None:
        """Empty the view: numbers or agents were written."""
        self._entries.clear()
        self._generation += 1

    def set_followed(self, followed: bool) -> None:
        """A change stream opened (the view starts again from empty: it may have missed
        writes) or closed (entries are trusted for `unfollowed_max_age_s` from now on)."""
        self._max_age_s = math.inf if followed else self._unfollowed_max_age_s
        self.forget()

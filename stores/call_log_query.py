"""The call log's list query: its filters and its orders, as MongoDB filter and sort.

Filters (all optional): `status`, `agent_id`, `from_number`, `to_number`, `number` (either
side of the call), `direction` (calls from before outbound calls have none: inbound),
`scheduled_call_id`, and `started_after` / `started_before` (a half-open `start_time` range).
Orders: `live` (active calls first, then the newest; the default) or any single field.
Served by the `calls` indexes `userId_status_start_time` and `userId_start_time`.
"""

from __future__ import annotations

from typing import Any

from pymongo import ASCENDING, DESCENDING

from stores.owned import ListQuery

LIVE = "live"
_EQUAL = ("status", "agent_id", "from_number", "to_number", "scheduled_call_id")


def call_log_filter(user_id: str, query: ListQuery) -> dict[str, Any]:
    """The owner's calls that match `query.filters`."""
    filters = query.filters
    found: dict[str, Any] = {name: filters[name] for name in _EQUAL if name in filters}
    found["userId"] = user_id
    if "direction" in filters:
        outbound = filters["direction"] == "outbound"
        found["direction"] = "outbound" if outbound else {"$ne": "outbound"}
    if "number" in filters:
        found["$or"] = [{"from_number": filters["number"]}, {"to_number": filters["number"]}]
    started: dict[str, Any] = {}
    if "started_after" in filters:
        started["$gte"] = filters["started_after"]
    if "started_before" in filters:
        started["$lt"] = filters["started_before"]
    if started:
        found["start_time"] = started
    return found


def call_log_sort(query: ListQuery) -> list[tuple[str, int]]:
    """`live`: "active" sorts before "completed", then newest first; reversed when ascending."""
    first, then = (ASCENDING, DESCENDING) if query.descending else (DESCENDING, ASCENDING)
    if query.sort == LIVE:
        return [("status", first), ("start_time", then), ("_id", then)]
    order = DESCENDING if query.descending else ASCENDING
    return [(query.sort, order), ("_id", order)]

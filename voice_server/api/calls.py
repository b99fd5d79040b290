"""`/api/calls`: the caller's call log. Lists leave transcripts out; reading one call brings it;
`/calls/{id}/transcript?since=N` brings only the entries a poller has not seen, with the status.

Read-only: calls are written by the voice webhooks and the media stream. `POST /event-tokens`
mints the token the call log's event streams take (see `voice_server.api.events`).
"""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from stores.call_log_query import LIVE
from stores.calls import Call, CallSummary, TranscriptEntry
from stores.owned import Listing
from stores.phone_numbers import E164
from voice_server.api.envelope import not_found
from voice_server.api.operations import ApiRequest, Operation

TAG = "calls"


class CallFilters(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: Literal["active", "completed"] | None = None
    agent_id: str | None = None
    from_number: str | None = None
    to_number: str | None = None
    number: E164 | None = Field(default=None, description="The caller's or the dialled number")
    direction: Literal["inbound", "outbound"] | None = None
    scheduled_call_id: str | None = Field(
        default=None, description="Calls placed for this scheduled call"
    )
    started_after: AwareDatetime | None = Field(default=None, description="start_time >= this")
    started_before: AwareDatetime | None = Field(default=None, description="start_time < this")


class TranscriptQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    since: int = Field(default=0, ge=0, le=1 << 20, description="Entries already held")


class IndexedEntry(TranscriptEntry):
    index: int


class TranscriptUpdate(BaseModel):
    """What a poller needs: the call's state, `entries` from index `since`, and `next`, the
    `since` of its next poll."""

    id: str
    status: Literal["active", "completed"]
    end_time: AwareDatetime | None
    duration_seconds: float | None
    since: int
    next: int
    entries: list[IndexedEntry]


class EventToken(BaseModel):
    token: str
    expires_at: int = Field(description="Unix seconds")


async def list_calls(request: ApiRequest) -> Listing[CallSummary]:
    return await request.services.calls.page(request.user_id, request.listing)


async def read_call(request: ApiRequest) -> Call:
    found = await request.services.calls.get_owned(request.user_id, request.doc_id)
    if found is None:
        raise not_found("call")
    return found


async def read_transcript(request: ApiRequest) -> TranscriptUpdate:
    since: int = request.query.since
    found = await request.services.calls.get_since(request.doc_id, since, request.user_id)
    if found is None:
        raise not_found("call")
    entries = [
        IndexedEntry(index=index, **entry.model_dump())
        for index, entry in enumerate(found.transcript, since)
    ]
    return TranscriptUpdate(
        id=found.id,
        status=found.status,
        end_time=found.end_time,
        duration_seconds=found.duration_seconds,
        since=since,
        next=since + len(entries),
        entries=entries,
    )


async def mint_event_token(request: ApiRequest) -> EventToken:
    token, expires_at = request.services.event_tokens.mint(request.key_id)
    return EventToken(token=token, expires_at=expires_at)


OPERATIONS = [
    Operation("GET", "/calls", "List calls, active first and then newest", TAG, list_calls,
              CallSummary, filters=CallFilters,
              sorts=(LIVE, "start_time", "created_at", "updated_at"), errors=(422,)),
    Operation("GET", "/calls/{id}", "Read a call with its transcript", TAG, read_call, Call,
              errors=(404,)),
    Operation("GET", "/calls/{id}/transcript", "Read a call's status and new transcript entries",
              TAG, read_transcript, TranscriptUpdate, query=TranscriptQuery, errors=(404, 422)),
    Operation("POST", "/event-tokens", "Mint a token for the call log's event streams", TAG,
              mint_event_token, EventToken, status=201),
]  # fmt: skip

"""`/api/calls`: the caller's call log. Lists leave transcripts out; reading one call brings it.

Read-only: calls are written by the voice webhooks and the media stream.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from stores.calls import Call, CallSummary
from stores.owned import Listing
from voice_server.api.envelope import not_found
from voice_server.api.operations import ApiRequest, Operation

TAG = "calls"


class CallFilters(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: Literal["active", "completed"] | None = None
    agent_id: str | None = None
    from_number: str | None = None
    to_number: str | None = None


async def list_calls(call: ApiRequest) -> Listing[CallSummary]:
    return await call.services.calls.page(call.user_id, call.listing)


async def read_call(call: ApiRequest) -> Call:
    found = await call.services.calls.get_owned(call.user_id, call.doc_id)
    if found is None:
        raise not_found("call")
    return found


OPERATIONS = [
    Operation("GET", "/calls", "List calls, newest first", TAG, list_calls, CallSummary,
              filters=CallFilters, sorts=("start_time", "created_at", "updated_at"),
              errors=(422,)),
    Operation("GET", "/calls/{id}", "Read a call with its transcript", TAG, read_call, Call,
              errors=(404,)),
]  # fmt: skip

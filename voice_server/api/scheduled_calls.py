"""`/api/scheduled-calls`: calls to place later. An AI call names a prompt of its `from`
number, and keeps a snapshot of the prompt's text taken when it is scheduled; only a pending
call can be changed (409 once a worker has claimed it)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from stores.owned import IdText
from stores.scheduled_calls import (
    NotPending,
    ScheduledCall,
    ScheduledCallBody,
    ScheduledCallCreate,
    ScheduledCallFields,
    ScheduledCallUpdate,
    Status,
)
from voice_server.api.envelope import conflict, invalid_input, not_found
from voice_server.api.operations import ApiRequest
from voice_server.api.references import number_by_id, prompt_of_number
from voice_server.api.resources import Resource


class ScheduledCallFilters(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: Status | None = None
    fromPhoneNumberId: IdText | None = None
    callType: Literal["ai", "normal"] | None = None


async def _prompt_content(request: ApiRequest, fields: ScheduledCallFields) -> str | None:
    """Check the references; the text of the prompt (a fresh snapshot), if one is named."""
    services, user = request.services, request.user_id
    await number_by_id(services, user, fields.fromPhoneNumberId, "body.fromPhoneNumberId")
    if fields.promptId is None:
        return None
    prompt = await prompt_of_number(
        services, user, fields.promptId, fields.fromPhoneNumberId, "body.promptId"
    )
    return prompt.content


async def create(request: ApiRequest) -> ScheduledCall:
    body: ScheduledCallBody = request.body
    content = await _prompt_content(request, body)
    data = ScheduledCallCreate(**body.model_dump(), userId=request.user_id, promptContent=content)
    return await request.services.scheduled_calls.create(data)


async def update(request: ApiRequest) -> ScheduledCall | None:
    """Merge the change into the stored call and check the result as a whole."""
    change: ScheduledCallUpdate = request.body
    current = await request.services.scheduled_calls.get(request.user_id, request.doc_id)
    if current is None:
        raise not_found("scheduled call")
    merged = current.model_dump(include=set(ScheduledCallFields.model_fields))
    try:
        fields = ScheduledCallBody.model_validate(merged | change.model_dump(exclude_none=True))
    except ValidationError as error:
        raise invalid_input(error, "body") from None
    content = await _prompt_content(request, fields)
    if fields.promptId == current.promptId:
        content = current.promptContent  # the snapshot stays until the prompt changes
    try:
        return await request.services.scheduled_calls.update(
            request.user_id, request.doc_id, fields, content
        )
    except NotPending:
        raise conflict(f"the call is {current.status} and can no longer be changed") from None


RESOURCE = Resource(
    path="/scheduled-calls",
    tag="scheduled calls",
    what="scheduled call",
    view=ScheduledCall,
    create_body=ScheduledCallBody,
    update_body=ScheduledCallUpdate,
    filters=ScheduledCallFilters,
    sorts=("scheduledDateTime", "created_at", "updated_at"),
    create=create,
    update=update,
    get=lambda services, user, doc: services.scheduled_calls.get(user, doc),
    page=lambda services, user, query: services.scheduled_calls.page(user, query),
    delete=lambda services, user, doc: services.scheduled_calls.delete(user, doc),
)

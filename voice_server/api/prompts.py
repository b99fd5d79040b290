"""`/api/prompts`: texts for outgoing AI calls, each tied to one of the caller's numbers."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from stores.owned import IdText
from stores.prompts import Prompt, PromptCreate, PromptFields, PromptUpdate
from voice_server.api.operations import ApiRequest
from voice_server.api.references import number_by_id
from voice_server.api.resources import Resource


class PromptFilters(BaseModel):
    model_config = ConfigDict(extra="forbid")

    phoneNumberId: IdText | None = None
    category: str | None = None


async def create(request: ApiRequest) -> Prompt:
    body: PromptFields = request.body
    await number_by_id(request.services, request.user_id, body.phoneNumberId, "body.phoneNumberId")
    return await request.services.prompts.create(
        PromptCreate(**body.model_dump(), userId=request.user_id)
    )


async def update(request: ApiRequest) -> Prompt | None:
    change: PromptUpdate = request.body
    if change.phoneNumberId is not None:
        await number_by_id(
            request.services, request.user_id, change.phoneNumberId, "body.phoneNumberId"
        )
    return await request.services.prompts.update(request.user_id, request.doc_id, change)


RESOURCE = Resource(
    path="/prompts",
    tag="prompts",
    what="prompt",
    view=Prompt,
    create_body=PromptFields,
    update_body=PromptUpdate,
    filters=PromptFilters,
    sorts=("created_at", "updated_at", "name"),
    create=create,
    update=update,
    get=lambda services, user, doc: services.prompts.get(user, doc),
    page=lambda services, user, query: services.prompts.page(user, query),
    delete=lambda services, user, doc: services.prompts.delete(user, doc),
)

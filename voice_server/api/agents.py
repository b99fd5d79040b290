"""`/api/agents`: the agents that answer (or place) calls on the caller's numbers."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from stores.agents import Agent, AgentCreate, AgentFields, AgentUpdate, Direction
from stores.phone_numbers import E164
from voice_server.api.operations import ApiRequest
from voice_server.api.references import number_by_value
from voice_server.api.resources import Resource


class AgentFilters(BaseModel):
    model_config = ConfigDict(extra="forbid")

    phoneNumber: E164 | None = None
    direction: Direction | None = None
    active: bool | None = None


async def create(request: ApiRequest) -> Agent:
    body: AgentFields = request.body
    await number_by_value(request.services, request.user_id, body.phoneNumber, "body.phoneNumber")
    return await request.services.agents.create(
        AgentCreate(**body.model_dump(), userId=request.user_id)
    )


async def update(request: ApiRequest) -> Agent | None:
    change: AgentUpdate = request.body
    if change.phoneNumber is not None:
        await number_by_value(
            request.services, request.user_id, change.phoneNumber, "body.phoneNumber"
        )
    return await request.services.agents.update(request.user_id, request.doc_id, change)


RESOURCE = Resource(
    path="/agents",
    tag="agents",
    what="agent",
    view=Agent,
    create_body=AgentFields,
    update_body=AgentUpdate,
    filters=AgentFilters,
    sorts=("created_at", "updated_at", "name"),
    create=create,
    update=update,
    get=lambda services, user, doc: services.agents.get_owned(user, doc),
    page=lambda services, user, query: services.agents.page(user, query),
    delete=lambda services, user, doc: services.agents.delete(user, doc),
)

"""`/api/phone-numbers`: the caller's registered numbers. The auth token is write-only."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from pymongo.errors import DuplicateKeyError

from stores.phone_numbers import (
    E164,
    PhoneNumber,
    PhoneNumberCreate,
    PhoneNumberFields,
    PhoneNumberUpdate,
    PhoneNumberView,
)
from voice_server.api.envelope import conflict
from voice_server.api.operations import ApiRequest
from voice_server.api.resources import Resource

TAKEN = "this phone number is already registered"


class PhoneNumberFilters(BaseModel):
    model_config = ConfigDict(extra="forbid")

    phoneNumber: E164 | None = None
    isActive: bool | None = None


async def create(call: ApiRequest) -> PhoneNumber:
    body: PhoneNumberFields = call.body
    try:
        return await call.services.phone_numbers.create(
            PhoneNumberCreate(**body.model_dump(), userId=call.user_id)
        )
    except DuplicateKeyError:
        raise conflict(TAKEN) from None


async def update(call: ApiRequest) -> PhoneNumber | None:
    try:
        return await call.services.phone_numbers.update(call.user_id, call.doc_id, call.body)
    except DuplicateKeyError:
        raise conflict(TAKEN) from None


RESOURCE = Resource(
    path="/phone-numbers",
    tag="phone numbers",
    what="phone number",
    view=PhoneNumberView,
    create_body=PhoneNumberFields,
    update_body=PhoneNumberUpdate,
    filters=PhoneNumberFilters,
    sorts=("created_at", "updated_at", "phoneNumber"),
    create=create,
    update=update,
    get=lambda services, user, doc: services.phone_numbers.get(user, doc),
    page=lambda services, user, query: services.phone_numbers.page(user, query),
    delete=lambda services, user, doc: services.phone_numbers.delete(user, doc),
)

"""`/api/phone-numbers`: the caller's registered numbers. The auth token is write-only.

A number has one owner at Twilio, so it has one live registration here: a number someone holds
cannot be registered again, nor another number changed to it, until its holder deletes it. The
refusal tells the holder that the number is theirs already; anyone else learns only that the
number is not available, never who holds it or under which id.
"""

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
from voice_server.api.envelope import ApiError, conflict
from voice_server.api.operations import ApiRequest
from voice_server.api.resources import Resource
from voice_server.log import get_logger

log = get_logger(__name__)
YOURS = "you have already registered this phone number"
UNAVAILABLE = "this phone number is not available"


class PhoneNumberFilters(BaseModel):
    model_config = ConfigDict(extra="forbid")

    phoneNumber: E164 | None = None
    isActive: bool | None = None


async def create(request: ApiRequest) -> PhoneNumber:
    body: PhoneNumberFields = request.body
    try:
        return await request.services.phone_numbers.create(
            PhoneNumberCreate(**body.model_dump(), userId=request.user_id)
        )
    except DuplicateKeyError:
        raise await _taken(request, body.phoneNumber) from None


async def update(request: ApiRequest) -> PhoneNumber | None:
    change: PhoneNumberUpdate = request.body
    try:
        return await request.services.phone_numbers.update(request.user_id, request.doc_id, change)
    except DuplicateKeyError:
        raise await _taken(request, change.phoneNumber) from None


async def _taken(request: ApiRequest, phone_number: str | None) -> ApiError:
    """The refusal of a number with a live registration: the caller's own, or not available
    (also when the holder let it go in the meantime: the caller may simply try again)."""
    numbers = request.services.phone_numbers
    holder = None if phone_number is None else await numbers.find_registered(phone_number)
    if holder is not None and holder.userId == request.user_id:
        log.info("phone number refused: the caller registered it already", number_id=holder.id)
        return conflict(YOURS)
    held_by = None if holder is None else holder.id
    log.warning("phone number refused: another user holds it", held_by_number_id=held_by)
    return conflict(UNAVAILABLE)


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

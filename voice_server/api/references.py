"""References between documents, checked before a write: each must name a live document of
the same user. Another user's document is refused exactly like a missing one (422 on the field),
so an id tells nobody whether it exists elsewhere."""

from __future__ import annotations

from stores.owned import ListQuery
from stores.phone_numbers import PhoneNumber
from stores.prompts import Prompt
from voice_server.api.envelope import invalid
from voice_server.services import Services


async def number_by_id(services: Services, user_id: str, number_id: str, field: str) -> PhoneNumber:
    number = await services.phone_numbers.get(user_id, number_id)
    if number is None:
        raise invalid(field, "no registered phone number of yours has this id")
    return number


async def number_by_value(services: Services, user_id: str, phone_number: str, field: str) -> None:
    query = ListQuery(filters={"phoneNumber": phone_number}, limit=1)
    if not (await services.phone_numbers.page(user_id, query)).items:
        raise invalid(field, "is not one of your registered phone numbers")


async def prompt_of_number(
    services: Services, user_id: str, prompt_id: str, number_id: str, field: str
) -> Prompt:
    """The user's prompt, which must belong to the number `number_id`."""
    prompt = await services.prompts.get(user_id, prompt_id)
    if prompt is None:
        raise invalid(field, "no prompt of yours has this id")
    if prompt.phoneNumberId != number_id:
        raise invalid(field, "the prompt belongs to another of your phone numbers")
    return prompt

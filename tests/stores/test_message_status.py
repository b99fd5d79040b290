"""The messages store under the SMS path: concurrent first messages, delivery statuses."""

from __future__ import annotations

import asyncio

import pytest

from stores.messages import MessageStore
from stores.phone_numbers import InvalidPhoneNumber
from tests.stores.test_messages import AGENT, ALICE, OWNER, Db, sms


async def test_different_messages_opening_a_conversation_at_once_are_all_stored(
    database: Db,
) -> None:
    store = MessageStore(database)
    stored = await asyncio.gather(*(store.create_message(sms(f"SM{i}")) for i in range(5)))
    again = await asyncio.gather(*(store.create_message(sms(f"SM{i}")) for i in range(5)))
    assert stored == [True] * 5
    assert again == [False] * 5
    assert len(await store.conversation_messages(OWNER, AGENT, ALICE)) == 5


async def test_a_status_moves_forward_until_it_is_final(database: Db) -> None:
    store = MessageStore(database)
    await store.create_outbound_message(sms("SMout"))
    changes = [
        await store.record_status(OWNER, AGENT, ALICE, "SMout", status="sent"),
        await store.record_status(
            OWNER, AGENT, ALICE, "SMout", status="failed", error_code="30005"
        ),
        await store.record_status(OWNER, AGENT, ALICE, "SMout", status="delivered"),
        await store.record_status(OWNER, AGENT, ALICE, "SMother", status="sent"),
    ]
    (message,) = await store.conversation_messages(OWNER, AGENT, ALICE)
    assert changes == [True, True, False, False]
    assert (message.status, message.error_code) == ("failed", "30005")
    with pytest.raises(InvalidPhoneNumber):
        await store.record_status(OWNER, "nope", ALICE, "SMout", status="sent")

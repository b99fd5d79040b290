"""SMS conversations: the `messages` collection, one document per `(userId, agent_id,
user_number)`.

The shape is seed 000's: `agent_id` is the agent's number (an inbound SMS's `To`),
`user_number` the other party's, and `messages` the conversation in arrival order. A
conversation belongs to the user who held the number when it was written: a number that is
deleted and registered again by someone else starts new conversations, and every read and write
here names the owner, so one owner never reads, extends or changes another's (migration 5 keys
the older documents by owner). Documents of the older shape (one per `agent_id`, `user_number`
inside each message) are still read, for the owner they name, until migration 2 splits them;
the API views read the new shape only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Literal, TypeVar
from uuid import uuid4

from pydantic import BaseModel, ConfigDict
from pymongo.errors import DuplicateKeyError

from stores.database import Database
from stores.documents import UtcDatetime, as_utc, from_document, utc_now
from stores.owned import Listing, ListQuery, OwnedCollection
from stores.phone_numbers import E164, normalize_phone_number

COLLECTION = "messages"
HISTORY = timedelta(hours=24)
NEW_SHAPE = {"user_number": {"$exists": True}}
# Twilio's final message statuses: status callbacks arrive out of order, and once one of these
# is stored no later callback changes it (docs/twilio.md §7).
FINAL_STATUSES = ("delivered", "undelivered", "failed", "canceled", "read")


class Media(BaseModel):
    """One MMS attachment as Twilio hosts it (`MediaUrl{i}`, `MediaContentType{i}`)."""

    url: str
    content_type: str


class Message(BaseModel):
    """One SMS. Assistant messages carry what produced them: model, token usage, timings."""

    model_config = ConfigDict(extra="allow")  # older documents carry fields of their own

    message_sid: str
    agent_number: str
    body: str
    conversation_id: str
    direction: Literal["inbound", "outbound"]
    role: Literal["user", "assistant"]
    timestamp: UtcDatetime
    model: str | None = None
    usage: dict[str, int] | None = None
    metrics: dict[str, float] | None = None
    media: list[Media] | None = None
    status: str | None = None  # Twilio's delivery status of an outbound message
    error_code: str | None = None


AnyMessage = TypeVar("AnyMessage", bound=Message)


class NewMessage(BaseModel):
    """A message to store; the numbers are normalised to E.164."""

    agent_id: E164
    user_number: E164
    userId: str
    message_sid: str
    body: str
    conversation_id: str
    timestamp: UtcDatetime
    model: str | None = None
    usage: dict[str, int] | None = None
    metrics: dict[str, float] | None = None
    media: list[Media] | None = None
    status: str | None = None


class ConversationMessage(Message):
    """A message with its conversation's `user_number`, for views across conversations."""

    user_number: str


class Conversation(BaseModel):
    id: str
    agent_id: str
    user_number: str
    userId: str
    messages: list[Message]
    created_at: UtcDatetime
    updated_at: UtcDatetime


def old_shape_split(document: Mapping[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """An old one-per-agent document's messages by `user_number`, which each loses."""
    by_user: dict[str, list[dict[str, Any]]] = {}
    for message in document.get("messages", []):
        fields = {key: value for key, value in message.items() if key != "user_number"}
        by_user.setdefault(message.get("user_number", ""), []).append(fields)
    return by_user


def current_conversation_id(history: Sequence[Message]) -> str:
    """The id a new message joins: a `conversation_id` spans messages less than 24 hours
    apart (the LLM's memory, `HISTORY`), so a quiet day starts a new one."""
    return history[-1].conversation_id if history else uuid4().hex


def _in_order(messages: Iterable[AnyMessage]) -> list[AnyMessage]:
    """Messages by timestamp, each `message_sid` once (a half-migrated database has copies)."""
    unique = {message.message_sid: message for message in messages}
    return sorted(unique.values(), key=lambda message: message.timestamp)


class MessageStore:
    """The `messages` collection: the operations seed 000 lists, and the per-owner views."""

    def __init__(self, db: Database) -> None:
        self._collection = db[COLLECTION]
        self._owned = OwnedCollection(self._collection, Conversation, soft_delete=False)

    async def create_message(self, message: NewMessage) -> bool:
        """Store an inbound SMS from the user; False if its `message_sid` is already stored."""
        return await self._append(message, direction="inbound", role="user")

    async def create_outbound_message(self, message: NewMessage) -> bool:
        """Store the agent's reply; False if its `message_sid` is already stored."""
        return await self._append(message, direction="outbound", role="assistant")

    async def _append(
        self, message: NewMessage, direction: Literal["inbound", "outbound"], role: str
    ) -> bool:
        """Push onto the owner's conversation document, creating it on the first message.

        The filter skips a document that already holds the `message_sid`: then the upsert
        collides with the unique `(userId, agent_id, user_number)` index, which is how a Twilio
        retry is told apart from a new message. A collision can also mean that another
        message created the document at the same moment; the plain update that follows
        tells the two apart (MongoDB does not retry such an upsert itself: the filter is
        not only equalities on the index's fields).
        """
        stored = message.model_dump(exclude={"agent_id", "user_number", "userId"}, mode="python")
        stored |= {"agent_number": message.agent_id, "direction": direction, "role": role}
        now = utc_now()
        key = _key(message.userId, message.agent_id, message.user_number)
        absent = {**key, "messages.message_sid": {"$ne": message.message_sid}}
        push = {
            "$push": {"messages": {k: v for k, v in stored.items() if v is not None}},
            "$set": {"updated_at": now},
        }
        try:
            await self._collection.update_one(
                absent, {**push, "$setOnInsert": {"created_at": now}}, upsert=True
            )
        except DuplicateKeyError:
            result = await self._collection.update_one(absent, push)
            return result.modified_count == 1
        return True

    async def record_status(
        self,
        user_id: str,
        agent_id: str,
        user_number: str,
        message_sid: str,
        *,
        status: str,
        error_code: str = "",
    ) -> bool:
        """Set an outbound message's delivery `status` (and `error_code`, if any) in the
        owner's conversation unless a final status is stored already; False when nothing
        changed.

        `updated_at` stays the time of the conversation's latest message, which orders the
        conversation list. Raises InvalidPhoneNumber if a number cannot be normalised.
        """
        key = _key(user_id, normalize_phone_number(agent_id), normalize_phone_number(user_number))
        not_final = {"message_sid": message_sid, "status": {"$nin": list(FINAL_STATUSES)}}
        fields = {"messages.$.status": status}
        if error_code:
            fields["messages.$.error_code"] = error_code
        result = await self._collection.update_one(
            {**key, "messages": {"$elemMatch": not_final}}, {"$set": fields}
        )
        return result.modified_count == 1

    async def conversation_messages(
        self, user_id: str, agent_id: str, user_number: str
    ) -> list[Message]:
        """The owner's messages between the two numbers, oldest first, from either document
        shape. Raises InvalidPhoneNumber if a number cannot be normalised (so do the
        look-ups below that take numbers)."""
        agent, user = normalize_phone_number(agent_id), normalize_phone_number(user_number)
        query = self._owned.scope(
            user_id,
            agent_id=agent,
            **{"$or": [{"user_number": user}, {"user_number": {"$exists": False}}]},
        )
        documents = await self._collection.find(query).to_list(None)
        found: list[Message] = []
        for document in documents:
            if "user_number" in document:
                found += [Message.model_validate(m) for m in document["messages"]]
            else:
                old = old_shape_split(document).get(user, [])
                found += [Message.model_validate(m) for m in old]
        return _in_order(found)

    async def conversation_exists(self, user_id: str, agent_id: str, user_number: str) -> bool:
        return bool(await self.conversation_messages(user_id, agent_id, user_number))

    async def last_24h_messages(
        self, user_id: str, agent_id: str, user_number: str, now: datetime
    ) -> list[Message]:
        """The owner's conversation's last 24 hours before `now`: the LLM's history."""
        since = as_utc(now) - HISTORY
        messages = await self.conversation_messages(user_id, agent_id, user_number)
        return [message for message in messages if message.timestamp >= since]

    async def conversation_id(self, user_id: str, agent_id: str, user_number: str) -> str | None:
        """The `conversation_id` of the most recent message, if there is any."""
        messages = await self.conversation_messages(user_id, agent_id, user_number)
        return messages[-1].conversation_id if messages else None

    async def messages_by_agent(self, user_id: str, agent_id: str) -> list[ConversationMessage]:
        """The owner's messages on the agent's number, each with its `user_number`, oldest
        first."""
        query = self._owned.scope(user_id, agent_id=normalize_phone_number(agent_id))
        documents = await self._collection.find(query).to_list(None)
        return _flatten(documents)

    async def all_messages(
        self, user_id: str, conversation_id: str | None = None
    ) -> list[ConversationMessage]:
        """The owner's messages (optionally of one `conversation_id`), oldest first."""
        query: dict[str, Any] = self._owned.scope(user_id, **NEW_SHAPE)
        if conversation_id is not None:
            query["messages.conversation_id"] = conversation_id
        documents = await self._collection.find(query).to_list(None)
        messages = _flatten(documents)
        if conversation_id is None:
            return messages
        return [m for m in messages if m.conversation_id == conversation_id]

    async def get(self, user_id: str, conversation_id: str) -> Conversation | None:
        """The owner's conversation document by id; None for anyone else's."""
        return await self._owned.get(user_id, conversation_id)

    async def conversations(self, user_id: str, query: ListQuery) -> Listing[Conversation]:
        """A page of the owner's conversations, each with only its latest message."""
        order = -1 if query.descending else 1
        documents = await self._collection.find(
            self._owned.scope(user_id, **(NEW_SHAPE | dict(query.filters))),
            {"messages": {"$slice": -1}},
            sort=[(query.sort, order), ("_id", order)],
            skip=query.offset,
            limit=query.limit + 1,
        ).to_list(None)
        items = [from_document(Conversation, d) for d in documents[: query.limit]]
        return Listing(items, has_more=len(documents) > query.limit)


def _key(user_id: str, agent_id: str, user_number: str) -> dict[str, str]:
    """A conversation document's key (numbers already normalised)."""
    return {"userId": user_id, "agent_id": agent_id, "user_number": user_number}


def _flatten(documents: Iterable[Mapping[str, Any]]) -> list[ConversationMessage]:
    found: list[ConversationMessage] = []
    for document in documents:
        if "user_number" in document:
            groups = {document["user_number"]: document["messages"]}
        else:
            groups = old_shape_split(document)
        for user, messages in groups.items():
            found += [
                ConversationMessage.model_validate({**m, "user_number": user}) for m in messages
            ]
    return _in_order(found)

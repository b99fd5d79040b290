"""Agents: the `agents` collection and the incoming-call look-up."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from stores.database import Database
from stores.documents import UtcDatetime, from_document, object_id, utc_now
from stores.phone_numbers import E164, PhoneNumberStore, normalize_phone_number
from stores.turn_taking import TurnTaking

COLLECTION = "agents"
# `updated_at` has millisecond precision; the ObjectId orders agents written in the same ms.
_NEWEST_FIRST = [("updated_at", -1), ("_id", -1)]


class AgentCreate(BaseModel):
    name: str
    phoneNumber: E164
    userId: str
    direction: Literal["incoming", "outgoing"] = "incoming"
    sttModel: str
    inferenceModel: str
    ttsModel: str
    ttsVoice: str
    systemPrompt: str
    greeting: str = ""
    temperature: float = 0.7
    maxTokens: int = 300
    active: bool = True
    turnTaking: TurnTaking = Field(default_factory=TurnTaking)


class Agent(AgentCreate):
    id: str
    isDeleted: bool
    created_at: UtcDatetime
    updated_at: UtcDatetime


class AgentStore:
    """The `agents` collection."""

    def __init__(self, db: Database) -> None:
        self._collection = db[COLLECTION]
        self._phone_numbers = PhoneNumberStore(db)

    async def create(self, data: AgentCreate) -> Agent:
        now = utc_now()
        document = {**data.model_dump(), "isDeleted": False, "created_at": now, "updated_at": now}
        await self._collection.insert_one(document)
        return from_document(Agent, document)

    async def get(self, agent_id: str) -> Agent | None:
        """The agent with this id, deleted or not; None if the id is not an ObjectId."""
        oid = object_id(agent_id)
        if oid is None:
            return None
        document = await self._collection.find_one({"_id": oid})
        return None if document is None else from_document(Agent, document)

    async def find_for_incoming_call(self, phone_number: str) -> Agent | None:
        """The agent that answers a call dialled to `phone_number` (Twilio's `To`), if any.

        The number must be registered, active and not deleted; the agent must be active, not
        deleted, `incoming`, on that number and owned by the number's owner. If several
        agents qualify, the most recently updated one wins (ties: the newest `_id`).
        Raises InvalidPhoneNumber if `phone_number` cannot be normalised.
        """
        number = normalize_phone_number(phone_number)
        registered = await self._phone_numbers.find_active(number)
        if registered is None:
            return None
        query = {
            "phoneNumber": number,
            "direction": "incoming",
            "active": True,
            "isDeleted": False,
            "userId": registered.userId,
        }
        document = await self._collection.find_one(query, sort=_NEWEST_FIRST)
        return None if document is None else from_document(Agent, document)

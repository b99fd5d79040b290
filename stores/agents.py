"""Agents: the `agents` collection and the incoming-call look-up.

Given the app's `directory` (`stores.directory`), the store answers `find_for_incoming_call`
and `get` from it and every write here empties it; without one, every read goes to the
database.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field

from stores import phone_numbers
from stores.database import Database
from stores.directory import Directory
from stores.documents import UtcDatetime, from_document, object_id
from stores.owned import Listing, ListQuery, OwnedCollection
from stores.phone_numbers import E164, normalize_phone_number
from stores.turn_taking import TurnTaking

COLLECTION = "agents"
# `updated_at` has millisecond precision; the ObjectId orders agents written in the same ms.
_NEWEST_FIRST = [("updated_at", -1), ("_id", -1)]


Direction = Literal["incoming", "outgoing"]
Text = Annotated[str, Field(min_length=1)]


class AgentFields(BaseModel):
    """What an owner sets on an agent; `phoneNumber` must be one of the owner's numbers."""

    name: Text
    phoneNumber: E164
    direction: Direction = "incoming"
    sttModel: Text
    inferenceModel: Text
    ttsModel: Text
    ttsVoice: Text
    systemPrompt: str
    greeting: str = ""
    temperature: float = Field(default=0.7, ge=0, le=2)
    maxTokens: int = Field(default=300, ge=1, le=16384)
    active: bool = True
    turnTaking: TurnTaking = Field(default_factory=TurnTaking)


class AgentCreate(AgentFields):
    userId: str


class AgentUpdate(BaseModel):
    """A partial change; absent (or null) fields are left as they are."""

    name: str | None = Field(default=None, min_length=1)
    phoneNumber: E164 | None = None
    direction: Direction | None = None
    sttModel: str | None = Field(default=None, min_length=1)
    inferenceModel: str | None = Field(default=None, min_length=1)
    ttsModel: str | None = Field(default=None, min_length=1)
    ttsVoice: str | None = Field(default=None, min_length=1)
    systemPrompt: str | None = None
    greeting: str | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    maxTokens: int | None = Field(default=None, ge=1, le=16384)
    active: bool | None = None
    turnTaking: TurnTaking | None = None


class Agent(AgentCreate):
    id: str
    isDeleted: bool
    created_at: UtcDatetime
    updated_at: UtcDatetime


class AgentStore:
    """The `agents` collection."""

    def __init__(self, db: Database, directory: Directory | None = None) -> None:
        self._collection = db[COLLECTION]
        self._owned = OwnedCollection(self._collection, Agent)
        self._numbers = db[phone_numbers.COLLECTION]
        self._directory = directory or Directory(unfollowed_max_age_s=0)

    async def create(self, data: AgentCreate) -> Agent:
        fields = data.model_dump(exclude={"userId"})
        return await self._directory.written(self._owned.insert(data.userId, fields))

    async def get_owned(self, user_id: str, agent_id: str) -> Agent | None:
        """The owner's live agent with this id; None for anyone else's, or a deleted one."""
        return await self._owned.get(user_id, agent_id)

    async def page(self, user_id: str, query: ListQuery) -> Listing[Agent]:
        return await self._owned.find(user_id, query)

    async def update(self, user_id: str, agent_id: str, change: AgentUpdate) -> Agent | None:
        fields = change.model_dump(exclude_none=True)
        return await self._directory.written(self._owned.update(user_id, agent_id, fields))

    async def delete(self, user_id: str, agent_id: str) -> bool:
        return await self._directory.written(self._owned.soft_delete(user_id, agent_id))

    async def get(self, agent_id: str) -> Agent | None:
        """The agent with this id, deleted or not; None if the id is not an ObjectId."""
        return await self._directory.through(
            ("agent", agent_id), Agent, lambda: self._read(agent_id)
        )

    async def _read(self, agent_id: str) -> Agent | None:
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
        return await self._directory.through(
            ("incoming", number),
            Agent,
            lambda: self._read_incoming(number),
            related=lambda agent: {("agent", agent.id): agent},  # for the stream start
        )

    async def _read_incoming(self, number: str) -> Agent | None:
        live = {"phoneNumber": number, "isActive": True, "isDeleted": False}
        registered = await self._numbers.find_one(live, {"userId": 1})
        if registered is None:
            return None
        query = {
            "phoneNumber": number,
            "direction": "incoming",
            "active": True,
            "isDeleted": False,
            "userId": registered["userId"],
        }
        document = await self._collection.find_one(query, sort=_NEWEST_FIRST)
        return None if document is None else from_document(Agent, document)

    async def find_for_outbound_call(self, user_id: str, phone_number: str) -> Agent | None:
        """The agent whose models and voice a call placed from `phone_number` uses: the
        owner's active `outgoing` agent on it, else their `incoming` one (newest first)."""
        query = {"phoneNumber": phone_number, "active": True, "isDeleted": False}
        for direction in ("outgoing", "incoming"):
            document = await self._collection.find_one(
                query | {"userId": user_id, "direction": direction}, sort=_NEWEST_FIRST
            )
            if document is not None:
                return from_document(Agent, document)
        return None

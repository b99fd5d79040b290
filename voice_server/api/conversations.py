"""`/api/conversations` and `/api/messages`: the caller's SMS conversations (seed 000's shape).

Reads only: messages are written by the SMS webhook and by `POST /api/messages`
(`voice_server.api.messages_send`). A conversation is one `(agent_id,
user_number)` pair of the caller's (another user who held the same number before or after has
conversations of its own); the list shows each with its latest message only.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from stores.messages import Conversation, ConversationMessage
from stores.owned import Listing
from stores.phone_numbers import E164
from voice_server.api.envelope import not_found
from voice_server.api.operations import ApiRequest, Operation

TAG = "conversations"


class ConversationFilters(BaseModel):
    model_config = ConfigDict(extra="forbid")

    agent_id: E164 | None = None
    user_number: E164 | None = None


class MessageFilters(BaseModel):
    model_config = ConfigDict(extra="forbid")

    conversation_id: str | None = None


async def list_conversations(request: ApiRequest) -> Listing[Conversation]:
    return await request.services.messages.conversations(request.user_id, request.listing)


async def read_conversation(request: ApiRequest) -> Conversation:
    found = await request.services.messages.get(request.user_id, request.doc_id)
    if found is None:
        raise not_found("conversation")
    return found


async def list_messages(request: ApiRequest) -> Listing[ConversationMessage]:
    """The caller's messages across conversations, paged newest (or oldest) first."""
    query = request.listing
    found = await request.services.messages.all_messages(
        request.user_id, query.filters.get("conversation_id")
    )
    if query.descending:
        found.reverse()
    end = query.offset + query.limit
    return Listing(found[query.offset : end], has_more=len(found) > end)


OPERATIONS = [
    Operation("GET", "/conversations", "List SMS conversations with their latest message",
              TAG, list_conversations, Conversation, filters=ConversationFilters,
              sorts=("updated_at", "created_at"), errors=(422,)),
    Operation("GET", "/conversations/{id}", "Read an SMS conversation with all its messages",
              TAG, read_conversation, Conversation, errors=(404,)),
    Operation("GET", "/messages", "List SMS messages across conversations", TAG,
              list_messages, ConversationMessage, filters=MessageFilters,
              sorts=("timestamp",), errors=(422,)),
]  # fmt: skip

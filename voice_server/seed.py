"""A demo phone number and agent, created once and reused (`voice-server seed`, the demo)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from stores.agents import AgentCreate, AgentStore, AgentUpdate
from stores.database import Database
from stores.phone_numbers import (
    PhoneNumber,
    PhoneNumberCreate,
    PhoneNumberStore,
    PhoneNumberUpdate,
)
from stores.secrets import SecretBox, SecretUnreadable
from voice_server.providers import local, local_whisper

DEMO_NUMBER = "+15550100100"
DEMO_CALLER = "+15550100199"
DEMO_USER = "demo-user"
DEMO_STT_MODEL = local_whisper.STT_MODEL
"""The demo agent's recogniser (stand-ins replace it under this name in tests)."""
OFFLINE_MODELS = AgentUpdate(
    sttModel=DEMO_STT_MODEL, inferenceModel=local.LLM_MODEL, ttsModel=local.TTS_MODEL
)
"""The demo agent's models: all offline, needing no key and no network."""


@dataclass(frozen=True)
class DemoLine:
    number: str
    auth_token: str
    agent_id: str
    account_sid: str = "AC" + "0" * 32


async def find_line(db: Database, box: SecretBox, number: str) -> DemoLine | None:
    """`number` as a caller needs it (its token opened with `box`), if it is registered and an
    agent answers it. Raises SecretUnreadable if `box` did not seal its token."""
    registered = await PhoneNumberStore(db, box).find_registered(number)
    agent = await AgentStore(db).find_for_incoming_call(number)
    if registered is None or agent is None:
        return None
    token = PhoneNumberStore(db, box).auth_token(registered)
    return DemoLine(registered.phoneNumber, token, agent.id, registered.twilioAccountSid)


async def seed_demo(db: Database, box: SecretBox, number: str = DEMO_NUMBER) -> DemoLine:
    """Make sure `number` is registered with an active incoming agent on the local models.

    `box` must be the server's (see voice_server.security.secret_key): it seals the number's token.
    """
    phone_numbers, agents = PhoneNumberStore(db, box), AgentStore(db)
    registered = await phone_numbers.find_registered(number)
    if registered is None:
        registered = await phone_numbers.create(
            PhoneNumberCreate(
                phoneNumber=number,
                twilioAccountSid="AC" + "0" * 32,
                twilioAuthToken=secrets.token_hex(16),
                userId=DEMO_USER,
            )
        )
    auth_token = await _readable_token(phone_numbers, registered)
    agent = await agents.find_for_incoming_call(number)
    if agent is None:
        agent = await agents.create(
            AgentCreate(
                name="Demo agent",
                phoneNumber=number,
                userId=DEMO_USER,
                **OFFLINE_MODELS.model_dump(exclude_none=True),
                ttsVoice="en-us",
                systemPrompt="You are a friendly receptionist. Answer in one or two sentences.",
                greeting="Hello! You have reached the demo agent. How can I help you?",
            )
        )
    return DemoLine(
        number=registered.phoneNumber,
        auth_token=auth_token,
        agent_id=agent.id,
        account_sid=registered.twilioAccountSid,
    )


async def _readable_token(phone_numbers: PhoneNumberStore, registered: PhoneNumber) -> str:
    """The demo number's token; a new one if it was sealed under another key (or stored in
    plain text before tokens were sealed), since the demo's caller needs to know it."""
    try:
        return phone_numbers.auth_token(registered)
    except SecretUnreadable:
        token = secrets.token_hex(16)
        change = PhoneNumberUpdate(twilioAuthToken=token)
        await phone_numbers.update(registered.userId, registered.id, change)
        return token

"""Builders of valid create models, so each test states only what it is about."""

from datetime import UTC, datetime
from typing import Any

from stores.agents import AgentCreate
from stores.calls import CallCreate
from stores.phone_numbers import PhoneNumberCreate
from stores.secrets import SecretBox

START = datetime(2025, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
# Seals the numbers' auth tokens in store tests.
BOX = SecretBox(SecretBox.generate_key())


def phone_number(number: str, **fields: Any) -> PhoneNumberCreate:
    values = {"twilioAccountSid": "AC123", "twilioAuthToken": "secret", "userId": "user-1"}
    return PhoneNumberCreate.model_validate({**values, "phoneNumber": number, **fields})


def agent(number: str, **fields: Any) -> AgentCreate:
    values = {
        "name": "Front desk",
        "userId": "user-1",
        "sttModel": "whisper-1",
        "inferenceModel": "gpt-4o-mini",
        "ttsModel": "tts-1",
        "ttsVoice": "alloy",
        "systemPrompt": "You are helpful.",
    }
    return AgentCreate.model_validate({**values, "phoneNumber": number, **fields})


def call(call_sid: str = "CA1", **fields: Any) -> CallCreate:
    values = {
        "call_sid": call_sid,
        "from_number": "+15557654321",
        "to_number": "+15551234567",
        "agent_id": "agent-1",
        "userId": "user-1",
        "session_id": "session-1",
        "start_time": START,
    }
    return CallCreate.model_validate({**values, **fields})

"""A texting line for the SMS tests: the real app under uvicorn on a fresh database, a demo number
and agent, the fake Twilio REST API, and a deterministic LLM that echoes what it was given."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr
from pymongo.asynchronous.database import AsyncDatabase
from twilio.request_validator import RequestValidator

from stores.api_keys import ApiKeyStore
from stores.messages import Message, MessageStore
from tests.voice_server.twilio_fake import FakeTwilio, serve_fake_twilio
from voice_server.providers import local
from voice_server.providers.base import LlmRequest, LlmUsage, ProviderError
from voice_server.providers.registry import local_registry
from voice_server.security.secret_key import secret_box
from voice_server.seed import DEMO_CALLER, DEMO_USER, DemoLine, seed_demo
from voice_server.serving import serve_in_background
from voice_server.settings import Settings

Db = AsyncDatabase[dict[str, Any]]
ACCOUNT_SID = "AC" + "0" * 32  # the demo number's (voice_server.seed)
DEPLOYMENT_TOKEN = "deployment-token"


def echo(request: LlmRequest) -> str:
    """The conversation the LLM was given, system prompt left out: `role: text | …`."""
    return " | ".join(f"{m.role}: {m.content}" for m in request.messages if m.role != "system")


@dataclass
class EchoingLanguageModel:
    """Answers with the history it received. With a `gate`, it waits for the gate first; with
    `fail`, it then raises ProviderError instead of answering."""

    gate: asyncio.Event | None = None
    fail: bool = False
    requests: list[LlmRequest] = field(default_factory=list)

    async def stream(self, request: LlmRequest, usage: LlmUsage) -> AsyncGenerator[str, None]:
        self.requests.append(request)
        if self.gate is not None:
            await self.gate.wait()
        if self.fail:
            raise ProviderError("scripted failure", provider="echo")
        usage.prompt_tokens, usage.completion_tokens = len(request.messages), 1
        yield echo(request)


@dataclass(frozen=True)
class SmsLine:
    base_url: str
    db: Db
    demo: DemoLine
    twilio: FakeTwilio
    llm: EchoingLanguageModel

    @property
    def number(self) -> str:
        return self.demo.number

    async def post(
        self, path: str, form: dict[str, str], token: str | None = None
    ) -> httpx.Response:
        """POST a form signed as Twilio signs it (with the number's token unless told)."""
        url = f"{self.base_url}{path}"
        signature = RequestValidator(token or self.demo.auth_token).compute_signature(url, form)
        async with httpx.AsyncClient(timeout=15) as http:  # as long as Twilio waits
            return await http.post(url, data=form, headers={"X-Twilio-Signature": signature})

    async def text(self, body: str, sid: str, **fields: str) -> httpx.Response:
        return await self.post("/twilio/sms", sms_form(self.number, body, sid, **fields))

    async def conversation(self, user: str = DEMO_CALLER, owner: str = DEMO_USER) -> list[Message]:
        return await MessageStore(self.db).conversation_messages(owner, self.number, user)


@asynccontextmanager
async def as_user(line: SmsLine, user_id: str) -> AsyncIterator[httpx.AsyncClient]:
    key = await ApiKeyStore(line.db).create(user_id)
    headers = {"Authorization": f"Bearer {key.secret}"}
    async with httpx.AsyncClient(base_url=f"{line.base_url}/api", headers=headers) as http:
        yield http


def sms_form(to: str, body: str, sid: str, **fields: str) -> dict[str, str]:
    form = {
        "MessageSid": sid,
        "SmsSid": sid,
        "AccountSid": ACCOUNT_SID,
        "From": DEMO_CALLER,
        "To": to,
        "Body": body,
        "NumMedia": "0",
        "SmsStatus": "received",
        "ApiVersion": "2010-04-01",
    }
    return form | fields


@asynccontextmanager
async def open_sms_line(
    database: Db,
    tmp_path: Path,
    llm: EchoingLanguageModel,
    budget_s: float = 5.0,
    speech_agent_text_model: str = local.LLM_MODEL,
) -> AsyncIterator[SmsLine]:
    async with serve_fake_twilio() as twilio:
        settings = Settings(
            data_dir=tmp_path,
            log_format="console",
            twilio_auth_token=SecretStr(DEPLOYMENT_TOKEN),
            twilio_api_base_url=twilio.base_url,
            sms_reply_budget_seconds=budget_s,
            speech_agent_text_model=speech_agent_text_model,
        )
        demo = await seed_demo(database, secret_box(settings))
        providers = dataclasses.replace(local_registry(), llm={local.LLM_MODEL: llm})
        async with serve_in_background(settings, database, providers) as base_url:
            yield SmsLine(base_url, database, demo, twilio, llm)

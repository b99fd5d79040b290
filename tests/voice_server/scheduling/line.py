"""A server whose scheduled calls ring simulated callees: the real app under uvicorn with its
`twilio` client pointed at the Twilio stand-in (which dials the callees and plays them), the
demo number and agent, and helpers to schedule calls on it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from stores.agents import AgentStore
from stores.change_streams import open_change_stream
from stores.phone_numbers import PhoneNumberStore
from stores.prompts import PromptCreate, PromptStore
from stores.scheduled_call_runs import ScheduledCallRuns
from stores.scheduled_calls import (
    COLLECTION,
    ScheduledCall,
    ScheduledCallCreate,
    ScheduledCallStore,
)
from tests.voice_server.call.scripted import Reply, ScriptedLanguageModel
from tests.voice_server.fakes import EchoingSpeechToText
from voice_server.providers import local
from voice_server.providers.base import SpeechToSpeech
from voice_server.providers.registry import ProviderRegistry
from voice_server.scheduling.placing import Dialling
from voice_server.scheduling.worker import ScheduledCallWorker
from voice_server.security.secret_key import secret_box
from voice_server.seed import DEMO_STT_MODEL, DEMO_USER, DemoLine, seed_demo
from voice_server.serving import serve_in_background
from voice_server.settings import Settings
from voice_server.simulation.callees import Callee
from voice_server.simulation.caller_script import CallerScript, render_steps
from voice_server.simulation.twilio_standin import TwilioStandin, serve_twilio_standin
from voice_server.twilio_api.rest import TwilioRest

Db = AsyncDatabase[dict[str, Any]]
PROMPT = "You are calling to remind Sam of the dentist appointment on Tuesday at ten."
OPENER = "Hi Sam, this is the dental office with a reminder."
CALLEE_SAYS = "Yes, I can talk now."
CALLEE = Callee(script=CallerScript(turns=(CALLEE_SAYS,)), hang_up_after_s=5.0)


@dataclass(frozen=True)
class Line:
    """The running server and stand-in, and what was seeded."""

    db: Db
    settings: Settings
    standin: TwilioStandin
    demo: DemoLine
    number_id: str
    prompt_id: str
    llm: ScriptedLanguageModel
    base_url: str

    async def schedule(self, **fields: Any) -> ScheduledCall:
        """A scheduled call from the demo number, due now unless told otherwise; an `ai` call
        on the seeded prompt (its text as the snapshot) unless told otherwise."""
        values: dict[str, Any] = {
            "callType": "ai",
            "fromPhoneNumberId": self.number_id,
            "toPhoneNumbers": ["+15550100300"],
            "scheduledDateTime": datetime.now(UTC),
            "promptId": self.prompt_id,
            "promptContent": PROMPT,
            "userId": DEMO_USER,
        }
        return await ScheduledCallStore(self.db).create(ScheduledCallCreate(**values | fields))

    async def current(self, call_id: str) -> ScheduledCall:
        call = await ScheduledCallRuns(self.db).get(call_id)
        assert call is not None
        return call


async def callee_renders(*heard: str) -> dict[str, bytes]:
    """The callee's words as the stand-in sends them, for the recogniser stand-in (which
    hears those only)."""
    script = CallerScript(turns=heard)
    renders = await render_steps(script)
    return {step.text: audio for step, audio in renders.items() if hasattr(step, "text")}


@asynccontextmanager
async def calling_line(
    database: Db,
    settings: Settings,
    *replies: str | Reply,
    worker: bool = True,
    standin: TwilioStandin | None = None,
    heard: tuple[str, ...] = (CALLEE.first_words, CALLEE_SAYS),
    speech: SpeechToSpeech | None = None,
) -> AsyncIterator[Line]:
    """The stand-in and the server (with its scheduled-call worker unless `worker` is False)
    on the demo number, whose agent answers with `replies` in turn and hears the callee's
    words in `heard` (any other sound: no words); `speech` serves speech-to-speech agents."""
    demo = await seed_demo(database, secret_box(settings))
    number = await PhoneNumberStore(database, secret_box(settings)).find_registered(demo.number)
    assert number is not None
    prompt = await PromptStore(database).create(
        PromptCreate(name="Reminder", content=PROMPT, phoneNumberId=number.id, userId=DEMO_USER)
    )
    llm = ScriptedLanguageModel(*replies)
    providers = ProviderRegistry(
        stt={DEMO_STT_MODEL: EchoingSpeechToText(await callee_renders(*heard))},
        llm={local.LLM_MODEL: llm},
        tts={local.TTS_MODEL: local.EspeakTextToSpeech()},
        default_llm=llm if speech else None,  # a speech-to-speech agent's texts
        default_speech=speech,
    )
    async with serve_twilio_standin(standin or TwilioStandin(default_callee=CALLEE)) as twilio:
        served = settings.model_copy(
            update={"twilio_api_base_url": twilio.base_url, "scheduler": worker}
        )
        async with serve_in_background(served, database, providers) as base_url:
            yield Line(
                database,
                served.model_copy(update={"public_base_url": base_url}),
                twilio,
                demo,
                number.id,
                prompt.id,
                llm,
                base_url,
            )


def later(seconds: float) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=seconds)


@asynccontextmanager
async def workers(
    line: Line, count: int = 1, twilio_timeout_s: float = 10.0, **dialling: Any
) -> AsyncIterator[None]:
    """`count` scheduled-call workers of their own (as in that many servers), placing calls
    through the stand-in with `dialling`'s policy, for the block."""
    twilio = TwilioRest(line.settings.twilio_api_base_url, twilio_timeout_s)
    running = [
        asyncio.create_task(
            ScheduledCallWorker(
                line.db,
                Dialling(
                    runs=ScheduledCallRuns(line.db),
                    numbers=PhoneNumberStore(line.db, secret_box(line.settings)),
                    prompts=PromptStore(line.db),
                    agents=AgentStore(line.db),
                    twilio=twilio,
                    settings=line.settings,
                    **dialling,
                ),
                name=f"worker-{n}",
            ).run()
        )
        for n in range(count)
    ]
    try:
        yield
    finally:
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
        await twilio.aclose()


async def settled(line: Line | Db, call_id: str, within_s: float = 30.0) -> ScheduledCall:
    """The scheduled call once it is completed or failed (its outcomes come by callback),
    looked at again at each write to the collection."""
    db = line.db if isinstance(line, Line) else line
    runs = ScheduledCallRuns(db)

    async def current() -> ScheduledCall:
        call = await runs.get(call_id)
        assert call is not None
        return call

    pipeline: list[dict[str, Any]] = [{"$project": {"operationType": 1}}]
    async with asyncio.timeout(within_s), open_change_stream(db, COLLECTION, pipeline) as changes:
        call = await current()
        writes = aiter(changes)
        while call.status not in ("completed", "failed"):
            await anext(writes)
            call = await current()
    return call

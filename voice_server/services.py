"""What the routes share for the life of the app: settings, stores, providers and caches.

One container on purpose: everything in it is opened once by the app's lifespan
(`voice_server.app.create_app`), closed with it, and reaches a route as `request.state.services`,
Starlette's one seam for lifespan state. It holds no behaviour of its own; each edge takes the
few members it needs, and tests inject a different database or providers through `create_app`.
"""

from __future__ import annotations

from dataclasses import dataclass

from stores.agents import AgentStore
from stores.api_keys import ApiKeyStore
from stores.calls import CallStore
from stores.messages import MessageStore
from stores.phone_numbers import PhoneNumberStore
from stores.prompts import PromptStore
from stores.scheduled_call_runs import ScheduledCallRuns
from stores.scheduled_calls import ScheduledCallStore
from voice_server.call.greetings import GreetingCache
from voice_server.calllog.event_tokens import EventTokens, LiveKeys
from voice_server.calllog.watchers import CallLog
from voice_server.live_calls import LiveCalls
from voice_server.providers.registry import ProviderRegistry
from voice_server.security.stream_tokens import PendingStreams, StreamTokens
from voice_server.settings import Settings
from voice_server.twilio_api.rest import TwilioRest


@dataclass(frozen=True)
class Services:
    settings: Settings
    phone_numbers: PhoneNumberStore
    agents: AgentStore
    calls: CallStore
    prompts: PromptStore
    scheduled_calls: ScheduledCallStore
    scheduled_runs: ScheduledCallRuns
    messages: MessageStore
    api_keys: ApiKeyStore
    providers: ProviderRegistry
    tokens: StreamTokens
    pending_streams: PendingStreams
    greetings: GreetingCache
    call_log: CallLog
    event_tokens: EventTokens
    live_keys: LiveKeys
    twilio: TwilioRest
    live_calls: LiveCalls

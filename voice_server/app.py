"""The one wiring point: `create_app()` builds the Starlette app and its lifespan.

The lifespan opens the database client once (unless a database is injected, as tests do) and
builds the stores, providers and caches every route shares, among them the directory of numbers
and agents that call set-up reads (`stores.directory`), kept fresh by a change stream
(`voice_server.directory_feed`) opened before the app serves.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute

from stores.agents import AgentStore
from stores.api_keys import ApiKeyStore
from stores.calls import CallStore
from stores.database import Database, connect, database_name
from stores.directory import Directory
from stores.messages import MessageStore
from stores.phone_numbers import PhoneNumberStore
from stores.prompts import PromptStore
from stores.scheduled_call_runs import ScheduledCallRuns
from stores.scheduled_calls import ScheduledCallStore
from voice_server.access_log import AccessLog
from voice_server.api import NO_ROUTE_HANDLERS, api_mount
from voice_server.api.events import event_routes
from voice_server.body_limits import BodyLimits
from voice_server.call.greetings import GreetingCache
from voice_server.calllog.event_tokens import EventTokens, LiveKeys
from voice_server.calllog.page import page_routes
from voice_server.calllog.watchers import CallLog, CallLogOptions
from voice_server.directory_feed import feeding
from voice_server.live_calls import LiveCalls, keep_alive
from voice_server.metrics import exposition
from voice_server.provider_setup import build_providers
from voice_server.providers.registry import ProviderRegistry
from voice_server.scheduling.worker import scheduled_call_worker
from voice_server.security.secret_key import secret_box
from voice_server.security.stream_tokens import PendingStreams, StreamTokens
from voice_server.services import Services
from voice_server.settings import Settings
from voice_server.sms.webhooks import incoming_sms, message_status
from voice_server.telephony.media_stream import STREAM_PATH, media_stream
from voice_server.telephony.outbound_webhooks import machine_verdict, outbound_answer
from voice_server.telephony.voice_webhooks import call_status, incoming_call
from voice_server.twilio_api.calls import ANSWER_PATH, MACHINE_PATH
from voice_server.twilio_api.rest import TwilioRest


def create_app(
    settings: Settings,
    *,
    database: Database | None = None,
    providers: ProviderRegistry | None = None,
    live_calls: LiveCalls | None = None,
    metrics_folder: Path | None = None,
) -> Starlette:
    """The app; `live_calls` is shared with a server that drains them (`DrainingServer`);
    `metrics_folder` is the one the workers of `serve --workers N` share (`voice_server.metrics`).
    """

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        client = None
        db = database
        if db is None:
            if settings.mongodb_uri is None:
                raise RuntimeError("create_app needs MONGODB_URI or an injected database")
            client = connect(settings.mongodb_uri)
            db = client[database_name(settings.mongodb_uri)]
        greetings = GreetingCache()
        registry, close_providers = build_providers(settings, providers)
        directory = Directory()
        services = Services(
            settings=settings,
            phone_numbers=PhoneNumberStore(db, secret_box(settings), directory),
            agents=AgentStore(db, directory),
            calls=CallStore(db),
            prompts=PromptStore(db),
            scheduled_calls=ScheduledCallStore(db),
            scheduled_runs=ScheduledCallRuns(db),
            messages=MessageStore(db),
            api_keys=ApiKeyStore(db),
            providers=registry,
            tokens=StreamTokens(
                settings.stream_token_secret.get_secret_value(), settings.stream_token_ttl_seconds
            ),
            pending_streams=PendingStreams(settings.max_pending_streams),
            greetings=greetings,
            call_log=CallLog(db, CallStore(db), CallLogOptions()),
            event_tokens=EventTokens(
                settings.stream_token_secret.get_secret_value(), settings.event_token_ttl_seconds
            ),
            live_keys=LiveKeys(ApiKeyStore(db), settings.api_key_recheck_seconds),
            twilio=TwilioRest(settings.twilio_api_base_url),
            live_calls=live_calls or LiveCalls(),
        )
        upkeep = asyncio.create_task(
            keep_alive(
                services.live_calls,
                services.calls,
                every_s=settings.heartbeat_seconds,
                lost_after_s=settings.call_lost_after_seconds,
            ),
            name="call upkeep",
        )
        worker = (
            asyncio.create_task(
                scheduled_call_worker(db, settings, services.twilio).run(), name="scheduler"
            )
            if settings.scheduler
            else None
        )
        try:
            async with (
                feeding(directory, db),
                services.call_log.running(),
                services.twilio.running(),
            ):
                yield {"services": services}
        finally:
            upkeep.cancel()
            if worker is not None:
                worker.cancel()
            await services.twilio.aclose()
            await greetings.close()
            await close_providers()
            if client is not None:
                await client.close()

    routes = [
        Route("/twilio/voice", incoming_call, methods=["POST"]),
        Route("/twilio/status", call_status, methods=["POST"]),
        Route(ANSWER_PATH, outbound_answer, methods=["POST"]),
        Route(MACHINE_PATH, machine_verdict, methods=["POST"]),
        Route("/twilio/sms", incoming_sms, methods=["POST"]),
        Route("/twilio/sms-status", message_status, methods=["POST"]),
        WebSocketRoute(STREAM_PATH, media_stream),
        Route("/health", health, methods=["GET"]),
        Route("/ready", ready, methods=["GET"]),
        Route("/metrics", metrics_of(metrics_folder), methods=["GET"]),
        *event_routes(),  # before /api, whose mount would take the event-stream paths
        *page_routes(),
        api_mount(),
    ]
    middleware = [
        Middleware(AccessLog),
        Middleware(
            BodyLimits,
            webhook_max=settings.webhook_body_max_bytes,
            other_max=settings.api_body_max_bytes,
        ),
    ]
    return Starlette(
        routes=routes,
        middleware=middleware,
        lifespan=lifespan,
        exception_handlers=NO_ROUTE_HANDLERS,
    )


async def health(request: Request) -> Response:
    """GET /health: liveness, answered while the process runs (also while it drains)."""
    return JSONResponse({"status": "ok"})


async def ready(request: Request) -> Response:
    """GET /ready: 503 from the moment the server starts draining, so a load balancer stops
    sending new calls here."""
    services: Services = request.state.services
    if services.live_calls.draining:
        return JSONResponse({"status": "draining"}, status_code=503)
    return JSONResponse({"status": "ready"})


def metrics_of(shared_folder: Path | None) -> Callable[[Request], Awaitable[Response]]:
    async def metrics(request: Request) -> Response:
        """GET /metrics: the counters and gauges (`voice_server.metrics`) for Prometheus."""
        return Response(exposition(shared_folder), media_type=CONTENT_TYPE_LATEST)

    return metrics

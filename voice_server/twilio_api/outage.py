"""What Twilio's webhooks answer while the database is unreachable.

Every webhook reads the database (the number whose token signs it, the agent, the call), and
Twilio plays a 5xx answer to a caller as "an application error has occurred" and waits up to
15 s for one (docs/twilio.md §6). So a webhook's database work has `WEBHOOK_DATABASE_BUDGET_S`
in all (`database_budget()`: PyMongo's client-side operation timeout, which bounds server
selection, connecting and each reply together, whether the database is gone or holds the
connection and says nothing), and a PyMongoError becomes the route's own answer for an outage
(`answers_outage`), logged at ERROR with the webhook's whole form: whatever it could not store
is in the log. Without the number's token the signature cannot be checked, so the line says
whether it was (`signature_verified`), and the outage answer echoes nothing of the form.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager

import pymongo
from pymongo.errors import PyMongoError
from starlette.requests import Request
from starlette.responses import Response

from voice_server.log import get_logger

log = get_logger(__name__)

# Twilio waits 15 s, but a caller hears the silence: the apology comes within ~2 s.
WEBHOOK_DATABASE_BUDGET_S = 2.0

Handler = Callable[[Request], Awaitable[Response]]


def database_budget() -> AbstractContextManager[None]:
    """Database calls made inside fail with a PyMongoError once `WEBHOOK_DATABASE_BUDGET_S`
    has passed since the block began (tasks started inside inherit the deadline)."""
    return pymongo.timeout(WEBHOOK_DATABASE_BUDGET_S)


def answers_outage(
    what: str, answer: Callable[[], Response], *, budget: bool = True
) -> Callable[[Handler], Handler]:
    """Wrap a webhook handler: its database work runs within `database_budget()` (unless
    `budget` is False: the handler bounds it itself), and a PyMongoError from it is logged as
    "the database is unreachable: {what}", with the form, and answered with `answer()`."""

    def wrap(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def handle(request: Request) -> Response:
            try:
                if not budget:
                    return await handler(request)
                with database_budget():
                    return await handler(request)
            except PyMongoError as error:
                form = await request.form()  # read already, before the database was
                log.error(
                    f"the database is unreachable: {what}",
                    path=request.url.path,
                    error=str(error),
                    signature_verified=getattr(request.state, "signature_verified", False),
                    form={key: str(value) for key, value in form.multi_items()},
                )
                return answer()

        return handle

    return wrap

"""Retrying database writes a live call cannot afford to lose (transcript, call end).

Each attempt has its own deadline (`ATTEMPT_TIMEOUT_S`, PyMongo's client-side operation timeout:
server selection, connecting and the reply together), so a database that holds the connection
and answers nothing fails the attempt instead of hanging it. A write retried after its reply was
lost must be idempotent: the callers' writes are conditional updates.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import pymongo
from pymongo.errors import ConnectionFailure, ExecutionTimeout, PyMongoError, WTimeoutError
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_delay,
    wait_exponential,
)

from voice_server.log import get_logger

log = get_logger(__name__)

T = TypeVar("T")
ATTEMPT_TIMEOUT_S = 5.0
Stop = Callable[[RetryCallState], bool]


def transient(error: BaseException) -> bool:
    """Whether `error` says the database was unreachable or slow, not that it refused the
    write: only such errors are worth retrying."""
    if isinstance(error, ConnectionFailure | ExecutionTimeout | WTimeoutError):
        return True  # ConnectionFailure covers AutoReconnect, NetworkTimeout, server selection
    return isinstance(error, PyMongoError) and error.has_error_label("RetryableWriteError")


def _retrying(what: str, stop: float | Stop) -> AsyncRetrying:
    return AsyncRetrying(
        retry=retry_if_exception(transient),
        wait=wait_exponential(multiplier=0.1, max=5.0),
        stop=stop_after_delay(stop) if isinstance(stop, float | int) else stop,
        before_sleep=lambda state: log.warning(
            f"{what} failed, retrying",
            attempt=state.attempt_number,
            error=str(state.outcome.exception()) if state.outcome else None,
        ),
        reraise=True,
    )


async def retry_database(
    what: str, operation: Callable[[], Awaitable[T]], stop: float | Stop = 60.0
) -> T:
    """`operation()`, each try bounded by `ATTEMPT_TIMEOUT_S`. A `transient` PyMongoError is
    retried, backing off from 0.1 s to 5 s between tries, and re-raised once `stop` seconds
    have passed since the first try (or once `stop(state)` says so); any other error at once.
    Each retry is logged as a warning."""

    async def attempt() -> T:
        with pymongo.timeout(ATTEMPT_TIMEOUT_S):
            return await operation()

    return await _retrying(what, stop)(attempt)

"""Retrying database writes a live call cannot afford to lose (transcript, call end)."""

from __future__ import annotations

from pymongo.errors import PyMongoError
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_delay, wait_exponential

from voice_server.log import get_logger

log = get_logger(__name__)


def database_retrying(what: str, window_s: float = 60.0) -> AsyncRetrying:
    """Back off from 0.1 s to 5 s between tries, for up to `window_s`, then re-raise."""
    return AsyncRetrying(
        retry=retry_if_exception_type(PyMongoError),
        wait=wait_exponential(multiplier=0.1, max=5.0),
        stop=stop_after_delay(window_s),
        before_sleep=lambda state: log.warning(
            f"{what} failed, retrying",
            attempt=state.attempt_number,
            error=str(state.outcome.exception()) if state.outcome else None,
        ),
        reraise=True,
    )

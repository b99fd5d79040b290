"""Structured logging: JSON (or readable console) lines, with the call bound to every line.

A call session binds `call_sid` and `stream_sid` once through contextvars; everything it logs,
and everything its tasks log, carries them. Nothing is logged per audio frame. No line holds a
URL's query values: they can be credentials (the call log's event-stream tokens are), so every
line, ours and the libraries' (uvicorn's WebSocket lines, httpx's requests), has them replaced.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import structlog

get_logger = structlog.stdlib.get_logger
bind_call = structlog.contextvars.bind_contextvars

# `?name=value` / `&name=value` in a URL: the value, up to the next separator, is dropped.
_QUERY_VALUE = re.compile(r"([?&][^=&#\s\"'<>]*)=[^&#\s\"'<>]*")


def redact_query_values(
    logger: object, method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """A structlog processor: every query value in a string of the line becomes `…`."""
    for field, value in event.items():
        if isinstance(value, str) and "=" in value:
            event[field] = _QUERY_VALUE.sub(r"\1=…", value)
    return event


def add_pid(
    logger: object, method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """A structlog processor: the process id, telling apart the lines of `serve`'s workers."""
    event["pid"] = os.getpid()
    return event


def configure_logging(level: str = "INFO", fmt: str = "json", *, with_pid: bool = False) -> None:
    """Route structlog and the standard library (uvicorn, pymongo) through one formatter;
    `with_pid` puts the process id on every line."""
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact_query_values,
        *([add_pid] if with_pid else []),
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Chatty at INFO: pymongo about its connections, faster-whisper about every utterance.
    for library in ("pymongo", "faster_whisper"):
        logging.getLogger(library).setLevel(max(logging.WARNING, root.level))


def send_logs_to(path: Path) -> None:
    """Write the log lines to `path` instead of stderr, formatted as before (the demo keeps the
    terminal for the conversation)."""
    root = logging.getLogger()
    handler = logging.FileHandler(path, encoding="utf-8")
    if root.handlers:
        handler.setFormatter(root.handlers[0].formatter)
    root.handlers[:] = [handler]

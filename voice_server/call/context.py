"""What a call session is given: its call, its agent, its renders, and how it begins.

How a call begins: who speaks first, and what the agent says.

A call to us: the agent greets the caller at once. A call we placed: the callee speaks first
("Hello?"), so the agent waits up to `hello_wait_s` for their first words and answers them, or
speaks first when they stay silent. A call that delivers a `message` (a `normal` scheduled
call, or a voicemail after the beep) says only that, then ends.
"""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass, field

from stores.agents import Agent
from voice_server.call.end_reasons import EndReason

CALLEE_SILENT = "(You placed this call. The person answered but has not said anything yet.)"
"""What the LLM is told in place of the callee's first words when they say nothing."""


@dataclass(frozen=True)
class Opening:
    greet: bool = True
    """Say the agent's greeting at once (a call to us)."""
    hello_wait_s: float = 0.0
    """Without a greeting: how long the callee may take to speak first."""
    message: str | None = None
    """All the agent says, as its first turn; the call ends after it."""
    message_audio: Awaitable[bytes | None] | None = None
    message_ends_as: EndReason = EndReason.MESSAGE_DELIVERED


@dataclass(frozen=True)
class CallContext:
    call_sid: str
    stream_sid: str
    agent: Agent
    # Renders started while the phone rang (μ-law; None when rendering failed): the greeting,
    # and FALLBACK_TEXT, so that a failing TTS is still answered with speech.
    greeting_audio: Awaitable[bytes | None] | None = None
    fallback_audio: Awaitable[bytes | None] | None = None
    # What the call hears when the server stops (`shut_down`), rendered as the call starts.
    shutdown_text: str = "Goodbye!"
    shutdown_audio: Awaitable[bytes | None] | None = None
    opening: Opening = field(default_factory=Opening)

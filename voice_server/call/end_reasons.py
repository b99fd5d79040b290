"""Why a call ended: the one vocabulary stored as a call's `end_reason`.

A str enum, so the stored values are the same strings they always were and compare equal to them.
"""

from __future__ import annotations

import enum


class EndReason(enum.StrEnum):
    # The call ran and ended.
    CALLER_HUNG_UP = "caller-hung-up"  # Twilio sent `stop`
    STREAM_CLOSED = "stream-closed"  # the media stream closed without a `stop`
    AGENT_ENDED = "agent-ended"  # the agent said goodbye and asked to end the call
    CALLER_SILENT = "caller-silent"  # no answer to every re-prompt
    MAX_DURATION = "max-duration"  # the agent's time limit was reached
    SPEECH_TO_TEXT_FAILED = "speech-to-text-failed"  # recognition failed twice
    CONVERSATION_FAILED = "conversation-failed"  # a speech-to-speech session failed twice
    SERVER_ERROR = "server-error"  # the session failed; the log says why
    MALFORMED_FRAMES = "too-many-malformed-frames"  # the peer sent garbage, not Twilio frames
    SERVER_SHUTDOWN = "server-shutdown"  # the server was stopped: a drain's end, or at once
    # A call we placed: its message was said (a `normal` call, or a voicemail after the beep),
    # or an answering machine took it and there was no message to leave.
    MESSAGE_DELIVERED = "message-delivered"
    VOICEMAIL_LEFT = "voicemail-left"
    ANSWERING_MACHINE = "answering-machine"
    # A sweeper ended a call whose server stopped marking it alive (killed, machine lost) ...
    SERVER_LOST = "server-lost"
    # ... or whose media stream never started after the voice webhook accepted it.
    NO_MEDIA_STREAM = "no-media-stream"
    # The call was turned away at the voice webhook.
    NUMBER_INACTIVE = "number-inactive"
    NO_ACTIVE_AGENT = "no-active-agent"
    PROVIDER_UNAVAILABLE = "provider-unavailable"
    # Twilio's status callback ended a call the stream never ended (twilio.md, call statuses).
    TWILIO_COMPLETED = "twilio-completed"
    TWILIO_BUSY = "twilio-busy"
    TWILIO_FAILED = "twilio-failed"
    TWILIO_NO_ANSWER = "twilio-no-answer"
    TWILIO_CANCELED = "twilio-canceled"

    @classmethod
    def from_twilio_status(cls, status: str) -> EndReason:
        """The reason for a terminal Twilio call status ("completed", "busy", ...)."""
        return cls(f"twilio-{status}")

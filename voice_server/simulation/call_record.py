"""What the Twilio stand-in knows of an outbound call: the request that made it, everything
that happened to it (statuses, webhooks, TwiML, media streams, who hung up, a voicemail), and
the Call resource JSON that Twilio's REST API answers with."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from voice_server.simulation.callees import Callee
from voice_server.simulation.phone_line import CallResult

API_VERSION = "2010-04-01"
TERMINAL = frozenset({"completed", "busy", "no-answer", "failed", "canceled"})
CALLBACK_EVENTS = frozenset({"initiated", "ringing", "answered", "completed"})

HungUpBy = Literal["callee", "agent", "api", "network"]


@dataclass(frozen=True)
class CallRequest:
    """A `POST …/Calls.json` that made a call, its form fields read as Twilio reads them."""

    account_sid: str
    # the Basic auth password: what every webhook of the call is signed with (never shown)
    auth_token: str = field(repr=False)
    to: str
    from_: str
    url: str | None
    method: str
    twiml: str | None
    status_callback: str | None
    status_callback_method: str
    status_callback_events: frozenset[str]
    machine_detection: str | None  # "Enable" or "DetectMessageEnd"
    async_amd: bool
    amd_callback: str | None
    amd_callback_method: str
    timeout_s: float  # how long it may ring

    @classmethod
    def from_form(
        cls, account_sid: str, auth_token: str, form: Sequence[tuple[str, str]]
    ) -> CallRequest:
        fields = dict(form)
        events = frozenset(value for name, value in form if name == "StatusCallbackEvent")
        return cls(
            account_sid=account_sid,
            auth_token=auth_token,
            to=fields["To"],
            from_=fields["From"],
            url=fields.get("Url"),
            method=fields.get("Method", "POST").upper(),
            twiml=fields.get("Twiml"),
            status_callback=fields.get("StatusCallback"),
            status_callback_method=fields.get("StatusCallbackMethod", "POST").upper(),
            # Twilio: with no event named, only `completed` is reported
            status_callback_events=(events & CALLBACK_EVENTS) or frozenset({"completed"}),
            machine_detection=fields.get("MachineDetection"),
            async_amd=fields.get("AsyncAmd", "").lower() == "true",
            amd_callback=fields.get("AsyncAmdStatusCallback"),
            amd_callback_method=fields.get("AsyncAmdStatusCallbackMethod", "POST").upper(),
            timeout_s=_ring_timeout(fields.get("Timeout")),
        )


def _ring_timeout(value: str | None) -> float:
    """`Timeout`: whole seconds, 60 when absent, at most 600 (Twilio lowers larger values)."""
    return float(min(600, int(value))) if value and value.isdigit() else 60.0


@dataclass
class Webhook:
    """One request the stand-in made to the application: the voice webhook (`voice`, asking
    for TwiML), a status callback (`status`) or an answering-machine callback (`amd`)."""

    kind: Literal["voice", "status", "amd"]
    url: str
    method: str
    form: dict[str, str]
    status: int | None = None  # the HTTP status of the answer; None when none came
    error: str | None = None  # why no answer came (refused, timed out)


@dataclass
class StreamRecord:
    """One `<Connect><Stream>` the call opened, and what the callee heard on it."""

    url: str
    parameters: dict[str, str]
    stream_sid: str
    first_tick: int  # the line's 20 ms ticks during which the stream was up
    last_tick: int = 0
    ended_by: Literal["server", "twilio"] | None = (
        None  # the server closed it, or Twilio stopped it
    )
    agent_audio: bytes = b""  # μ-law, one frame per tick (silence where the agent played none)
    agent_audio_ms: float = 0.0  # how much of it was the agent's audio


@dataclass
class CallRecord:
    """Everything that happened to one call; final once `TwilioStandin.finished` returns it."""

    sid: str
    request: CallRequest
    callee: Callee
    statuses: list[str] = field(default_factory=lambda: ["queued"])
    answered_by: str | None = None
    twiml: list[str] = field(default_factory=list)  # each TwiML document followed, in order
    webhooks: list[Webhook] = field(default_factory=list)
    streams: list[StreamRecord] = field(default_factory=list)
    hung_up_by: HungUpBy | None = None
    voicemail: bytes | None = None  # machine: the agent's audio after the beep (μ-law)
    voicemail_ms: float = 0.0
    errors: list[str] = field(default_factory=list)  # Twilio error codes and why, as its debugger
    line: CallResult | None = None  # both sides' audio over the whole call, once answered
    created: float = field(default_factory=time.time)
    answered: float | None = None
    ended: float | None = None

    @property
    def status(self) -> str:
        """The Call resource's status (`initiated` is a callback event, not a status)."""
        return next(status for status in reversed(self.statuses) if status != "initiated")

    @property
    def duration_s(self) -> int:
        """Seconds from the answer to the end, as `CallDuration` (0 if never answered)."""
        if self.answered is None:
            return 0
        return round((self.ended or time.time()) - self.answered)

    def callbacks(self, kind: Literal["voice", "status", "amd"]) -> list[Webhook]:
        return [webhook for webhook in self.webhooks if webhook.kind == kind]

    def base_form(self) -> dict[str, str]:
        """The parameters of every request Twilio makes about an outbound-api call."""
        request = self.request
        return {
            "AccountSid": request.account_sid,
            "ApiVersion": API_VERSION,
            "CallSid": self.sid,
            "CallStatus": self.status,
            "Called": request.to,
            "Caller": request.from_,
            "Direction": "outbound-api",
            "From": request.from_,
            "To": request.to,
        }


def rfc2822(timestamp: float) -> str:
    """A time as Twilio writes it in JSON and callbacks: `Sat, 05 Dec 2026 14:02:55 +0000`."""
    return time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime(timestamp))


def _rfc2822(timestamp: float | None) -> str | None:
    return None if timestamp is None else rfc2822(timestamp)


def call_json(record: CallRecord) -> dict[str, Any]:
    """The Call resource as Twilio's REST API returns it (the fields `CallInstance` reads)."""
    request = record.request
    uri = f"/{API_VERSION}/Accounts/{request.account_sid}/Calls/{record.sid}"
    ended = record.status in TERMINAL
    return {
        "sid": record.sid,
        "account_sid": request.account_sid,
        "parent_call_sid": None,
        "to": request.to,
        "to_formatted": request.to,
        "from": request.from_,
        "from_formatted": request.from_,
        "phone_number_sid": None,
        "status": record.status,
        "direction": "outbound-api",
        "answered_by": record.answered_by,
        "api_version": API_VERSION,
        "date_created": _rfc2822(record.created),
        "date_updated": _rfc2822(record.ended or record.answered or record.created),
        "start_time": _rfc2822(record.answered),
        "end_time": _rfc2822(record.ended),
        "duration": str(record.duration_s) if ended else None,
        "price": None,
        "price_unit": "USD",
        "forwarded_from": None,
        "group_sid": None,
        "caller_name": None,
        "queue_time": "0",
        "stir_verstat": None,
        "trunk_sid": None,
        "uri": f"{uri}.json",
        "subresource_uris": _subresources(uri),
    }


def _subresources(uri: str) -> Mapping[str, str]:
    names = ("notifications", "recordings", "payments", "events", "siprec", "streams")
    return {name: f"{uri}/{name.capitalize()}.json" for name in names}

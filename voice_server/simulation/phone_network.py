"""One outbound call on the stand-in's phone network, from `queued` to its end, as Twilio
places it (docs/twilio.md §6, §8).

The call rings, then the callee answers (or the line is busy, unanswered, failed); on the
answer Twilio asks the call's `Url` for TwiML (a signed POST) and follows it: `<Connect><Stream>`
opens a media stream to the application and plays the callee on it, `<Say>`/`<Pause>` take
their time, `<Redirect>` fetches the next document, `<Hangup/>` or the end of the document ends
the call. A REST update interrupts whatever runs: `Status=completed` hangs up (a `stop` on the
stream, then the socket closes), `Url`/`Twiml` stop the stream and follow the new TwiML. Status
and answering-machine callbacks are posted, signed, one at a time in the order of events.
"""

from __future__ import annotations

import asyncio
import time
import xml.etree.ElementTree as ET
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urljoin

import aiohttp
import yarl
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidHandshake, InvalidURI

from voice_server.log import get_logger
from voice_server.simulation.call_record import (
    TERMINAL,
    CallRecord,
    HungUpBy,
    StreamRecord,
    Webhook,
    rfc2822,
)
from voice_server.simulation.callees import (
    CalleeVoice,
    agent_audio_since,
    play_greeting,
    play_human,
    record_message,
    render_callee,
)
from voice_server.simulation.phone_line import CallResult, Player, inbound_start, signed

log = get_logger(__name__)

SAY_S_PER_CHAR = 0.06  # how long `<Say>` takes, near enough for a text-to-speech voice
SAY_MAX_S = 10.0
WEBSOCKET_MAX_BYTES = 2**20
USER_AGENT = "TwilioProxy/1.1"  # what Twilio's webhook requests say they are


@dataclass(frozen=True)
class Fetch:
    """Ask `url` for the next TwiML document."""

    url: str
    method: str = "POST"


@dataclass(frozen=True)
class Document:
    """Follow this TwiML (relative URLs in it are read against `base_url`)."""

    twiml: str
    base_url: str = ""


@dataclass(frozen=True)
class HangUp:
    by: HungUpBy


Next = Fetch | Document | None


class PhoneCall:
    """Runs one call (`run()`); `hang_up()` and `redirect()` are the REST updates."""

    def __init__(
        self, record: CallRecord, http: aiohttp.ClientSession, webhook_timeout_s: float
    ) -> None:
        self.record = record
        self.ended = asyncio.Event()  # the call has its final status
        self.done = asyncio.Event()  # … and every callback about it has been made
        self._http = http
        self._webhook_timeout_s = webhook_timeout_s
        self._callbacks: asyncio.Queue[Webhook | None] = asyncio.Queue()
        self._interrupt: Fetch | Document | HangUp | None = None
        self._interrupted = asyncio.Event()
        self._step: asyncio.Task[Next] | None = None
        self._line_tasks: set[asyncio.Task[Any]] = set()
        self._player: Player | None = None
        self._beep_tick: int | None = None
        self._beeped = asyncio.Event()
        request = record.request
        first = (
            Document(request.twiml) if request.twiml else Fetch(request.url or "", request.method)
        )
        self._first: Fetch | Document = first

    # --- REST updates -----------------------------------------------------------------------

    def hang_up(self, by: HungUpBy) -> None:
        """End the call: cancel it while it rings, hang it up once answered."""
        if self.record.status not in TERMINAL and self.record.hung_up_by is None:
            self.record.hung_up_by = by
            self._interrupt_with(HangUp(by))

    def redirect(self, target: Fetch | Document) -> None:
        """Follow other TwiML: at once if the call is up, on the answer if it still rings."""
        if self.record.status == "in-progress":
            self._interrupt_with(target)
        else:
            self._first = target

    def _interrupt_with(self, interrupt: Fetch | Document | HangUp) -> None:
        self._interrupt = interrupt
        self._interrupted.set()
        if self._step is not None:
            self._step.cancel()

    # --- the call's life ----------------------------------------------------------------------

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(self._send_callbacks())
            try:
                await self._place()
            except Exception as error:  # one broken call must not stop the stand-in's others
                log.error("simulated call failed", call_sid=self.record.sid, exc_info=error)
                self.record.errors.append(f"stand-in fault: {error!r}")
                self._end("failed")
            finally:
                for task in self._line_tasks:
                    task.cancel()
                self._callbacks.put_nowait(None)
        self.done.set()

    async def _place(self) -> None:
        callee = self.record.callee
        rendering = asyncio.create_task(render_callee(callee))
        self._line_tasks.add(rendering)
        self._set_status("initiated")
        self._set_status("ringing")
        timeout_s = self.record.request.timeout_s
        answers = callee.answers and callee.ring_s <= timeout_s
        if await self._rings(min(callee.ring_s, timeout_s)):
            self._end("canceled")
            return
        if not answers:
            self.record.hung_up_by = "network"
            self._end("no-answer" if callee.kind in ("human", "machine") else callee.kind)
            return
        voice = await rendering
        self._answer()
        await self._converse(voice)
        self._end("completed")

    async def _rings(self, seconds: float) -> bool:
        """Ring for `seconds`; True if a hang-up came meanwhile (the call is canceled)."""
        try:
            async with asyncio.timeout(seconds):
                await self._interrupted.wait()
        except TimeoutError:
            return False
        return isinstance(self._interrupt, HangUp)

    def _answer(self) -> None:
        self.record.answered = time.time()
        self._player = Player(
            None, CallResult(call_sid=self.record.sid, twiml=""), one_stream=False
        )
        self.record.line = self._player.result
        self._set_status("in-progress")
        request = self.record.request
        if request.machine_detection and request.async_amd and request.amd_callback:
            self._start_line_task(self._detect_machine(request.amd_callback))

    def _start_line_task(self, work: Coroutine[Any, Any, None]) -> None:
        """Run `work` for as long as the line is up; the call's end cancels it."""
        self._line_tasks.add(asyncio.create_task(work))

    def _set_status(self, status: str) -> None:
        self.record.statuses.append(status)
        event = {"in-progress": "answered"}.get(
            status, "completed" if status in TERMINAL else status
        )
        request = self.record.request
        if request.status_callback and event in request.status_callback_events:
            form = self.record.base_form() | {"CallStatus": status}  # `initiated` too
            form |= {"CallbackSource": "call-progress-events", "Timestamp": rfc2822(time.time())}
            form["SequenceNumber"] = str(len(self.record.callbacks("status")))
            if status in TERMINAL:
                form["CallDuration"] = str(self.record.duration_s)
            if self.record.answered_by:
                form["AnsweredBy"] = self.record.answered_by
            hook = Webhook("status", request.status_callback, request.status_callback_method, form)
            self.record.webhooks.append(hook)
            self._callbacks.put_nowait(hook)

    def _end(self, status: str) -> None:
        if self.record.status in TERMINAL:
            return
        self.record.ended = time.time()
        if self._player is not None:
            self._player.closed.set()
            if self._beep_tick is not None:
                self.record.voicemail, self.record.voicemail_ms = agent_audio_since(
                    self._player, self._beep_tick
                )
        self._set_status(status)
        self.ended.set()

    # --- following TwiML -------------------------------------------------------------------------

    async def _converse(self, voice: CalleeVoice) -> None:
        """Follow TwiML until the call ends: the TwiML runs out, or a hang-up comes."""
        pending: Next = self._first
        while True:
            interrupt, self._interrupt = self._interrupt, None
            self._interrupted.clear()
            if isinstance(interrupt, HangUp):
                return
            pending = interrupt or pending
            if pending is None:
                self.record.hung_up_by = self.record.hung_up_by or "agent"
                return
            self._step = asyncio.create_task(self._follow(pending, voice))
            await asyncio.wait([self._step])
            step, self._step = self._step, None
            pending = None if step.cancelled() else step.result()

    async def _follow(self, pending: Fetch | Document, voice: CalleeVoice) -> Next:
        if isinstance(pending, Fetch):
            return await self._fetch_twiml(pending)
        return await self._execute(pending, voice)

    async def _fetch_twiml(self, fetch: Fetch) -> Document | None:
        """The TwiML at `fetch.url`; None when none came (Twilio then says an application error
        occurred and hangs up)."""
        hook = Webhook("voice", fetch.url, fetch.method, self.record.base_form())
        self.record.webhooks.append(hook)
        body = await self._deliver(hook)
        if body is None:
            self._application_error(11205, f"the voice webhook did not answer: {hook.error}")
        elif hook.status != 200:
            self._application_error(11200, f"the voice webhook answered HTTP {hook.status}")
        else:
            return Document(body, fetch.url)
        return None

    def _application_error(self, code: int, reason: str) -> None:
        """What Twilio's debugger would show; the call then ends as Twilio ends it."""
        log.warning("application error on a simulated call", call_sid=self.record.sid, code=code)
        self.record.errors.append(f"{code}: {reason}")
        self.record.hung_up_by = self.record.hung_up_by or "network"

    async def _execute(self, document: Document, voice: CalleeVoice) -> Next:
        self.record.twiml.append(document.twiml)
        try:
            root = ET.fromstring(document.twiml)
        except ET.ParseError as error:
            self._application_error(12100, f"the TwiML is not XML ({error})")
            return None
        if root.tag != "Response":
            self._application_error(12100, f"the TwiML's root is <{root.tag}>, not <Response>")
            return None
        for verb in root:
            if verb.tag == "Connect" and (stream := verb.find("Stream")) is not None:
                await self._stream(stream, voice)
            elif verb.tag == "Say":
                await asyncio.sleep(min(SAY_MAX_S, len(verb.text or "") * SAY_S_PER_CHAR))
            elif verb.tag == "Pause":
                length = verb.get("length", "1")
                await asyncio.sleep(int(length) if length.isdigit() else 1)
            elif verb.tag == "Redirect":
                url = urljoin(document.base_url, (verb.text or "").strip())
                return Fetch(url, verb.get("method", "POST").upper())
            elif verb.tag == "Hangup":
                return None
            else:  # Twilio would play it; the stand-in skips it, and says so
                self.record.errors.append(f"<{verb.tag}> is not played by the stand-in")
        return None

    async def _stream(self, element: ET.Element, voice: CalleeVoice) -> None:
        """Open the media stream, play the callee on it until the application closes it or
        Twilio stops it (a REST update, a hang-up), then send `stop` and close."""
        assert self._player is not None
        url = element.get("url", "")
        parameters = {p.get("name", ""): p.get("value", "") for p in element.findall("Parameter")}
        start = inbound_start(self.record.sid, self.record.request.account_sid, parameters)
        # Twilio signs the stream's URL as written in the TwiML, with no parameters (§5)
        headers = signed(url, self.record.request.auth_token, {})
        try:
            websocket = await connect(url, additional_headers=headers, max_size=WEBSOCKET_MAX_BYTES)
        except (OSError, InvalidHandshake, InvalidURI, TimeoutError) as error:
            log.warning("a simulated call's stream did not open", call_sid=self.record.sid)
            self.record.errors.append(f"31920: the stream to {url} did not open ({error!r})")
            return
        player = self._player
        stream = StreamRecord(
            url, parameters, start.stream_sid, first_tick=len(player.result.played)
        )
        self.record.streams.append(stream)
        async with websocket:
            await player.begin(start, websocket)
            receiver = asyncio.create_task(player.receive())
            if len(self.record.streams) == 1:
                self._start_line_task(self._play_callee(voice))
            try:
                await asyncio.wait([receiver])
                stream.ended_by = "server"
            finally:
                if not receiver.done():
                    stream.ended_by = "twilio"
                    if not player.stopped:
                        await player.stop()
                    await websocket.close()
                    await receiver
                stream.last_tick = len(player.result.played)
                stream.agent_audio, stream.agent_audio_ms = agent_audio_since(
                    player, stream.first_tick
                )

    # --- the callee and answering-machine detection ----------------------------------------------

    async def _play_callee(self, voice: CalleeVoice) -> None:
        assert self._player is not None
        callee = self.record.callee
        if callee.kind == "machine":
            self._beep_tick = await play_greeting(self._player, voice)
            self._beeped.set()
            await record_message(self._player, callee)
        else:
            await play_human(self._player, voice, lambda _: None)
        self.hang_up("callee")

    async def _detect_machine(self, url: str) -> None:
        """Twilio's async AMD: `human` / `machine_start` once it has decided, or with
        DetectMessageEnd on a machine, `machine_end_beep` as soon as the beep has played."""
        request, callee = self.record.request, self.record.callee
        if callee.kind == "machine" and request.machine_detection == "DetectMessageEnd":
            await self._beeped.wait()
            answered_by = "machine_end_beep"
        else:
            await asyncio.sleep(callee.amd_after_s)
            answered_by = "human" if callee.kind == "human" else "machine_start"
        if self.record.status in TERMINAL or self.record.answered is None:
            return
        self.record.answered_by = answered_by
        took_ms = round((time.time() - self.record.answered) * 1000)
        form = {
            "AccountSid": request.account_sid,
            "CallSid": self.record.sid,
            "AnsweredBy": answered_by,
            "MachineDetectionDuration": str(took_ms),
        }
        hook = Webhook("amd", url, request.amd_callback_method, form)
        self.record.webhooks.append(hook)
        self._callbacks.put_nowait(hook)

    # --- delivering requests to the application ------------------------------------------------

    async def _send_callbacks(self) -> None:
        """Post the callbacks in the order they were made, each once (Twilio does not retry)."""
        while (hook := await self._callbacks.get()) is not None:
            if await self._deliver(hook) is None or not 200 <= (hook.status or 0) < 300:
                reason = hook.error or f"HTTP {hook.status}"
                log.warning("a simulated call's callback failed", call_sid=self.record.sid)
                self.record.errors.append(f"11200: the {hook.kind} callback failed: {reason}")

    async def _deliver(self, hook: Webhook) -> str | None:
        """Make `hook`'s request, signed with the call's auth token; the answer's body, or None
        (the reason in `hook.error`)."""
        token = self.record.request.auth_token
        url, data = hook.url, dict(hook.form)
        if hook.method == "GET":  # the parameters go in the query, and the URL alone is signed
            url += ("&" if "?" in url else "?") + urlencode(data)
            data = {}
        try:
            async with (
                asyncio.timeout(self._webhook_timeout_s),
                self._http.request(
                    hook.method,
                    yarl.URL(url, encoded=True),  # sent as signed: aiohttp must not requote it
                    data=data or None,
                    headers=signed(url, token, data) | {"User-Agent": USER_AGENT},
                ) as response,
            ):
                body = await response.text()
        except (aiohttp.ClientError, TimeoutError) as error:
            hook.error = repr(error)
            return None
        hook.status = response.status
        return body

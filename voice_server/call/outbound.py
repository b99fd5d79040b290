"""The agent's side of the media stream: audio and marks out, mark echoes in, and the lead.

Twilio queues what we send and plays it in real time, so audio goes out as soon as it exists,
ahead of playback; a `mark` after each chunk is echoed when the audio before it has played. The
lead (audio sent but not yet played) is bounded so a long answer does not pile up at Twilio and
an interruption has little to clear.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from media.codec import FRAME_BYTES, ulaw_duration_ms
from media.playout import Chunk, Playout
from media.twilio import build_clear, build_mark, build_media

CHUNK_BYTES = 10 * FRAME_BYTES  # 200 ms per media message: few messages, fine-grained marks


class Outbound:
    def __init__(
        self,
        send_text: Callable[[str], Awaitable[None]],
        stream_sid: str,
        max_lead_ms: float = 2000.0,
    ) -> None:
        self._send = send_text
        self._stream_sid = stream_sid
        self._max_lead_ms = max_lead_ms
        self._clock = asyncio.get_running_loop().time
        self.playout = Playout()
        self.progress_at = self._clock()
        """Loop time of the latest chunk sent or mark echoed."""
        self._echo = asyncio.Event()

    async def send_chunk(self, utterance: int, ulaw: bytes, text_end: int) -> str:
        """Send one chunk of whole frames followed by a mark (whose name is returned), once the
        lead allows; `text_end` is how much of the utterance's text the caller has heard once
        this chunk has played."""
        await self._wait_for_room()
        await self._send(build_media(self._stream_sid, ulaw))
        name = await self._mark(utterance, text_end, ulaw_duration_ms(len(ulaw)))
        self.progress_at = self._clock()
        return name

    async def send_mark(self, utterance: int, text_end: int) -> str:
        """A mark with no audio of its own: echoed when everything sent so far has played."""
        return await self._mark(utterance, text_end, 0.0)

    def echoed(self, name: str) -> Chunk | None:
        """A mark came back; the chunk if it really played (not cancelled by a clear)."""
        chunk = self.playout.echoed(name)
        self._echo.set()
        self.progress_at = self._clock()
        return chunk

    async def clear(self) -> None:
        """Stop playback at once: Twilio drops its queue and echoes the pending marks."""
        await self._send(build_clear(self._stream_sid))
        self._echo.set()
        self.playout.clear()

    async def _mark(self, utterance: int, text_end: int, audio_ms: float) -> str:
        name = self.playout.next_mark_name(utterance)
        await self._send(build_mark(self._stream_sid, name))
        self.playout.sent(
            Chunk(name=name, utterance=utterance, text_end=text_end, audio_ms=audio_ms)
        )
        return name

    async def _wait_for_room(self) -> None:
        while self.playout.outstanding_ms() >= self._max_lead_ms:
            self._echo.clear()
            await self._echo.wait()

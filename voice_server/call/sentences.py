"""Cut a streamed answer into sentences, so speech can start before the whole answer exists."""

from __future__ import annotations

import re

# A sentence ends at . ! ? (optionally followed by closing quotes or brackets) and then
# whitespace; "e.g. " or "3.5" do not end one because of the whitespace/lowercase rules below.
_END = re.compile(r"""[.!?…]+["')\]]*\s+(?=[A-Z0-9"'(\[])|\n+""")
_LONG = 220  # past this, a comma or semicolon is a good enough place to start speaking


class SentenceSplitter:
    """`push()` text as it arrives and get back every sentence it completes; `flush()` the rest."""

    def __init__(self) -> None:
        self._buffer = ""

    def push(self, text: str) -> list[str]:
        self._buffer += text
        sentences: list[str] = []
        while match := _END.search(self._buffer):
            sentences.append(self._take(match.end()))
        if len(self._buffer) > _LONG:
            cut = max(self._buffer.rfind(", "), self._buffer.rfind("; "))
            if cut > 0:
                sentences.append(self._take(cut + 2))
        return [s for s in sentences if s]

    def flush(self) -> str:
        return self._take(len(self._buffer))

    def _take(self, end: int) -> str:
        piece, self._buffer = self._buffer[:end], self._buffer[end:]
        return piece.strip()

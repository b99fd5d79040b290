"""Key presses (DTMF) gathered into sequences: ended by '#', or by a pause between keys."""

from __future__ import annotations


class KeySequence:
    def __init__(self, inter_digit_s: float) -> None:
        self._inter_digit_s = inter_digit_s
        self._digits = ""
        self._last_at = 0.0

    def press(self, digit: str, now: float) -> str | None:
        """Add a key; the finished sequence when the key is '#' (which is not included)."""
        if digit == "#":
            return self._take() or None
        self._digits += digit
        self._last_at = now
        return None

    def end(self) -> str | None:
        """End the sequence now (the caller moved on): the keys pressed so far, if any."""
        return self._take() or None

    def check(self, now: float) -> str | None:
        """The sequence, once no key has come for the inter-digit time."""
        deadline = self.next_deadline()
        if deadline is not None and now >= deadline:
            return self._take()
        return None

    def next_deadline(self) -> float | None:
        """When `check` will return the keys pressed so far, if no other key comes."""
        return self._last_at + self._inter_digit_s if self._digits else None

    def _take(self) -> str:
        digits, self._digits = self._digits, ""
        return digits

"""How deeply a JSON text nests, found without parsing it.

Python's `json` parser recurses once per level of nesting, so a body of 100 000 `[` exhausts the
interpreter's recursion limit (RecursionError) before any validation could refuse it. This scan
is flat: it blanks out the strings, keeps only the brackets, and counts, stopping at the first
level past the limit.
"""

from __future__ import annotations

import re

MAX_NESTING = 32  # the API's deepest body (an agent's turnTaking lists) nests 3 levels

# A JSON string: a quote, then runs of plain characters or backslash escapes, then a quote.
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = bytes(byte for byte in range(256) if byte not in b"[]{}")
_OPENING = frozenset(b"[{")


def nesting_exceeds(text: bytes, limit: int) -> bool:
    """Whether arrays and objects in `text` nest deeper than `limit`. Any input is taken:
    unbalanced brackets are left for the parser to refuse (an unterminated string's brackets
    count)."""
    depth = 0
    for byte in _STRING.sub(b"", text).translate(None, _NOT_BRACKETS):
        depth += 1 if byte in _OPENING else -1
        if depth > limit:
            return True
    return False

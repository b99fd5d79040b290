"""SecretBox: what one key seals, only that key opens."""

from __future__ import annotations

import pytest

from stores.secrets import SecretBox, SecretUnreadable


def test_round_trip_and_other_keys() -> None:
    box = SecretBox(SecretBox.generate_key())
    sealed = box.seal("token")
    assert sealed != "token"
    assert box.open(sealed) == "token"
    with pytest.raises(SecretUnreadable):
        SecretBox(SecretBox.generate_key()).open(sealed)
    with pytest.raises(SecretUnreadable):
        box.open("token")  # stored in plain text, never sealed
    assert "key" in repr(box)


def test_a_bad_key_is_refused() -> None:
    with pytest.raises(ValueError, match="32 url-safe"):
        SecretBox("short")

"""Reaching MongoDB: an unreachable server is said so in the time given, without credentials."""

from __future__ import annotations

import time

import pytest

from stores.database import DatabaseUnreachable, check_reachable
from tests.voice_server.commands import free_port


def test_an_unreachable_server_is_reported_in_the_time_given() -> None:
    port = free_port()
    began = time.monotonic()
    with pytest.raises(DatabaseUnreachable) as unreachable:
        check_reachable(f"mongodb://admin:hunter2@127.0.0.1:{port}/", timeout_s=0.5)
    assert time.monotonic() - began < 2.0
    assert f"127.0.0.1:{port} (MONGODB_URI) within 0.5 s" in str(unreachable.value)
    assert "hunter2" not in str(unreachable.value)


def test_a_running_server_is_reachable(mongo_uri: str) -> None:
    check_reachable(mongo_uri, timeout_s=5)

"""One embedded database per data folder: the first to open it owns it, the others join it."""

from __future__ import annotations

import fcntl
import json
import os
from dataclasses import asdict
from pathlib import Path

import pytest

from stores.embedded import EmbeddedDatabaseError
from stores.shared_embedded import Address, DatabaseInUse, address_path, open_shared
from tests.voice_server.commands import free_port


def test_the_owner_publishes_its_address_and_others_join_it(tmp_path: Path) -> None:
    path = tmp_path / "db"
    with open_shared(path, "serve") as owner:
        assert owner.owned
        assert owner.unclean is None
        published = json.loads(address_path(path).read_text())
        assert (published["pid"], published["command"]) == (os.getpid(), "serve")
        with open_shared(path, "seed") as joined:
            assert (joined.uri, joined.owned) == (owner.uri, False)
        with (
            pytest.raises(DatabaseInUse, match=rf"in use by `serve` \(pid {os.getpid()}\)"),
            open_shared(path, "serve", must_own=True),
        ):
            pass
    assert not address_path(path).exists()


def test_an_address_left_by_a_dead_owner_is_replaced_and_reported(tmp_path: Path) -> None:
    path = tmp_path / "db"
    dead = Address(pid=2**22 + 1, command="serve", port=1, server_pid=2**22 + 2)  # > pid_max
    address_path(path).write_text(json.dumps(asdict(dead)))
    with open_shared(path, "api-key") as owner:
        assert owner.owned
        assert owner.unclean == dead
        assert json.loads(address_path(path).read_text())["pid"] == os.getpid()


def test_a_live_owner_whose_database_does_not_answer_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "db"
    port = free_port()
    alive = Address(pid=os.getpid(), command="serve", port=port, server_pid=1)
    address_path(path).write_text(json.dumps(asdict(alive)))
    lock = os.open(tmp_path / "db.lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)  # as the owner holds it
        with (
            pytest.raises(EmbeddedDatabaseError, match=f"does not answer on port {port}"),
            open_shared(path, "seed"),
        ):
            pass
    finally:
        os.close(lock)

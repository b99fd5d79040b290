import os
import signal
from pathlib import Path

import pytest
from pymongo import MongoClient, monitoring

from stores.embedded import DatabaseLocked, EmbeddedDatabase, EmbeddedDatabaseError
from tests.command_listener import StartedCommands


def test_data_survives_a_restart(tmp_path: Path) -> None:
    storage = tmp_path / "data"
    with EmbeddedDatabase(storage) as server:
        client: MongoClient[dict[str, object]] = MongoClient(server.uri)
        with client:
            client["keep"]["things"].insert_one({"_id": 1, "name": "kept"})

    with EmbeddedDatabase(storage) as server:
        client = MongoClient(server.uri)
        with client:
            assert client["keep"]["things"].find_one({"_id": 1}) == {"_id": 1, "name": "kept"}


def test_uri_before_start_raises(tmp_path: Path) -> None:
    with pytest.raises(EmbeddedDatabaseError, match="not running"):
        _ = EmbeddedDatabase(tmp_path / "data").uri


def test_a_server_that_exits_is_reported_with_its_output(tmp_path: Path) -> None:
    server = EmbeddedDatabase(tmp_path / "data", executable="false")
    with pytest.raises(EmbeddedDatabaseError, match="exited with code 1"):
        server.start(timeout=5)


def test_an_acknowledged_write_survives_the_server_being_killed(tmp_path: Path) -> None:
    storage = tmp_path / "data"
    server = EmbeddedDatabase(storage)
    server.start()
    try:
        with MongoClient[dict[str, object]](server.uri) as client:
            client["keep"]["things"].insert_one({"_id": 1})
        os.kill(server.pid, signal.SIGKILL)  # at once: no checkpoint, no clean close
    finally:
        server.stop()

    with EmbeddedDatabase(storage) as again, MongoClient[dict[str, object]](again.uri) as client:
        assert client["keep"]["things"].find_one({"_id": 1}) == {"_id": 1}


def test_a_folder_open_in_another_server_is_reported_as_locked_by_its_pid(
    tmp_path: Path,
) -> None:
    with EmbeddedDatabase(tmp_path / "data") as first:
        with pytest.raises(DatabaseLocked) as locked:
            EmbeddedDatabase(tmp_path / "data").start(timeout=10)
        assert locked.value.holder == first.pid


def test_a_restart_keeps_the_port_so_a_connected_client_finds_the_server_again(
    tmp_path: Path,
) -> None:
    server = EmbeddedDatabase(tmp_path / "data")
    uri = server.start()
    client: MongoClient[dict[str, object]] = MongoClient(uri, serverSelectionTimeoutMS=5000)
    with client:
        client["keep"]["things"].insert_one({"_id": 1})
        server.stop()
        assert server.start() == uri
        try:
            assert client["keep"]["things"].find_one({"_id": 1}) == {"_id": 1}
        finally:
            server.stop()


class WriteCommands(StartedCommands):
    def __init__(self) -> None:
        self.sent: list[dict[str, object]] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name in ("insert", "update", "findAndModify", "delete"):
            self.sent.append(dict(event.command))


def test_writes_to_the_embedded_database_are_not_retryable_writes(mongo_uri: str) -> None:
    """The server would keep a record of each, and go over all of them on every write."""
    writes = WriteCommands()
    with MongoClient[dict[str, object]](mongo_uri, event_listeners=[writes]) as client:
        things = client["retryable"]["things"]
        things.insert_one({"_id": 1})
        things.update_one({"_id": 1}, {"$set": {"seen": True}})
        things.find_one_and_update({"_id": 1}, {"$set": {"seen": False}})

    assert len(writes.sent) == 3
    assert not [command for command in writes.sent if "txnNumber" in command]

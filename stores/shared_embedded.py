"""One embedded database per data folder, shared by every command that works on it.

Only one process may open the files (WiredTiger's rule), so the first command to need them
becomes the owner: it takes an exclusive `flock` on `<folder>.lock`, starts the server (which
inherits the lock, so the lock is free exactly when neither owner nor server runs) and, once the
server answers, writes `<folder>.address`: JSON with the owner's pid, its command, the port and
the server's pid. Any other command finds the lock taken, reads the address and connects there.
The owner removes the address when it stops; one left behind by a killed owner is stale as soon
as the lock is free, and the next owner says so (`Attachment.unclean`) and replaces it.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlsplit

from stores.embedded import EmbeddedDatabase, EmbeddedDatabaseError, answers_ping, local_uri


@dataclass(frozen=True)
class Address:
    """Where an owner's embedded database listens."""

    pid: int  # the owner
    command: str  # what the owner is, e.g. "serve"
    port: int
    server_pid: int

    @property
    def uri(self) -> str:
        return local_uri(self.port)


@dataclass(frozen=True)
class Attachment:
    """The database a command uses: its URI, whether this process owns it, and the address a
    previous owner left behind when it did not stop cleanly (only ever set for an owner)."""

    uri: str
    owned: bool
    unclean: Address | None = None


class DatabaseInUse(EmbeddedDatabaseError):
    """A live process owns the data folder and this command needs to own it itself."""

    def __init__(self, storage_path: Path, owner: Address) -> None:
        self.storage_path, self.owner = storage_path, owner
        super().__init__(
            f"the database in {storage_path} is in use by `{owner.command}` (pid {owner.pid})"
        )


def address_path(storage_path: Path) -> Path:
    return storage_path.with_name(storage_path.name + ".address")


@contextmanager
def open_shared(
    storage_path: Path, command: str, *, must_own: bool = False, timeout: float = 30.0
) -> Iterator[Attachment]:
    """The folder's database for the block: the running owner's, else one started (and owned)
    here. `must_own` raises DatabaseInUse instead of joining a live owner. Waits up to
    `timeout` s for an owner that is starting, or for a dead owner's server to finish stopping.
    """
    storage_path.parent.mkdir(parents=True, exist_ok=True)
    lock = os.open(storage_path.with_name(storage_path.name + ".lock"), os.O_RDWR | os.O_CREAT)
    try:
        owner = _lock_or_find_owner(lock, storage_path, must_own, time.monotonic() + timeout)
        if owner is not None:
            if not answers_ping(owner.uri):
                raise EmbeddedDatabaseError(
                    f"the database of `{owner.command}` (pid {owner.pid}) does not answer on "
                    f"port {owner.port}"
                )
            yield Attachment(owner.uri, owned=False)
            return
        with _own(storage_path, command, lock) as attachment:
            yield attachment
    finally:
        os.close(lock)  # the lock goes with it (the server, stopped by now, held it too)


def _lock_or_find_owner(
    lock: int, storage_path: Path, must_own: bool, deadline: float
) -> Address | None:
    """None once `lock` is ours; else the live owner's address."""
    while True:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return None
        except BlockingIOError:
            pass
        owner = _read_address(address_path(storage_path))
        if owner is not None and process_alive(owner.pid):
            if must_own:
                raise DatabaseInUse(storage_path, owner)
            return owner
        # The owner is still starting its server, or died and its server is still stopping.
        if time.monotonic() > deadline:
            raise EmbeddedDatabaseError(
                f"the database in {storage_path} is still held"
                + (f" by pid {owner.server_pid}" if owner else "")
                + f" ({storage_path.name}.lock)"
            )
        time.sleep(0.05)  # a lock offers nothing to wait on with a deadline but polling


@contextmanager
def _own(storage_path: Path, command: str, lock: int) -> Iterator[Attachment]:
    path = address_path(storage_path)
    unclean = _read_address(path)
    with EmbeddedDatabase(storage_path, pass_fds=(lock,)) as server:
        port = urlsplit(server.uri).port or 0
        address = Address(pid=os.getpid(), command=command, port=port, server_pid=server.pid)
        draft = path.with_name(f"{path.name}.{os.getpid()}")
        draft.write_text(json.dumps(asdict(address)))
        draft.replace(path)  # readers see the whole file or none
        try:
            yield Attachment(server.uri, owned=True, unclean=unclean)
        finally:
            path.unlink(missing_ok=True)


def _read_address(path: Path) -> Address | None:
    try:
        return Address(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None


def process_alive(pid: int) -> bool:
    """Whether a process `pid` runs (someone else's counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True

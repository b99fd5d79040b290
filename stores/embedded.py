"""SecantusDB as a child process: a real MongoDB-compatible server for development and tests.

The server keeps its data in `storage_path`, which survives restarts, and its port: a client
that was connected before a `stop()` finds the server again after the next `start()`. Its
output goes to `<storage_path>.log` beside that folder, not to pipes that could fill and stall
it.

The child never outlives the process that started it. It runs in a session of its own, so a
Ctrl-C meant for the parent does not stop it under the parent's feet (the parent stops it once
it has finished); on Linux the kernel sends it SIGTERM when the parent dies, however it dies
(`PR_SET_PDEATHSIG`, which fires when the *thread* that started it ends: start it from the main
thread). SIGTERM makes SecantusDB close WiredTiger cleanly. Every commit is written through to
the journal (`--sync-on-commit`), so even a killed server loses no acknowledged write.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import NoReturn

from pymongo import MongoClient
from pymongo.errors import PyMongoError

EXECUTABLE = "secantusd-py"


class EmbeddedDatabaseError(RuntimeError):
    """The server could not be found, did not start in time, or exited."""


class DatabaseLocked(EmbeddedDatabaseError):
    """Another process has the data folder open (WiredTiger allows one); `holder` is its pid
    when the system says (Linux)."""

    def __init__(self, storage_path: Path, holder: int | None) -> None:
        self.storage_path, self.holder = storage_path, holder
        who = f"another process (pid {holder})" if holder else "another process"
        super().__init__(f"the database in {storage_path} is locked by {who}")


# WiredTiger's words when `WiredTiger.lock` is held by someone else.
_LOCKED = "already being managed by another process"
_PR_SET_PDEATHSIG = 1


def find_executable() -> str:
    """`secantusd-py` next to this Python (a venv's bin), else on PATH."""
    beside = Path(sys.executable).parent / EXECUTABLE
    if beside.is_file():
        return str(beside)
    found = shutil.which(EXECUTABLE)
    if found is None:
        raise EmbeddedDatabaseError(f"{EXECUTABLE} is neither beside {sys.executable} nor on PATH")
    return found


def _free_port() -> int:
    # The port may be taken again before the server binds it; unlikely enough on loopback.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def answers_ping(uri: str) -> bool:
    """Whether a server at `uri` answers `ping` within a quarter of a second."""
    client: MongoClient[dict[str, object]] = MongoClient(
        uri, serverSelectionTimeoutMS=250, connectTimeoutMS=250
    )
    try:
        client.admin.command("ping")
    except PyMongoError:
        return False
    finally:
        client.close()
    return True


def local_uri(port: int) -> str:
    """The URI of the embedded database listening on `port`, without retryable writes.

    Retryable writes are off: SecantusDB (0.7) keeps a record of the last 10 000 of them in
    memory and goes over all of them on each write (and sorts them, once full), which made
    a new call's writes 3-4 times slower after a few thousand writes (`scripts/bench_store`).
    The record only helps a client whose connection to a running server broke mid-write,
    on loopback here; a restarted server has lost it anyway. Our own writes are idempotent
    where they are retried (`voice_server.retry`).
    """
    return f"mongodb://127.0.0.1:{port}/?directConnection=true&retryWrites=false"


class EmbeddedDatabase:
    """One SecantusDB server; `with EmbeddedDatabase(path) as server:` starts it, see `.uri`."""

    def __init__(
        self,
        storage_path: Path,
        *,
        executable: str | None = None,
        pass_fds: Sequence[int] = (),
    ) -> None:
        """`pass_fds`: descriptors the server inherits (a lock it must hold while it runs)."""
        self.storage_path = storage_path
        self.log_path = storage_path.with_name(storage_path.name + ".log")
        self._executable = executable
        self._pass_fds = tuple(pass_fds)
        self._process: subprocess.Popen[bytes] | None = None
        self._uri: str | None = None
        self._port: int | None = None
        self._log_offset = 0

    @property
    def pid(self) -> int:
        """The server's process id; raises if not started."""
        if self._process is None:
            raise EmbeddedDatabaseError("the embedded database is not running")
        return self._process.pid

    @property
    def uri(self) -> str:
        """The server's `local_uri`; raises if not started."""
        if self._uri is None:
            raise EmbeddedDatabaseError("the embedded database is not running")
        return self._uri

    def start(self, timeout: float = 30.0) -> str:
        """Start the server (on the port it had before, if it ran already) and wait until it
        answers `ping`; returns its URI."""
        if self._uri is not None:
            return self._uri
        port = self._port = self._port or _free_port()
        self._process = self._spawn(port)
        uri = local_uri(port)
        deadline = time.monotonic() + timeout
        while not answers_ping(uri):
            if self._process.poll() is not None:
                self._fail(f"exited with code {self._process.returncode}")
            if time.monotonic() > deadline:
                self._fail(f"did not answer ping within {timeout} s")
            time.sleep(0.05)
        self._uri = uri
        return uri

    def stop(self, timeout: float = 10.0) -> None:
        """Terminate the server (SIGTERM, then SIGKILL after `timeout`) and wait for it."""
        process, self._process, self._uri = self._process, None, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def __enter__(self) -> EmbeddedDatabase:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _spawn(self, port: int) -> subprocess.Popen[bytes]:
        executable = self._executable or find_executable()
        self.storage_path.parent.mkdir(parents=True, exist_ok=True)
        command = [
            executable,
            *("--host", "127.0.0.1", "--port", str(port)),
            *("--storage-path", str(self.storage_path), "--log-level", "WARNING"),
            "--sync-on-commit",  # an acknowledged write survives the server being killed
        ]
        # The child keeps its own descriptor; ours is closed as soon as it has started.
        with self.log_path.open("ab") as log:
            self._log_offset = log.tell()
            return subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                pass_fds=self._pass_fds,
                preexec_fn=die_with_parent(os.getpid()),  # noqa: PLW1509 (it calls prctl only)
            )

    def _fail(self, what: str) -> NoReturn:
        self.stop()
        with self.log_path.open("rb") as log:
            log.seek(self._log_offset)
            tail = log.read().decode(errors="replace").splitlines()[-20:]
        if any(_LOCKED in line for line in tail):
            raise DatabaseLocked(self.storage_path, lock_holder(self.storage_path))
        output = "\n".join(tail) or "(no output)"
        raise EmbeddedDatabaseError(
            f"SecantusDB {what}; the end of its log, {self.log_path}:\n{output}"
        )


def die_with_parent(parent: int) -> Callable[[], None] | None:
    """What a child of `parent` runs (before exec, for a forked one) to be sent SIGTERM when
    `parent` dies; it exits at once if `parent` has died already. None where the system cannot
    (Linux only)."""
    libc_name = ctypes.util.find_library("c") if sys.platform == "linux" else None
    if libc_name is None:
        return None
    prctl = ctypes.CDLL(libc_name, use_errno=True).prctl  # looked up before the fork

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the parent died before the request was made
            os._exit(1)

    return preexec


def lock_holder(storage_path: Path) -> int | None:
    """The pid holding WiredTiger's lock in `storage_path`, from /proc/locks (Linux)."""
    try:
        inode = (storage_path / "WiredTiger.lock").stat().st_ino
        locks = Path("/proc/locks").read_text()
    except OSError:
        return None
    # e.g. "1: POSIX  ADVISORY  WRITE 4761 08:01:123456 0 0"
    found = re.search(rf"^\d+: \S+\s+\S+\s+\S+\s+(\d+) [0-9a-f]+:[0-9a-f]+:{inode} ", locks, re.M)
    return int(found.group(1)) if found else None

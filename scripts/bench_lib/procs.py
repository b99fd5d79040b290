"""The benchmark's processes: started pinned to CPUs, read from /proc, stopped by their pid."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

_TICKS = os.sysconf("SC_CLK_TCK")
REPO = Path(__file__).resolve().parents[2]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of `pid` so far (not its children)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime: fields 14 and 15


def waited_seconds(pid: int) -> float:
    """How long the main thread of `pid` has waited, runnable, for a CPU that other processes
    held (/proc/<pid>/schedstat, second field): what a shared machine took from it."""
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[1]) / 1e9


def rss_mb(pid: int) -> float:
    """Resident memory of `pid`."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def children(pid: int) -> list[int]:
    """The direct children of `pid`."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(child) for child in (task / "children").read_text().split()]
    return found


def command_line(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")


def start(
    module: str,
    args: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cpus: set[int] | None = None,
    cwd: Path | None = None,
    stdout: int | IO[bytes] | None = None,
    stderr: IO[bytes] | None = None,
) -> subprocess.Popen[bytes]:
    """`python -m module args`, on this script's own Python, with `bench_lib` importable,
    optionally pinned to `cpus`."""
    path = os.pathsep.join([str(REPO / "scripts"), str(REPO)])
    environment = {**os.environ, **(env or {}), "PYTHONPATH": path}
    process = subprocess.Popen(
        [sys.executable, "-m", module, *args],
        env=environment,
        cwd=cwd or REPO,
        stdout=stdout,
        stderr=stderr,
    )
    if cpus is not None:
        os.sched_setaffinity(process.pid, cpus)
    return process


def prioritise(pid: int) -> bool:
    """Put `pid` above every ordinary process (`SCHED_FIFO`, the lowest real-time priority), so
    that it runs as soon as it is ready even on a busy CPU; False where that is not permitted
    (it needs root or `CAP_SYS_NICE`)."""
    try:
        os.sched_setscheduler(pid, os.SCHED_FIFO, os.sched_param(1))
    except PermissionError:
        return False
    return True


def stop(process: subprocess.Popen[bytes], timeout_s: float = 15.0) -> None:
    """SIGTERM, then SIGKILL if it has not exited in time; by pid, never by name."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_healthy(base_url: str, process: subprocess.Popen[bytes], timeout_s: float = 60) -> None:
    """Until GET /health answers 200; raises if the process exits first."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode} during start-up")
        try:
            with urllib.request.urlopen(f"{base_url}/health", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{base_url} did not become healthy in {timeout_s} s")

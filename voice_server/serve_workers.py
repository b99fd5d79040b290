"""`voice-server serve --workers N`, N > 1: N processes, each with an event loop of its own, all
accepting on the one port `serve` bound.

uvicorn's supervisor (`uvicorn.supervisors.Multiprocess`) starts the workers, checks that each
answers, replaces one that dies (the calls it held are finalised by any server's sweeper of lost
calls, `voice_server.live_calls`) and, on SIGHUP, replaces them one by one. Each worker builds
its own app (`worker_app`): its own database client, providers and live calls; any worker serves
any webhook or stream, as any server does (stream tokens verify on every instance). The
supervisor holds what there is one of: the socket, the embedded database (the workers connect to
it; its address is in their settings) and the folder the workers keep their metrics in
(`voice_server.metrics`).

Stopping: SIGTERM or SIGINT to the supervisor reaches each worker as SIGTERM, and each drains as
a single `serve` does (`voice_server.serving.Drain`); a further signal to the supervisor reaches
them as SIGINT, which ends their calls at once. A worker signalled by itself drains too, and is
then replaced. A repeated SIGTERM changes nothing in a worker: it may be the supervisor passing
on a stop the worker had already (systemd signals every process of a service, by default, and
Ctrl-C every process of the terminal's foreground group).
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import tempfile
from functools import partial
from multiprocessing.connection import wait
from pathlib import Path
from typing import Any

from starlette.types import ASGIApp
from uvicorn.supervisors import Multiprocess

from stores.embedded import die_with_parent
from voice_server.app import create_app
from voice_server.command_errors import CommandError
from voice_server.live_calls import LiveCalls
from voice_server.log import configure_logging, get_logger
from voice_server.serving import Drain, collector_tuned_after_startup, uvicorn_config
from voice_server.settings import MAX_WEB_WORKERS, Settings

log = get_logger(__name__)

_LOOK_S = 0.5  # how often the supervisor looks at its signals while the workers drain
_WORKER_ANSWERS_S = 30.0


def worker_count(option: str | None, settings: Settings) -> int:
    """`--workers`, else WEB_WORKERS, else the CPUs this process may run on."""
    if option is None:
        return settings.web_workers or _usable_cpus()
    if not option.isdigit() or not 1 <= int(option) <= MAX_WEB_WORKERS:
        raise CommandError(
            f"--workers takes a number of processes from 1 to {MAX_WEB_WORKERS}, not {option!r}"
        )
    return int(option)


def _usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))  # a process pinned to some CPUs (taskset, cpuset)
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def serve_workers(settings: Settings, count: int, listening: socket.socket, **options: Any) -> None:
    """Serve on `listening` with `count` workers until stopped (see the module's docstring).
    `settings` name the database the workers use; `options` are uvicorn's."""
    configure_logging(settings.log_level, settings.log_format, with_pid=True)
    with tempfile.TemporaryDirectory(prefix="voice-server-metrics-") as folder:
        # prometheus-client takes its multiprocess mode from the environment when it is first
        # imported, which it is in each worker, after this.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder
        app = partial(worker_app, settings, Path(folder))
        config = uvicorn_config(
            app,
            factory=True,
            workers=count,
            # How long a worker may take to answer the supervisor's ping, and to start when
            # SIGHUP replaces it. uvicorn's 5 s is about what importing the app takes on a busy
            # machine, before the worker can answer: it would kill workers as they start.
            timeout_worker_healthcheck=_WORKER_ANSWERS_S,
            **options,
        )
        _Supervisor(config, sockets=[listening]).run()


def worker_app(settings: Settings, metrics_folder: Path) -> ASGIApp:
    """One worker's app. uvicorn calls it in the worker, on its event loop, within its server's
    `serve()`: after the server has taken SIGTERM and SIGINT, before it serves."""
    configure_logging(settings.log_level, settings.log_format, with_pid=True)
    request_sigterm = die_with_parent(os.getppid())  # no worker outlives a killed supervisor
    if request_sigterm is not None:
        request_sigterm()
    live_calls = LiveCalls()
    _drain_first(live_calls, settings.drain_seconds)
    app = create_app(settings, live_calls=live_calls, metrics_folder=metrics_folder)
    return collector_tuned_after_startup(app)


def _drain_first(live_calls: LiveCalls, seconds: float) -> None:
    """Put a `Drain` in front of the worker's server's handlers of SIGTERM and SIGINT: uvicorn's
    own worker would close every media stream at once."""
    server_exit = signal.getsignal(signal.SIGTERM)
    if not callable(server_exit):
        raise RuntimeError("the worker's server has not taken SIGTERM")

    def stop(sig: signal.Signals) -> None:
        server_exit(sig, None)

    drain = Drain(
        asyncio.get_running_loop(), live_calls, seconds, stop, hurried_by=(signal.SIGINT,)
    )
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, drain.on_signal)


class _Supervisor(Multiprocess):
    """uvicorn's supervisor, except that a signal while the workers drain reaches them as SIGINT
    (uvicorn's would wait for them, deaf)."""

    def join_all(self) -> None:
        processes = [worker.process for worker in self.processes]
        while running := [process for process in processes if process.is_alive()]:
            wait([process.sentinel for process in running], timeout=_LOOK_S)
            if self.signal_queue:  # where uvicorn's handlers put the signals
                self.signal_queue.clear()
                log.info("stop requested again: the workers end their calls now")
                for process in running:
                    if process.pid is not None:
                        os.kill(process.pid, signal.SIGINT)

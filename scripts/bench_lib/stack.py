"""What the server under test runs on, for `scripts/bench` and `scripts/soak`: an embedded
database seeded with the demo number (its agent moved to OpenAI model names: STT → LLM → TTS,
or with `mode="speech"` a Realtime speech model that hears and speaks itself), the OpenAI
stand-ins (`bench_lib.standins`, fixed latencies) in a process of their own, and the server
itself (`voice-server serve` under `bench_lib.served`) on a free loopback port, pointed at both.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import socket
import subprocess
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench_lib import procs
from bench_lib.standins import PARTS
from stores import migrations
from stores.agents import AgentStore, AgentUpdate
from stores.database import connect, database_name
from stores.embedded import EmbeddedDatabase
from stores.secrets import SecretBox
from stores.turn_taking import TurnTaking
from tests.voice_server.openai_fakes import silence_ms
from voice_server.seed import DEMO_USER, DemoLine, seed_demo

MODELS = AgentUpdate(
    sttModel="gpt-4o-mini-transcribe",
    inferenceModel="gpt-4o-mini",
    ttsModel="gpt-4o-mini-tts",
    ttsVoice="alloy",
)
SPEECH_MODELS = MODELS.model_copy(update={"inferenceModel": "gpt-realtime-2"})
MODES = {"pipeline": MODELS, "speech": SPEECH_MODELS}


def stand_in_silence_ms() -> float:
    """The caller's silence after which the stand-ins' VAD ends a turn of the bench agent: its
    `endSilenceMs` with `server_vad`; `semantic_vad` has no silence setting, so the stand-ins
    take the real server's default then."""
    turns = TurnTaking()  # the bench agent's: the demo agent's default
    if turns.turnDetection == "server_vad":
        return float(turns.endSilenceMs)
    return silence_ms({})


async def seed(uri: str, key: str, models: AgentUpdate = MODELS) -> DemoLine:
    """The demo number, with its agent moved to OpenAI model names."""
    client = connect(uri)
    try:
        db = client[database_name(uri)]
        await migrations.upgrade(db)
        line = await seed_demo(db, SecretBox(key))
        await AgentStore(db).update(DEMO_USER, line.agent_id, models)
        return line
    finally:
        await client.close()


@dataclass(frozen=True)
class Latencies:
    """What the stand-ins take, by design, before their first byte."""

    stt_ms: float
    llm_ms: float  # to the first token
    token_ms: float  # between tokens
    tts_ms: float
    speech_ms: float = 700.0  # the speech-to-speech model: caller's turn end → first audio


DEFAULT_LATENCIES = Latencies(stt_ms=150.0, llm_ms=250.0, token_ms=15.0, tts_ms=150.0)
"""`scripts/bench`'s defaults, which the other load scripts share."""


@dataclass(frozen=True)
class Stack:
    line: DemoLine
    database_uri: str
    env: dict[str, str]  # the server's settings: database, secrets, OPENAI_* → the stand-ins
    helpers: dict[str, int]  # name → pid: "database", "standins-http", "standins-realtime"
    dependencies_prioritised: bool
    """Whether the stand-ins and the database run above the load generator (`procs.prioritise`)."""


@contextmanager
def running_stack(out: Path, latencies: Latencies, mode: str = "pipeline") -> Iterator[Stack]:
    """The seeded database (in `out/db`, its agent on the models of `mode`: a key of `MODES`)
    and the stand-ins, for as long as the block runs; the stand-ins log to
    `out/standins.log`. Call it outside any running event loop.

    The stand-ins and the database, what the server waits on, are prioritised where the system
    allows: they share a CPU with the load generator. Every millisecond a stand-in waits for that
    CPU beyond its fixed latency would count as the server's own time (some 50 ms of its p95 at
    200 calls), and a database starved of it fails new calls (from 300 calls, where that CPU is
    full). The load generator gets what is left, so its own delays count in `own` latencies."""
    key = SecretBox.generate_key()
    with EmbeddedDatabase(out / "db") as database:
        line = asyncio.run(seed(database.uri, key, MODES[mode]))
        arguments = [
            f"--stt-ms={latencies.stt_ms}",
            f"--llm-ms={latencies.llm_ms}",
            f"--token-ms={latencies.token_ms}",
            f"--tts-ms={latencies.tts_ms}",
            f"--speech-ms={latencies.speech_ms}",
        ]
        standins: dict[str, subprocess.Popen[bytes]] = {}
        with (out / "standins.log").open("ab") as standins_log:
            for part in PARTS:
                standins[part] = procs.start(
                    "bench_lib.standins",
                    [f"--part={part}", *arguments],
                    stdout=subprocess.PIPE,
                    stderr=standins_log,
                )
        try:
            urls: dict[str, str] = {}
            for process in standins.values():
                assert process.stdout is not None
                urls |= json.loads(process.stdout.readline())
            env = {
                "MONGODB_URI": database.uri,
                "SECRETS_KEY": key,
                "STREAM_TOKEN_SECRET": secrets.token_urlsafe(32),
                "OPENAI_API_KEY": "bench-key",
                "OPENAI_BASE_URL": urls["base_url"],
                "OPENAI_WEBSOCKET_BASE_URL": urls["websocket_base_url"],
                "HOST": "127.0.0.1",
                "LOG_LEVEL": "WARNING",
            }
            found = [p for p in procs.children(os.getpid()) if "secantus" in procs.command_line(p)]
            helpers = {f"standins-{part}": process.pid for part, process in standins.items()}
            helpers["database"] = found[0]
            prioritised = True
            for pid in helpers.values():  # every one, even after a refusal
                prioritised = procs.prioritise(pid) and prioritised
            yield Stack(line, database.uri, env, helpers, prioritised)
        finally:
            for process in standins.values():
                procs.stop(process)


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    base_url: str
    lag_file: Path


def start_server(
    env: Mapping[str, str], out: Path, name: str, cpus: set[int] | None = None
) -> Server:
    """One server process, not yet healthy (see `procs.wait_healthy`): it logs to
    `out/server-<name>.log` and writes its loop lag to `out/lag-<name>.jsonl`."""
    port = _free_port()
    base_url = f"http://127.0.0.1:{port}"
    lag_file = out / f"lag-{name}.jsonl"
    env = {**env, "PORT": str(port), "PUBLIC_BASE_URL": base_url, "BENCH_LAG_FILE": str(lag_file)}
    with (out / f"server-{name}.log").open("ab") as log:
        process = procs.start(
            "bench_lib.served", [], env=env, cpus=cpus, cwd=out, stderr=log, stdout=log
        )
    return Server(process, base_url, lag_file)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port

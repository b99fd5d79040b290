"""`scripts/bench`: what a call costs, and how many calls one server process carries.

Starts an embedded database (seeded with the demo number and an agent on OpenAI model names),
the OpenAI stand-ins (`bench_lib.standins`: a Realtime recogniser that runs a VAD on every
frame, a chat model streaming a 30-token answer token by token, a TTS returning as much audio
as the text takes to say, each with a fixed latency; with `--mode speech`, a Realtime
speech-to-speech model that hears the caller with its own VAD and speaks the same answer, its
first audio `--speech-ms` after the caller's turn ended) and the real server (`voice-server serve`
under `bench_lib.served`, one uvicorn worker, OPENAI_* pointing at the stand-ins), each a
process of its own. Then, for each N of `--calls`, the load generator (`bench_lib.calls`, a
process of its own) places N concurrent calls at real-time pace, posting each call's voice
webhook as Twilio does; the server's CPU and memory (and the helpers' CPU) are read from /proc
over the window where all N calls are up, and the server's transcripts are read back to tell
real answers from fallbacks. Then the same on two server processes for each N of
`--scale-calls`, a py-spy profile of the one-worker server at its largest N, and an asyncio
slow-callback check. Writes results.json, bench.png, the profile (and its top costs in
profile-top.txt) and the logs to var/bench/<time>/ and prints the table.

With `--pin` (the default) the one-worker server runs alone on CPU 0 and everything else
(database, stand-ins, load generator) on CPU 1; two workers and their helpers share all CPUs.
The stand-ins and the database run at real-time priority where permitted
(`bench_lib.stack.running_stack`), so that their latencies stay fixed when their CPU is busy.

The table, one line per step (W workers, N concurrent calls):
  fail          calls that could not be placed or were ended early by the server
  turns         caller turns; `answer` / `fallback` what the server said after them (from its
                transcripts), `unans` turns with no reply within the load generator's timeout
  gaps          playback underruns inside an agent utterance
  own p50/p95   turn latency (last caller frame → first agent audio) minus the stand-ins' fixed
                part (endpointing, STT, LLM to the first sentence, TTS; in speech mode,
                endpointing and the model's first audio): the server's own time, as the caller
                hears it (the load generator's own delays included)
  srv p50/p95   the same from the server's figures of each answer (final transcript → first
                audio sent, minus the chat and TTS stand-ins' fixed part), without the load
                generator's delays
  hook p50/p99  the voice webhook, as the load generator timed it
  CPU-s/call-min  server CPU per minute of call; `cores` its average load; `wait` the share of
                the time it was ready to run while other processes held its CPU (a shared
                machine: latencies then say little)
  MB/call       the server's memory growth per call
  gen/std/rt/db the cores of the load generator, the chat and TTS stand-ins, the Realtime
                stand-in and the database (on CPU 1 when pinned: near 1.0 in all means the
                harness is the limit)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench_lib import procs
from bench_lib.answers import count_answers
from bench_lib.report import Usage, plot, row, table, top_costs
from bench_lib.stack import (
    MODES,
    Latencies,
    Server,
    Stack,
    running_stack,
    stand_in_silence_ms,
    start_server,
)
from bench_lib.standins import tokens_before_speech
from voice_server.seed import DemoLine


@dataclass
class Bench:
    """Everything the steps share: arguments, where outputs go, the line and the helpers."""

    args: argparse.Namespace
    out: Path
    line: DemoLine
    database_uri: str
    env: dict[str, str]
    helpers: dict[str, int] = field(default_factory=dict)  # name → pid

    @property
    def fixed_ms(self) -> float:
        """What the stand-ins take of every turn by design, besides endpointing (which the
        load generator works out per phrase: the session's silence and the VAD's hangover):
        the transcript, the tokens up to the first sentence's end, the first audio byte; in
        speech mode, the model's first audio."""
        return self.args.speech_ms if self.args.mode == "speech" else pipeline_ms(self.args)

    @property
    def after_final_ms(self) -> float:
        """The part of `fixed_ms` after the recogniser's final transcript (none comes in speech
        mode, whose answers carry no server figure for it)."""
        return self.fixed_ms - self.args.stt_ms


def pipeline_ms(args: argparse.Namespace) -> float:
    """The pipeline stand-ins' fixed part of a turn: STT, LLM to the first sentence, TTS."""
    tokens_ms: float = (tokens_before_speech() - 1) * args.token_ms
    return float(args.stt_ms + args.llm_ms + tokens_ms + args.tts_ms)


def start_servers(bench: Bench, workers: int, tag: str, extra_env: dict[str, str]) -> list[Server]:
    cpus = {0} if bench.args.pin and workers == 1 else None
    env = {**bench.env, **extra_env}
    servers = [start_server(env, bench.out, f"{tag}-{w}", cpus) for w in range(workers)]
    for server in servers:
        procs.wait_healthy(server.base_url, server.process)
    return servers


def _snapshot(pids: dict[str, int], servers: dict[str, int]) -> dict[str, float]:
    """CPU seconds of every process, and the servers' waits for a CPU (`<name>-wait`)."""
    waits = {f"{name}-wait": procs.waited_seconds(pid) for name, pid in servers.items()}
    return {name: procs.cpu_seconds(pid) for name, pid in pids.items()} | waits


def _lag(servers: list[Server], since: float, until: float) -> dict[str, float]:
    worst, over20, over50 = 0.0, 0, 0
    for server in servers:
        for text in server.lag_file.read_text().splitlines():
            entry = json.loads(text)
            if since <= entry["t"] <= until + 1:
                worst = max(worst, entry["max_ms"])
                over20 += entry["over_20ms"]
                over50 += entry["over_50ms"]
    return {"max_ms": worst, "over_20ms": over20, "over_50ms": over50}


def run_step(
    bench: Bench, servers: list[Server], calls: int, seconds: float, profile: Path | None = None
) -> tuple[dict[str, Any], Usage, dict[str, float]]:
    """N calls for `seconds`; the load generator's tally, the server usage and the loop lag."""
    args = [
        *(f"--base-url={server.base_url}" for server in servers),
        f"--calls={calls}",
        f"--seconds={seconds}",
        f"--ramp-s={max(2.0, calls / 40)}",
        f"--turns={bench.args.turns}",
        f"--auth-token={bench.line.auth_token}",
        f"--to={bench.line.number}",
        f"--silence-ms={stand_in_silence_ms()}",
    ]
    with (bench.out / "loadgen.log").open("ab") as log:
        loadgen = procs.start("bench_lib.calls", args, stdout=subprocess.PIPE, stderr=log)
        assert loadgen.stdout is not None
        pids = {f"server{i}": s.process.pid for i, s in enumerate(servers)}
        helpers = {**bench.helpers, "loadgen": loadgen.pid}
        spy = tally = None
        marks: dict[str, tuple[float, dict[str, float], float]] = {}
        for text in loadgen.stdout:
            message = json.loads(text)
            if "phase" in message:
                rss = sum(procs.rss_mb(s.process.pid) for s in servers)
                marks[message["phase"]] = (message["t"], _snapshot({**pids, **helpers}, pids), rss)
                if message["phase"] == "steady" and profile is not None:
                    spy = _profile(servers[0].process.pid, profile, min(20.0, seconds - 5))
            else:
                tally = message["tally"]
        loadgen.wait()
    if spy is not None:
        spy.wait()
    if tally is None or set(marks) != {"steady", "draining"}:
        raise RuntimeError(
            f"the load generator failed (exit {loadgen.returncode}); see loadgen.log"
        )
    (t0, cpu0, _), (t1, cpu1, rss) = marks["steady"], marks["draining"]
    usage = Usage(
        window_s=t1 - t0,
        server_cpu_s=sum(cpu1[name] - cpu0[name] for name in pids),
        server_wait_s=sum(cpu1[f"{name}-wait"] - cpu0[f"{name}-wait"] for name in pids),
        server_rss_mb=rss,
        baseline_rss_mb=0.0,
        helpers_cpu_s={name: cpu1[name] - cpu0[name] for name in helpers},
    )
    return tally, usage, _lag(servers, t0, t1)


def _profile(pid: int, path: Path, seconds: float) -> subprocess.Popen[bytes]:
    spy = Path(sys.executable).with_name("py-spy")
    command = [str(spy), "record", "--pid", str(pid), "--duration", str(int(seconds))]
    command += ["--rate", "100", "--format", "raw", "--nolineno", "--nonblocking"]
    return subprocess.Popen([*command, "--output", str(path)], stdout=subprocess.DEVNULL)


def phase(
    bench: Bench, workers: int, ramp: list[int], profile_at: int | None
) -> list[dict[str, Any]]:
    """The ramp on `workers` server processes, after a short warm-up."""
    servers = start_servers(bench, workers, f"{workers}w", {})
    rows = []
    try:
        run_step(bench, servers, 2 * workers, 8)  # warm-up: pools, caches, the greeting
        baseline = sum(procs.rss_mb(s.process.pid) for s in servers)
        for calls in ramp:
            profile = bench.out / f"profile-{calls}.txt" if calls == profile_at else None
            tally, usage, lag = run_step(bench, servers, calls, bench.args.seconds, profile)
            usage = Usage(**{**usage.__dict__, "baseline_rss_mb": baseline})
            answers = asyncio.run(count_answers(bench.database_uri, tally.pop("call_sids")))
            figures = row(
                workers,
                calls,
                tally=tally,
                answers=answers,
                usage=usage,
                fixed_ms=bench.fixed_ms,
                after_final_ms=bench.after_final_ms,
                lag=lag,
            )
            rows.append(figures)
            print(table([figures]).splitlines()[-1], flush=True)
            if profile is not None and profile.exists():
                (bench.out / "profile-top.txt").write_text(top_costs(profile))
    finally:
        for server in servers:
            procs.stop(server.process)
    return rows


def slow_callbacks(bench: Bench, calls: int) -> dict[str, Any]:
    """A run in asyncio debug mode: every callback slower than the threshold is logged."""
    threshold = str(bench.args.slow_callback_ms)
    servers = start_servers(bench, 1, "debug", {"BENCH_SLOW_CALLBACK_MS": threshold})
    try:
        run_step(bench, servers, calls, 30)
    finally:
        procs.stop(servers[0].process)
    lines = (bench.out / "server-debug-0.log").read_text(errors="replace").splitlines()
    slow = [text for text in lines if "Executing" in text and "took" in text]
    return {
        "calls": calls,
        "threshold_ms": bench.args.slow_callback_ms,
        "slow": len(slow),
        "first": slow[:10],
    }


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scripts/bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    calls = lambda text: [int(n) for n in text.split(",") if n]  # noqa: E731
    parser.add_argument(
        "--calls", type=calls, default=[10, 50, 100, 200, 400], help="N on one worker, e.g. 10,50"
    )
    parser.add_argument(
        "--scale-calls", type=calls, default=[400, 600], help="N on two workers; '' to skip"
    )
    parser.add_argument("--seconds", type=float, default=40.0, help="steady time per N")
    parser.add_argument("--turns", type=int, default=4, help="caller turns per call")
    parser.add_argument("--stt-ms", type=float, default=150.0, help="speech stopped → transcript")
    parser.add_argument("--llm-ms", type=float, default=250.0, help="LLM request → first token")
    parser.add_argument("--token-ms", type=float, default=15.0, help="LLM token → next token")
    parser.add_argument("--tts-ms", type=float, default=150.0, help="TTS request → first byte")
    parser.add_argument(
        "--mode",
        choices=list(MODES),
        default="pipeline",
        help="the agent: STT → LLM → TTS, or one Realtime speech-to-speech model",
    )
    parser.add_argument(
        "--speech-ms",
        type=float,
        help="speech model: turn end → first audio (default: the pipeline's STT + LLM to the "
        "first sentence + TTS, so both modes wait as long on the stand-ins)",
    )
    parser.add_argument("--slow-callback-ms", type=float, default=20.0)
    parser.add_argument("--slow-check-calls", type=int, default=100, help="0: skip the check")
    parser.add_argument("--no-profile", dest="profile", action="store_false")
    parser.add_argument("--no-pin", dest="pin", action="store_false", help="let the OS place all")
    parser.add_argument("--out", type=Path, default=procs.REPO / "var" / "bench")
    return parser


def main() -> int:
    args = _parser().parse_args()
    if args.speech_ms is None:
        args.speech_ms = pipeline_ms(args)
    out = args.out.resolve() / time.strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True)
    if args.pin:
        os.sched_setaffinity(0, {1})  # helpers inherit CPU 1; the one-worker server gets CPU 0
    latencies = Latencies(args.stt_ms, args.llm_ms, args.token_ms, args.tts_ms, args.speech_ms)
    with running_stack(out, latencies, args.mode) as stack:
        results = _run(args, out=out, stack=stack)
    (out / "results.json").write_text(json.dumps(results, indent=2))
    plot(results["rows"], out / "bench.png")
    _report(results, out)
    return 0


def _run(args: argparse.Namespace, *, out: Path, stack: Stack) -> dict[str, Any]:
    bench = Bench(args, out, stack.line, stack.database_uri, stack.env, dict(stack.helpers))
    rows = phase(bench, 1, args.calls, max(args.calls) if args.profile else None)
    if args.scale_calls:
        if args.pin:
            for pid in (os.getpid(), *bench.helpers.values()):
                os.sched_setaffinity(pid, {0, 1})
        rows += phase(bench, 2, args.scale_calls, None)
    slow = slow_callbacks(bench, args.slow_check_calls) if args.slow_check_calls else None
    return {
        "machine": {
            "nproc": os.cpu_count(),
            "memory_gb": _memory_gb(),
            "dependencies_prioritised": stack.dependencies_prioritised,
        },
        "settings": {k: str(v) for k, v in vars(args).items()},
        "fixed_ms": bench.fixed_ms,
        "rows": rows,
        "slow_callbacks": slow,
    }


def _memory_gb() -> float:
    for text in Path("/proc/meminfo").read_text().splitlines():
        if text.startswith("MemTotal:"):
            return round(int(text.split()[1]) / 1024**2, 1)
    return 0.0


def _report(results: dict[str, Any], out: Path) -> None:
    machine = results["machine"]
    priority = (
        "the stand-ins and the database above the load generator"
        if machine["dependencies_prioritised"]
        else "the stand-ins and the database NOT prioritised (run as root: their waits count)"
    )
    print(f"\nmachine: nproc {machine['nproc']}, memory {machine['memory_gb']} GB; {priority}")
    endpointing = sorted({e for r in results["rows"] for e in r["stand_in_endpointing_ms"]})
    speech = results["settings"]["mode"] == "speech"
    part = "the speech model's first audio" if speech else "STT, LLM to the first sentence, TTS"
    print(
        f"mode {results['settings']['mode']}; fixed per turn: stand-ins "
        f"{results['fixed_ms']:.0f} ms ({part}) + endpointing {endpointing} ms (the session's "
        "silence_duration_ms and the stand-in VAD's hangover)"
    )
    print(table(results["rows"]))
    if (slow := results["slow_callbacks"]) is not None:
        print(
            f"\nasyncio debug at {slow['calls']} calls: {slow['slow']} callbacks slower than "
            f"{slow['threshold_ms']} ms"
        )
    if (top := out / "profile-top.txt").exists():
        print("\n" + "\n".join(top.read_text().splitlines()[:16]))
    print(f"\noutputs: {out}")


if __name__ == "__main__":
    raise SystemExit(main())

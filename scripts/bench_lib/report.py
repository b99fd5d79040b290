"""What `scripts/bench` prints and writes: one row per run step, the table, the plot, and the
top costs of a py-spy profile."""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

from bench_lib.answers import Answers

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt


def percentiles(values: Sequence[float]) -> dict[str, float | None]:
    """p50 / p95 / p99, or None where there are too few values."""
    if len(values) < 2:
        only = round(values[0], 1) if values else None
        return {"p50": only, "p95": only, "p99": only}
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return {"p50": round(cuts[49], 1), "p95": round(cuts[94], 1), "p99": round(cuts[98], 1)}


@dataclass(frozen=True)
class Usage:
    """Server resources over the steady window of one step."""

    window_s: float
    server_cpu_s: float
    server_wait_s: float  # runnable but waiting for a CPU that other processes held
    server_rss_mb: float
    baseline_rss_mb: float
    helpers_cpu_s: dict[str, float]  # the database, stand-ins and load generator, for context


def row(
    workers: int,
    calls: int,
    *,
    tally: dict[str, Any],
    answers: Answers,
    usage: Usage,
    fixed_ms: float,  # the stand-ins' latencies, besides endpointing
    after_final_ms: float,  # the part of `fixed_ms` after the recogniser's final transcript
    lag: dict[str, float],
) -> dict[str, Any]:
    """The figures of one step (N concurrent calls on `workers` server processes)."""
    latencies = tally["latencies_ms"]
    own = [t - e - fixed_ms for t, e in zip(latencies, tally["endpointing_ms"], strict=True)]
    own_on_server = [ms - after_final_ms for ms in answers.final_to_audio_ms]
    call_minutes = tally["call_seconds_steady"] / 60
    return {
        "workers": workers,
        "calls": calls,
        "calls_placed": tally["calls"],
        "failed_calls": tally["failed"],
        "errors": tally["errors"],
        "turns": tally["turns"],
        "answers": answers.answers,
        "fallbacks": answers.fallbacks,
        "unanswered_turns": tally["unanswered"],
        "webhook_ms": percentiles(tally["webhook_ms"]),
        "latency_ms": percentiles(latencies),
        "overhead_ms": percentiles(own),
        "server_overhead_ms": percentiles(own_on_server),
        "stand_in_endpointing_ms": sorted(set(tally["endpointing_ms"])),
        "barge_ins": tally["barge_ins"],
        "missed_clears": tally["missed_clears"],
        "clear_ms": percentiles(tally["clear_ms"]),
        "audio_gaps": tally["gaps"],
        "audio_gap_ms": round(tally["gap_ms"], 1),
        "server_cores": round(usage.server_cpu_s / usage.window_s, 3),
        "server_cpu_wait": round(usage.server_wait_s / usage.window_s, 3),
        "cpu_s_per_call_minute": round(usage.server_cpu_s / call_minutes, 3)
        if call_minutes
        else None,
        "rss_mb": round(usage.server_rss_mb, 1),
        "mb_per_call": round((usage.server_rss_mb - usage.baseline_rss_mb) / calls, 2),
        "loop_lag_max_ms": lag.get("max_ms"),
        "loop_lags_over_20ms": lag.get("over_20ms"),
        "loop_lags_over_50ms": lag.get("over_50ms"),
        "client_late_ticks": tally["late_ticks"],
        "client_worst_tick_lateness_ms": round(tally["worst_tick_lateness_ms"], 1),
        "helper_cores": {k: round(v / usage.window_s, 3) for k, v in usage.helpers_cpu_s.items()},
    }


Row = dict[str, Any]
COLUMNS: tuple[tuple[str, Callable[[Row], object]], ...] = (
    ("W", lambda r: r["workers"]),
    ("N", lambda r: r["calls"]),
    ("calls", lambda r: r["calls_placed"]),
    ("fail", lambda r: r["failed_calls"]),
    ("turns", lambda r: r["turns"]),
    ("answer", lambda r: r["answers"]),
    ("fallback", lambda r: r["fallbacks"]),
    ("unans", lambda r: r["unanswered_turns"]),
    ("gaps", lambda r: r["audio_gaps"]),
    ("own p50", lambda r: r["overhead_ms"]["p50"]),
    ("own p95", lambda r: r["overhead_ms"]["p95"]),
    ("srv p50", lambda r: r["server_overhead_ms"]["p50"]),
    ("srv p95", lambda r: r["server_overhead_ms"]["p95"]),
    ("lat p95", lambda r: r["latency_ms"]["p95"]),
    ("hook p50", lambda r: r["webhook_ms"]["p50"]),
    ("hook p99", lambda r: r["webhook_ms"]["p99"]),
    ("CPU-s/call-min", lambda r: r["cpu_s_per_call_minute"]),
    ("cores", lambda r: r["server_cores"]),
    ("wait", lambda r: r["server_cpu_wait"]),
    ("MB/call", lambda r: r["mb_per_call"]),
    ("lag max", lambda r: r["loop_lag_max_ms"]),
    ("gen", lambda r: r["helper_cores"].get("loadgen")),
    ("std", lambda r: r["helper_cores"].get("standins-http")),
    ("rt", lambda r: r["helper_cores"].get("standins-realtime")),
    ("db", lambda r: r["helper_cores"].get("database")),
)


def table(rows: Sequence[dict[str, Any]]) -> str:
    """A Markdown table, one line per step."""
    lines = [
        "| " + " | ".join(name for name, _ in COLUMNS) + " |",
        "|" + "---:|" * len(COLUMNS),
    ]
    for r in rows:
        lines.append("| " + " | ".join(_cell(get(r)) for _, get in COLUMNS) + " |")
    return "\n".join(lines)


def _cell(value: object) -> str:
    return "–" if value is None else str(value)


def plot(rows: Sequence[dict[str, Any]], path: Path) -> None:
    """Latency (p50/p95/p99 and our own p95) and CPU per call-minute against N, per worker count."""
    figure, (latency, cpu) = plt.subplots(1, 2, figsize=(12, 4.5))
    for workers in sorted({r["workers"] for r in rows}):
        mine = [r for r in rows if r["workers"] == workers]
        n = [r["calls"] for r in mine]
        for key, style in (("p50", "-"), ("p95", "--"), ("p99", ":")):
            values = [r["latency_ms"][key] for r in mine]
            latency.plot(n, values, style, marker="o", label=f"{workers}w turn {key}")
        latency.plot(
            n,
            [r["overhead_ms"]["p95"] for r in mine],
            "-.",
            marker="x",
            label=f"{workers}w own p95",
        )
        cpu.plot(
            n, [r["cpu_s_per_call_minute"] for r in mine], marker="o", label=f"{workers} worker(s)"
        )
    latency.set(
        xlabel="concurrent calls", ylabel="ms", title="turn latency (last speech → first audio)"
    )
    cpu.axhline(0.25, color="grey", linestyle="--", label="target 0.25")
    cpu.set(xlabel="concurrent calls", ylabel="CPU-s per call-minute", title="server CPU")
    for axes in (latency, cpu):
        axes.grid(alpha=0.3)
        axes.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def top_costs(raw_profile: Path, limit: int = 25) -> str:
    """Own ("self") and total share of samples per function, from py-spy's raw format."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in raw_profile.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = stack.split(";")
        samples += count
        own[frames[-1]] += count
        for frame in set(frames):
            total[frame] += count
    if not samples:
        return "no samples\n"

    def listing(title: str, counter: Counter[str]) -> list[str]:
        rows = [f"{100 * c / samples:5.1f}%  {frame}" for frame, c in counter.most_common(limit)]
        return [f"{title} ({samples} samples)", *rows, ""]

    return "\n".join(listing("own time", own) + listing("total time", total))

"""What the server answered, read back from its call records after a step: each agent
utterance after the caller first spoke is the stand-in LLM's answer (whole or cut by a
barge-in) or something else, which on this script can only be a fallback (the stalled-response
or not-heard phrase, a resumed greeting). An answer cut by a barge-in before any of it was
heard leaves no entry, so answers and fallbacks may add up to fewer than the turns.

Each answer also carries the server's own figures of its turn (`voice_server.call.latency`): the
time from the recogniser's final transcript to the first audio sent, on the server's clock, is
what the server and the chat and TTS stand-ins took, without the load generator's own delays.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bench_lib.standins import ANSWER
from stores.database import connect, database_name

_START = 20  # characters that tell the answer from anything else the agent says


def is_answer(text: str) -> bool:
    """The answer, or the start of it that a caller heard before cutting in."""
    start = text.strip()[:_START]
    return bool(start) and ANSWER.startswith(start)


@dataclass(frozen=True)
class Answers:
    answers: int = 0
    fallbacks: int = 0
    final_to_audio_ms: list[float] = field(default_factory=list)  # the server's, per answer


def classify(transcript: list[dict[str, Any]]) -> Answers:
    """Count one call's agent utterances after its caller's first words."""
    answers = fallbacks = 0
    timings: list[float] = []
    caller_spoke = False
    for entry in transcript:
        if entry["role"] == "user":
            caller_spoke = True
        elif caller_spoke:
            if is_answer(entry["text"]) and "error" not in entry:
                answers += 1
                metrics = entry.get("metrics") or {}
                if "first_audio_ms" in metrics and "stt_final_ms" in metrics:
                    timings.append(metrics["first_audio_ms"] - metrics["stt_final_ms"])
            else:
                fallbacks += 1
    return Answers(answers, fallbacks, timings)


async def count_answers(database_uri: str, call_sids: list[str]) -> Answers:
    """The answers and fallbacks of the calls `call_sids`, from their transcripts."""
    client = connect(database_uri)
    try:
        calls = client[database_name(database_uri)]["calls"]
        fields = ("role", "text", "error", "metrics")
        projection = {"_id": 0, **{f"transcript.{name}": 1 for name in fields}}
        total = Answers()
        async for call in calls.find({"call_sid": {"$in": call_sids}}, projection):
            counted = classify(call.get("transcript", []))
            total = Answers(
                total.answers + counted.answers,
                total.fallbacks + counted.fallbacks,
                total.final_to_audio_ms + counted.final_to_audio_ms,
            )
        return total
    finally:
        await client.close()

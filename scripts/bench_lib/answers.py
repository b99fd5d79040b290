"""What the server answered, read back from its call records after a step: each agent
utterance after the caller first spoke is the stand-in LLM's answer (whole or cut by a
barge-in) or something else, which on this script can only be a fallback (the stalled-response
or not-heard phrase, a resumed greeting). An answer cut by a barge-in before any of it was
heard leaves no entry, so answers and fallbacks may add up to fewer than the turns.
"""

from __future__ import annotations

from dataclasses import dataclass
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


def classify(transcript: list[dict[str, Any]]) -> Answers:
    """Count one call's agent utterances after its caller's first words."""
    answers = fallbacks = 0
    caller_spoke = False
    for entry in transcript:
        if entry["role"] == "user":
            caller_spoke = True
        elif caller_spoke:
            if is_answer(entry["text"]) and "error" not in entry:
                answers += 1
            else:
                fallbacks += 1
    return Answers(answers, fallbacks)


async def count_answers(database_uri: str, call_sids: list[str]) -> Answers:
    """The answers and fallbacks of the calls `call_sids`, from their transcripts."""
    client = connect(database_uri)
    try:
        calls = client[database_name(database_uri)]["calls"]
        projection = {"_id": 0, "transcript.role": 1, "transcript.text": 1, "transcript.error": 1}
        answers = fallbacks = 0
        async for call in calls.find({"call_sid": {"$in": call_sids}}, projection):
            counted = classify(call.get("transcript", []))
            answers += counted.answers
            fallbacks += counted.fallbacks
        return Answers(answers, fallbacks)
    finally:
        await client.close()

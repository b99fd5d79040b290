"""One live call, from Twilio's `start` to the hang-up.

session.py      CallSession: inbound audio → VAD → turn decisions; runs the supervisor
barge_in.py     what happens when the caller talks over the agent
speaker.py      Speaker: each utterance's life; greet / say / answer / interrupt / resume
utterance.py    an utterance's states and guarded moves
rendering.py    text → TTS → μ-law chunks and marks on the stream
outbound.py     audio, marks and clears out; mark echoes in; the lead over playback
tasks.py        the call's TaskGroup and its one response task
supervision.py  re-prompts, key sequences, time limit and watchdog on deadlines
transcript.py   the transcript writer (in order, never lost)
latency.py      a turn's timestamps and latency figures
greetings.py    the greeting cache, rendered while the phone rings
phrases.py      fixed things the agent says (the fallback, "didn't catch that")
end_reasons.py  EndReason: why a call ended
sentences.py    a streamed answer cut into sentences
speech_audio.py TTS PCM → 8 kHz μ-law frames
"""

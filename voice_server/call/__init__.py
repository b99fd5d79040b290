"""One live call: the session (inbound audio, turn decisions, supervision) and the speaker."""

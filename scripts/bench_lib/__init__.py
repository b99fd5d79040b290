"""`scripts/bench`: the server under load, against local OpenAI stand-ins, at real-time pace."""

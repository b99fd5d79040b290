"""The live call log: shared watchers of calls, their Server-Sent Event streams and tokens, and
the call-log page (static files, no build step)."""

"""A PyMongo command listener for tests that look at the commands a client sends as they start."""

from __future__ import annotations

from pymongo import monitoring


class StartedCommands(monitoring.CommandListener):
    """Subclasses look at each command in `started`; replies and failures are not looked at."""

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        raise NotImplementedError

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass

"""The failures a command can predict, each told in one line on stderr.

`main` prints `explain(error)` and exits 1; a traceback is logged only with LOG_LEVEL=DEBUG.
Anything `explain` does not know is a bug and keeps its traceback.
"""

from __future__ import annotations

from collections.abc import Callable

from pymongo.errors import ConnectionFailure

from stores.database import DatabaseUnreachable
from stores.embedded import DatabaseLocked, EmbeddedDatabaseError
from stores.phone_numbers import InvalidPhoneNumber
from stores.shared_embedded import DatabaseInUse
from voice_server.simulation.simulator import CallNotPlaced

ANOTHER_FOLDER = "or set DATA_DIR to another folder"


class CommandError(Exception):
    """A failure the command describes itself, in its message."""


def explain(error: Exception) -> str | None:
    """The line for a predictable failure; None for anything else."""
    for kind, line in _LINES:  # the first that matches: subclasses come before their bases
        if isinstance(error, kind):
            return line(error)
    return None


_LINES: tuple[tuple[type[Exception], Callable[[Exception], str]], ...] = (
    (DatabaseInUse, lambda error: f"{error}; stop it first, {ANOTHER_FOLDER}"),
    (
        DatabaseLocked,
        lambda error: f"{error}, not by voice-server; stop that process, {ANOTHER_FOLDER}",
    ),
    (EmbeddedDatabaseError, lambda error: str(error).splitlines()[0].removesuffix(":")),
    (InvalidPhoneNumber, lambda error: f"{error}: write it in E.164, like +15550100100"),
    (DatabaseUnreachable, str),
    (CallNotPlaced, str),
    (CommandError, str),
    (  # it answered at first, then stopped
        ConnectionFailure,
        lambda error: f"the database stopped answering: {str(error).split(' (configured')[0]}",
    ),
)

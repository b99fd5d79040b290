"""The failures a command can predict, each told in one line on stderr.

`main` prints `explain(error)` and exits 1; a traceback is logged only with LOG_LEVEL=DEBUG.
Anything `explain` does not know is a bug and keeps its traceback.
"""

from __future__ import annotations

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
    if isinstance(error, DatabaseInUse):
        return f"{error}; stop it first, {ANOTHER_FOLDER}"
    if isinstance(error, DatabaseLocked):
        return f"{error}, not by voice-server; stop that process, {ANOTHER_FOLDER}"
    if isinstance(error, EmbeddedDatabaseError):
        return f"the embedded database did not start: {str(error).splitlines()[0]}"
    if isinstance(error, InvalidPhoneNumber):
        return f"{error}: write it in E.164, like +15550100100"
    if isinstance(error, (DatabaseUnreachable, CallNotPlaced, CommandError)):
        return str(error)
    return None

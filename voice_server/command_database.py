"""The database a command works on: `MONGODB_URI`, else the embedded one in `DATA_DIR/db`.

Every command (serve, the demo, seed, migrate, api-key, simulate) shares the embedded database
of its data folder: the first to need it starts it, the others connect to it (see
`stores.shared_embedded`). `serve` must own it, since it runs for as long as the server does;
a command started beside a running `serve` uses the server's database.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from stores.database import Database, check_reachable, connect, database_name
from stores.shared_embedded import Attachment, open_shared
from voice_server.command_errors import CommandError
from voice_server.log import get_logger
from voice_server.settings import Settings

log = get_logger(__name__)
T = TypeVar("T")


@contextmanager
def open_database(
    settings: Settings, command: str, *, must_own: bool = False
) -> Iterator[Attachment]:
    """The database for the block. `MONGODB_URI` is checked first, so an unreachable one is
    reported in seconds (DatabaseUnreachable). `must_own`: see `stores.shared_embedded`."""
    if settings.mongodb_uri:
        check_reachable(settings.mongodb_uri)
        yield Attachment(settings.mongodb_uri, owned=False)
        return
    path = settings.data_dir / "db"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise CommandError(f"cannot use DATA_DIR {settings.data_dir}: {error.strerror}") from None
    with open_shared(path, command, must_own=must_own) as attached:
        if attached.unclean is not None:
            log.warning(
                "the embedded database was not stopped cleanly last time; "
                "WiredTiger recovered it from its journal",
                previous_owner=attached.unclean.pid,
                previous_command=attached.unclean.command,
            )
        if attached.owned:
            log.info("embedded database started", uri=attached.uri, path=str(path))
        else:
            log.info("using the running embedded database", uri=attached.uri, path=str(path))
        yield attached


async def on_database(uri: str, work: Callable[[Database], Awaitable[T]]) -> T:
    """Run `work` on the database at `uri` with a client of its own."""
    client = connect(uri)
    try:
        return await work(client[database_name(uri)])
    finally:
        await client.close()

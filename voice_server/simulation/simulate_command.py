"""`voice-server simulate`: one simulated call to the running server, as Twilio would place it.

By default it calls the number `voice-server seed` made: the number's auth token is read from
the database and opened with this machine's key (SECRETS_KEY, or DATA_DIR/secrets.key), the key
`serve` uses, so nothing has to be copied by hand.
"""

from __future__ import annotations

import argparse
import asyncio

from stores.secrets import SecretUnreadable
from voice_server.command_database import on_database, open_database
from voice_server.command_errors import CommandError
from voice_server.security.secret_key import secret_box
from voice_server.seed import DEMO_NUMBER, DemoLine, find_line
from voice_server.settings import Settings
from voice_server.simulation.demo import DEMO_TURNS
from voice_server.simulation.simulator import CallerScript, Line, place_call

WHERE = (
    "The call goes where `voice-server serve` listens with the same settings: PUBLIC_BASE_URL "
    "if set, else http://HOST:PORT (default http://127.0.0.1:8000)."
)


def simulate(settings: Settings, args: argparse.Namespace) -> int:
    """Place the call of `args` (to, caller, auth_token, account_sid, say); 0 if it connected."""
    if args.auth_token is None:
        registered = registered_line(settings, args.to)
        token, number, account = registered.auth_token, registered.number, registered.account_sid
    else:
        token, number, account = args.auth_token, args.to, Line.account_sid
    line = Line(
        base_url=settings.base_url,
        auth_token=token,
        caller=args.caller,
        dialled=number,
        account_sid=args.account_sid or account,
    )
    script = CallerScript(turns=args.say or DEMO_TURNS)
    print(f"calling {line.dialled} at {line.base_url}")
    result = asyncio.run(place_call(line, script, on_event=print))
    for turn in result.turns:
        print(f"caller said {turn.said!r}; agent answered after {turn.reply_latency_ms} ms")
    return 0 if result.connected else 1


def registered_line(settings: Settings, number: str) -> DemoLine:
    """The number's token (and account), read from the database with this machine's key."""
    with open_database(settings, "simulate") as database:
        try:
            line = asyncio.run(
                on_database(database.uri, lambda db: find_line(db, secret_box(settings), number))
            )
        except SecretUnreadable:
            raise CommandError(
                f"the auth token of {number} was sealed with another SECRETS_KEY; "
                "pass it with --auth-token"
            ) from None
    if line is None:
        seed = "voice-server seed" + ("" if number == DEMO_NUMBER else f" --number {number}")
        raise CommandError(f"no agent answers {number} in this database; create one with `{seed}`")
    return line

"""The `voice-server` command: serve, worker, demo, seed, migrate, api-key, simulate,
twilio-standin."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import sys
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from stores import migrations
from stores.api_keys import ApiKeyStore
from stores.database import Database
from stores.phone_numbers import normalize_phone_number
from voice_server.app import create_app
from voice_server.command_database import on_database, open_database
from voice_server.command_errors import CommandError, explain
from voice_server.live_calls import LiveCalls
from voice_server.log import configure_logging, get_logger
from voice_server.scheduling.worker import scheduled_call_worker
from voice_server.security.secret_key import secret_box
from voice_server.seed import (
    DEMO_CALLER,
    DEMO_NUMBER,
    DEMO_USER,
    DemoLine,
    seed_demo,
)
from voice_server.serve_workers import serve_workers, worker_count
from voice_server.serving import DrainingServer, collector_tuned_after_startup, uvicorn_config
from voice_server.settings import Settings, SettingsError, load_settings
from voice_server.simulation import simulate_command
from voice_server.simulation.callees import Callee, CalleeKind
from voice_server.simulation.demo import demo_command
from voice_server.simulation.twilio_standin import run_standin
from voice_server.twilio_api.rest import TwilioRest

log = get_logger(__name__)


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
    except SettingsError as error:
        print(error, file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format)
    # SIGTERM is taken as a Ctrl-C, which every command unwinds cleanly (asyncio.run cancels its
    # task), so the embedded database is stopped in order; even when started from a script that
    # ignores Ctrl-C for background jobs. While `serve` serves, its DrainingServer takes both
    # signals itself: it drains, then returns.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _as_ctrl_c)
    try:
        command: int = args.run(settings, args)
    except KeyboardInterrupt:
        return 130
    except Exception as error:
        line = explain(error)
        if line is None:
            raise
        log.debug("the command failed", exc_info=error)  # the traceback, with LOG_LEVEL=DEBUG
        print(line, file=sys.stderr)
        return 1
    return command


def _as_ctrl_c(signum: int, frame: FrameType | None) -> None:
    signal.raise_signal(signal.SIGINT)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="voice-server", description=__doc__)
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    serve = commands.add_parser(
        "serve",
        help="run the server (embedded database by default)",
        description="Run the server on HOST:PORT (default 127.0.0.1:8000). With MONGODB_URI it "
        "uses that MongoDB (SECRETS_KEY required; migrations must be applied); without it, an "
        "embedded database in DATA_DIR/db (default var/db), migrated on start. SIGTERM or "
        "SIGINT drains the live calls (DRAIN_SECONDS); a second one ends them at once. Every "
        "setting is an environment variable or a .env line: see the README's Settings.",
    )
    serve.add_argument(
        "--workers",
        metavar="N",
        help="how many processes serve, each with an event loop of its own, all on one port "
        "(default: WEB_WORKERS, else the number of CPUs this process may run on)",
    )
    serve.set_defaults(run=_serve)

    worker = commands.add_parser(
        "worker",
        help="place scheduled calls (without serving)",
        description="Place scheduled calls when they are due, as `serve` does unless "
        "SCHEDULER=false: any number of workers and servers may run on one database, and each "
        "call is placed once. It uses the same database as `serve` (MONGODB_URI, or the "
        "embedded one in DATA_DIR); the webhooks of the calls it places go to PUBLIC_BASE_URL.",
    )
    worker.set_defaults(run=_worker)

    demo = commands.add_parser("demo", help="one simulated call, end to end, offline")
    demo.add_argument("--wav", type=Path, default=Path("demo-call.wav"), help="recording path")
    demo.set_defaults(run=_demo)

    seed = commands.add_parser("seed", help="create the demo number and agent")
    seed.add_argument("--number", default=None, help="the phone number to seed (E.164)")
    seed.set_defaults(run=_seed)

    migrate = commands.add_parser("migrate", help="show or apply database migrations")
    migrate.add_argument(
        "action",
        choices=("status", "upgrade", "downgrade"),
        nargs="?",
        default="status",
        help="status (default): applied and pending migrations; upgrade: apply the pending "
        "ones; downgrade --to N: undo those after N",
    )
    migrate.add_argument(
        "--to", type=int, default=None, help="downgrade: the version to go back to (0: all)"
    )
    migrate.set_defaults(run=_migrate)

    api_key = commands.add_parser("api-key", help="create or revoke an API key")
    key_actions = api_key.add_subparsers(required=True, metavar="ACTION")
    create_key = key_actions.add_parser("create", help="a new key for a user; shown once")
    create_key.add_argument(
        "--user", required=True, type=_non_empty, help="the userId the key acts as"
    )
    create_key.add_argument("--label", default="", help="a note saying what the key is for")
    create_key.set_defaults(run=_api_key_create)
    revoke_key = key_actions.add_parser("revoke", help="revoke a key by its id")
    revoke_key.add_argument("key_id", help="the key's id, as `api-key create` printed it")
    revoke_key.set_defaults(run=_api_key_revoke)

    simulate = commands.add_parser(
        "simulate",
        help="place a simulated call to a running server",
        description="Place a simulated call the way Twilio would. "
        + simulate_command.WHERE
        + " Without arguments it calls the number `voice-server seed` made, reading its auth "
        "token from the database.",
    )
    simulate.add_argument("--to", default=DEMO_NUMBER, help="the number to call (%(default)s)")
    simulate.add_argument(
        "--from", dest="caller", default=DEMO_CALLER, help="the caller's number (%(default)s)"
    )
    simulate.add_argument(
        "--auth-token", help="the number's Twilio auth token (default: read from the database)"
    )
    simulate.add_argument("--account-sid", help="the number's Twilio account SID")
    simulate.add_argument(
        "--say", action="append", help="one caller turn (repeatable; default: the demo's)"
    )
    simulate.set_defaults(run=simulate_command.simulate)

    standin = commands.add_parser(
        "twilio-standin",
        help="stand in for Twilio's REST API and the phone network, locally",
        description="Stand in for Twilio's call API (api.twilio.com) and the phones it rings, "
        "to try scheduled calls without Twilio: run `serve` with "
        "TWILIO_API_BASE_URL=http://HOST:PORT of this. Every number it is asked to call "
        "answers as a person who says 'Hello?', then 'Yes, I can talk now.', and waits for the "
        "agent to hang up; the options make some numbers behave otherwise.",
    )
    standin.add_argument("--host", default="127.0.0.1", help="where to listen (%(default)s)")
    standin.add_argument("--port", type=int, default=8010, help="(%(default)s)")
    for kind in ("machine", "busy", "no-answer"):
        standin.add_argument(
            f"--{kind}",
            action="append",
            default=[],
            metavar="NUMBER",
            help=f"this number answers as: {kind} (repeatable)",
        )
    standin.set_defaults(run=_twilio_standin)
    return parser


def _non_empty(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return text


async def _migrations(db: Database, apply: bool) -> list[str]:
    """Apply (or list) pending migrations; the names of those still pending afterwards."""
    if apply:
        for migration in await migrations.upgrade(db):
            log.info("migration applied", version=migration.version, name=migration.name)
    return [f"{m.version} {m.name}" for m in await migrations.pending(db)]


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    if settings.mongodb_uri and settings.secrets_key is None:
        print(
            "SECRETS_KEY is required with MONGODB_URI (it seals the numbers' Twilio auth "
            "tokens; every instance needs the same one). Make one with: python -c "
            '"from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"',
            file=sys.stderr,
        )
        return 2
    workers = worker_count(args.workers, settings)
    listening = _listen(settings.host, settings.port)
    with listening, open_database(settings, "serve", must_own=True) as database:
        uri = database.uri
        behind = asyncio.run(on_database(uri, lambda db: _migrations(db, apply=database.owned)))
        if behind:
            print(
                "the database's migrations are behind: "
                + ", ".join(behind)
                + "\nrun `voice-server migrate upgrade` first",
                file=sys.stderr,
            )
            return 3
        _warn_of_a_stream_secret_of_its_own(settings)
        on_database_settings = settings.model_copy(update={"mongodb_uri": uri})
        options: dict[str, Any] = {
            "host": settings.host,
            "port": settings.port,
            "loop": "uvloop",
            "proxy_headers": True,
            "timeout_graceful_shutdown": 5,  # open call-log event streams must not hold up a stop
        }
        if workers > 1:
            serve_workers(on_database_settings, workers, listening, **options)
            return 0
        live_calls = LiveCalls()
        app = create_app(on_database_settings, live_calls=live_calls)
        config = uvicorn_config(collector_tuned_after_startup(app), **options)
        DrainingServer(config, live_calls, settings.drain_seconds).run(sockets=[listening])
    return 0


def _warn_of_a_stream_secret_of_its_own(settings: Settings) -> None:
    """On a shared database, a server that made up its STREAM_TOKEN_SECRET refuses the streams
    of calls whose webhooks another server answered: said once, at start."""
    if settings.mongodb_uri and "stream_token_secret" not in settings.model_fields_set:
        log.warning(
            "STREAM_TOKEN_SECRET is not set: this server made up its own, so it refuses the "
            "media streams of calls another instance answered; set the same one on every "
            "instance"
        )


def _listen(host: str, port: int, set_by: str = "HOST, PORT") -> socket.socket:
    """The server's socket, bound before anything starts, so a busy port is told in one line
    (naming the settings or options `set_by` that choose it)."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        return socket.create_server((host, port), family=family)
    except OSError as error:
        reason = os.strerror(error.errno) if error.errno else str(error)
        raise CommandError(f"cannot listen on {host}:{port} ({set_by}): {reason}") from None


def _worker(settings: Settings, args: argparse.Namespace) -> int:
    async def work(db: Database) -> None:
        twilio = TwilioRest(settings.twilio_api_base_url)
        try:
            await scheduled_call_worker(db, settings, twilio).run()
        finally:
            await twilio.aclose()

    with open_database(settings, "worker") as database:
        asyncio.run(on_database(database.uri, work))
    return 0


def _twilio_standin(settings: Settings, args: argparse.Namespace) -> int:
    kinds: list[tuple[CalleeKind, list[str]]] = [
        ("machine", args.machine),
        ("busy", args.busy),
        ("no-answer", args.no_answer),
    ]
    callees = {
        normalize_phone_number(number): Callee(kind=kind)
        for kind, numbers in kinds
        for number in numbers
    }
    with _listen(args.host, args.port, "--host, --port") as listening:
        run_standin(listening, callees)
    return 0


def _demo(settings: Settings, args: argparse.Namespace) -> int:
    return demo_command(settings, args.wav)


def _seed(settings: Settings, args: argparse.Namespace) -> int:
    number = normalize_phone_number(args.number or DEMO_NUMBER)  # before starting anything

    async def seed(db: Database) -> DemoLine:
        await migrations.upgrade(db)
        return await seed_demo(db, secret_box(settings), number)

    with open_database(settings, "seed") as database:
        line = asyncio.run(on_database(database.uri, seed))
    to = "" if line.number == DEMO_NUMBER else f" --to {line.number}"
    print(f"number {line.number} → agent {line.agent_id} (owner {DEMO_USER})")
    print(f"call it with `voice-server simulate{to}` while `voice-server serve` runs")
    return 0


def _migrate(settings: Settings, args: argparse.Namespace) -> int:
    with open_database(settings, "migrate") as database:
        uri = database.uri
        if args.action == "downgrade":
            try:
                asyncio.run(on_database(uri, lambda db: _downgrade(db, args.to)))
            except migrations.MigrationError as error:
                print(error, file=sys.stderr)
                return 1
        pending = asyncio.run(
            on_database(uri, lambda db: _migrations(db, apply=args.action == "upgrade"))
        )
    print("pending migrations: " + (", ".join(pending) if pending else "none"))
    return 0


async def _downgrade(db: Database, to_version: int | None) -> None:
    """Undo migrations newer than `to_version` (by default, the newest one only)."""
    applied = await migrations.applied_versions(db)
    target = to_version if to_version is not None else (applied[-2] if len(applied) > 1 else 0)
    for migration in await migrations.downgrade(db, target):
        log.info("migration undone", version=migration.version, name=migration.name)


def _api_key_create(settings: Settings, args: argparse.Namespace) -> int:
    with open_database(settings, "api-key") as database:
        issued = asyncio.run(
            on_database(database.uri, lambda db: ApiKeyStore(db).create(args.user, args.label))
        )
    print(f"key id {issued.key.id} for user {issued.key.userId}")
    print(f"secret (shown once; send as `Authorization: Bearer …`): {issued.secret}")
    return 0


def _api_key_revoke(settings: Settings, args: argparse.Namespace) -> int:
    with open_database(settings, "api-key") as database:
        revoked = asyncio.run(
            on_database(database.uri, lambda db: ApiKeyStore(db).revoke(args.key_id))
        )
    print(f"key {args.key_id} revoked" if revoked else f"no live key has the id {args.key_id}")
    return 0 if revoked else 1


if __name__ == "__main__":
    raise SystemExit(main())

"""The `voice-server` command: serve, demo, seed, migrate, simulate."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import uvicorn

from stores import migrations
from stores.database import connect, database_name
from stores.embedded import EmbeddedDatabase
from voice_server.app import create_app
from voice_server.demo import run_demo
from voice_server.log import configure_logging, get_logger
from voice_server.seed import DEMO_NUMBER, seed_demo
from voice_server.settings import Settings, SettingsError, load_settings
from voice_server.simulator import CallerScript, Line, place_call

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
    command: int = args.run(settings, args)
    return command


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="voice-server", description=__doc__)
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the server (embedded database by default)")
    serve.set_defaults(run=_serve)

    demo = commands.add_parser("demo", help="one simulated call, end to end, offline")
    demo.add_argument("--wav", type=Path, default=Path("demo-call.wav"), help="recording path")
    demo.set_defaults(run=_demo)

    seed = commands.add_parser("seed", help="create the demo number and agent")
    seed.add_argument("--number", default=None, help="the phone number to seed (E.164)")
    seed.set_defaults(run=_seed)

    migrate = commands.add_parser("migrate", help="show or apply database migrations")
    migrate.add_argument("action", choices=("status", "upgrade"), nargs="?", default="status")
    migrate.set_defaults(run=_migrate)

    simulate = commands.add_parser("simulate", help="place a simulated call to a running server")
    simulate.add_argument("--to", required=True, help="the number to call")
    simulate.add_argument("--from", dest="caller", default="+15550100199")
    simulate.add_argument("--auth-token", required=True, help="the number's Twilio auth token")
    simulate.add_argument("--say", action="append", required=True, help="one caller turn")
    simulate.set_defaults(run=_simulate)
    return parser


@contextmanager
def database_uri(settings: Settings) -> Iterator[tuple[str, bool]]:
    """MONGODB_URI, or an embedded database started for the block; and whether it is ours."""
    if settings.mongodb_uri:
        yield settings.mongodb_uri, False
        return
    with EmbeddedDatabase(settings.data_dir / "db") as embedded:
        log.info("embedded database started", uri=embedded.uri, path=str(settings.data_dir / "db"))
        yield embedded.uri, True


async def _migrations(uri: str, apply: bool) -> list[str]:
    """Apply (or list) pending migrations; the names of those still pending afterwards."""
    client = connect(uri)
    try:
        db = client[database_name(uri)]
        if apply:
            for migration in await migrations.upgrade(db):
                log.info("migration applied", version=migration.version, name=migration.name)
        return [f"{m.version} {m.name}" for m in await migrations.pending(db)]
    finally:
        await client.close()


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    with database_uri(settings) as (uri, embedded):
        behind = asyncio.run(_migrations(uri, apply=embedded))
        if behind:
            print(
                "the database's migrations are behind: "
                + ", ".join(behind)
                + "\nrun `voice-server migrate upgrade` first",
                file=sys.stderr,
            )
            return 3
        app = create_app(settings.model_copy(update={"mongodb_uri": uri}))
        uvicorn.run(
            app,
            host=settings.host,
            port=settings.port,
            log_config=None,
            ws="websockets-sansio",
            loop="uvloop",
            proxy_headers=True,
        )
    return 0


def _demo(settings: Settings, args: argparse.Namespace) -> int:
    return run_demo(settings, args.wav)


def _seed(settings: Settings, args: argparse.Namespace) -> int:
    async def seed(uri: str) -> None:
        client = connect(uri)
        try:
            db = client[database_name(uri)]
            await migrations.upgrade(db)
            line = await seed_demo(db, args.number or DEMO_NUMBER)
            print(f"number {line.number} → agent {line.agent_id}")
        finally:
            await client.close()

    with database_uri(settings) as (uri, _):
        asyncio.run(seed(uri))
    return 0


def _migrate(settings: Settings, args: argparse.Namespace) -> int:
    with database_uri(settings) as (uri, _):
        pending = asyncio.run(_migrations(uri, apply=args.action == "upgrade"))
    print("pending migrations: " + (", ".join(pending) if pending else "none"))
    return 0


def _simulate(settings: Settings, args: argparse.Namespace) -> int:
    line = Line(
        base_url=settings.base_url, auth_token=args.auth_token, caller=args.caller, dialled=args.to
    )
    result = asyncio.run(place_call(line, CallerScript(turns=args.say), on_event=print))
    for turn in result.turns:
        print(f"caller said {turn.said!r}; agent answered after {turn.reply_latency_ms} ms")
    return 0 if result.connected else 1


if __name__ == "__main__":
    raise SystemExit(main())

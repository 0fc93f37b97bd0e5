"""`python -m bot` / `hearth`: run the bot, manage the database, check the installation.

Errors a person can fix (settings, an unreachable database) print as one line and exit with status 2.
"""

import argparse
import asyncio
import sys
from collections.abc import Sequence

from bot.errors import HearthError
from bot.settings import Settings, load_settings

EXIT_USAGE = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hearth", description="Hearth, a Discord companion that remembers.")
    parser.add_argument("--env-file", default=".env", help="settings file to read (default: .env)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    commands.add_parser("run", help="migrate the database and run the bot")
    commands.add_parser("chat", help="talk to Hearth in this terminal (as a DM)")
    commands.add_parser("doctor", help="check settings, database, pgvector and the LLM endpoint")

    db = commands.add_parser("db", help="database schema").add_subparsers(dest="db_command", required=True)
    upgrade = db.add_parser("upgrade", help="migrate to the latest schema (or REVISION)")
    upgrade.add_argument("revision", nargs="?", default="head")
    downgrade = db.add_parser("downgrade", help="migrate down to REVISION ('base' empties the database)")
    downgrade.add_argument("revision")
    db.add_parser("current", help="show the schema revision of the database and the latest one")
    db.add_parser("schema", help="print the PostgreSQL DDL of the latest schema (this is schema.sql)")
    return parser


async def _run(settings: Settings) -> int:
    from bot.container import Container
    from bot.discord.runner import run_bot
    from bot.log import setup_logging

    if settings.discord_token is None:
        raise HearthError("DISCORD_TOKEN is not set: put DISCORD_TOKEN=your-bot-token in .env (see .env.example)")
    setup_logging(settings.log_level)
    container = await Container.create(settings)
    try:
        await run_bot(container)
    finally:
        await container.aclose()
    return 0


async def _chat(settings: Settings) -> int:
    from bot.container import Container
    from bot.terminal import chat

    container = await Container.create(settings)
    try:
        await chat(container)
    finally:
        await container.aclose()
    return 0


async def _db(settings: Settings, args: argparse.Namespace) -> int:
    from bot.db import migrations
    from bot.db.engine import Database

    if args.db_command == "schema":
        print(migrations.offline_sql(embedding_dimension=settings.embedding_dimension), end="")
        return 0
    database = Database(settings.database_url)
    try:
        await database.check()
        if args.db_command == "upgrade":
            await migrations.upgrade(database, embedding_dimension=settings.embedding_dimension, revision=args.revision)
            print(f"database at {await migrations.current_revision(database)}")
        elif args.db_command == "downgrade":
            await migrations.downgrade(database, revision=args.revision)
            print(f"database at {await migrations.current_revision(database) or 'base (empty)'}")
        else:
            current, head = await migrations.current_revision(database), migrations.head_revision()
            state = "up to date" if current == head else "behind: run `python -m bot db upgrade`"
            print(f"current: {current or 'none'}\nhead:    {head}\n{state}")
            return 0 if current == head else 1
    finally:
        await database.dispose()
    return 0


async def _doctor(env_file: str) -> int:
    from bot.errors import ConfigError
    from bot.services.doctor import Check, render_table, run_checks

    try:
        settings = load_settings(env_file)
    except ConfigError as exc:
        checks = [Check("settings", "fail", str(exc))]
    else:
        checks = await run_checks(settings)
    print(render_table(checks))
    return 1 if any(check.status == "fail" for check in checks) else 0


async def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "doctor":
        return await _doctor(args.env_file)
    settings = load_settings(args.env_file)
    if args.command == "run":
        return await _run(settings)
    if args.command == "chat":
        return await _chat(settings)
    return await _db(settings, args)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return asyncio.run(_dispatch(args))
    except HearthError as exc:
        print(f"hearth: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130

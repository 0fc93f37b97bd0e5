"""`python -m bot` / `hearth`: run the bot, manage the database, check the installation.

Whatever stops a command is one line on stderr, ``hearth: …``, and an exit status that says where to look
(the README's "Exit codes" table): 2 the command line or the settings, 3 the database, 4 Discord unreachable,
5 Discord refused the bot, 1 a check that found a problem or an error Hearth did not expect. ``--debug`` (or
LOG_LEVEL=DEBUG in the environment) adds the traceback.
"""

import argparse
import asyncio
import logging
import os
import signal
import sys
import traceback
from collections.abc import Sequence
from typing import TYPE_CHECKING, NoReturn

from bot.errors import ConfigError, HearthError, SchemaError
from bot.heap import freeze_start_up_heap

if TYPE_CHECKING:
    from bot.db.engine import Database
    from bot.domain.cards import Card
    from bot.settings import Settings

EXIT_PROBLEM = 1  # a check found something to fix, or an error Hearth does not know
EXIT_USAGE = 2
EXIT_DATABASE = 3
EXIT_INTERRUPTED = 130  # Ctrl-C outside `run` (which stops cleanly with 0)


class _Parser(argparse.ArgumentParser):
    """A wrong command line is one line, ``hearth: …``, like any other failure (argparse puts the usage above its
    own), and says where the right one is."""

    def error(self, message: str) -> NoReturn:
        command = self.prog.removeprefix("hearth").strip()
        where = f"{command}: " if command else ""
        self.exit(EXIT_USAGE, f"hearth: {where}{message} (see `{self.prog} --help`)\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="hearth", description="Hearth, a Discord companion that remembers.")
    parser.add_argument("--env-file", help="settings file to read (default: .env, if there is one)")
    parser.add_argument("--debug", action="store_true", help="print the traceback of an error, not just its line")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="migrate the database and run the bot")
    run.add_argument(
        "--sync-commands",
        action="store_true",
        help="publish the slash commands even when Discord already has the same ones (a start publishes them if not)",
    )
    commands.add_parser("chat", help="talk to Hearth in this terminal (as a DM)")
    commands.add_parser("doctor", help="check settings, database, pgvector and the LLM endpoint")

    db = commands.add_parser("db", help="database schema").add_subparsers(
        dest="db_command", required=True, metavar="COMMAND"
    )
    upgrade = db.add_parser("upgrade", help="migrate to the latest schema (or REVISION)")
    upgrade.add_argument("revision", nargs="?", default="head")
    downgrade = db.add_parser("downgrade", help="migrate down to REVISION ('base' empties the database)")
    downgrade.add_argument("revision")
    db.add_parser("current", help="show the schema revision of the database and the latest one")
    db.add_parser("schema", help="print the PostgreSQL DDL of the latest schema (this is schema.sql)")

    memory = commands.add_parser("memory", help="long-term memory").add_subparsers(
        dest="memory_command", required=True, metavar="COMMAND"
    )
    reembed = memory.add_parser("reembed", help="re-embed memories made by another model than EMBEDDING_MODEL")
    reembed.add_argument("--batch-size", type=_positive_int, default=64, help="memories per batch (default: 64)")
    memory.add_parser("status", help="count memories per embedding model")

    card = commands.add_parser("import-card", help="make a SillyTavern character card the default persona")
    card.add_argument("path", help="the card: a V1/V2/V3 .json file, or a .png carrying it")
    return parser


def _positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, not {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {number}")
    return number


class _StartUpStop:
    """While ``run`` starts, one of ``signals`` ends the block: its task is cancelled and the cancellation (or an
    error the cancelled work raised on its way out) stopped here; :attr:`received` says which signal it was (None:
    the block ended by itself). The handlers stay, doing nothing, until the bot's own take their place
    (bot/discord/runner.py)."""

    def __init__(self, signals: Sequence[signal.Signals]) -> None:
        self.signals = signals
        self.received: signal.Signals | None = None
        self._task: asyncio.Task[object] | None = None

    def __enter__(self) -> "_StartUpStop":
        self._task = asyncio.current_task()
        loop = asyncio.get_running_loop()
        for number in self.signals:
            loop.add_signal_handler(number, self._stop, number)
        return self

    def _stop(self, number: signal.Signals) -> None:
        if self.received is None and self._task is not None:
            self.received = number
            self._task.cancel()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, _trace: object) -> bool:
        task, self._task = self._task, None
        if self.received is None or task is None or task.uncancel() > 0:  # no signal, or cancelled by another
            return False
        # What the work cut short still raised as it stopped (a migration cleaning up on its cut connection) is
        # part of the stop, not a fault of its own.
        return kind is not None and issubclass(kind, asyncio.CancelledError | Exception)


async def _run(settings: "Settings", *, sync_commands: bool = False) -> int:
    from bot.container import Container
    from bot.discord.probe import wait_for_discord
    from bot.discord.runner import STOP_SIGNALS, run_bot
    from bot.llm.openai_client import require_llm
    from bot.log import secrets_of, setup_logging
    from bot.observability.server import check_free

    if settings.discord_token is None:
        raise ConfigError("DISCORD_TOKEN is not set: put DISCORD_TOKEN=your-bot-token in .env (see .env.example)")
    require_llm(settings)  # no model configured: say so before anything else
    if settings.metrics_port is not None:  # taken: say so now, not once migrated and the embedding model loaded
        await check_free(settings.metrics_host, settings.metrics_port)
    setup_logging(settings.log_level, log_format=settings.log_format, secrets=secrets_of(settings))
    # A stop while Discord is retried or the embedding model loads is as clean as one once connected (run_bot
    # then takes the signals over): what was opened is closed, and the status is 0.
    with _StartUpStop(STOP_SIGNALS) as stop:
        # Before migrating and loading the embedding model: a wrong token or no way to Discord is known in seconds.
        await wait_for_discord(
            settings.discord_token.get_secret_value(), budget_s=settings.discord_connect_retry_seconds
        )
        container = await Container.create(settings, sole=True)  # one bot per SQLite file
    if stop.received is not None:
        logging.getLogger(__name__).info("%s received while starting: stopped", stop.received.name)
        return 0
    freeze_start_up_heap()
    try:
        await run_bot(container, sync_commands=sync_commands)
    finally:
        await container.aclose()
    return 0


async def _chat(settings: "Settings") -> int:
    from bot.container import Container
    from bot.terminal import Screen, chat, logging_to

    screen = Screen(sys.stdout, sys.stderr)
    with logging_to(screen, debug=settings.log_level == "DEBUG"):
        # One process per SQLite file, as `run`: a chat beside a bot would learn from and summarise the same
        # conversations, and neither would hear what the other forgets or changes.
        container = await Container.create(settings, sole=True)
        freeze_start_up_heap()
        try:
            await chat(container, screen=screen)
        finally:
            screen.close()  # what the background work still logs while it stops is not printed after the chat
            await container.aclose()
    return 0


def _say_waiting(line: str) -> None:
    """Why a command is not done yet, on stderr: not a failure, so without ``hearth:``."""
    print(line, file=sys.stderr, flush=True)


async def _db(settings: "Settings", args: argparse.Namespace) -> int:
    from bot.db import migrations
    from bot.db.engine import Database, sqlite_file_to_come
    from bot.db.sole_process import hold_sqlite_file_to_migrate

    if args.db_command == "schema":
        print(migrations.offline_sql(embedding_dimension=settings.embedding_dimension), end="")
        return 0
    to_come = sqlite_file_to_come(settings.database)
    if args.db_command == "current" and to_come is not None:  # a look makes neither the file nor its folder
        head = migrations.head_revision()
        print(f"current: none\nhead:    {head}\nno database yet: the first start makes it ({to_come})")
        return 1
    if args.db_command == "downgrade" and to_come is not None:  # nothing to go back from: nothing made either
        migrations.check_downgrade_of_nothing(args.revision)
        print(f"no database yet: nothing to downgrade (the first start makes {to_come})")
        return 0
    # Not under a running bot on its SQLite file: a downgrade takes its tables away, an upgrade changes them (and
    # holds the file while it rebuilds one). Beside another migrating command, it waits for that one.
    migrating = args.db_command != "current"
    sqlite_lock = None
    if migrating:
        command = f"db {args.db_command}"
        sqlite_lock = await hold_sqlite_file_to_migrate(settings.database_url, command, waiting=_say_waiting)
    database = Database(settings.database_url)
    try:
        await database.check(writable=migrating)
        if args.db_command == "upgrade":
            await migrations.upgrade(database, embedding_dimension=settings.embedding_dimension, revision=args.revision)
            print(f"database at {await migrations.current_revision(database)}")
        elif args.db_command == "downgrade":
            await migrations.downgrade(database, revision=args.revision)
            print(f"database at {await migrations.current_revision(database) or 'base (empty)'}")
        else:
            current, head = await migrations.current_revision(database), migrations.head_revision()
            state = "up to date" if current == head else "behind: run `python -m bot db upgrade`"
            if current is not None and not migrations.is_known(current):
                state = "ahead: a newer version of Hearth migrated this database"
            print(f"current: {current or 'none'}\nhead:    {head}\n{state}")
            return 0 if current == head else 1
    finally:
        await database.dispose()
        if sqlite_lock is not None:
            sqlite_lock.release()
    return 0


_NO_MEMORIES_YET = "no memories yet: the first start makes the schema"


class _ProgressLine:
    """``re-embedding 1,234/5,000 (24%)`` on stderr, rewritten in place; ``end`` finishes the line."""

    def __init__(self) -> None:
        self.done = 0
        self._shown = False

    def __call__(self, done: int, total: int) -> None:
        self.done = done
        percent = done * 100 // total if total else 100
        print(f"\rre-embedding {done:,}/{total:,} ({percent}%)", end="", file=sys.stderr, flush=True)
        self._shown = True

    def end(self) -> None:
        if self._shown:
            print(file=sys.stderr, flush=True)
            self._shown = False


async def _memory(settings: "Settings", args: argparse.Namespace) -> int:
    from bot.db import migrations
    from bot.db.engine import Database, sqlite_file_to_come
    from bot.db.repositories.memories import MemoryRepository
    from bot.db.sole_process import hold_sqlite_file_to_migrate
    from bot.llm.embeddings import configured_vectors
    from bot.services.reembed import describe_mismatch

    if sqlite_file_to_come(settings.database) is not None:  # nothing to count or re-embed
        print(_NO_MEMORIES_YET)  # and the file, its folder and its lock are the first start's to make
        return 0
    # Not beside a running bot on its SQLite file: it recalls, and its embedding worker embeds, with the model it
    # started with, which may not be this one (EMBEDDING_MODEL changed, the bot not restarted yet): it would find
    # nothing by meaning once every vector was replaced. The bot re-embeds with its own model from Discord.
    sqlite_lock = None
    if args.memory_command == "reembed":
        sqlite_lock = await hold_sqlite_file_to_migrate(
            settings.database_url,
            "memory reembed",
            waiting=_say_waiting,
            why="which would replace the vectors it recalls with (`/owner memory reembed` re-embeds with its model)",
        )
    database = Database(settings.database_url)
    try:
        await database.check(writable=args.memory_command == "reembed")
        if args.memory_command == "status":
            current, head = await migrations.current_revision(database), migrations.head_revision()
            if current is None:
                print(_NO_MEMORIES_YET)
                return 0
            if current != head and migrations.is_known(current):
                upgrade = "the next start upgrades it (or `python -m bot db upgrade`), then its memories can be counted"
                raise SchemaError(f"the database is at {current}, head is {head}: {upgrade}")
        await migrations.require_head(database)
        if args.memory_command == "reembed":
            await migrations.require_embedding_dimension(database, settings.embedding_dimension)
            return await _reembed(database, settings, batch_size=args.batch_size)
        async with database.session() as session:
            counts = await MemoryRepository(session).models_in_use()
    finally:
        await database.dispose()
        if sqlite_lock is not None:
            sqlite_lock.release()
    total = sum(counts.values())
    if not total:
        print("no memories yet")
        return 0
    for model, count in sorted(counts.items(), key=lambda pair: (-pair[1], pair[0] or "")):
        print(f"{count:>12,}  {model or '(not embedded)'}")
    waiting = counts.get(None, 0)
    if waiting:
        waits = "memory waits" if waiting == 1 else "memories wait"
        print(f"{waiting:,} {waits} for a vector: the bot's embedding worker adds it while the bot runs")
    configured = configured_vectors(settings)
    mismatch = describe_mismatch(counts, configured)
    embedded = total - waiting
    every = "the one embedded memory uses" if embedded == 1 else f"all {embedded:,} embedded memories use"
    if not waiting:
        every = "the one memory uses" if total == 1 else f"all {total:,} memories use"
    print(mismatch or f"{every} {configured!r}")
    return 1 if mismatch else 0


async def _reembed(database: "Database", settings: "Settings", *, batch_size: int) -> int:
    from bot.llm.embeddings import LocalEmbedder, build_embedder
    from bot.services.reembed import REEMBED_COMMAND, reembed

    embedder = build_embedder(settings)
    progress = _ProgressLine()
    try:
        if isinstance(embedder, LocalEmbedder):
            await embedder.load()  # a bad model setting fails here, before any memory is read
        done = await reembed(database, embedder, batch_size=batch_size, progress=progress)
    except asyncio.CancelledError:  # Ctrl-C: the batches written so far stay written
        progress.end()
        kept = f"{progress.done:,} {'memory' if progress.done == 1 else 'memories'}"
        print(f"stopped after re-embedding {kept}: run `{REEMBED_COMMAND}` again to continue", file=sys.stderr)
        raise
    finally:
        progress.end()
        await embedder.aclose()
    if done:
        print(f"re-embedded {done:,} {'memory' if done == 1 else 'memories'} with {embedder.model_name!r}")
    else:
        print(f"nothing to re-embed: every memory uses {embedder.model_name!r}")
    return 0


def _read_card(path_text: str) -> "Card":
    from pathlib import Path

    from bot.domain.cards import MAX_CARD_BYTES, parse_card

    path = Path(path_text)
    try:
        if path.stat().st_size > MAX_CARD_BYTES:
            raise HearthError(f"{path} is larger than a character card may be ({MAX_CARD_BYTES // (1024 * 1024)} MB)")
        data = path.read_bytes()
    except OSError as exc:
        raise HearthError(f"cannot read {path}: {exc.strerror or exc}") from None
    return parse_card(data, path.name)


async def _import_card(settings: "Settings", path_text: str) -> int:
    """The card becomes the global default persona: DMs, and every server that did not choose its own."""
    from bot.db import migrations
    from bot.db.engine import Database
    from bot.db.sole_process import hold_sqlite_file_to_migrate
    from bot.domain.cards import persona_fields
    from bot.services.personas import PersonaService

    card = await asyncio.to_thread(_read_card, path_text)
    # It migrates the file first, which a running bot's tables must not undergo; nor would that bot hear of the
    # new default persona.
    sqlite_lock = await hold_sqlite_file_to_migrate(settings.database_url, "import-card", waiting=_say_waiting)
    database = Database(settings.database_url)
    try:
        await database.check(writable=True)
        await migrations.upgrade(database, embedding_dimension=settings.embedding_dimension)
        persona = await PersonaService(database).update_global_default(**persona_fields(card))
    finally:
        await database.dispose()
        if sqlite_lock is not None:
            sqlite_lock.release()
    print(f"{persona.name} is now the default persona (servers that chose their own with /persona keep theirs)")
    return 0


def _settings(env_file: str | None) -> "Settings":
    """From ``--env-file`` (which must then exist), else from ``.env`` if there is one, and the environment.

    Imported here, in the event loop, not with this module: loading pydantic and SQLAlchemy is most of start-up
    on a small machine, and a Ctrl-C meanwhile is then the quiet stop it is later, not a KeyboardInterrupt
    traceback."""
    from bot.settings import load_settings

    return load_settings(env_file or ".env", env_file_required=env_file is not None)


async def _doctor(env_file: str | None) -> int:
    from bot.discord.probe import check_token
    from bot.services.doctor import Check, render_table, run_checks

    try:
        settings = _settings(env_file)
    except ConfigError as exc:
        checks = [Check("settings", "fail", str(exc))]
    else:
        checks = await run_checks(settings, check_token=check_token)
    print(render_table(checks))
    return EXIT_PROBLEM if any(check.status == "fail" for check in checks) else 0


async def _dispatch(args: argparse.Namespace) -> int:
    try:
        return await _command(args)
    except Exception:
        task = asyncio.current_task()
        if task is not None and task.cancelling():  # Ctrl-C: what failed while the command stopped is that stop
            raise asyncio.CancelledError from None  # (a migration cleaning up after it fails on its cut connection)
        raise


async def _command(args: argparse.Namespace) -> int:
    if args.command == "doctor":
        return await _doctor(args.env_file)
    settings = _settings(args.env_file)
    await asyncio.sleep(0)  # a Ctrl-C while the settings loaded stops here, before anything is done with them
    try:
        return await _with_settings(settings, args)
    except Exception as exc:
        from bot.db.engine import damaged_sqlite

        damaged = damaged_sqlite(settings.database, exc)  # found by a query past the first check of the file
        if damaged is None:
            raise
        raise damaged from exc


async def _with_settings(settings: "Settings", args: argparse.Namespace) -> int:
    if args.command == "run":
        return await _run(settings, sync_commands=args.sync_commands)
    if args.command == "chat":
        return await _chat(settings)
    if args.command == "memory":
        return await _memory(settings, args)
    if args.command == "import-card":
        return await _import_card(settings, args.path)
    return await _db(settings, args)


def _unexpected(exc: BaseException) -> tuple[int, str]:
    """The exit status and line for an exception that is not one of ours."""
    import sqlite3

    import asyncpg

    from bot.db.errors import StorageError

    text = str(exc).strip()
    reason = f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__
    if isinstance(exc, StorageError | sqlite3.Error | asyncpg.PostgresError | asyncpg.InterfaceError):
        return EXIT_DATABASE, f"the database failed: {reason}"
    return EXIT_PROBLEM, f"unexpected error: {reason} (run again with --debug to see where)"


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    debug = args.debug or os.environ.get("LOG_LEVEL", "").strip().upper() == "DEBUG"
    try:
        return asyncio.run(_dispatch(args))
    except HearthError as exc:
        error: BaseException = exc
        status, line = exc.exit_code, str(exc)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except Exception as exc:
        error = exc
        status, line = _unexpected(exc)
    print(f"hearth: {line}", file=sys.stderr)
    if debug:
        traceback.print_exception(error)
    return status

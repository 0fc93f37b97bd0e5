"""One ``python -m bot run`` per SQLite file: a second start on the same file is refused, the first goes on, and
a start after the first has gone (even killed) works.

Real processes (tests/support/launcher.py) against the fake Discord and the fake model, on one SQLite file."""

import asyncio
import json
import os
import shutil
import signal
import sqlite3
import sys
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from bot.db import migrations
from bot.db.engine import Database
from bot.db.repositories.memories import MemoryRepository, NewMemory
from tests.conftest import EMBEDDING_DIMENSION
from tests.fakes.discord import FakeDiscord
from tests.fakes.llm_server import FakeLLM, Reply
from tests.support.process import bot_environment, bot_process, logged, shows


async def exited_or_connected(bot: asyncio.subprocess.Process, log: Path) -> int | None:
    """The bot's exit status once it exits, or None once it connected to Discord (it runs)."""
    async with asyncio.timeout(60):
        while bot.returncode is None and not shows(log, "connected as"):  # noqa: ASYNC110 (another process)
            await asyncio.sleep(0.05)
    return bot.returncode


async def test_a_second_run_on_the_same_sqlite_file_is_refused_and_a_start_after_a_kill_works(
    sqlite_template: Path, llm: FakeLLM, tmp_path: Path
) -> None:
    path = tmp_path / "hearth.db"
    shutil.copyfile(sqlite_template, path)
    database = Database(f"sqlite+aiosqlite:///{path}")
    first_log, second_log, third_log = (tmp_path / name / "bot.log" for name in ("first", "second", "third"))
    for log in (first_log, second_log, third_log):
        log.parent.mkdir()
    try:
        async with FakeDiscord() as discord:
            ana = discord.add_user("ana", global_name="Ana")
            dm = discord.dm_channel(ana)
            environment = bot_environment(discord, database, llm)
            async with bot_process(environment, first_log) as first:
                await logged(first_log, "connected as")

                async with bot_process(environment, second_log) as second:
                    status = await exited_or_connected(second, second_log)
                refusal = second_log.read_text(errors="replace")
                assert status == 3, f"the second start is refused as a database problem (exit 3):\n{refusal}"
                lines = [line for line in refusal.splitlines() if line.startswith("hearth:")]
                assert len(lines) == 1, refusal
                assert str(path) in lines[0] and "already" in lines[0] and "stop" in lines[0], lines[0]
                assert "Traceback" not in refusal, refusal

                assert first.returncode is None, "the first bot runs on"
                llm.script(Reply("Still here, Ana!"))
                await discord.user_message(dm, ana, "are you there?")
                await discord.wait_for_request(
                    lambda call: call.route == "create_message" and call.channel_id == dm, timeout=30
                )

                first.send_signal(signal.SIGKILL)  # no clean stop: the operating system releases what it held
                await first.wait()

            async with bot_process(environment, third_log) as third:
                assert await exited_or_connected(third, third_log) is None, third_log.read_text(errors="replace")
                third.send_signal(signal.SIGTERM)
                async with asyncio.timeout(60):
                    assert await third.wait() == 0, third_log.read_text(errors="replace")
    finally:
        await database.dispose()


# On PYTHONPATH as sitecustomize: with HOLD_MIGRATION_UNTIL set, when a migration rebuilds a SQLite table (holding
# the database's write lock, as over a big table), say so on stderr and go on only once that file is there.
HELD_MIGRATION = """
import os, sys, time
from pathlib import Path
from sqlalchemy import event
from sqlalchemy.engine import Engine

held = []

@event.listens_for(Engine, "before_cursor_execute")
def hold(conn, cursor, statement, parameters, context, executemany):
    until = os.environ.get("HOLD_MIGRATION_UNTIL")
    if until and statement.startswith("INSERT INTO _alembic_tmp_") and not held:
        held.append(statement)
        print("migrating a big table", file=sys.stderr, flush=True)
        while not Path(until).exists():
            time.sleep(0.05)
"""


async def test_a_second_run_while_the_first_migrates_is_refused_with_the_running_process(
    llm: FakeLLM, tmp_path: Path
) -> None:
    """The first start migrates a database for longer than SQLite waits for a write (10 s): a second start meanwhile
    is refused at once with the line naming the first, not with SQLite's "database is locked" once it gave up."""
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text(HELD_MIGRATION)
    go = tmp_path / "go"
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'hearth.db'}")
    first_log, second_log = (tmp_path / name / "bot.log" for name in ("first", "second"))
    for log in (first_log, second_log):
        log.parent.mkdir()
    try:
        async with FakeDiscord() as discord:
            environment = bot_environment(discord, database, llm)
            environment["PYTHONPATH"] = f"{tmp_path / 'site'}{os.pathsep}{environment['PYTHONPATH']}"
            async with bot_process(environment | {"HOLD_MIGRATION_UNTIL": str(go)}, first_log) as first:
                await logged(first_log, "migrating a big table")

                async with bot_process(environment, second_log) as second:
                    async with asyncio.timeout(60):
                        status = await second.wait()
                refusal = second_log.read_text(errors="replace")
                lines = [line for line in refusal.splitlines() if line.startswith("hearth:")]
                assert status == 3 and len(lines) == 1, refusal
                assert f"(process {first.pid}) is already running" in lines[0], lines[0]
                assert "locked" not in refusal and "Traceback" not in refusal, refusal

                go.touch()
                assert await exited_or_connected(first, first_log) is None, first_log.read_text(errors="replace")
                first.send_signal(signal.SIGTERM)
                async with asyncio.timeout(60):
                    assert await first.wait() == 0, first_log.read_text(errors="replace")
    finally:
        await database.dispose()


async def hearth_beside(environment: dict[str, str], cwd: Path, *args: str) -> tuple[int, str, str]:
    """``python -m bot ARGS`` on the running bot's settings, nothing typed: its exit status, stdout and stderr."""
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "bot", *args),
        cwd=cwd,
        env=environment,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode is not None
    return process.returncode, out.decode(errors="replace"), err.decode(errors="replace")


def assert_refused_for(first: asyncio.subprocess.Process, path: Path, status: int, err: str) -> None:
    """One line, exit status 3, naming the running bot's process and the file."""
    lines = [line for line in err.splitlines() if line.startswith("hearth:")]
    assert status == 3 and len(lines) == 1, err
    assert f"(process {first.pid}) is already running on the SQLite database {path}" in lines[0], lines[0]
    assert "Traceback" not in err, err


async def test_a_terminal_chat_beside_a_running_bot_on_its_sqlite_file_is_refused(
    sqlite_template: Path, llm: FakeLLM, tmp_path: Path
) -> None:
    """`chat` starts the same background work as `run` (learning, closing and summarising idle conversations) on the
    same conversations, and neither process would hear what the other forgets or changes: it is refused as a
    second `run` is, and the bot runs on."""
    path = tmp_path / "hearth.db"
    shutil.copyfile(sqlite_template, path)
    database = Database(f"sqlite+aiosqlite:///{path}")
    log = tmp_path / "bot" / "bot.log"
    log.parent.mkdir()
    try:
        async with FakeDiscord() as discord:
            environment = bot_environment(discord, database, llm)
            async with bot_process(environment, log) as bot:
                await logged(log, "connected as")
                status, out, err = await hearth_beside(environment, tmp_path, "chat")
                assert_refused_for(bot, path, status, err)
                assert "Talking to" not in out, out
                assert bot.returncode is None, "the bot runs on"
    finally:
        await database.dispose()


async def test_migrating_commands_beside_a_running_bot_on_its_sqlite_file_are_refused_and_looks_work(
    sqlite_template: Path, llm: FakeLLM, tmp_path: Path
) -> None:
    """A downgrade would take tables from under the running bot, an upgrade (by a newer Hearth installed meanwhile)
    or a card's import (which migrates first) would change them: each is refused, naming the bot's process, and the
    schema and the default persona stay as they were. What only reads the file goes on working beside it."""
    path = tmp_path / "hearth.db"
    shutil.copyfile(sqlite_template, path)
    card = {"spec": "chara_card_v2", "spec_version": "2.0", "data": {"name": "Mira", "description": "A fox spirit."}}
    (tmp_path / "mira.json").write_text(json.dumps(card))
    database = Database(f"sqlite+aiosqlite:///{path}")
    log = tmp_path / "bot" / "bot.log"
    log.parent.mkdir()
    try:
        async with FakeDiscord() as discord:
            ana = discord.add_user("ana", global_name="Ana")
            dm = discord.dm_channel(ana)
            environment = bot_environment(discord, database, llm)
            async with bot_process(environment, log) as bot:
                await logged(log, "connected as")
                for command in (("db", "downgrade", "base"), ("db", "upgrade"), ("import-card", "mira.json")):
                    status, out, err = await hearth_beside(environment, tmp_path, *command)
                    assert_refused_for(bot, path, status, err)
                    named = " ".join(command[:2]) if command[0] == "db" else command[0]
                    assert f"stop it before `{named}`" in err, err
                    assert "database at" not in out and "default persona" not in out, out
                assert await migrations.current_revision(database) == migrations.head_revision()
                with sqlite3.connect(path) as connection:
                    defaults = connection.execute("SELECT name FROM personas WHERE is_default").fetchall()
                assert defaults and ("Mira",) not in defaults, defaults

                status, out, err = await hearth_beside(environment, tmp_path, "db", "current")
                assert status == 0 and "up to date" in out, out + err
                status, out, err = await hearth_beside(environment, tmp_path, "memory", "status")
                assert status == 0 and "no memories yet" in out, out + err

                assert bot.returncode is None, "the bot runs on"
                llm.script(Reply("Still here, Ana!", chunk_size=64))  # one piece: a slow start shows no preview of it
                await discord.user_message(dm, ana, "are you there?")
                reply = await discord.wait_for_request(
                    lambda call: call.route == "create_message" and call.channel_id == dm, timeout=30
                )
                assert reply.body["content"] == "Still here, Ana!", reply.body
    finally:
        await database.dispose()


async def with_memories(template: Path, path: Path, count: int, model: str) -> Database:
    """A migrated SQLite file at ``path`` holding ``count`` memories embedded by ``model``, opened."""
    shutil.copyfile(template, path)
    database = Database(f"sqlite+aiosqlite:///{path}")
    made = [
        NewMemory(kind="message", content=f"memory {i} about the harbour", scope="global", created_at=datetime.now(UTC))
        for i in range(count)
    ]
    vectors = np.ones((count, EMBEDDING_DIMENSION), np.float32) / np.sqrt(EMBEDDING_DIMENSION)
    async with database.session() as session:
        await MemoryRepository(session).add_many(made, vectors, model)
    return database


async def test_a_reembed_beside_a_running_bot_on_its_sqlite_file_is_refused_and_works_once_it_stopped(
    sqlite_template: Path, llm: FakeLLM, tmp_path: Path
) -> None:
    """The operator set another EMBEDDING_MODEL and re-embeds before restarting the bot: the bot would go on
    recalling with its own model, which no memory would have a vector from any more (recall by meaning finds
    nothing until it restarts), and its embedding worker would go on giving new memories vectors of that model. The
    command is refused, naming the bot's process, and every vector stays; once the bot is stopped it works."""
    path = tmp_path / "hearth.db"
    database = await with_memories(sqlite_template, path, 3, "fake-embedding")  # the running bot's model
    log = tmp_path / "bot" / "bot.log"
    log.parent.mkdir()
    try:
        async with FakeDiscord() as discord:
            environment = bot_environment(discord, database, llm)
            changed = environment | {"EMBEDDING_MODEL": "another-embedding"}
            async with bot_process(environment, log) as bot:
                await logged(log, "connected as")
                status, out, err = await hearth_beside(changed, tmp_path, "memory", "reembed")
                assert_refused_for(bot, path, status, err)
                assert "stop it before `memory reembed`" in err and "/owner memory reembed" in err, err
                assert "re-embedded" not in out, out
                async with database.session() as session:
                    assert await MemoryRepository(session).models_in_use() == {"fake-embedding": 3}
                assert bot.returncode is None, "the bot runs on"
                bot.send_signal(signal.SIGTERM)
                async with asyncio.timeout(60):
                    assert await bot.wait() == 0, log.read_text(errors="replace")

            status, out, err = await hearth_beside(changed, tmp_path, "memory", "reembed")
            assert status == 0 and "re-embedded 3 memories with 'another-embedding'" in out, out + err
    finally:
        await database.dispose()


async def test_the_start_up_warning_of_memories_from_another_model_names_what_works_beside_the_bot(
    sqlite_template: Path, llm: FakeLLM, tmp_path: Path
) -> None:
    """The operator changed EMBEDDING_MODEL and restarted the bot: its warning about the memories the old model
    embedded names the way to re-embed them that works while it runs on its SQLite file, `/owner memory reembed`,
    and the command line only with the bot stopped, for beside it that command is refused."""
    path = tmp_path / "hearth.db"
    database = await with_memories(sqlite_template, path, 2, "old-embedding")
    log = tmp_path / "bot" / "bot.log"
    log.parent.mkdir()
    try:
        async with FakeDiscord() as discord:
            environment = bot_environment(discord, database, llm)
            async with bot_process(environment, log) as bot:
                await logged(log, "connected as")
                warning = next(line for line in log.read_text().splitlines() if "were embedded with" in line)
                assert warning.endswith(
                    "2 memories were embedded with 'old-embedding' (not the configured 'fake-embedding'): recall "
                    "ignores them until you run `/owner memory reembed` in Discord (or, with Hearth stopped, "
                    "`python -m bot memory reembed`)."
                ), warning
                status, _, err = await hearth_beside(environment, tmp_path, "memory", "reembed")
                assert_refused_for(bot, path, status, err)
                bot.send_signal(signal.SIGTERM)
                async with asyncio.timeout(60):
                    assert await bot.wait() == 0, log.read_text(errors="replace")
    finally:
        await database.dispose()


async def test_a_reembed_while_a_db_upgrade_migrates_the_sqlite_file_waits_for_it(llm: FakeLLM, tmp_path: Path) -> None:
    """An upgrade holding the file's write lock longer than SQLite waits (10 s, as over a big table): the re-embed
    started meanwhile says it waits, and does its work once the upgrade is done, not "database is locked"."""
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text(HELD_MIGRATION)
    go = tmp_path / "go"
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'hearth.db'}")
    upgrade_log, reembed_log = tmp_path / "upgrade.log", tmp_path / "reembed.log"
    try:
        async with FakeDiscord() as discord:
            environment = bot_environment(discord, database, llm)
            environment["PYTHONPATH"] = f"{tmp_path / 'site'}{os.pathsep}{environment['PYTHONPATH']}"
            processes = []
            for log, command, extra in (
                (upgrade_log, ("db", "upgrade"), {"HOLD_MIGRATION_UNTIL": str(go)}),
                (reembed_log, ("memory", "reembed"), {}),
            ):
                with log.open("wb") as stderr:
                    processes.append(
                        await asyncio.create_subprocess_exec(
                            *(sys.executable, "-m", "bot", *command),
                            cwd=tmp_path,
                            env=environment | extra,
                            stdin=asyncio.subprocess.DEVNULL,
                            stdout=asyncio.subprocess.PIPE,
                            stderr=stderr,
                        )
                    )
                if log is upgrade_log:
                    await logged(upgrade_log, "migrating a big table")
            upgrade, reembed = processes
            try:
                async with asyncio.timeout(60):
                    while reembed.returncode is None and not shows(reembed_log, "waiting"):  # noqa: ASYNC110
                        await asyncio.sleep(0.05)
                said = reembed_log.read_text(errors="replace")
                assert reembed.returncode is None, f"it waits for the upgrade, not fails:\n{said}"
                assert f"(process {upgrade.pid}, `db upgrade`) is migrating" in said, said
                go.touch()
                async with asyncio.timeout(120):
                    (_, _), (out, _) = await asyncio.gather(upgrade.communicate(), reembed.communicate())
                    upgraded, reembedded = await upgrade.wait(), await reembed.wait()
            finally:
                for process in processes:
                    if process.returncode is None:
                        process.kill()
                        await process.wait()
            err = reembed_log.read_text(errors="replace")
            assert upgraded == 0, upgrade_log.read_text(errors="replace")
            assert reembedded == 0 and "nothing to re-embed" in out.decode(), out.decode() + err
            assert "locked" not in err and "hearth:" not in err, err
    finally:
        await database.dispose()

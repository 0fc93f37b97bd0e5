"""One ``python -m bot run`` per SQLite file: a second start on the same file is refused, the first goes on, and
a start after the first has gone (even killed) works.

Real processes (tests/support/launcher.py) against the fake Discord and the fake model, on one SQLite file."""

import asyncio
import shutil
import signal
from pathlib import Path

from bot.db.engine import Database
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

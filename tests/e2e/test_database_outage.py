"""End to end, on a PostgreSQL server of the test's own: what Discord reports while the database is unreachable
(a restart, a failover) is not lost. Discord sends each event once; Hearth cannot ask for it again."""

import pytest

from bot.db.engine import Database
from tests.e2e.test_discord_memory import (
    delete_on_discord,
    flushed,
    forgotten,
    prompt_answering,
    said_anywhere,
    tell_the_code,
)
from tests.fakes.discord import FakeDiscord
from tests.fakes.llm_server import FakeLLM
from tests.support.bot import running_bot
from tests.support.chat import eventually
from tests.support.postgres import OwnPostgres


async def test_a_message_deleted_while_the_database_is_unreachable_is_forgotten_once_it_is_back(
    own_server: OwnPostgres, own_db: Database, llm: FakeLLM, caplog: pytest.LogCaptureFixture
) -> None:
    name = own_db.url.database
    assert name is not None
    async with FakeDiscord() as discord:
        ana = discord.add_user("ana", global_name="Ana")
        guild = discord.add_guild("Cosy Corner", channels=["general"], members=[ana])
        general = guild.channel("general")
        async with running_bot(discord, own_db, llm) as bot:
            secret = await tell_the_code(discord, ana, general, llm)
            await flushed(bot)
            assert await said_anywhere(own_db, "4417")

            async with own_server.unreachable(name):
                await delete_on_discord(discord, guild, secret)
                await eventually(lambda: "deleted messages" in caplog.text)  # the first try failed
            await own_db.engine.dispose()  # this test's own connections died too

            await forgotten(own_db, "4417")
            prompt = await prompt_answering(discord, llm, general, ana, "what is my locker code?")
            assert "4417" not in prompt


async def test_a_message_edited_while_the_database_is_unreachable_reads_as_edited_once_it_is_back(
    own_server: OwnPostgres, own_db: Database, llm: FakeLLM, caplog: pytest.LogCaptureFixture
) -> None:
    name = own_db.url.database
    assert name is not None
    async with FakeDiscord() as discord:
        ana = discord.add_user("ana", global_name="Ana")
        guild = discord.add_guild("Cosy Corner", channels=["general"], members=[ana])
        general = guild.channel("general")
        async with running_bot(discord, own_db, llm) as bot:
            said = await tell_the_code(discord, ana, general, llm)
            await flushed(bot)

            async with own_server.unreachable(name):
                edited = {**said, "content": f"{discord.bot.mention} my locker is the blue one"}
                await discord.dispatch("MESSAGE_UPDATE", edited)
                await eventually(lambda: "the edit of message" in caplog.text)  # the first try failed
            await own_db.engine.dispose()  # this test's own connections died too

            await forgotten(own_db, "4417")
            prompt = await prompt_answering(discord, llm, general, ana, "which locker is mine?")
            assert "4417" not in prompt and "@Hearth my locker is the blue one" in prompt

"""The gateway session's life, end to end: connecting, dropping, resuming, outages and refusals, on both backends.

The fake Discord speaks the real gateway protocol (tests/fakes/discord/gateway.py); everything between it, the
database and the fake LLM is Hearth.
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import select

from bot.db.engine import Database
from bot.db.models import Message
from tests.fakes.discord import FakeDiscord, FakeGuild, FakeUser
from tests.fakes.llm_server import FakeLLM, Reply, Step
from tests.support.bot import running_bot

AWAY_NOTE = "You were away for a while"  # what the prompt says when answering what came while Hearth was stopped
AWAY = "Sorry, I was away for a bit!"


@pytest.fixture
async def discord_world() -> AsyncIterator[tuple[FakeDiscord, FakeUser, FakeGuild]]:
    async with FakeDiscord() as fake:
        ana = fake.add_user("ana", global_name="Ana")
        guild = fake.add_guild("Cosy Corner", channels=["general"], members=[ana])
        yield fake, ana, guild


async def stored(db: Database, role: str) -> list[tuple[str, bool]]:
    """The stored messages of ``role``, and whether each still awaits its reply, in order."""
    async with db.session() as session:
        statement = select(Message.content, Message.awaiting_reply).where(Message.role == role).order_by(Message.id)
        return [(content, awaiting) for content, awaiting in (await session.execute(statement)).all()]


def is_catching_up(body: dict[str, Any]) -> bool:
    return AWAY_NOTE in body["messages"][0]["content"]


async def test_a_message_answered_while_hearth_connects_is_not_answered_again_by_the_catch_up(
    discord_world: tuple[FakeDiscord, FakeUser, FakeGuild], db: Database, llm: FakeLLM
) -> None:
    """Discord delivers messages as soon as a server has arrived, before discord.py calls the bot ready (it waits for
    the other servers first): one sent then is answered live. The catch-up that starts once ready answers what came
    while Hearth was stopped, and must not take that one, stored and still being answered, for one of them."""
    discord, ana, guild = discord_world
    general = guild.channel("general")
    asked, release = asyncio.Event(), asyncio.Event()

    async def answering(body: dict[str, Any]) -> Step:
        if is_catching_up(body):
            return Reply(AWAY)
        asked.set()
        await release.wait()
        return Reply("Here I am!")

    llm.default = answering
    async with running_bot(discord, db, llm, ready=False, guild_ready_timeout=3.0, model_timeout_s=30) as bot:
        await discord.wait_identified()
        await discord.user_message(general, ana, f"{discord.bot.mention} hello? anyone there?")
        async with asyncio.timeout(10):
            await asked.wait()  # stored, and the model asked
        assert not bot.is_ready(), "the message came, and was being answered, before Hearth was ready"
        async with asyncio.timeout(10):
            await bot.wait_until_ready()
        # The catch-up runs while the live answer is still being written (it does not wait for it for ever).
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5):
                await bot.caught_up.wait()
        release.set()
        async with asyncio.timeout(10):
            await bot.caught_up.wait()  # all it answers is answered
            while await stored(db, "assistant") == []:  # noqa: ASYNC110 (polling the database)
                await asyncio.sleep(0.02)

    assert [m["content"] for m in discord.sent_messages(general)] == ["Here I am!"], "answered once"
    assert not [r for r in llm.chat_requests if is_catching_up(r.body)], "not taken for a message missed while away"
    assert await stored(db, "user") == [("@Hearth hello? anyone there?", False)]
    assert await stored(db, "assistant") == [("Here I am!", False)]

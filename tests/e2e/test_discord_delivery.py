"""End to end: a reply Discord does not show, or shows only part of, through the real discord.py client against the
fake Discord: what the person sees, what Hearth keeps of it, and how the conversation goes on."""

import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable

import discord as discordpy
import pytest
from sqlalchemy import select

from bot.db.engine import Database
from bot.db.models import Message
from bot.discord.client import HearthBot
from bot.domain.chunking import split_message
from bot.services.conversation.delivery import CUT_SHORT
from tests.e2e.test_discord_branches import (
    answered_with_its_button,
    buttons,
    eventually_forgotten,
    press,
    stored_as_shown_in,
    stored_replies,
)
from tests.fakes.discord import DEFAULT_EVERYONE_PERMISSIONS, FakeAttachment, FakeDiscord, FakeGuild, FakeUser
from tests.fakes.discord.rest import RestCall
from tests.fakes.llm_server import FakeLLM, Reply
from tests.support.bot import running_bot
from tests.support.chat import eventually
from tests.support.commands import run
from tests.support.observability import counted


@pytest.fixture
async def world() -> AsyncIterator[tuple[FakeDiscord, FakeUser, FakeGuild]]:
    async with FakeDiscord() as fake:
        ana, boss = fake.add_user("ana", global_name="Ana"), fake.add_user("boss")
        guild = fake.add_guild("Cosy Corner", channels=["general"], members=[ana], admins=[boss])
        fake.add_role(guild, "hooks", permissions=discordpy.Permissions(manage_webhooks=True).value, members=[fake.bot])
        yield fake, ana, guild


@pytest.fixture
async def bot(world: tuple[FakeDiscord, FakeUser, FakeGuild], db: Database, llm: FakeLLM) -> AsyncIterator[HearthBot]:
    async with running_bot(world[0], db, llm) as running:
        yield running


async def stored_user_messages(db: Database) -> list[str]:
    async with db.session() as session:
        return list((await session.scalars(select(Message.content).where(Message.role == "user"))).all())


async def test_a_reply_discord_shows_nothing_of_is_not_kept_as_read_and_the_conversation_goes_on(
    world: tuple[FakeDiscord, FakeUser, FakeGuild],
    bot: HearthBot,
    llm: FakeLLM,
    db: Database,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Discord fails every message of Ana's reply, its previews too (an outage past discord.py's retries: a 503,
    which it does not retry): she sees nothing of it. Her message stays stored; the failure is one line in the log,
    without a traceback, and counted as failed; the reply is not kept as if she had read it. 🔄 on the reply before
    still answers again (nothing came after it that she saw), and her next message is answered from a history
    without the reply she never saw."""
    caplog.set_level(logging.INFO, logger="bot")
    discord, ana, guild = world
    general = guild.channel("general")
    llm.script(Reply("Hello, Ana!"), Reply("A story nobody saw."), Reply("Hello again, Ana!"), Reply("Yes, I'm here."))
    hello = await answered_with_its_button(discord, db, general, ana, "hello")

    with discord.failing("create_message", 503, message="Service Unavailable"):
        await discord.user_message(general, ana, f"{discord.bot.mention} tell me a story")
        await counted(bot.services.metrics.registry, "hearth_replies_total", 1, outcome="failed")
    assert [m["content"] for m in discord.sent_messages(general)] == ["Hello, Ana!"]
    assert await stored_replies(db) == ["Hello, Ana!"], "not kept as if she had read it"
    assert await stored_user_messages(db) == ["@Hearth hello", "@Hearth tell me a story"]
    hearths = [r for r in caplog.records if r.name.startswith("bot.")]  # not the fake servers' own
    assert not [r.getMessage() for r in hearths if r.exc_info], "one line, no traceback"
    [said] = [r for r in hearths if r.levelno >= logging.WARNING and "story" not in r.getMessage()]
    assert "Service Unavailable" in said.getMessage() and str(general) in said.getMessage()

    _, again = await press(discord, ana, hello, "regen", predicate=lambda m: "again" in m["content"])
    assert again["content"] == "Hello again, Ana!" and buttons(again) == ["◀", "2/2", "▶", "🔄"]

    await discord.user_message(general, ana, f"{discord.bot.mention} are you there?")
    answered = await discord.wait_for_request(lambda call: call.route == "create_message" and "here" in str(call.body))
    assert isinstance(answered.response, dict)
    await stored_as_shown_in(db, answered.response)
    history = [m["content"] for m in llm.chat_requests[-1].body["messages"][1:]]
    assert "Ana: @Hearth tell me a story" in history, "her message stays in the conversation"
    assert not [text for text in history if "nobody saw" in text]
    assert await stored_replies(db) == ["Hello again, Ana!", "Yes, I'm here."]


@pytest.mark.parametrize("sending", [True, False], ids=["then a discord outage", "and send messages taken away"])
async def test_a_characters_reply_discord_takes_only_part_of_is_kept_as_shown(
    world: tuple[FakeDiscord, FakeUser, FakeGuild], bot: HearthBot, llm: FakeLLM, db: Database, sending: bool
) -> None:
    """Mira, of the channel's cast, answers Ana in three messages through the channel's webhook, which an admin
    deletes as the first is shown (Discord answers the second 404, Unknown Webhook); the bot, which says the rest in
    its stead, is failed by Discord (a 503, which discord.py does not retry) or refused, Send Messages taken away a
    moment before: Ana sees only the first. The reply is kept as what she saw, Mira's and marked as cut short (the
    conversation goes on from what she read), known by that message: deleting it forgets the reply."""
    discord, ana, guild = world
    general = guild.channel("general")
    boss = next(user for user in discord.users.values() if user.username == "boss")
    card = {"spec": "chara_card_v2", "spec_version": "2.0", "data": {"name": "Mira", "description": "A fox spirit."}}
    await run(discord, boss, general, "persona import", {"card": FakeAttachment("m.json", json.dumps(card).encode())})
    await run(discord, boss, general, "persona set", {"name": "Hearth"})  # the server: the default again
    await run(discord, boss, general, "persona cast add", {"name": "Mira"})
    story = " ".join(f"Part {i} of the story of the fox on the hill." for i in range(120))
    opening, *_rest = pieces = split_message(story)
    assert len(pieces) == 3
    llm.script(Reply(story, chunk_size=500))
    discord.fail("create_followup", 404, code=10015, message="Unknown Webhook", after=1)  # its second message
    if sending:
        discord.fail("create_message", 503, message="Service Unavailable")
    else:
        no_sending = discordpy.Permissions(DEFAULT_EVERYONE_PERMISSIONS)
        no_sending.send_messages = False
        discord.set_everyone_permissions(guild, no_sending.value)  # not told to Hearth yet

    await discord.user_message(general, ana, "Mira, tell me a story")
    cut_short = opening.rstrip() + " " + CUT_SHORT

    await eventually(lambda: discord.webhook_messages(general))
    [seen] = discord.webhook_messages(general)
    await stored_as_shown_in(db, seen)
    assert seen["content"] == opening and discord.sent_messages(general) == []
    async with db.session() as session:
        rows = await session.execute(select(Message.content, Message.speaker_name).where(Message.role == "assistant"))
        kept = [tuple(row) for row in rows]
    assert kept == [(cut_short, "Mira")], "kept as shown, not as written"

    await discord.dispatch("MESSAGE_DELETE", {"id": seen["id"], "channel_id": str(general), "guild_id": str(guild.id)})
    await eventually_forgotten(db)


async def cast_with_mira(discord: FakeDiscord, channel: int) -> None:
    """Mira joins ``channel``'s cast, the server's persona being Hearth's own."""
    boss = next(user for user in discord.users.values() if user.username == "boss")
    card = {"spec": "chara_card_v2", "spec_version": "2.0", "data": {"name": "Mira", "description": "A fox spirit."}}
    await run(discord, boss, channel, "persona import", {"card": FakeAttachment("m.json", json.dumps(card).encode())})
    await run(discord, boss, channel, "persona set", {"name": "Hearth"})  # the server: the default again
    await run(discord, boss, channel, "persona cast add", {"name": "Mira"})


@pytest.mark.parametrize("refused", [False, True], ids=["a discord outage", "send messages taken away"])
async def test_a_characters_reply_the_bot_cannot_post_for_her_ends_as_its_own_reply_would(
    world: tuple[FakeDiscord, FakeUser, FakeGuild],
    bot: HearthBot,
    llm: FakeLLM,
    db: Database,
    caplog: pytest.LogCaptureFixture,
    refused: bool,
) -> None:
    """The channel's webhook is gone (an admin deleted it: Discord answers 404, Unknown Webhook), so the bot posts
    Mira's reply in her stead, and Discord fails it (a 503, past discord.py's retries) or refuses it, Send Messages
    taken away a moment before: Ana sees nothing of it. As for the bot's own reply: one line in the log, without a
    traceback (a refusal, one warning naming the permission), the turn counted as failed or forbidden, and the reply
    not kept as if she had read it."""
    caplog.set_level(logging.INFO, logger="bot")
    discord, ana, guild = world
    general = guild.channel("general")
    await cast_with_mira(discord, general)
    llm.script(Reply("Once upon a time, on a hill, a fox.", chunk_size=8, delay_between_chunks=0.05))
    if refused:
        no_sending = discordpy.Permissions(DEFAULT_EVERYONE_PERMISSIONS)
        no_sending.send_messages = False
        discord.set_everyone_permissions(guild, no_sending.value)  # not told to Hearth yet

    with contextlib.ExitStack() as failing:
        failing.enter_context(discord.failing("create_followup", 404, code=10015, message="Unknown Webhook"))
        if not refused:
            failing.enter_context(discord.failing("create_message", 503, message="Service Unavailable"))
        await discord.user_message(general, ana, "Mira, tell me a story")
        outcome = "forbidden" if refused else "failed"
        await counted(bot.services.metrics.registry, "hearth_replies_total", 1, outcome=outcome)
    assert discord.sent_messages(general) == [] and discord.webhook_messages(general) == []
    assert await stored_replies(db) == [], "not kept as if she had read it"
    assert await stored_user_messages(db) == ["Mira, tell me a story"]
    # Hearth's own lines, not the fake servers' nor the learner's (which reads the turn in the background)
    hearths = [r for r in caplog.records if r.name.startswith("bot.") and not r.name.startswith("bot.services.learn")]
    assert not [r.getMessage() for r in hearths if r.exc_info], "one line, no traceback"
    [said] = [r for r in hearths if r.levelno >= logging.WARNING]
    if refused:
        assert said.levelno == logging.WARNING and "the Send Messages permission" in said.getMessage()
    else:
        assert "Service Unavailable" in said.getMessage()
    assert str(general) in said.getMessage()


async def test_a_characters_reply_the_bot_goes_on_with_when_her_webhook_is_deleted_still_carries_her_name(
    world: tuple[FakeDiscord, FakeUser, FakeGuild], bot: HearthBot, llm: FakeLLM, db: Database
) -> None:
    """Mira answers Ana in three messages through the channel's webhook, which an admin deletes just as the first
    shows its piece whole: the bot says the second in her stead, and it carries her name in front (else readers
    would see Hearth going on with her words), in as many messages as that takes; the third goes out through the
    webhook Hearth makes anew. Nothing of the reply is lost."""
    discord, ana, guild = world
    general = guild.channel("general")
    await cast_with_mira(discord, general)
    story = " ".join(f"Part {i} of the story of the fox on the hill." for i in range(120))
    opening, second, third = split_message(story)
    llm.script(Reply(story, chunk_size=500))
    discord.upon(
        lambda call: (
            call.route in ("create_followup", "edit_webhook_message") and (call.body or {}).get("content") == opening
        ),
        lambda: discord.delete_channel_webhooks(general),
    )

    await discord.user_message(general, ana, "Mira, tell me a story")
    await eventually(lambda: len(discord.webhook_messages(general)) == 2)
    assert [m["content"] for m in discord.webhook_messages(general)] == [opening, third]
    assert {m["author"]["username"] for m in discord.webhook_messages(general)} == {"Mira"}
    said = [m["content"] for m in discord.sent_messages(general)]
    assert said[0].startswith("**Mira:** ") and all(len(message) <= 2000 for message in said)
    assert " ".join(message.strip() for message in said).removeprefix("**Mira:** ") == second.strip()
    await stored_as_shown_in(db, discord.webhook_messages(general)[-1])
    assert await stored_replies(db) == [story]


async def test_a_preview_discord_fails_to_finish_is_taken_down_not_left_half_written(
    world: tuple[FakeDiscord, FakeUser, FakeGuild],
    bot: HearthBot,
    llm: FakeLLM,
    db: Database,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Ana's reply streams into its first message, and Discord then fails every edit of it (a 503, which
    discord.py does not retry), the last, which would show the reply whole with its buttons, too: rather than
    leave the reply half-written with no buttons, Hearth takes the preview down, as it does a reply cut short when
    it stops. The turn is one line in the log, without a traceback, counted as failed; the reply is not kept, and
    her next message is answered from a history without it."""
    caplog.set_level(logging.INFO, logger="bot")
    discord, ana, guild = world
    general = guild.channel("general")
    story = " ".join(f"Line {i} of a story." for i in range(40))
    llm.script(Reply(story, chunk_size=20, delay_between_chunks=0.02), Reply("Yes, I'm here."))
    with contextlib.ExitStack() as failing:
        discord.upon(  # from the moment the preview shows, Discord fails its edits
            lambda call: call.route == "create_message",
            lambda: failing.enter_context(discord.failing("edit_message", 503, message="Service Unavailable")),
        )
        await discord.user_message(general, ana, f"{discord.bot.mention} tell me a story")
        preview = (await discord.wait_for_request(lambda call: call.route == "create_message")).response
        await counted(bot.services.metrics.registry, "hearth_replies_total", 1, outcome="failed")
    assert isinstance(preview, dict) and preview["content"] != story, "it showed part of the story"
    assert int(preview["id"]) in discord.deleted_message_ids and discord.sent_messages(general) == []
    assert await stored_replies(db) == [], "not kept as if she had read it"
    hearths = [r for r in caplog.records if r.name.startswith("bot.") and not r.name.startswith("bot.services.learn")]
    assert not [r.getMessage() for r in hearths if r.exc_info], "one line, no traceback"
    [said] = [r for r in hearths if r.levelno >= logging.WARNING]
    assert "Service Unavailable" in said.getMessage() and str(general) in said.getMessage()

    await discord.user_message(general, ana, f"{discord.bot.mention} are you there?")
    answered = await discord.wait_for_request(lambda call: call.route == "create_message" and "here" in str(call.body))
    assert isinstance(answered.response, dict)
    await stored_as_shown_in(db, answered.response)
    history = [m["content"] for m in llm.chat_requests[-1].body["messages"][1:]]
    assert "Ana: @Hearth tell me a story" in history and not [text for text in history if "Line 3 " in text]
    assert await stored_replies(db) == ["Yes, I'm here."]


async def test_a_characters_preview_discord_fails_to_finish_is_taken_down_not_left_half_written(
    world: tuple[FakeDiscord, FakeUser, FakeGuild],
    bot: HearthBot,
    llm: FakeLLM,
    db: Database,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Mira's reply streams into her first message, said by the bot with her name in front (Hearth may not manage
    webhooks there), and Discord then fails every edit of it (a 503), the last, which would show it whole, too: her
    preview is taken down as the bot's own would be, the turn one line in the log without a traceback, counted as
    failed, and nothing of it kept."""
    caplog.set_level(logging.INFO, logger="bot")
    discord, ana, guild = world
    general = guild.channel("general")
    await cast_with_mira(discord, general)
    guild.member_roles[discord.bot.id] = []  # Discord now refuses the bot's webhook calls
    story = " ".join(f"Line {i} of a story." for i in range(40))
    llm.script(Reply(story, chunk_size=20, delay_between_chunks=0.02))
    with contextlib.ExitStack() as failing:
        discord.upon(  # from the moment her preview shows, Discord fails its edits
            lambda call: call.route == "create_message",
            lambda: failing.enter_context(discord.failing("edit_message", 503, message="Service Unavailable")),
        )
        await discord.user_message(general, ana, "Mira, tell me a story")
        preview = (await discord.wait_for_request(lambda call: call.route == "create_message")).response
        await counted(bot.services.metrics.registry, "hearth_replies_total", 1, outcome="failed")
    assert isinstance(preview, dict) and preview["content"].startswith("**Mira:** Line 0")
    assert not preview["content"].endswith(story), "it showed part of the story"
    assert int(preview["id"]) in discord.deleted_message_ids
    assert discord.webhook_messages(general) == [] and discord.sent_messages(general) == []
    assert await stored_replies(db) == [], "not kept as if she had read it"
    hearths = [r for r in caplog.records if r.name.startswith("bot.") and not r.name.startswith("bot.services.learn")]
    assert not [r.getMessage() for r in hearths if r.exc_info], "one line, no traceback"
    [said] = [r for r in hearths if r.levelno >= logging.WARNING and "webhook" not in r.getMessage()]
    assert "Service Unavailable" in said.getMessage() and str(general) in said.getMessage()


@pytest.mark.parametrize("may_delete", [True, False], ids=["with manage messages", "without manage messages"])
async def test_a_characters_reply_whose_webhook_is_deleted_as_it_streams_reaches_her_whole_in_her_name(
    world: tuple[FakeDiscord, FakeUser, FakeGuild],
    db: Database,
    llm: FakeLLM,
    caplog: pytest.LogCaptureFixture,
    may_delete: bool,
) -> None:
    """Mira's reply streams into her first message through the channel's webhook, which an admin deletes as that
    preview is posted: Discord answers its next edit 404, Unknown Webhook. The reply still reaches Ana whole, in
    Mira's name: the bot says it with her name in front, as where there is no webhook, and the stale preview is
    taken down where the bot may (Manage Messages, as a webhook's message needs once the webhook is gone); where it
    may not, the preview stays and one line in the log says so. No traceback; the reply is stored as shown, known by
    the message that now holds it."""
    caplog.set_level(logging.INFO, logger="bot")
    discord, ana, guild = world
    general = guild.channel("general")
    if may_delete:
        moderate = discordpy.Permissions(manage_messages=True).value
        discord.add_role(guild, "moderators", permissions=moderate, members=[discord.bot])
    story = " ".join(f"Line {i} of a story." for i in range(40))
    llm.script(Reply(story, chunk_size=20, delay_between_chunks=0.02))

    def through_her_webhook(call: RestCall) -> bool:
        return call.route == "create_followup" and (call.body or {}).get("username") == "Mira"

    async with running_bot(discord, db, llm) as bot:
        await cast_with_mira(discord, general)
        discord.upon(through_her_webhook, lambda: discord.delete_channel_webhooks(general))
        await discord.user_message(general, ana, "Mira, tell me a story")
        await counted(bot.services.metrics.registry, "hearth_replies_total", 1, outcome="replied")
        preview = (await discord.wait_for_request(through_her_webhook)).response
        assert isinstance(preview, dict) and preview["author"]["username"] == "Mira"
        [said] = discord.sent_messages(general)
        assert said["content"] == f"**Mira:** {story}", "whole, in her name"
        await stored_as_shown_in(db, said)
        assert await stored_replies(db) == [story]
        if may_delete:
            assert int(preview["id"]) in discord.deleted_message_ids and discord.webhook_messages(general) == []
        else:
            assert [m["id"] for m in discord.webhook_messages(general)] == [preview["id"]], "the stale one stays"
    hearths = [r for r in caplog.records if r.name.startswith("bot.") and not r.name.startswith("bot.services.learn")]
    assert not [r.getMessage() for r in hearths if r.exc_info], "no traceback"
    left = [r.getMessage() for r in hearths if "Manage Messages" in r.getMessage()]
    assert len(left) == (0 if may_delete else 1) and all(str(general) in line for line in left)


async def test_a_characters_reply_cut_short_by_a_stop_is_taken_down_through_her_webhook(
    world: tuple[FakeDiscord, FakeUser, FakeGuild], bot: HearthBot, llm: FakeLLM, db: Database
) -> None:
    """Mira's reply is streaming into her first message through the channel's webhook when Hearth is told to stop,
    and told again (it cuts short the replies still being written): her unfinished preview is taken down through
    her webhook, which may delete its own messages, rather than left half-written; nothing of it is kept."""
    discord, ana, guild = world
    general = guild.channel("general")
    await cast_with_mira(discord, general)
    story = " ".join(f"Line {i} of a story." for i in range(40))
    llm.script(Reply(story, chunk_size=4, delay_between_chunks=0.2))

    def through_her_webhook(call: RestCall) -> bool:
        return call.route == "create_followup" and (call.body or {}).get("username") == "Mira"

    await discord.user_message(general, ana, "Mira, tell me a story")
    preview = (await discord.wait_for_request(through_her_webhook)).response
    bot.stop()
    await bot.stop()  # asked again: the reply still being written is cut short
    assert isinstance(preview, dict) and preview["content"] != story, "it showed part of the story"
    assert int(preview["id"]) in discord.deleted_message_ids and discord.webhook_messages(general) == []
    assert discord.calls("delete_webhook_message"), "taken down through her webhook"
    assert await stored_replies(db) == [], "nothing of it kept"


@pytest.mark.parametrize("streamed", [False, True], ids=["at its first message", "as it streams"])
async def test_a_characters_reply_whose_webhook_token_discord_no_longer_takes_reaches_her_in_her_name(
    world: tuple[FakeDiscord, FakeUser, FakeGuild],
    bot: HearthBot,
    llm: FakeLLM,
    db: Database,
    caplog: pytest.LogCaptureFixture,
    streamed: bool,
) -> None:
    """Mira has answered Ana through the channel's webhook; then Discord no longer takes that webhook's token (401,
    Invalid Webhook Token), from her next reply's first message on, or from the moment its preview is posted. As
    where the webhook was deleted, the reply still reaches Ana whole in Mira's name, the bot saying it with her name
    in front; no traceback, and the reply is stored as shown."""
    caplog.set_level(logging.INFO, logger="bot")
    discord, ana, guild = world
    general = guild.channel("general")
    moderate = discordpy.Permissions(manage_messages=True).value
    discord.add_role(guild, "moderators", permissions=moderate, members=[discord.bot])
    await cast_with_mira(discord, general)
    story = " ".join(f"Line {i} of a story." for i in range(40))
    llm.script(Reply("Hello, Ana."), Reply(story, chunk_size=20, delay_between_chunks=0.02))
    await discord.user_message(general, ana, "Mira, hello")
    await eventually(lambda: [m["content"] for m in discord.webhook_messages(general)] == ["Hello, Ana."])

    def through_her_webhook(call: RestCall) -> bool:
        return call.route == "create_followup" and (call.body or {}).get("username") == "Mira"

    await discord.wait_for_request(through_her_webhook)
    with contextlib.ExitStack() as failing:

        def invalid(route: str) -> None:
            failing.enter_context(discord.failing(route, 401, code=50027, message="Invalid Webhook Token"))

        if streamed:
            discord.upon(through_her_webhook, lambda: invalid("edit_webhook_message"))
        else:
            invalid("create_followup")
        await discord.user_message(general, ana, "Mira, tell me a story")
        await counted(bot.services.metrics.registry, "hearth_replies_total", 2, outcome="replied")
    said = discord.sent_messages(general)
    assert [m["content"] for m in said] == [f"**Mira:** {story}"], "whole, in her name"
    await stored_as_shown_in(db, said[0])
    assert await stored_replies(db) == ["Hello, Ana.", story]
    assert [m["content"] for m in discord.webhook_messages(general)] == ["Hello, Ana."], "no half-written preview"
    hearths = [r for r in caplog.records if r.name.startswith("bot.") and not r.name.startswith("bot.services.learn")]
    assert not [r.getMessage() for r in hearths if r.exc_info], "no traceback"


def webhook_failing(discord: FakeDiscord) -> contextlib.AbstractContextManager[None]:
    """Every call of a channel's webhook answered 503 (discord.py's webhooks retry it for about 25 s)."""
    return discord.failing("create_followup", 503, message="Service Unavailable")


def webhook_rate_limited(discord: FakeDiscord) -> contextlib.AbstractContextManager[None]:
    """Every call of a channel's webhook answered 429, for longer than discord.py's five tries."""
    return discord.rate_limited("create_followup", retry_after=0.01)


@pytest.mark.parametrize(
    ("failure", "said"),
    [(webhook_failing, "Service Unavailable"), (webhook_rate_limited, "rate limited")],
    ids=["failing", "rate-limited"],
)
async def test_a_characters_reply_discord_fails_through_her_webhook_reaches_her_through_the_bot(
    world: tuple[FakeDiscord, FakeUser, FakeGuild],
    bot: HearthBot,
    llm: FakeLLM,
    db: Database,
    caplog: pytest.LogCaptureFixture,
    failure: Callable[[FakeDiscord], contextlib.AbstractContextManager[None]],
    said: str,
) -> None:
    """Discord fails the channel's webhook (a 503 on every call, which discord.py's webhooks retry for about 25 s;
    or a 429 for longer than its five tries) while the bot's own messages go through: Mira's reply reaches Ana whole
    all the same, the bot saying it with her name in front once one round of the webhook's retries has failed,
    rather than waiting that out again for the whole reply and then losing it. Her next reply, while the webhook is
    failing, is said by the bot at once. One line in the log, no traceback; both replies stored as shown."""
    caplog.set_level(logging.INFO, logger="bot")
    discord, ana, guild = world
    general = guild.channel("general")
    await cast_with_mira(discord, general)
    story = "Once upon a time, on a hill, a fox."
    llm.script(Reply(story, chunk_size=8, delay_between_chunks=0.05), Reply("And then it slept."))

    def through_her_webhook() -> int:
        return len([call for call in discord.calls("create_followup") if (call.body or {}).get("username") == "Mira"])

    with failure(discord):
        await discord.user_message(general, ana, "Mira, tell me a story")
        await eventually(lambda: [m["content"] for m in discord.sent_messages(general)] == [f"**Mira:** {story}"], 40)
        assert through_her_webhook() == 5, "one round of discord.py's retries"
        await discord.user_message(general, ana, "Mira, and then?")
        await counted(bot.services.metrics.registry, "hearth_replies_total", 2, outcome="replied")
        assert through_her_webhook() == 5, "not waited out again"
    shown = discord.sent_messages(general)
    assert [m["content"] for m in shown] == [f"**Mira:** {story}", "**Mira:** And then it slept."]
    assert discord.webhook_messages(general) == []
    await stored_as_shown_in(db, shown[-1])
    assert await stored_replies(db) == [story, "And then it slept."]
    hearths = [r for r in caplog.records if r.name.startswith("bot.") and not r.name.startswith("bot.services.learn")]
    assert not [r.getMessage() for r in hearths if r.exc_info], "no traceback"
    [said_once] = [r.getMessage() for r in hearths if r.levelno >= logging.WARNING]
    assert said in said_once and str(general) in said_once


@pytest.mark.parametrize("may_delete", [True, False], ids=["with manage messages", "without manage messages"])
async def test_a_characters_reply_cut_short_after_her_webhook_is_deleted_is_taken_down_by_the_bot(
    world: tuple[FakeDiscord, FakeUser, FakeGuild],
    db: Database,
    llm: FakeLLM,
    caplog: pytest.LogCaptureFixture,
    may_delete: bool,
) -> None:
    """Mira's reply is streaming into her first message through the channel's webhook when an admin deletes that
    webhook, and Hearth is then told to stop, and told again (it cuts short the replies still being written): her
    unfinished preview can no longer be deleted through the webhook (Discord answers 404, Unknown Webhook), so it is
    taken down by the bot, as Manage Messages lets it, rather than left half-written; without that permission it
    stays. Nothing of it is kept; no traceback."""
    caplog.set_level(logging.INFO, logger="bot")
    discord, ana, guild = world
    general = guild.channel("general")
    if may_delete:
        moderate = discordpy.Permissions(manage_messages=True).value
        discord.add_role(guild, "moderators", permissions=moderate, members=[discord.bot])
    story = " ".join(f"Line {i} of a story." for i in range(40))
    llm.script(Reply(story, chunk_size=4, delay_between_chunks=0.2))

    def through_her_webhook(call: RestCall) -> bool:
        return call.route == "create_followup" and (call.body or {}).get("username") == "Mira"

    async with running_bot(discord, db, llm) as bot:
        await cast_with_mira(discord, general)
        discord.upon(through_her_webhook, lambda: discord.delete_channel_webhooks(general))
        await discord.user_message(general, ana, "Mira, tell me a story")
        preview = (await discord.wait_for_request(through_her_webhook)).response
        bot.stop()
        await bot.stop()  # asked again: the reply still being written is cut short
    assert isinstance(preview, dict) and preview["content"] != story, "it showed part of the story"
    assert discord.sent_messages(general) == []
    if may_delete:
        assert int(preview["id"]) in discord.deleted_message_ids and discord.webhook_messages(general) == []
    else:
        assert [m["id"] for m in discord.webhook_messages(general)] == [preview["id"]], "the stale one stays"
    assert await stored_replies(db) == [], "nothing of it kept"
    hearths = [r for r in caplog.records if r.name.startswith("bot.") and not r.name.startswith("bot.services.learn")]
    assert not [r.getMessage() for r in hearths if r.exc_info], "no traceback"


@pytest.mark.parametrize("streamed", [False, True], ids=["at its first message", "as it streams"])
async def test_a_reply_discord_rate_limits_past_its_retries_ends_as_an_outage_would(
    world: tuple[FakeDiscord, FakeUser, FakeGuild],
    bot: HearthBot,
    llm: FakeLLM,
    db: Database,
    caplog: pytest.LogCaptureFixture,
    streamed: bool,
) -> None:
    """Discord answers 429 to Ana's reply for longer than discord.py's five tries (it then gives up with a plain
    429): every message of it, or every edit from the moment its preview shows. As for an outage: the preview she
    saw part of the story in is taken down rather than left half-written, the turn is one line in the log without a
    traceback, counted as failed, and the reply is not kept as if she had read it."""
    caplog.set_level(logging.INFO, logger="bot")
    discord, ana, guild = world
    general = guild.channel("general")
    story = " ".join(f"Line {i} of a story." for i in range(40))
    llm.script(Reply(story, chunk_size=20, delay_between_chunks=0.02))
    with contextlib.ExitStack() as limited:
        if streamed:
            discord.upon(  # from the moment the preview shows, Discord rate-limits its edits
                lambda call: call.route == "create_message",
                lambda: limited.enter_context(discord.rate_limited("edit_message", retry_after=0.01)),
            )
        else:
            limited.enter_context(discord.rate_limited("create_message", retry_after=0.01))
        await discord.user_message(general, ana, f"{discord.bot.mention} tell me a story")
        await counted(bot.services.metrics.registry, "hearth_replies_total", 1, outcome="failed")
    if streamed:
        [preview] = [call.response for call in discord.calls("create_message")]
        assert isinstance(preview, dict) and preview["content"] != story, "it showed part of the story"
        assert int(preview["id"]) in discord.deleted_message_ids
    assert discord.sent_messages(general) == []
    assert await stored_replies(db) == [], "not kept as if she had read it"
    assert await stored_user_messages(db) == ["@Hearth tell me a story"]
    hearths = [r for r in caplog.records if r.name.startswith("bot.") and not r.name.startswith("bot.services.learn")]
    assert not [r.getMessage() for r in hearths if r.exc_info], "one line, no traceback"
    [said] = [r for r in hearths if r.levelno >= logging.WARNING]
    assert "rate limited" in said.getMessage() and str(general) in said.getMessage()


@pytest.mark.parametrize("webhook", [True, False], ids=["through her webhook", "through the bot"])
async def test_a_characters_preview_discord_rate_limits_past_its_retries_is_taken_down(
    world: tuple[FakeDiscord, FakeUser, FakeGuild],
    bot: HearthBot,
    llm: FakeLLM,
    db: Database,
    caplog: pytest.LogCaptureFixture,
    webhook: bool,
) -> None:
    """Mira's reply streams into her first message (through the channel's webhook, or said by the bot where Hearth
    may not manage webhooks), and Discord then answers 429 to every edit of it for longer than discord.py's five
    tries, the last, which would show it whole, too: her preview is taken down as it is after an outage, the turn one
    line in the log without a traceback, counted as failed, and nothing of it kept."""
    caplog.set_level(logging.INFO, logger="bot")
    discord, ana, guild = world
    general = guild.channel("general")
    await cast_with_mira(discord, general)
    if not webhook:
        guild.member_roles[discord.bot.id] = []  # Discord now refuses the bot's webhook calls
    story = " ".join(f"Line {i} of a story." for i in range(40))
    llm.script(Reply(story, chunk_size=20, delay_between_chunks=0.02))
    edit = "edit_webhook_message" if webhook else "edit_message"

    def her_preview(call: RestCall) -> bool:
        if webhook:
            return call.route == "create_followup" and (call.body or {}).get("username") == "Mira"
        return call.route == "create_message"

    with contextlib.ExitStack() as limited:
        discord.upon(  # from the moment her preview shows, Discord rate-limits its edits
            her_preview, lambda: limited.enter_context(discord.rate_limited(edit, retry_after=0.01))
        )
        await discord.user_message(general, ana, "Mira, tell me a story")
        preview = (await discord.wait_for_request(her_preview)).response
        await counted(bot.services.metrics.registry, "hearth_replies_total", 1, outcome="failed")
    assert isinstance(preview, dict) and "Line 0" in preview["content"]
    assert not preview["content"].endswith(story), "it showed part of the story"
    assert int(preview["id"]) in discord.deleted_message_ids
    assert discord.webhook_messages(general) == [] and discord.sent_messages(general) == []
    assert await stored_replies(db) == [], "not kept as if she had read it"
    hearths = [r for r in caplog.records if r.name.startswith("bot.") and not r.name.startswith("bot.services.learn")]
    assert not [r.getMessage() for r in hearths if r.exc_info], "one line, no traceback"
    [said] = [r for r in hearths if r.levelno >= logging.WARNING and "no webhook" not in r.getMessage()]
    assert "rate limited" in said.getMessage() and str(general) in said.getMessage()


async def test_a_reply_cut_short_whose_preview_discord_will_not_take_down_is_said_in_the_log(
    world: tuple[FakeDiscord, FakeUser, FakeGuild],
    bot: HearthBot,
    llm: FakeLLM,
    db: Database,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Ana's reply is streaming into its first message when Hearth is told to stop, and told again (it cuts short
    the replies still being written), while Discord fails every delete (a 500, which discord.py retries for longer
    than a stop gives the take-down): the stop is not held up, the half-written preview stays, and one line in the
    log says so, naming it and its channel, without a traceback. Nothing of the reply is kept."""
    caplog.set_level(logging.INFO, logger="bot")
    discord, ana, guild = world
    general = guild.channel("general")
    story = " ".join(f"Line {i} of a story." for i in range(40))
    llm.script(Reply(story, chunk_size=4, delay_between_chunks=0.2))
    await discord.user_message(general, ana, f"{discord.bot.mention} tell me a story")
    preview = (await discord.wait_for_request(lambda call: call.route == "create_message")).response
    assert isinstance(preview, dict)
    with discord.failing("delete_message", 500, message="Internal Server Error"):
        bot.stop()
        await bot.stop()  # asked again: the reply still being written is cut short
    assert discord.calls("delete_message"), "it tried to take the preview down"
    assert [m["id"] for m in discord.sent_messages(general)] == [preview["id"]], "the preview stays"
    assert await stored_replies(db) == [], "nothing of it kept"
    hearths = [r for r in caplog.records if r.name.startswith("bot.") and not r.name.startswith("bot.services.learn")]
    assert not [r.getMessage() for r in hearths if r.exc_info], "no traceback"
    [left] = [r.getMessage() for r in hearths if preview["id"] in r.getMessage()]
    assert str(general) in left


def typing_around_the_reply(discord: FakeDiscord, channel: int, *, since: int = 0) -> tuple[int, int]:
    """How many typing signals went out in ``channel`` before the reply's first message was shown there (by the bot,
    or through the channel's webhook), and how many after; from Discord's ``since``-th request on."""
    calls = discord.requests[since:]

    def posted_there(call: RestCall) -> bool:
        answer = call.response if call.status == 200 else None
        return call.route in ("create_message", "create_followup") and (answer or {}).get("channel_id") == str(channel)

    shown = next(i for i, call in enumerate(calls) if posted_there(call))
    signals = [i for i, call in enumerate(calls) if call.route == "typing" and call.channel_id == channel]
    return len([i for i in signals if i < shown]), len([i for i in signals if i > shown])


async def test_typing_stays_up_while_discord_retries_the_replys_first_message(
    world: tuple[FakeDiscord, FakeUser, FakeGuild], bot: HearthBot, llm: FakeLLM, db: Database
) -> None:
    """The model answers Ana at once, but Discord answers 500 to the first four tries of the reply's message, which
    discord.py waits out (1, 3, 5 and 7 s) before the fifth goes through: "Hearth is typing…", which Discord shows
    for about ten seconds after each signal, stays up all that while (a signal every five seconds), and no signal
    goes out once the reply is shown."""
    discord, ana, guild = world
    general = guild.channel("general")
    llm.script(Reply("Hello, Ana!"))
    discord.fail("create_message", 500, times=4, message="Internal Server Error")

    await discord.user_message(general, ana, f"{discord.bot.mention} hello")
    await eventually(lambda: [m["content"] for m in discord.sent_messages(general)] == ["Hello, Ana!"], 30)
    await counted(bot.services.metrics.registry, "hearth_replies_total", 1, outcome="replied")
    assert len(discord.calls("create_message")) == 5, "shown at discord.py's fifth try, 16 s on"
    before, after = typing_around_the_reply(discord, general)
    assert before >= 3, f"typing kept up while the reply waited: {before} signals in 16 s"
    assert after == 0, "no typing under the reply shown"
    assert await stored_replies(db) == ["Hello, Ana!"]


@pytest.mark.parametrize("speaker", ["Hearth", "Mira"])
async def test_typing_ends_once_the_replys_first_message_shows_it_streaming(
    world: tuple[FakeDiscord, FakeUser, FakeGuild], bot: HearthBot, llm: FakeLLM, db: Database, speaker: str
) -> None:
    """Ana's reply, Hearth's own or Mira's (said by the bot, Hearth not managing webhooks there), streams into its
    first message for about eight seconds: no typing signal goes out once that message shows (Discord clears
    "typing…" when the bot posts, not when it edits, and a signal then would leave "typing…" under the reply for up
    to ten seconds after it is whole)."""
    discord, ana, guild = world
    general = guild.channel("general")
    if speaker == "Mira":
        await cast_with_mira(discord, general)
        guild.member_roles[discord.bot.id] = []  # Discord now refuses the bot's webhook calls
    story = " ".join(f"Line {i} of a story." for i in range(16))
    llm.script(Reply(story, chunk_size=20, delay_between_chunks=0.5))

    said = {"Hearth": f"{discord.bot.mention} tell me a story", "Mira": "Mira, tell me a story"}[speaker]
    since = len(discord.requests)
    await discord.user_message(general, ana, said)
    await eventually(
        lambda: bot.services.metrics.registry.get_sample_value("hearth_replies_total", {"outcome": "replied"}), 30
    )
    assert await stored_replies(db) == [story]
    before, after = typing_around_the_reply(discord, general, since=since)
    assert before >= 1, "typing shown while it was written"
    assert after == 0, "no typing under the reply being shown"


@pytest.mark.parametrize("speaker", ["Hearth", "Mira"])
async def test_a_typing_signal_on_its_way_lands_before_the_replys_first_message(
    world: tuple[FakeDiscord, FakeUser, FakeGuild], bot: HearthBot, llm: FakeLLM, db: Database, speaker: str
) -> None:
    """The way to Discord is slow for typing signals (each lands a second after it is sent), and the model answers
    Ana as soon as the first is on its way. Her reply, Hearth's own or Mira's (said by the bot, Hearth not managing
    webhooks there), waits for that signal to land before its first message goes out: landing after it, the signal
    would show "Hearth is typing…" under the finished reply for ten seconds."""
    discord, ana, guild = world
    general = guild.channel("general")
    if speaker == "Mira":
        await cast_with_mira(discord, general)
        guild.member_roles[discord.bot.id] = []  # Discord now refuses the bot's webhook calls
    said = {"Hearth": f"{discord.bot.mention} hello", "Mira": "Mira, hello"}[speaker]
    since = len(discord.requests)
    with discord.slowed("typing", 1.0) as typing_sent:

        async def once_typing_is_sent(body: dict[str, object]) -> Reply:
            await typing_sent.wait()
            return Reply("Hello, Ana!")

        llm.default = once_typing_is_sent
        await discord.user_message(general, ana, said)
        await counted(bot.services.metrics.registry, "hearth_replies_total", 1, outcome="replied")
        await eventually(lambda: any(call.route == "typing" for call in discord.requests[since:]))  # landed
    assert await stored_replies(db) == ["Hello, Ana!"]
    before, after = typing_around_the_reply(discord, general, since=since)
    assert (before, after) == (1, 0), "the signal landed before the reply, none after it"


async def test_a_characters_reply_through_the_webhook_leaves_no_bot_typing_under_it(
    world: tuple[FakeDiscord, FakeUser, FakeGuild], bot: HearthBot, llm: FakeLLM, db: Database
) -> None:
    """Mira's replies to Ana go through the channel's webhook, under her name. Discord shows "Hearth is typing…"
    for ten seconds after the bot's last typing signal, and clears it when the bot posts, not when a webhook does:
    any signal would leave Hearth typing under Mira's finished reply. None goes out, for her first reply in the
    channel (the webhook made for it) nor for the next."""
    discord, ana, guild = world
    general = guild.channel("general")
    await cast_with_mira(discord, general)
    llm.script(Reply("Hello, Ana!"), Reply("A fox's tale, short and sweet."))

    since = len(discord.requests)
    for said, count in (("Mira, hello", 1), ("Mira, tell me a story", 2)):
        await discord.user_message(general, ana, said)
        await counted(bot.services.metrics.registry, "hearth_replies_total", count, outcome="replied")
    assert await stored_replies(db) == ["Hello, Ana!", "A fox's tale, short and sweet."]
    through_webhook = [call for call in discord.requests[since:] if call.route == "create_followup"]
    assert [call.body["username"] for call in through_webhook] == ["Mira", "Mira"]
    assert not [call for call in discord.requests[since:] if call.route == "create_message"], "none said by the bot"
    assert [call for call in discord.requests[since:] if call.route == "typing"] == [], "no bot typing at all"


@pytest.mark.parametrize("speaker", ["Hearth", "Mira"])
@pytest.mark.parametrize("failing", ["an outage", "a rate limit"])
async def test_a_reply_discord_fails_part_way_is_said_in_one_line_of_the_log(
    world: tuple[FakeDiscord, FakeUser, FakeGuild],
    bot: HearthBot,
    llm: FakeLLM,
    db: Database,
    caplog: pytest.LogCaptureFixture,
    failing: str,
    speaker: str,
) -> None:
    """Ana's reply, Hearth's own or Mira's (said by the bot, Hearth not managing webhooks there), takes three
    messages; Discord shows the first, then fails the rest (a 503, which discord.py does not retry) or rate-limits
    them past discord.py's five tries. The reply is kept as she saw it, cut short, and the log says so in one line
    naming what Discord answered and where, without a traceback: Discord failing is not a fault of Hearth's."""
    caplog.set_level(logging.INFO, logger="bot")
    discord, ana, guild = world
    general = guild.channel("general")
    if speaker == "Mira":
        await cast_with_mira(discord, general)
        guild.member_roles[discord.bot.id] = []  # Discord now refuses the bot's webhook calls
    story = " ".join(f"Part {i} of the story of the fox on the hill." for i in range(120))
    opening, *_rest = pieces = split_message(story)
    assert len(pieces) == 3
    llm.script(Reply(story, chunk_size=500))
    said = {"Hearth": f"{discord.bot.mention} tell me a story", "Mira": "Mira, tell me a story"}[speaker]
    with contextlib.ExitStack() as failures:

        def fail_the_rest() -> None:
            if failing == "an outage":
                failures.enter_context(discord.failing("create_message", 503, message="Service Unavailable"))
            else:
                failures.enter_context(discord.rate_limited("create_message", retry_after=0.01))

        discord.upon(lambda call: call.route == "create_message", fail_the_rest)  # from the first message on
        await discord.user_message(general, ana, said)
        await counted(bot.services.metrics.registry, "hearth_replies_total", 1, outcome="replied")
    [seen] = discord.sent_messages(general)
    assert seen["content"].startswith(("**Mira:** " if speaker == "Mira" else "") + "Part 0 of the story")
    assert await stored_replies(db) == [opening.rstrip() + " " + CUT_SHORT]
    hearths = [r for r in caplog.records if r.name.startswith("bot.") and not r.name.startswith("bot.services.learn")]
    assert not [r.getMessage() for r in hearths if r.exc_info], "one line, no traceback"
    [cut] = [r.getMessage() for r in hearths if "cut short" in r.getMessage()]
    answered = "Service Unavailable" if failing == "an outage" else "rate limited"
    assert answered in cut and str(general) in cut

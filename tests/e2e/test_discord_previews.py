"""End to end: the streaming preview of a reply on Discord, while Discord is slow to take it (rate limits,
outages) or the preview is gone, on both database backends."""

import asyncio
import json
import logging
from collections.abc import AsyncIterator

import discord as discordpy
import pytest
from sqlalchemy import select

from bot.db.engine import Database
from bot.db.models import Message
from bot.discord.client import HearthBot
from bot.discord.reply_buttons import REFUSALS
from tests.e2e.test_discord_branches import answered_with_its_button, buttons, press
from tests.e2e.test_discord_chat import shown, stored_eventually
from tests.fakes.discord import FakeAttachment, FakeDiscord, FakeGuild, FakeUser
from tests.fakes.llm_server import BrokenStream, FakeLLM, Reply, Step
from tests.support.bot import running_bot
from tests.support.chat import eventually
from tests.support.commands import run

STORY = ("Once upon a time there was a very small hearth that warmed a very large house. " * 3).strip()


@pytest.fixture
async def discord_world() -> AsyncIterator[tuple[FakeDiscord, FakeUser, FakeGuild]]:
    async with FakeDiscord() as fake:
        ana, boss = fake.add_user("ana", global_name="Ana"), fake.add_user("boss")
        guild = fake.add_guild("Cosy Corner", channels=["general"], members=[ana], admins=[boss])
        fake.add_role(guild, "hooks", permissions=discordpy.Permissions(manage_webhooks=True).value, members=[fake.bot])
        yield fake, ana, guild


@pytest.fixture
async def bot(
    discord_world: tuple[FakeDiscord, FakeUser, FakeGuild], db: Database, llm: FakeLLM
) -> AsyncIterator[HearthBot]:
    async with running_bot(discord_world[0], db, llm) as running:
        yield running


async def test_a_rate_limited_preview_holds_up_neither_the_answer_nor_shows_anything_twice(
    discord_world: tuple[FakeDiscord, FakeUser, FakeGuild], bot: HearthBot, llm: FakeLLM, db: Database
) -> None:
    """While Discord rate-limits the edits that show a reply as it streams (discord.py waiting each 429 out), the
    model's answer is read to its end and goes out whole: no preview holds it up, nor shows after it."""
    discord, ana, guild = discord_world
    general = guild.channel("general")
    llm.script(Reply(STORY, chunk_size=8, delay_between_chunks=0.04))  # ~1.2 s of streaming: several previews
    with discord.rate_limited("edit_message", retry_after=0.5):
        await discord.user_message(general, ana, f"{discord.bot.mention} tell me a story")
        opened = await discord.wait_for_message(general)
        assert opened["content"] != STORY, "the reply opened with its first words"
        # The whole answer is on its way while every edit is still refused: the stream was read to its end.
        await discord.wait_for_request(
            lambda call: call.route == "edit_message" and call.body["content"] == STORY, timeout=10
        )
    done = await discord.wait_for_request(
        lambda call: call.route == "edit_message" and call.status == 200 and call.body["content"] == STORY
    )
    assert int(done.params["message_id"]) == int(opened["id"]), "the preview's message shows the whole answer"
    await stored_eventually(db, "assistant", [STORY])
    assert [m["content"] for m in discord.sent_messages(general)] == [STORY]
    assert len(discord.calls("create_message")) == 1
    assert discord.edits[-1].body["content"] == STORY, "no preview edit came after the whole answer"


async def test_a_broken_off_try_is_not_left_showing_while_the_model_starts_again(
    discord_world: tuple[FakeDiscord, FakeUser, FakeGuild], bot: HearthBot, llm: FakeLLM, db: Database
) -> None:
    """The model's stream breaks off after a few words and is asked again: while the new try has not begun to
    answer, the reply no longer shows the abandoned try's words as if they were the answer; the new answer then
    replaces it whole."""
    discord, ana, guild = discord_world
    general = guild.channel("general")
    second_try = asyncio.Event()

    async def once_let_through(body: object) -> Step:
        await second_try.wait()
        return Reply("Here is a story about a cat called Miso.")

    llm.script(BrokenStream("A lighthouse keeper story that breaks off", after_chars=25))
    llm.default = once_let_through
    await discord.user_message(general, ana, f"{discord.bot.mention} tell me a story")
    opened = await discord.wait_for_message(general)
    assert "lighthouse" in opened["content"], "the broken try's start was shown"
    await eventually(lambda: len(llm.reply_requests) == 2)  # the model is asked again, and has not answered yet
    await eventually(lambda: "lighthouse" not in discord.messages[int(opened["id"])]["content"])

    second_try.set()
    await shown(discord, general, "Here is a story about a cat called Miso.")
    await stored_eventually(db, "assistant", ["Here is a story about a cat called Miso."])
    assert [m["content"] for m in discord.sent_messages(general)] == ["Here is a story about a cat called Miso."]


async def test_a_preview_discord_keeps_rate_limiting_costs_the_glimpse_not_the_reply(
    discord_world: tuple[FakeDiscord, FakeUser, FakeGuild], bot: HearthBot, llm: FakeLLM, db: Database
) -> None:
    """discord.py gives up on an edit after five 429s in a row (HTTPException 429): for a preview that is one
    glimpse lost, and the answer still streams in and goes out whole once Discord takes edits again."""
    discord, ana, guild = discord_world
    general = guild.channel("general")
    llm.script(Reply(STORY, chunk_size=4, delay_between_chunks=0.04))  # ~2.4 s: longer than five 429s take
    with discord.rate_limited("edit_message", retry_after=0.1):
        await discord.user_message(general, ana, f"{discord.bot.mention} tell me a story")
        await discord.wait_for_request(
            lambda call: call.route == "edit_message" and call.body["content"] == STORY, timeout=10
        )
        given_up = [call for call in discord.calls("edit_message") if call.body["content"] != STORY]
        assert len(given_up) >= 5, "discord.py gave up on a preview"
    await discord.wait_for_request(
        lambda call: call.route == "edit_message" and call.status == 200 and call.body["content"] == STORY
    )
    await stored_eventually(db, "assistant", [STORY])
    assert [m["content"] for m in discord.sent_messages(general)] == [STORY]


async def test_a_reply_a_moderator_deletes_while_it_streams_is_neither_shown_again_nor_kept(
    discord_world: tuple[FakeDiscord, FakeUser, FakeGuild],
    bot: HearthBot,
    llm: FakeLLM,
    db: Database,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A moderator deletes Hearth's reply as it streams in, and Discord answers the next edit 404 Unknown
    Message: the turn ends there, as the moderator wanted. The reply is not posted again nor kept, the message it
    answered is not left waiting to be answered after a restart, nothing is logged as a fault, and the channel
    answers on."""
    discord, ana, guild = discord_world
    general = guild.channel("general")
    llm.script(Reply(STORY, chunk_size=8, delay_between_chunks=0.04))  # ~1.2 s of streaming
    await discord.user_message(general, ana, f"{discord.bot.mention} tell me a story")
    opened = await discord.wait_for_message(general)
    await discord.user_deletes(opened)
    await discord.wait_for_request(lambda call: call.route == "edit_message" and call.status == 404)

    llm.default = Reply("Hello again!")
    await discord.user_message(general, ana, f"{discord.bot.mention} hello")
    await shown(discord, general, "Hello again!")
    await stored_eventually(db, "assistant", ["Hello again!"])
    assert [m["content"] for m in discord.sent_messages(general)] == ["Hello again!"]
    assert len(discord.calls("create_message")) == 2, "the deleted reply was not posted again"
    async with db.session() as session:
        waiting = (await session.scalars(select(Message.content).where(Message.awaiting_reply))).all()
    assert list(waiting) == [], "no message is left for catching up"
    faults = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR and r.name.startswith("bot.")]
    assert not faults, "a deletion is no fault"


async def test_discord_failing_a_preview_of_another_answer_still_shows_it_whole_and_keeps_it(
    discord_world: tuple[FakeDiscord, FakeUser, FakeGuild], bot: HearthBot, llm: FakeLLM, db: Database
) -> None:
    """🔄 streams another answer into the reply's message: Discord failing an edit of it (a 503, which discord.py
    does not retry) costs that glimpse, as it does for a first answer, and the new answer is shown whole, with
    its buttons, and kept."""
    discord, ana, guild = discord_world
    general = guild.channel("general")
    llm.script(Reply("A lighthouse keeper story."), Reply(STORY, chunk_size=8, delay_between_chunks=0.03))
    reply = await answered_with_its_button(discord, db, general, ana, "tell me a story")

    discord.fail("edit_message", 503, message="Service Unavailable")
    _, again = await press(discord, ana, reply, "regen", predicate=lambda m: m["content"] == STORY)
    assert buttons(again) == ["◀", "2/2", "▶", "🔄"]
    assert discord.calls("edit_message")[-1].status == 200
    assert [call.status for call in discord.calls("edit_message")].count(503) == 1, "Discord failed one preview"
    _, back = await press(discord, ana, again, "prev", predicate=lambda m: "lighthouse" in m["content"])
    assert buttons(back) == ["◀", "1/2", "▶", "🔄"], "both answers are kept"


async def test_a_cast_characters_preview_discord_keeps_rate_limiting_costs_the_glimpse_not_the_reply(
    discord_world: tuple[FakeDiscord, FakeUser, FakeGuild], bot: HearthBot, llm: FakeLLM, db: Database
) -> None:
    """A cast character's reply streams in through the channel's webhook; discord.py gives up on a webhook edit
    after five 429s in a row: for a preview that is one glimpse lost, as for Hearth's own replies, and the
    character's answer goes out whole once Discord takes edits again."""
    discord, ana, guild = discord_world
    general = guild.channel("general")
    boss = next(user for user in discord.users.values() if user.username == "boss")
    card = {"spec": "chara_card_v2", "spec_version": "2.0", "data": {"name": "Mira", "description": "A fox spirit."}}
    await run(discord, boss, general, "persona import", {"card": FakeAttachment("m.json", json.dumps(card).encode())})
    await run(discord, boss, general, "persona cast add", {"name": "Mira"})
    llm.script(Reply(STORY, chunk_size=4, delay_between_chunks=0.04))  # ~2.4 s: longer than five 429s take
    with discord.rate_limited("edit_webhook_message", retry_after=0.1):
        await discord.user_message(general, ana, "Mira, tell me a story")
        await discord.wait_for_request(
            lambda call: call.route == "edit_webhook_message" and call.body["content"] == STORY, timeout=10
        )
        assert len(discord.calls("edit_webhook_message")) > 5, "discord.py gave up on a preview"
    await eventually(lambda: [m["content"] for m in discord.webhook_messages(general)] == [STORY])
    await stored_eventually(db, "assistant", [STORY])


async def test_a_reply_a_moderator_deletes_while_another_answer_streams_into_it_stays_deleted(
    discord_world: tuple[FakeDiscord, FakeUser, FakeGuild],
    bot: HearthBot,
    llm: FakeLLM,
    db: Database,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """🔄 streams another answer into the reply's message, and a moderator deletes that message meanwhile: the
    person who pressed is told privately why the answer stopped, nothing is logged as a fault, and the reply is
    not shown again."""
    discord, ana, guild = discord_world
    general = guild.channel("general")
    llm.script(Reply("A lighthouse keeper story."), Reply(STORY, chunk_size=8, delay_between_chunks=0.04))
    reply = await answered_with_its_button(discord, db, general, ana, "tell me a story")

    payload = discord.component_payload(ana, reply, "hearth:reply:regen")
    await discord.dispatch("INTERACTION_CREATE", payload)
    await discord.wait_for_request(
        lambda call: call.route == "edit_message" and call.status == 200 and "upon" in str(call.body)
    )
    await discord.user_deletes(reply)
    await eventually(lambda: discord.followups_of(payload))
    [said] = discord.followups_of(payload)
    assert said["content"] == REFUSALS["removed"] and said["flags"] & 64, "said privately"
    assert int(reply["id"]) not in discord.messages, "not shown again"
    assert len(discord.calls("create_message")) == 1, "nor posted anew"
    faults = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR and r.name.startswith("bot.")]
    assert not faults, "a deletion is no fault"

"""End to end: 🔄 and ◀ ▶ under a reply, pressed through the real discord.py client against the fake Discord."""

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import discord as discordpy
import pytest
from sqlalchemy import select

from bot.db.engine import Database
from bot.db.models import Memory, Message, ReplyAlternative
from bot.discord.client import HearthBot
from bot.discord.reply_buttons import REFUSALS
from bot.discord.tree import SOMETHING_WENT_WRONG
from bot.domain.chunking import split_message
from bot.services.conversation.delivery import CUT_SHORT
from bot.services.incoming import Place
from tests.fakes.discord import DEFAULT_EVERYONE_PERMISSIONS, FakeAttachment, FakeDiscord, FakeGuild, FakeUser
from tests.fakes.discord.interactions import CALLBACK_WINDOW_SECONDS
from tests.fakes.llm_server import BrokenStream, Fail, FakeLLM, Reply, Stall
from tests.support.bot import running_bot
from tests.support.chat import RecordingReply, conversation_service, eventually, message
from tests.support.commands import run
from tests.support.database_faults import failing_statements, held_statements

JSON = dict[str, Any]
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
AWAY_NOTE = "You were away for a while"  # what the prompt says when answering what came while Hearth was stopped


@pytest.fixture
async def world() -> AsyncIterator[tuple[FakeDiscord, FakeUser, FakeUser, FakeGuild]]:
    async with FakeDiscord() as fake:
        ana, bo = fake.add_user("ana", global_name="Ana"), fake.add_user("bo", global_name="Bo")
        guild = fake.add_guild("Cosy Corner", channels=["general"], members=[ana, bo])
        yield fake, ana, bo, guild


@pytest.fixture
async def bot(
    world: tuple[FakeDiscord, FakeUser, FakeUser, FakeGuild], db: Database, llm: FakeLLM
) -> AsyncIterator[HearthBot]:
    async with running_bot(world[0], db, llm) as running:
        yield running


def buttons(message: JSON) -> list[str]:
    """The message's buttons as people see them: emoji, or label for the position."""
    return [
        (button.get("emoji") or {}).get("name") or button.get("label") or ""
        for row in message.get("components") or []
        for button in row.get("components") or []
    ]


async def stored_as_shown_in(db: Database, message: JSON) -> None:
    """Replies are stored just after they are delivered: wait (briefly) until this one is."""
    async with asyncio.timeout(5):
        while True:
            async with db.session() as session:
                found = await session.scalar(
                    select(Message.id).where(
                        Message.discord_message_id == int(message["id"]), Message.role == "assistant"
                    )
                )
            if found is not None:
                return
            await asyncio.sleep(0.02)


async def stored_replies(db: Database) -> list[str]:
    """Hearth's replies as stored, each with the answer it shows (what the conversation goes on from)."""
    async with db.session() as session:
        return list((await session.scalars(select(Message.content).where(Message.role == "assistant"))).all())


async def answered_with_its_button(
    discord: FakeDiscord, db: Database, channel_id: int, user: FakeUser, text: str
) -> JSON:
    """``user`` asks Hearth ``text`` in ``channel_id``: its reply once it carries 🔄 (posted with it, or a preview
    edited to carry it) and is stored, so that the button can be pressed."""
    await discord.user_message(channel_id, user, f"{discord.bot.mention} {text}")
    with_button = await discord.wait_for_request(
        lambda call: call.route in ("create_message", "edit_message") and buttons(call.body or {}) == ["🔄"]
    )
    reply = with_button.response
    assert isinstance(reply, dict)
    await stored_as_shown_in(db, reply)
    return reply


async def press(discord: FakeDiscord, user: FakeUser, message: JSON, action: str, **wait: Any) -> tuple[JSON, JSON]:
    payload = discord.component_payload(user, message, f"hearth:reply:{action}")
    await discord.dispatch("INTERACTION_CREATE", payload)
    return payload, await discord.wait_for_response(payload, **wait)


async def test_regenerate_keeps_both_answers_and_the_conversation_goes_on_from_the_one_shown(
    world: tuple[FakeDiscord, FakeUser, FakeUser, FakeGuild], bot: HearthBot, llm: FakeLLM, db: Database
) -> None:
    discord, ana, bo, guild = world
    general = guild.channel("general")
    llm.script(
        Reply("A lighthouse keeper story."), Reply("A story about a cat called Miso."), Reply("Glad you liked it!")
    )
    reply = await answered_with_its_button(discord, db, general, ana, "tell me a story")
    asked = len(llm.chat_requests)

    # Someone else's press: a private refusal, and no model call.
    payload, refusal = await press(discord, bo, reply, "regen")
    assert discord.is_ephemeral(payload) and refusal["content"] == REFUSALS["not_yours"]
    assert len(llm.chat_requests) == asked

    # Ana's press: one new model call with the same turn, shown in place with ◀ 2/2 ▶ 🔄.
    _, shown = await press(discord, ana, reply, "regen", predicate=lambda m: "Miso" in m["content"])
    assert len(llm.chat_requests) == asked + 1
    again = llm.chat_requests[-1].body["messages"]
    assert again[-1]["content"] == "Ana: @Hearth tell me a story"
    assert all("lighthouse" not in m["content"] for m in again), "the answer being replaced is not in its context"
    assert shown["id"] == reply["id"] and buttons(shown) == ["◀", "2/2", "▶", "🔄"]

    # ◀ goes back to the first answer, and the conversation goes on from it.
    _, back = await press(discord, ana, shown, "prev", predicate=lambda m: "lighthouse" in m["content"])
    assert back["content"] == "A lighthouse keeper story." and buttons(back) == ["◀", "1/2", "▶", "🔄"]
    await discord.user_message(general, ana, "that was lovely", referenced_message=back)
    answered = await discord.wait_for_request(lambda call: call.route == "create_message" and "Glad" in str(call.body))
    assert isinstance(answered.response, dict)
    await stored_as_shown_in(db, answered.response)
    history = [m["content"] for m in llm.chat_requests[-1].body["messages"][1:]]
    assert "A lighthouse keeper story." in history and not any("Miso" in text for text in history)

    async with db.session() as session:
        kept = (await session.scalars(select(ReplyAlternative.content).order_by(ReplyAlternative.position))).all()
        remembered = (await session.scalars(select(Memory.content).where(Memory.kind == "message"))).all()
    assert list(kept) == ["A lighthouse keeper story.", "A story about a cat called Miso."]
    assert "A lighthouse keeper story." in remembered and not any("Miso" in text for text in remembered)

    # The conversation moved on: the old reply's buttons say so.
    payload, late = await press(discord, ana, back, "next")
    assert discord.is_ephemeral(payload) and late["content"] == REFUSALS["moved_on"]


async def test_another_answer_shown_by_editing_the_reply_leaves_no_typing_under_it(
    world: tuple[FakeDiscord, FakeUser, FakeUser, FakeGuild], bot: HearthBot, llm: FakeLLM, db: Database
) -> None:
    """Ana's reply is posted after "Hearth is typing…", which the post clears. Her 🔄 streams another answer into
    that message for a couple of seconds: Discord clears "typing…" when the bot posts, not when it edits, so no
    typing signal goes out for it (one would stay up under the answer for up to ten seconds after it is shown)."""
    discord, ana, _, guild = world
    general = guild.channel("general")
    story = " ".join(f"Line {i} of a story about a cat called Miso." for i in range(8))
    llm.script(
        Reply("A lighthouse keeper story.", chunk_size=10, delay_between_chunks=0.1),
        Reply(story, chunk_size=40, delay_between_chunks=0.3),
    )
    reply = await answered_with_its_button(discord, db, general, ana, "tell me a story")
    assert any(call.channel_id == general for call in discord.typing_calls), "typing shown for the reply posted"
    since = len(discord.requests)

    _, shown = await press(discord, ana, reply, "regen", predicate=lambda m: m["content"] == story, timeout=15)
    assert shown["id"] == reply["id"] and buttons(shown) == ["◀", "2/2", "▶", "🔄"]
    streamed = [call for call in discord.requests[since:] if call.route == "edit_message" and call.body]
    assert len(streamed) >= 2, "the answer streamed into the reply before it was shown whole"
    assert [call.path for call in discord.requests[since:] if call.route == "typing"] == [], "no typing for it"


async def test_a_regenerated_reply_sees_the_photo_it_answers(
    world: tuple[FakeDiscord, FakeUser, FakeUser, FakeGuild], bot: HearthBot, llm: FakeLLM, db: Database
) -> None:
    discord, ana, _, guild = world
    general = guild.channel("general")
    llm.script(Reply("A tabby, I think."), Reply("A ginger tabby, curled up."))
    sent = await discord.user_message(
        general, ana, f"{discord.bot.mention} what cat is this?", attachments=[("cat.png", PNG)]
    )
    reply = await discord.wait_for_message(general)
    await stored_as_shown_in(db, reply)

    await press(discord, ana, reply, "regen", predicate=lambda m: buttons(m) == ["◀", "2/2", "▶", "🔄"])
    first, again = llm.reply_requests[-2:]
    assert first.images == again.images == [sent["attachments"][0]["url"]]
    async with db.session() as session:
        kept = (await session.scalars(select(ReplyAlternative.content).order_by(ReplyAlternative.position))).all()
    assert list(kept) == ["A tabby, I think.", "A ginger tabby, curled up."]


async def test_the_buttons_of_a_reply_sent_before_a_restart_still_work(
    world: tuple[FakeDiscord, FakeUser, FakeUser, FakeGuild], db: Database, llm: FakeLLM
) -> None:
    discord, ana, _, guild = world
    general = guild.channel("general")
    async with running_bot(discord, db, llm):
        await discord.user_message(general, ana, f"{discord.bot.mention} hello")
        reply = await discord.wait_for_message(general)
        await stored_as_shown_in(db, reply)
    asked = [request.body["messages"][-1]["content"] for request in llm.chat_requests]
    async with running_bot(discord, db, llm):  # a new process: no view of the old one is held anywhere
        _, shown = await press(discord, ana, reply, "regen", predicate=lambda m: "2/2" in str(m["components"]))
    assert buttons(shown) == ["◀", "2/2", "▶", "🔄"]
    again = [request.body["messages"][-1]["content"] for request in llm.chat_requests][len(asked) :]
    assert again == ["Ana: @Hearth hello"], "one model call, for the same turn"


@pytest.mark.parametrize("held", ["resting", "over_quota"])
async def test_a_press_while_hearth_may_not_answer_asks_no_model_and_says_why(
    world: tuple[FakeDiscord, FakeUser, FakeUser, FakeGuild], bot: HearthBot, llm: FakeLLM, db: Database, held: str
) -> None:
    """Resting (the owner's maintenance switch) or past the server's daily token quota: the person is told which,
    privately, and the model is not asked."""
    discord, ana, _, guild = world
    general = guild.channel("general")
    await discord.user_message(general, ana, f"{discord.bot.mention} hello")
    reply = await discord.wait_for_message(general)
    await stored_as_shown_in(db, reply)
    if held == "resting":
        bot.services.conversation.rest(True)
    else:  # the first reply's tokens spent a quota of one
        place = Place(channel_id=general, guild_id=guild.id, guild_name=guild.name)
        await bot.services.guild_config.set_daily_token_quota(place, 1)
    asked = len(llm.chat_requests)
    payload = discord.component_payload(ana, reply, "hearth:reply:regen")
    await discord.dispatch("INTERACTION_CREATE", payload)
    await eventually(lambda: discord.followups_of(payload))
    [refusal] = discord.followups_of(payload)
    assert refusal["content"] == REFUSALS[held] and refusal["flags"] & 64, "said privately"
    assert ("maintenance" in refusal["content"]) == (held == "resting")
    assert ("daily limit" in refusal["content"]) == (held == "over_quota")
    assert len(llm.chat_requests) == asked


async def test_a_reply_in_a_thread_is_regenerated_by_its_channels_persona(
    world: tuple[FakeDiscord, FakeUser, FakeUser, FakeGuild], bot: HearthBot, llm: FakeLLM, db: Database
) -> None:
    """A thread plays its channel's persona: 🔄 asks the same persona again, not the server's."""
    discord, ana, _, guild = world
    general = guild.channel("general")
    card = {"spec": "chara_card_v2", "spec_version": "2.0", "data": {"name": "Mira", "description": "A fox spirit."}}
    mira = FakeAttachment("mira.json", json.dumps(card).encode())
    await run(discord, discord.owner, general, "persona import", {"card": mira})
    await run(discord, discord.owner, general, "persona set", {"name": "Hearth"})  # the server: the default again
    await run(discord, discord.owner, general, "persona channel", {"name": "Mira"})
    stories = discord.add_thread(guild, "general", "stories")
    await discord.dispatch("THREAD_CREATE", discord.channels[stories].payload() | {"newly_created": True})
    llm.script(Reply("Once, a fox found a lantern."), Reply("Once, a fox lost its tail."))
    await discord.user_message(stories, ana, f"{discord.bot.mention} a story, please?")
    reply = await discord.wait_for_message(stories)
    await stored_as_shown_in(db, reply)

    await press(discord, ana, reply, "regen", predicate=lambda m: "tail" in m["content"])
    first, again = (request.body["messages"][0]["content"] for request in llm.chat_requests[-2:])
    assert "A fox spirit." in first
    assert "A fox spirit." in again, "the same persona answers again"


async def test_a_regenerated_answer_that_breaks_off_leaves_the_answer_before_it_in_place(
    world: tuple[FakeDiscord, FakeUser, FakeUser, FakeGuild], db: Database, llm: FakeLLM
) -> None:
    """The new answer streams into the message; when the model then fails, the start it showed is taken back:
    the message shows again the answer the conversation goes on from, with its button."""
    discord, ana, _, guild = world
    general = guild.channel("general")
    llm.script(Reply("A lighthouse keeper story."), BrokenStream("A story about a cat called Miso.", after_chars=20))
    llm.default = Fail(503)
    async with running_bot(discord, db, llm, budget_s=1.0):
        await discord.user_message(general, ana, f"{discord.bot.mention} tell me a story")
        reply = await discord.wait_for_message(general)
        await stored_as_shown_in(db, reply)

        payload = discord.component_payload(ana, reply, "hearth:reply:regen")
        await discord.dispatch("INTERACTION_CREATE", payload)
        await discord.wait_for_request(
            lambda call: call.route == "edit_message" and "Miso" not in str(call.body) and "A story" in str(call.body)
        )  # the broken answer's start was shown
        await eventually(lambda: discord.followups_of(payload))
        assert discord.messages[int(reply["id"])]["content"] == "A lighthouse keeper story."
        assert buttons(discord.messages[int(reply["id"])]) == ["🔄"]
        [said] = discord.followups_of(payload)
        assert said["content"] == REFUSALS["failed"] and said["flags"] & 64, "said privately"
        kept = await stored_replies(db)
        assert list(kept) == ["A lighthouse keeper story."]

        # Once the model is back, 🔄 works as before.
        llm.default = Reply("A story about a cat called Miso.")
        _, shown = await press(discord, ana, reply, "regen", predicate=lambda m: "Miso" in m["content"])
        assert shown["content"] == "A story about a cat called Miso." and buttons(shown) == ["◀", "2/2", "▶", "🔄"]


async def test_another_answer_replaces_the_whole_of_a_reply_that_took_several_messages(
    world: tuple[FakeDiscord, FakeUser, FakeUser, FakeGuild], bot: HearthBot, llm: FakeLLM, db: Database
) -> None:
    """An answer longer than a Discord message goes out in several: 🔄 and ◀ ▶ show the other answer in their
    place, whole (its messages edited in order, more posted or those left over deleted), its buttons on its last
    message alone, never the start of one answer with the end of another."""
    discord, ana, _, guild = world
    general = guild.channel("general")
    first = " ".join(f"Part {i} of the lighthouse keeper's story." for i in range(80))
    third = " ".join(f"Part {i} of the story of Miso the cat, told at length." for i in range(110))
    assert 2000 < len(first) <= 4000 < len(third) <= 6000
    llm.script(Reply(first, chunk_size=500), Reply("A short story."), Reply(third, chunk_size=500))

    def shown() -> list[str]:
        return [message["content"] for message in discord.sent_messages(general)]

    last = await answered_with_its_button(discord, db, general, ana, "tell me a story")
    assert len(shown()) == 2 and "".join(shown()) == first

    # 🔄: a short answer, shown whole in one message with the buttons; the other message goes.
    await discord.dispatch("INTERACTION_CREATE", discord.component_payload(ana, last, "hearth:reply:regen"))
    await eventually(lambda: shown() == ["A short story."])
    [short] = discord.sent_messages(general)
    await eventually(lambda: buttons(discord.messages[int(short["id"])]) == ["◀", "2/2", "▶", "🔄"])

    # ◀: the first answer whole again, in two messages, the buttons on the second.
    await discord.dispatch("INTERACTION_CREATE", discord.component_payload(ana, short, "hearth:reply:prev"))
    await eventually(lambda: "".join(shown()) == first)
    opening, closing = discord.sent_messages(general)
    assert buttons(opening) == [] and buttons(closing) == ["◀", "1/2", "▶", "🔄"]
    await stored_as_shown_in(db, closing)  # known by its new message just after it is posted

    # 🔄 on its new last message: a longer answer, in more messages.
    await press(discord, ana, closing, "regen", predicate=lambda m: "Miso" in m["content"])
    await eventually(lambda: "".join(shown()) == third)
    *before, end = discord.sent_messages(general)
    assert len(before) >= 2 and [buttons(m) for m in before] == [[]] * len(before)
    assert buttons(end) == ["◀", "3/3", "▶", "🔄"]
    kept = await stored_replies(db)
    assert list(kept) == [third], "the conversation goes on from the answer shown"


async def test_an_outage_as_the_answer_before_is_put_back_still_says_why_it_stays(
    world: tuple[FakeDiscord, FakeUser, FakeUser, FakeGuild],
    db: Database,
    llm: FakeLLM,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The new answer streams into the reply's message and breaks off; as Hearth puts the answer before back,
    Discord fails the edit (an outage discord.py does not retry). Ana is still told privately that the answer
    before stays (the one the conversation goes on from), not that something went wrong on Hearth's side; the
    outage is logged as such, with no traceback."""
    discord, ana, _, guild = world
    general = guild.channel("general")
    retried, go_on = asyncio.Event(), asyncio.Event()

    async def model(body: JSON) -> Fail:
        retried.set()
        await go_on.wait()
        return Fail(503)

    llm.script(Reply("A lighthouse keeper story."), BrokenStream("A story about a cat called Miso.", after_chars=20))
    llm.default = model
    async with running_bot(discord, db, llm, budget_s=1.0):
        reply = await answered_with_its_button(discord, db, general, ana, "tell me a story")

        payload = discord.component_payload(ana, reply, "hearth:reply:regen")
        await discord.dispatch("INTERACTION_CREATE", payload)
        await discord.wait_for_request(lambda call: call.route == "edit_message" and "A story" in str(call.body))
        await retried.wait()
        discord.fail("edit_message", 503, times=10, message="Service Unavailable")
        go_on.set()
        await eventually(lambda: discord.followups_of(payload))
    [said] = discord.followups_of(payload)
    assert said["content"] == REFUSALS["failed"] and said["flags"] & 64, "said privately"
    assert any(r.status == 503 for r in discord.calls("edit_message")), "putting the answer back met the outage"
    assert not [r.getMessage() for r in caplog.records if r.exc_info], "no traceback"
    assert "could not show reply" in caplog.text and f"on reply {reply['id']} failed" not in caplog.text
    kept = await stored_replies(db)
    assert list(kept) == ["A lighthouse keeper story."]


async def test_another_answer_to_messages_answered_together_sees_each_of_them_as_written(
    world: tuple[FakeDiscord, FakeUser, FakeUser, FakeGuild], db: Database, llm: FakeLLM
) -> None:
    """Ana wrote three messages while Hearth was stopped: after the start, one reply answers all three. 🔄 on it
    asks the model again with the same three messages, each as she wrote it (the first with its photo), not the
    last one three times."""
    discord, ana, _, guild = world
    general = guild.channel("general")
    said = ["I got three plants today", "one is a fern, the other a cactus", "and what is the third one?"]
    posted = [
        discord.message_payload(general, ana, f"{discord.bot.mention} {text}", attachments=attached)
        for text, attached in zip(said, [[("plants.png", PNG)], [], []], strict=True)
    ]
    photo = posted[0]["attachments"][0]["url"]
    before = conversation_service(db, llm)
    for text, payload in zip(said, posted, strict=True):
        incoming = message(f"@Hearth {text}", user=ana.id, channel=general, guild=guild.id, mention=True)
        images = (photo,) if payload is posted[0] else ()
        kept = await before.keep(replace(incoming, message_id=int(payload["id"]), image_urls=images))
        assert kept.status == "kept"
    llm.script(Reply("A fern, a cactus and a ficus."), Reply("Three lovely plants."))
    async with running_bot(discord, db, llm, learning_enabled=False) as bot:
        await bot.caught_up.wait()
        [reply] = discord.sent_messages(general)
        await stored_as_shown_in(db, reply)
        await press(discord, ana, reply, "regen", predicate=lambda m: "Three lovely" in m["content"])
    first, again = llm.reply_requests
    asked = json.dumps(first.body["messages"][-1])
    assert all(asked.count(text) == 1 for text in said), "the first answer saw each message once"
    assert again.body["messages"][1:] == first.body["messages"][1:], "the same turn, as the first answer saw it"
    assert again.images == first.images == [photo]


async def stored_user_message(db: Database, sent: JSON) -> None:
    """Wait (briefly) until the person's message ``sent`` is stored: Hearth means to answer it."""
    async with asyncio.timeout(5):
        while True:
            async with db.session() as session:
                found = await session.scalar(
                    select(Message.id).where(Message.discord_message_id == int(sent["id"]), Message.role == "user")
                )
            if found is not None:
                return
            await asyncio.sleep(0.02)


async def regenerated(discord: FakeDiscord, user: FakeUser, reply: JSON) -> JSON:
    """``user`` presses 🔄 on ``reply``: the message once it shows the new answer, or else the private refusal."""
    payload = discord.component_payload(user, reply, "hearth:reply:regen")
    await discord.dispatch("INTERACTION_CREATE", payload)
    await eventually(lambda: discord.followups_of(payload) or "2/2" in buttons(discord.messages[int(reply["id"])]))
    refusals = discord.followups_of(payload)
    return refusals[0] if refusals else discord.messages[int(reply["id"])]


@pytest.mark.parametrize("second", ["someone else", "the same person"])
async def test_a_reply_stored_after_a_message_that_came_while_it_streamed_is_regenerated_for_its_own_message(
    world: tuple[FakeDiscord, FakeUser, FakeUser, FakeGuild], llm: FakeLLM, db: Database, second: str
) -> None:
    """Ana asks; while Hearth is still writing to her, a second message comes (Bo's, or Ana's own), stored before
    her reply is. The second message's reply comes next: 🔄 on it asks the model again for that message, with the
    same context, as for any other reply (not "I don't have this reply any more")."""
    discord, ana, bo, guild = world
    general = guild.channel("general")
    writer = bo if second == "someone else" else ana
    thinking, go_on = asyncio.Event(), asyncio.Event()
    answers = iter(["A cat called Miso?", "Or a cat called Pepper."])

    async def model(body: JSON) -> Reply:
        if "lighthouse" in json.dumps(body["messages"][-1]):
            thinking.set()
            await go_on.wait()  # still writing Ana's answer
            return Reply("Lighthouses guide ships home.")
        return Reply(next(answers))

    llm.default = model
    async with running_bot(discord, db, llm, learning_enabled=False):  # every model call is a reply's
        await discord.user_message(general, ana, f"{discord.bot.mention} tell me about lighthouses")
        await thinking.wait()
        sent = await discord.user_message(general, writer, f"{discord.bot.mention} what should I call my cat?")
        await stored_user_message(db, sent)
        go_on.set()
        await discord.wait_for_request(lambda call: call.route == "create_message" and "Lighthouses" in str(call.body))
        reply = await discord.wait_for_request(lambda call: call.route == "create_message" and "Miso" in str(call.body))
        assert isinstance(reply.response, dict)
        await stored_as_shown_in(db, reply.response)

        shown = await regenerated(discord, writer, reply.response)
    assert shown["content"] == "Or a cat called Pepper." and buttons(shown) == ["◀", "2/2", "▶", "🔄"]
    first, again = llm.reply_requests[-2:]
    assert again.body["messages"][-1]["content"].endswith("what should I call my cat?")
    assert again.body["messages"][1:] == first.body["messages"][1:], "the same turn, as the first answer saw it"


async def test_another_answer_is_to_the_message_the_reply_answered_not_to_one_apologised_for(
    world: tuple[FakeDiscord, FakeUser, FakeUser, FakeGuild], bot: HearthBot, llm: FakeLLM, db: Database
) -> None:
    """The model refused Ana's first message, and Hearth apologised; her next message was answered. 🔄 on that
    answer asks the model again for her next message alone, as the first answer did, not for both as one turn."""
    discord, ana, _, guild = world
    general = guild.channel("general")
    llm.script(Fail(400, message="scripted refusal"), Reply("Lisbon, in spring."), Reply("Porto, in autumn."))
    await discord.user_message(general, ana, f"{discord.bot.mention} tell me a secret")
    await discord.wait_for_message(general)  # the apology
    reply = await answered_with_its_button(discord, db, general, ana, "where should I travel?")

    shown = await regenerated(discord, ana, reply)
    assert shown["content"] == "Porto, in autumn."
    first, again = llm.reply_requests[-2:]
    assert again.body["messages"][1:] == first.body["messages"][1:], "the same turn, as the first answer saw it"


@pytest.mark.parametrize(
    ("refusal", "said"),
    [("send_messages", "no_sending"), ("view_channel", "hidden"), ("dms closed", "dms_closed")],
    ids=["Send Messages taken away", "View Channel taken away", "DMs closed"],
)
async def test_an_answer_discord_will_not_show_leaves_the_one_shown_and_says_why(
    world: tuple[FakeDiscord, FakeUser, FakeUser, FakeGuild],
    bot: HearthBot,
    llm: FakeLLM,
    db: Database,
    caplog: pytest.LogCaptureFixture,
    refusal: str,
    said: str,
) -> None:
    """A moderator takes Send Messages away (Hearth may still edit its messages, not post more), or hides the
    channel from Hearth (View Channel: it may not even edit them), or Ana closes her DMs to it, a moment before she
    presses ◀ or 🔄 for an answer that needs more messages than the reply has: Discord refuses to show it. She is
    told privately why; the reply shows, whole and with its buttons, the answer it showed, and the conversation
    goes on from that one; an answer written meanwhile is kept among the others, where Discord let it be written."""
    discord, ana, _, guild = world
    channel = discord.dm_channel(ana) if refusal == "dms closed" else guild.channel("general")
    long = " ".join(f"Part {i} of the lighthouse keeper's story." for i in range(80))
    longer = " ".join(f"Part {i} of the story of Miso the cat, told at length." for i in range(60))
    assert 2000 < len(long) <= 4000 and 2000 < len(longer) <= 4000
    llm.script(Reply(long, chunk_size=500), Reply("A short story."), Reply(longer, chunk_size=500))

    await answered_with_its_button(discord, db, channel, ana, "tell me a story")
    [_, last] = discord.sent_messages(channel)
    await discord.dispatch("INTERACTION_CREATE", discord.component_payload(ana, last, "hearth:reply:regen"))
    await eventually(lambda: [m["content"] for m in discord.sent_messages(channel)] == ["A short story."])
    [short] = discord.sent_messages(channel)
    await eventually(lambda: buttons(discord.messages[int(short["id"])]) == ["◀", "2/2", "▶", "🔄"])
    await stored_as_shown_in(db, short)
    if refusal == "dms closed":
        discord.close_dms(ana)
    else:
        taken_away = discordpy.Permissions(DEFAULT_EVERYONE_PERMISSIONS)
        setattr(taken_away, refusal, False)
        discord.set_everyone_permissions(guild, taken_away.value)  # not told to Hearth yet

    async def pressed_and_told(action: str) -> None:
        payload = discord.component_payload(ana, short, f"hearth:reply:{action}")
        await discord.dispatch("INTERACTION_CREATE", payload)
        await eventually(lambda: discord.followups_of(payload))
        [told] = discord.followups_of(payload)
        assert told["content"] == REFUSALS[said] and told["flags"] & 64, "said privately"

    async def shown_and_kept() -> list[str]:
        [still] = discord.sent_messages(channel)
        assert still["id"] == short["id"] and still["content"] == "A short story."
        async with db.session() as session:
            kept = (await session.scalars(select(Message.content).where(Message.role == "assistant"))).all()
            answers = (
                await session.scalars(select(ReplyAlternative.content).order_by(ReplyAlternative.position))
            ).all()
        assert list(kept) == ["A short story."], "the conversation goes on from the answer shown"
        assert answers[:2] == [long, "A short story."]
        return buttons(still)

    await pressed_and_told("prev")
    assert await shown_and_kept() == ["◀", "2/2", "▶", "🔄"]

    await pressed_and_told("regen")
    written = refusal != "view_channel"  # in a hidden channel its first glimpse is refused, and it stops there
    assert await shown_and_kept() == ["◀", "2/3" if written else "2/2", "▶", "🔄"]
    hearths = [r for r in caplog.records if r.name.startswith("bot.")]
    assert not [r.getMessage() for r in hearths if r.levelno >= logging.ERROR or r.exc_info], "no fault of Hearth's"


async def test_a_press_answered_after_its_token_expired_is_told_by_dm_naming_the_reply(
    world: tuple[FakeDiscord, FakeUser, FakeUser, FakeGuild], db: Database, llm: FakeLLM
) -> None:
    """The model takes longer than Discord keeps a press's token (15 minutes), then fails: Ana is told by DM, and
    the DM says which of Hearth's replies it is about (a link to it), not of a command she never ran."""
    discord, ana, _, guild = world
    general = guild.channel("general")
    llm.script(Reply("A lighthouse keeper story."))
    llm.default = Fail(503)
    async with running_bot(discord, db, llm, budget_s=1.0):
        reply = await answered_with_its_button(discord, db, general, ana, "tell me a story")
        discord.token_lifetime = 0  # the model's answer comes after the token expired
        await discord.dispatch("INTERACTION_CREATE", discord.component_payload(ana, reply, "hearth:reply:regen"))
        told = await discord.wait_for_message(discord.dm_channel(ana))
    link = f"https://discord.com/channels/{guild.id}/{general}/{reply['id']}"
    assert told["content"] == f"The button you pressed on {link}: {REFUSALS['failed']}"
    assert told["allowed_mentions"]["parse"] == []


async def test_a_refusal_too_late_for_the_press_is_told_by_dm_once(
    world: tuple[FakeDiscord, FakeUser, FakeUser, FakeGuild], bot: HearthBot, llm: FakeLLM, db: Database
) -> None:
    """Bo presses 🔄 on Ana's reply, and Hearth answers the press after the 3 seconds Discord gives it (a busy
    moment): Discord no longer knows the press. Bo is told why by DM, once, the DM naming the reply."""
    discord, ana, bo, guild = world
    general = guild.channel("general")
    llm.script(Reply("A lighthouse keeper story."))
    reply = await answered_with_its_button(discord, db, general, ana, "tell me a story")

    discord.fail("interaction_callback", 404, code=10062, message="Unknown interaction")
    await discord.dispatch("INTERACTION_CREATE", discord.component_payload(bo, reply, "hearth:reply:regen"))
    told = await discord.wait_for_message(discord.dm_channel(bo))
    link = f"https://discord.com/channels/{guild.id}/{general}/{reply['id']}"
    assert told["content"] == f"The button you pressed on {link}: {REFUSALS['not_yours']}"
    assert told["allowed_mentions"]["parse"] == []
    assert discord.dm_messages(bo) == [told]


@pytest.mark.parametrize("meanwhile", ["answered while the answer was written", "being answered when it was ready"])
async def test_another_answer_ready_after_the_conversation_went_on_leaves_the_one_it_went_on_from(
    world: tuple[FakeDiscord, FakeUser, FakeUser, FakeGuild], llm: FakeLLM, db: Database, meanwhile: str
) -> None:
    """Ana presses 🔄; while Hearth writes her another answer, Bo asks something in the channel, and his reply is
    written from the answer shown (it is in his reply's history). Once that reply is out, Ana's answer is not
    shown in its place, nor stored as the one the conversation goes on from: her reply shows the answer Bo's was
    built on, whole and with its button, and she is told privately why."""
    discord, ana, bo, guild = world
    general = guild.channel("general")
    regen_asked, regen_go, bo_asked, bo_go = asyncio.Event(), asyncio.Event(), asyncio.Event(), asyncio.Event()
    stories = 0

    async def model(body: JSON) -> Reply:
        nonlocal stories
        if "weather" in json.dumps(body["messages"][-1]):
            bo_asked.set()
            if meanwhile == "being answered when it was ready":
                await bo_go.wait()
            return Reply("Sunny all day.")
        stories += 1
        if stories == 1:
            return Reply("A lighthouse keeper story.")
        regen_asked.set()
        if meanwhile == "answered while the answer was written":
            await regen_go.wait()
        return Reply("A story about a cat called Miso.")

    llm.default = model
    async with running_bot(discord, db, llm, learning_enabled=False, budget_s=30.0, model_timeout_s=30.0):
        reply = await answered_with_its_button(discord, db, general, ana, "tell me a story")
        if meanwhile == "being answered when it was ready":  # Bo's reply is being written when Ana presses
            await discord.user_message(general, bo, f"{discord.bot.mention} what's the weather like?")
            await bo_asked.wait()
        payload = discord.component_payload(ana, reply, "hearth:reply:regen")
        await discord.dispatch("INTERACTION_CREATE", payload)
        await regen_asked.wait()
        if meanwhile == "answered while the answer was written":
            await discord.user_message(general, bo, f"{discord.bot.mention} what's the weather like?")
        bo_go.set()
        answered = await discord.wait_for_request(
            lambda call: call.route == "create_message" and "Sunny" in str(call.body)
        )
        assert isinstance(answered.response, dict)
        await stored_as_shown_in(db, answered.response)
        regen_go.set()
        await eventually(lambda: discord.followups_of(payload) or "2/2" in buttons(discord.messages[int(reply["id"])]))

        [asked_by_bo] = [r for r in llm.reply_requests if "weather" in json.dumps(r.body["messages"][-1])]
        assert "A lighthouse keeper story." in json.dumps(asked_by_bo.body["messages"]), "Bo's reply went on from it"
        shown = discord.messages[int(reply["id"])]
        assert shown["content"] == "A lighthouse keeper story." and buttons(shown) == ["🔄"]
        [said] = discord.followups_of(payload)
        assert said["content"] == REFUSALS["overtaken"] and said["flags"] & 64, "said privately"
        kept = await stored_replies(db)
        assert sorted(kept) == ["A lighthouse keeper story.", "Sunny all day."]


async def with_a_second_answer(
    discord: FakeDiscord, db: Database, llm: FakeLLM, channel_id: int, user: FakeUser
) -> tuple[JSON, JSON]:
    """``user`` asks for a story in ``channel_id`` and presses 🔄 on it: the reply, and the message showing its second
    answer ("… a cat called Miso."), once it carries ◀ 2/2 ▶ 🔄."""
    llm.script(Reply("A lighthouse keeper story."), Reply("A story about a cat called Miso."))
    reply = await answered_with_its_button(discord, db, channel_id, user, "tell me a story")
    _, shown = await press(discord, user, reply, "regen", predicate=lambda m: "Miso" in m["content"])
    await eventually(lambda: buttons(discord.messages[int(reply["id"])]) == ["◀", "2/2", "▶", "🔄"])
    return reply, shown


async def test_a_press_a_database_fault_stops_is_apologised_for_privately_and_logged_once(
    world: tuple[FakeDiscord, FakeUser, FakeUser, FakeGuild],
    bot: HearthBot,
    llm: FakeLLM,
    db: Database,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The database fails as Ana presses ◀: she is told privately that something went wrong on Hearth's side (not
    Discord's "This interaction failed"), the fault is logged once, and the reply shows what it showed."""
    discord, ana, _, guild = world
    general = guild.channel("general")
    reply, shown = await with_a_second_answer(discord, db, llm, general, ana)

    hearths = bot.services.conversation.branches.database  # the bot's own connections to the test database
    with failing_statements(hearths, "UPDATE", "reply_alternatives") as failed:
        payload, told = await press(discord, ana, shown, "prev")
    assert failed, "the press met the fault"
    assert discord.is_ephemeral(payload) and told["content"] == SOMETHING_WENT_WRONG
    still = discord.messages[int(reply["id"])]
    assert still["content"] == "A story about a cat called Miso." and buttons(still) == ["◀", "2/2", "▶", "🔄"]
    logged = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(logged) == 1 and logged[0].name.startswith("bot.") and logged[0].exc_info, "logged once, with why"


async def pressed_while_the_database_waits(discord: FakeDiscord, bot: HearthBot, payload: dict[str, Any]) -> None:
    """Deliver the press while the bot's reads of messages wait, until Discord has its answer to the press: it must
    have waited on the database, and Discord must have taken the answer (within its window)."""
    hearths = bot.services.conversation.branches.database  # the bot's own connections to the test database
    async with held_statements(hearths, "SELECT", "messages") as held:
        await discord.dispatch("INTERACTION_CREATE", payload)
        answered = await discord.wait_for_request(
            lambda call: call.route == "interaction_callback" and call.params["interaction_id"] == payload["id"]
        )
        assert held, "the press waited on the database"
        assert answered.status < 300, f"Discord took the answer to the press: {answered.response}"


@pytest.mark.parametrize(
    ("action", "chosen", "position"),
    [("regen", "A tale of a fox.", "3/3"), ("prev", "A lighthouse keeper story.", "1/2")],
)
async def test_a_press_the_database_is_slow_to_check_is_acknowledged_in_time_then_shown(
    world: tuple[FakeDiscord, FakeUser, FakeUser, FakeGuild],
    bot: HearthBot,
    llm: FakeLLM,
    db: Database,
    action: str,
    chosen: str,
    position: str,
) -> None:
    """Ana presses 🔄 or ◀ while the database is slow to answer (a long lock, a restart it waits out), slower than the
    3 seconds Discord waits for a press to be answered: the press is acknowledged while the database still has not
    answered (no "This interaction failed"), then the answer she chose is shown once it does, and nobody is told
    that anything went wrong."""
    discord, ana, _, guild = world
    general = guild.channel("general")
    reply, shown = await with_a_second_answer(discord, db, llm, general, ana)
    llm.script(Reply("A tale of a fox."))
    discord.callback_window = CALLBACK_WINDOW_SECONDS

    payload = discord.component_payload(ana, shown, f"hearth:reply:{action}")
    await pressed_while_the_database_waits(discord, bot, payload)
    await eventually(lambda: discord.messages[int(reply["id"])]["content"] == chosen)
    assert buttons(discord.messages[int(reply["id"])]) == ["◀", position, "▶", "🔄"]
    assert discord.followups_of(payload) == [] and discord.dm_messages(ana) == [], "nothing went wrong"


async def test_a_press_delivered_late_while_the_database_is_slow_is_acknowledged_within_discords_window(
    world: tuple[FakeDiscord, FakeUser, FakeUser, FakeGuild], bot: HearthBot, llm: FakeLLM, db: Database
) -> None:
    """Ana presses ◀, and the press reaches Hearth 1.5 seconds after she made it (a reconnect, a busy moment) while
    the database is slow to answer: the 3 seconds Discord waits count from her press, so it is acknowledged within
    them (no "This interaction failed"), and the answer she chose is shown once the database answers."""
    discord, ana, _, guild = world
    general = guild.channel("general")
    reply, shown = await with_a_second_answer(discord, db, llm, general, ana)
    discord.callback_window = CALLBACK_WINDOW_SECONDS

    payload = discord.component_payload(ana, shown, "hearth:reply:prev")  # its id says when she pressed
    await asyncio.sleep(1.5)  # on its way to Hearth meanwhile
    await pressed_while_the_database_waits(discord, bot, payload)
    await eventually(lambda: discord.messages[int(reply["id"])]["content"] == "A lighthouse keeper story.")
    assert buttons(discord.messages[int(reply["id"])]) == ["◀", "1/2", "▶", "🔄"]
    assert discord.followups_of(payload) == [] and discord.dm_messages(ana) == [], "nothing went wrong"


async def test_a_reply_deleted_as_its_other_answer_is_chosen_stays_deleted(
    world: tuple[FakeDiscord, FakeUser, FakeUser, FakeGuild],
    bot: HearthBot,
    llm: FakeLLM,
    db: Database,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A moderator deletes Ana's reply just as she presses ◀ on it (Discord's news of the deletion not yet come):
    she is told privately that it was deleted meanwhile, and nothing is logged as a fault."""
    discord, ana, _, guild = world
    general = guild.channel("general")
    reply, shown = await with_a_second_answer(discord, db, llm, general, ana)

    await discord.user_deletes(shown, announced=False)
    payload, told = await press(discord, ana, shown, "prev")
    assert discord.is_ephemeral(payload) and told["content"] == REFUSALS["removed"]
    assert int(reply["id"]) not in discord.messages and len(discord.calls("create_message")) == 1, "not shown again"
    faults = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert not faults, "a deletion is no fault"


async def test_a_press_on_a_deleted_reply_discord_will_not_answer_any_more_is_told_by_dm_not_a_traceback(
    world: tuple[FakeDiscord, FakeUser, FakeUser, FakeGuild],
    bot: HearthBot,
    llm: FakeLLM,
    db: Database,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A moderator deletes Ana's reply just as she presses ◀ on it, and by the time Hearth would tell her so,
    Discord no longer takes an answer to the press (Unknown interaction: its seconds to answer ran out): Hearth
    tells her by DM, once, with no traceback."""
    discord, ana, _, guild = world
    general = guild.channel("general")
    _, shown = await with_a_second_answer(discord, db, llm, general, ana)

    await discord.user_deletes(shown, announced=False)
    # The press's own answer (the reply edited) is refused, the deletion found; the one telling Ana, too late.
    discord.fail("interaction_callback", 404, after=1, code=10062, message="Unknown interaction")
    await discord.dispatch("INTERACTION_CREATE", discord.component_payload(ana, shown, "hearth:reply:prev"))
    told = await discord.wait_for_message(discord.dm_channel(ana))
    assert told["content"].endswith(REFUSALS["removed"]) and discord.dm_messages(ana) == [told]
    faults = [r.getMessage() for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert not faults, "no traceback"


async def test_an_answer_chosen_after_discord_forgot_the_press_is_still_shown(
    world: tuple[FakeDiscord, FakeUser, FakeUser, FakeGuild], bot: HearthBot, llm: FakeLLM, db: Database
) -> None:
    """Ana presses ◀, and Hearth answers the press after the 3 seconds Discord gives it (a busy moment): Discord no
    longer takes the press's answer. The reply shows the answer she chose all the same (the one stored, that the
    conversation goes on from), with its buttons."""
    discord, ana, _, guild = world
    general = guild.channel("general")
    reply, shown = await with_a_second_answer(discord, db, llm, general, ana)

    discord.fail("interaction_callback", 404, code=10062, message="Unknown interaction")
    await discord.dispatch("INTERACTION_CREATE", discord.component_payload(ana, shown, "hearth:reply:prev"))
    await eventually(lambda: discord.messages[int(reply["id"])]["content"] == "A lighthouse keeper story.")
    assert buttons(discord.messages[int(reply["id"])]) == ["◀", "1/2", "▶", "🔄"]
    kept = await stored_replies(db)
    assert list(kept) == ["A lighthouse keeper story."]
    assert discord.dm_messages(ana) == [], "nothing went wrong that she needs telling"


async def test_another_answer_the_database_cannot_keep_leaves_the_answer_before_it_in_place(
    world: tuple[FakeDiscord, FakeUser, FakeUser, FakeGuild], bot: HearthBot, llm: FakeLLM, db: Database
) -> None:
    """The new answer streams into the reply's message, then the database fails as it is kept: the message shows
    again the answer the conversation goes on from (the one stored), with its button, and Ana is told privately
    that the answer before stays."""
    discord, ana, _, guild = world
    general = guild.channel("general")
    streamed = Reply("A story about a cat called Miso.", chunk_size=8, delay_between_chunks=0.04)
    llm.script(Reply("A lighthouse keeper story."), streamed)
    reply = await answered_with_its_button(discord, db, general, ana, "tell me a story")

    hearths = bot.services.conversation.branches.database  # the bot's own connections to the test database
    with failing_statements(hearths, "INSERT", "reply_alternatives") as failed:
        payload = discord.component_payload(ana, reply, "hearth:reply:regen")
        await discord.dispatch("INTERACTION_CREATE", payload)
        await discord.wait_for_request(lambda call: call.route == "edit_message" and "A story" in str(call.body))
        await eventually(lambda: discord.followups_of(payload))
    assert failed, "keeping the answer met the fault"
    [said] = discord.followups_of(payload)
    assert said["content"] == REFUSALS["failed"] and said["flags"] & 64, "said privately"
    shown = discord.messages[int(reply["id"])]
    assert shown["content"] == "A lighthouse keeper story." and buttons(shown) == ["🔄"]
    kept = await stored_replies(db)
    assert list(kept) == ["A lighthouse keeper story."]


async def test_choosing_another_answer_while_a_reply_going_on_from_it_is_written_leaves_it_shown(
    world: tuple[FakeDiscord, FakeUser, FakeUser, FakeGuild], llm: FakeLLM, db: Database
) -> None:
    """Ana's reply has two answers; Hearth is writing Bo a reply in the channel, from the answer shown, when she
    presses ◀. That answer stays shown and stored (Bo's reply goes on from it), and she is told privately why."""
    discord, ana, bo, guild = world
    general = guild.channel("general")
    bo_asked, bo_go = asyncio.Event(), asyncio.Event()
    stories = iter(["A lighthouse keeper story.", "A story about a cat called Miso."])

    async def model(body: JSON) -> Reply:
        if "weather" in json.dumps(body["messages"][-1]):
            bo_asked.set()
            await bo_go.wait()
            return Reply("Sunny all day.")
        return Reply(next(stories))

    llm.default = model
    async with running_bot(discord, db, llm, learning_enabled=False, budget_s=30.0, model_timeout_s=30.0):
        reply = await answered_with_its_button(discord, db, general, ana, "tell me a story")
        _, shown = await press(discord, ana, reply, "regen", predicate=lambda m: "Miso" in m["content"])
        await eventually(lambda: buttons(discord.messages[int(reply["id"])]) == ["◀", "2/2", "▶", "🔄"])
        await discord.user_message(general, bo, f"{discord.bot.mention} what's the weather like?")
        await bo_asked.wait()

        payload, told = await press(discord, ana, shown, "prev")
        bo_go.set()
        answered = await discord.wait_for_request(
            lambda call: call.route == "create_message" and "Sunny" in str(call.body)
        )
        assert isinstance(answered.response, dict)
        await stored_as_shown_in(db, answered.response)

    [asked_by_bo] = [r for r in llm.reply_requests if "weather" in json.dumps(r.body["messages"][-1])]
    assert "Miso" in json.dumps(asked_by_bo.body["messages"]), "Bo's reply went on from the answer shown"
    still = discord.messages[int(reply["id"])]
    assert still["content"] == "A story about a cat called Miso." and buttons(still) == ["◀", "2/2", "▶", "🔄"]
    assert discord.is_ephemeral(payload) and told["content"] == REFUSALS["writing"], "said privately"
    kept = await stored_replies(db)
    assert sorted(kept) == ["A story about a cat called Miso.", "Sunny all day."]


def held_after(llm: FakeLLM, *stories: str) -> tuple[asyncio.Event, asyncio.Event]:
    """The model answers ``stories`` in turn, then holds its next answer ("A story about a fox.") while another press
    comes: ``asked`` is set when it is asked for that one, which it gives once ``go_on`` is set."""
    asked, go_on = asyncio.Event(), asyncio.Event()
    told = iter(stories)

    async def model(body: JSON) -> Reply:
        story = next(told, None)
        if story is not None:
            return Reply(story)
        asked.set()
        await go_on.wait()
        return Reply("A story about a fox.")

    llm.default = model
    return asked, go_on


async def test_choosing_an_answer_while_another_is_written_for_the_reply_is_answered_at_once(
    world: tuple[FakeDiscord, FakeUser, FakeUser, FakeGuild], llm: FakeLLM, db: Database
) -> None:
    """Ana presses 🔄 again, and ◀ while that answer is still being written: Discord wants the press answered
    within seconds, and the model may take longer. She is told privately at once that another answer is on its
    way; it then comes, and is shown."""
    discord, ana, _, guild = world
    general = guild.channel("general")
    asked, go_on = held_after(llm, "A lighthouse keeper story.", "A story about a cat called Miso.")
    async with running_bot(discord, db, llm, learning_enabled=False, budget_s=30.0, model_timeout_s=30.0):
        reply = await answered_with_its_button(discord, db, general, ana, "tell me a story")
        _, shown = await press(discord, ana, reply, "regen", predicate=lambda m: "Miso" in m["content"])
        await eventually(lambda: buttons(discord.messages[int(reply["id"])]) == ["◀", "2/2", "▶", "🔄"])
        await discord.dispatch("INTERACTION_CREATE", discord.component_payload(ana, shown, "hearth:reply:regen"))
        await asked.wait()

        payload, told = await press(discord, ana, shown, "prev")
        assert discord.is_ephemeral(payload) and told["content"] == REFUSALS["answering"]
        go_on.set()
        await eventually(lambda: "fox" in discord.messages[int(reply["id"])]["content"])
        assert buttons(discord.messages[int(reply["id"])]) == ["◀", "3/3", "▶", "🔄"]


async def test_another_answer_asked_for_while_one_is_written_is_answered_at_once(
    world: tuple[FakeDiscord, FakeUser, FakeUser, FakeGuild], llm: FakeLLM, db: Database
) -> None:
    """Ana presses 🔄, then 🔄 again while that answer is still being written: she is told privately at once that
    another answer is on its way, and only that one is written and shown (the model is not asked a second time)."""
    discord, ana, _, guild = world
    general = guild.channel("general")
    asked, go_on = held_after(llm, "A lighthouse keeper story.")
    async with running_bot(discord, db, llm, learning_enabled=False, budget_s=30.0, model_timeout_s=30.0):
        reply = await answered_with_its_button(discord, db, general, ana, "tell me a story")
        await discord.dispatch("INTERACTION_CREATE", discord.component_payload(ana, reply, "hearth:reply:regen"))
        await asked.wait()
        before = len(llm.reply_requests)

        payload, told = await press(discord, ana, reply, "regen")
        assert discord.is_ephemeral(payload) and told["content"] == REFUSALS["answering"]
        go_on.set()
        await eventually(lambda: buttons(discord.messages[int(reply["id"])]) == ["◀", "2/2", "▶", "🔄"])
        assert "fox" in discord.messages[int(reply["id"])]["content"]
    assert len(llm.reply_requests) == before, "one new answer asked for"
    async with db.session() as session:
        kept = (await session.scalars(select(ReplyAlternative.content).order_by(ReplyAlternative.position))).all()
    assert list(kept) == ["A lighthouse keeper story.", "A story about a fox."]


@pytest.mark.parametrize(
    ("status", "code", "times"),
    [(403, 50013, 10), (503, 0, 1)],
    ids=["send messages taken away", "discord outage"],
)
async def test_a_reply_discord_takes_only_part_of_is_kept_as_shown_with_its_buttons(
    world: tuple[FakeDiscord, FakeUser, FakeUser, FakeGuild],
    bot: HearthBot,
    llm: FakeLLM,
    db: Database,
    caplog: pytest.LogCaptureFixture,
    status: int,
    code: int,
    times: int,
) -> None:
    """A reply in three messages whose second Discord refuses (Send Messages taken away a moment before) or fails
    (an outage discord.py does not retry): Ana sees only the first. It carries the buttons, and the reply is kept as
    what she saw, marked as cut short (the conversation goes on from what she read), known by that message:
    deleting it forgets the reply."""
    discord, ana, _, guild = world
    general = guild.channel("general")
    story = " ".join(f"Part {i} of the story of Miso the cat, told at length." for i in range(100))
    opening, *_rest = pieces = split_message(story)
    assert len(pieces) == 3
    llm.script(Reply(story, chunk_size=500))
    discord.fail("create_message", status, code=code, times=times, after=1, message="refused or failed")

    reply = await answered_with_its_button(discord, db, general, ana, "tell me a story")
    [seen] = discord.sent_messages(general)
    assert seen["id"] == reply["id"] and seen["content"] == opening
    assert buttons(seen) == ["🔄"]
    cut_short = opening.rstrip() + " " + CUT_SHORT
    kept = await stored_replies(db)
    assert list(kept) == [cut_short], "kept as shown, not as written"
    if status == 503:
        assert caplog.text.count("cut short after 1 of 3 pieces") == 1, "the outage is logged once"

    await discord.dispatch("MESSAGE_DELETE", {"id": seen["id"], "channel_id": str(general), "guild_id": str(guild.id)})
    await eventually_forgotten(db)


async def eventually_forgotten(db: Database) -> None:
    """Wait (briefly) until no reply of Hearth's is kept."""
    async with asyncio.timeout(5):
        while True:
            async with db.session() as session:
                if await session.scalar(select(Message.id).where(Message.role == "assistant")) is None:
                    return
            await asyncio.sleep(0.02)


async def test_an_answer_an_outage_stops_showing_leaves_the_one_shown_with_its_buttons(
    world: tuple[FakeDiscord, FakeUser, FakeUser, FakeGuild], bot: HearthBot, llm: FakeLLM, db: Database
) -> None:
    """Ana presses ◀ for an answer that needs more messages than the reply has, and Discord fails posting the
    next one (an outage discord.py does not retry) once the reply's message shows the answer's start: the reply
    shows the answer it showed before, whole and with its buttons, and the conversation goes on from that one;
    she is told something went wrong."""
    discord, ana, _, guild = world
    general = guild.channel("general")
    long = " ".join(f"Part {i} of the lighthouse keeper's story." for i in range(80))
    assert 2000 < len(long) <= 4000
    llm.script(Reply(long, chunk_size=500), Reply("A short story."))

    await answered_with_its_button(discord, db, general, ana, "tell me a story")
    [_, last] = discord.sent_messages(general)
    await discord.dispatch("INTERACTION_CREATE", discord.component_payload(ana, last, "hearth:reply:regen"))
    await eventually(lambda: [m["content"] for m in discord.sent_messages(general)] == ["A short story."])
    [short] = discord.sent_messages(general)
    await eventually(lambda: buttons(discord.messages[int(short["id"])]) == ["◀", "2/2", "▶", "🔄"])
    await stored_as_shown_in(db, short)

    discord.fail("create_message", 503, message="Service Unavailable")
    payload = discord.component_payload(ana, short, "hearth:reply:prev")
    await discord.dispatch("INTERACTION_CREATE", payload)
    await eventually(lambda: discord.followups_of(payload))
    [told] = discord.followups_of(payload)
    assert told["content"] == SOMETHING_WENT_WRONG and told["flags"] & 64, "said privately"

    [still] = discord.sent_messages(general)
    assert still["id"] == short["id"] and still["content"] == "A short story."
    assert buttons(still) == ["◀", "2/2", "▶", "🔄"]
    kept = await stored_replies(db)
    assert list(kept) == ["A short story."], "the conversation goes on from the answer shown"


async def test_another_answer_to_a_reply_given_after_a_restart_still_says_hearth_was_away(
    world: tuple[FakeDiscord, FakeUser, FakeUser, FakeGuild], db: Database, llm: FakeLLM
) -> None:
    """Ana's message came while Hearth was stopped, and was answered after the restart, the prompt saying Hearth had
    been away ("sorry, I was away"). 🔄 asks the model again for the same turn: its prompt still says so, for the
    message still came while Hearth was away, rather than asking for an answer as if it had just been said."""
    discord, ana, _, guild = world
    general = guild.channel("general")
    posted = discord.message_payload(general, ana, f"{discord.bot.mention} still there?")
    incoming = message("@Hearth still there?", user=ana.id, name="ana", channel=general, guild=guild.id, mention=True)
    llm.script(Stall(60))  # Hearth stores the message, asks the model… and stops before the answer comes
    turn = asyncio.create_task(
        conversation_service(db, llm).handle(replace(incoming, message_id=int(posted["id"])), RecordingReply())
    )
    await eventually(lambda: llm.chat_requests)
    turn.cancel()

    llm.script(Reply("Sorry, I was away! Yes, I'm here."), Reply("I'm back now, and yes, still here."))
    async with running_bot(discord, db, llm, learning_enabled=False) as bot:
        await bot.caught_up.wait()
        [reply] = discord.sent_messages(general)
        await stored_as_shown_in(db, reply)
        await press(discord, ana, reply, "regen", predicate=lambda m: "back now" in m["content"])
    first, again = (request.body["messages"][0]["content"] for request in llm.chat_requests[-2:])
    assert AWAY_NOTE in first, "the reply after the restart was told Hearth had been away"
    assert AWAY_NOTE in again, "and so is another answer to it"


async def test_another_answer_still_streaming_when_a_stop_runs_out_of_time_leaves_the_answer_before_shown(
    world: tuple[FakeDiscord, FakeUser, FakeUser, FakeGuild], db: Database, llm: FakeLLM
) -> None:
    """Ana presses 🔄; the new answer is still streaming into her reply when Hearth is told to stop, and told again
    (the replies still being written are cut short). As a reply cut short is not left half-written, her reply shows
    the answer before again, whole and with its buttons, the one the conversation goes on from; nothing of the new
    one is kept."""
    discord, ana, _, guild = world
    general = guild.channel("general")
    story = " ".join(f"Line {i} of a story." for i in range(40))
    llm.script(Reply("A lighthouse keeper story."), Reply(story, chunk_size=4, delay_between_chunks=0.2))
    async with running_bot(discord, db, llm, learning_enabled=False) as bot:
        reply = await answered_with_its_button(discord, db, general, ana, "tell me a story")
        payload = discord.component_payload(ana, reply, "hearth:reply:regen")
        await discord.dispatch("INTERACTION_CREATE", payload)
        await discord.wait_for_request(
            lambda call: call.route == "edit_message" and "Line 0" in str((call.body or {}).get("content"))
        )
        bot.stop()
        await bot.stop()  # asked again: the replies still being written are cut short
    [shown] = discord.sent_messages(general)
    assert shown["content"] == "A lighthouse keeper story.", "the answer before is shown again, whole"
    assert buttons(shown) == ["🔄"]
    assert await stored_replies(db) == ["A lighthouse keeper story."]

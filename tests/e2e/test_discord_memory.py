"""End to end, on both backends: what is said in one place is recalled where it may be, and nowhere else.

Gateway events go into the real discord.py client; the prompt the fake LLM receives is what is checked.
"""

import asyncio
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, or_, select

from bot.db.engine import Database
from bot.db.models import Memory, Message, ScheduledEvent, User, UserFact, UserRelationship
from bot.discord.client import HearthBot
from tests.fakes.discord import FakeDiscord, FakeGuild, FakeUser
from tests.fakes.discord.payloads import JSON
from tests.fakes.llm_server import FakeLLM, Reply, Step
from tests.support.bot import container_of, running_bot
from tests.support.chat import eventually
from tests.support.commands import run

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


async def answered(discord: FakeDiscord, channel_id: int, text: str) -> None:
    await discord.wait_for_request(
        lambda call: (
            call.route in ("create_message", "edit_message")
            and call.channel_id == channel_id
            and (call.body or {}).get("content") == text
        )
    )


async def test_a_secret_told_in_a_dm_stays_there_while_a_guild_remembers_across_its_channels(
    db: Database, llm: FakeLLM
) -> None:
    async with FakeDiscord() as discord:
        ana = discord.add_user("ana", global_name="Ana")
        ben = discord.add_user("ben", global_name="Ben")
        guild = discord.add_guild("Cosy Corner", channels=["general", "random"], members=[ana, ben])
        general, random = guild.channel("general"), guild.channel("random")
        async with running_bot(discord, db, llm) as bot:
            mention = discord.bot.mention
            llm.script(Reply("Your secret is safe with me."), Reply("Oh no, poor plant!"))
            await discord.user_message(
                discord.dm_channel(ben), ben, "promise not to tell anyone: I'm adopting a dog named Biscuit"
            )
            await answered(discord, discord.dm_channel(ben), "Your secret is safe with me.")
            await discord.user_message(random, ana, f"{mention} my cat Pepper knocked over a plant today")
            await answered(discord, random, "Oh no, poor plant!")
            await flushed(bot)

            # In the guild, another channel: Ana's words from #random are recalled, Ben's DM is not.
            llm.script(Reply("I can't share that."), Reply("I can't share that either."))
            await discord.user_message(general, ana, f"{mention} what did Ben tell you about a dog? And my cat?")
            await answered(discord, general, "I can't share that.")
            prompt = llm.chat_requests[-1].prompt_text()
            assert 'in #random, Ana said: "@Hearth my cat Pepper knocked over a plant today"' in prompt
            assert "Biscuit" not in prompt and "adopting" not in prompt

            # In Ana's DMs: neither Ben's secret nor what was said in the guild.
            await discord.user_message(discord.dm_channel(ana), ana, "what is the name of Ben's new dog? and my cat?")
            await answered(discord, discord.dm_channel(ana), "I can't share that either.")
            prompt = llm.chat_requests[-1].prompt_text()
            assert "Biscuit" not in prompt and "adopting" not in prompt and "Pepper" not in prompt


async def flushed(bot: HearthBot) -> None:
    """Memories are written in the background: wait until everything said so far is stored."""
    await container_of(bot).embedding_worker.flush()


async def said_anywhere(db: Database, words: str) -> bool:
    """Whether any stored turn or memory holds ``words``, in its text or in its context."""
    async with db.reading() as session:
        turns = await session.scalar(select(func.count()).where(Message.content.contains(words)))
        memories = await session.scalar(
            select(func.count()).where(or_(Memory.content.contains(words), Memory.context.contains(words)))
        )
    return bool(turns or memories)


async def forgotten(db: Database, words: str) -> None:
    """Wait until nothing stored holds ``words`` (the deletion is handled as the bot receives it)."""
    async with asyncio.timeout(5):
        while True:
            if not await said_anywhere(db, words):
                return
            await asyncio.sleep(0.05)


@pytest.fixture
async def cosy() -> AsyncIterator[tuple[FakeDiscord, FakeUser, FakeGuild]]:
    """Ana in a server with one channel."""
    async with FakeDiscord() as discord:
        ana = discord.add_user("ana", global_name="Ana")
        yield discord, ana, discord.add_guild("Cosy Corner", channels=["general"], members=[ana])


@dataclass(frozen=True)
class Chatting:
    discord: FakeDiscord
    ana: FakeUser
    guild: FakeGuild
    general: int
    bot: HearthBot


@pytest.fixture
async def chatting(
    cosy: tuple[FakeDiscord, FakeUser, FakeGuild], db: Database, llm: FakeLLM, request: pytest.FixtureRequest
) -> AsyncIterator[Chatting]:
    """Hearth running in the cosy server (with the settings a test gives as ``indirect`` parameters)."""
    discord, ana, guild = cosy
    async with running_bot(discord, db, llm, **getattr(request, "param", {})) as bot:
        yield Chatting(discord, ana, guild, guild.channel("general"), bot)


async def tell_the_code(discord: FakeDiscord, ana: FakeUser, general: int, llm: FakeLLM) -> JSON:
    """Ana tells Hearth her locker code; the message as Discord sent it."""
    llm.script(Reply("Noted!"))
    said = await discord.user_message(general, ana, f"{discord.bot.mention} my locker code is 4417")
    await answered(discord, general, "Noted!")
    return said


async def prompt_answering(
    discord: FakeDiscord, llm: FakeLLM, channel: int, user: FakeUser, text: str, reply: str = "ok"
) -> str:
    """``user`` says ``text`` to Hearth in ``channel``, which answers ``reply``; the prompt of that reply (not of
    the learning that may follow it)."""
    llm.script(Reply(reply))
    await discord.user_message(channel, user, f"{discord.bot.mention} {text}")
    await answered(discord, channel, reply)
    return next(r.prompt_text() for r in reversed(llm.chat_requests) if "response_format" not in r.body)


async def delete_on_discord(discord: FakeDiscord, guild: FakeGuild, message: JSON) -> None:
    payload = {"id": message["id"], "channel_id": message["channel_id"], "guild_id": str(guild.id)}
    await discord.dispatch("MESSAGE_DELETE", payload)


async def test_a_message_its_author_deletes_on_discord_is_forgotten(
    chatting: Chatting, db: Database, llm: FakeLLM
) -> None:
    discord, ana, general = chatting.discord, chatting.ana, chatting.general
    mention = discord.bot.mention
    secret = await tell_the_code(discord, ana, general, llm)
    llm.script(Reply("Lovely, which trail?"))
    await discord.user_message(general, ana, f"{mention} I go hiking on Sundays")
    await answered(discord, general, "Lovely, which trail?")
    await flushed(chatting.bot)
    assert await said_anywhere(db, "4417")  # the turn, its memory, and the reply's memory's context

    await delete_on_discord(discord, chatting.guild, secret)
    await forgotten(db, "4417")
    prompt = await prompt_answering(discord, llm, general, ana, "what is my locker code?")
    assert "4417" not in prompt, "neither in the conversation shown nor among the memories"
    assert "Noted!" in prompt and "hiking on Sundays" in prompt, "the rest of the conversation stays"
    await flushed(chatting.bot)
    assert not await said_anywhere(db, "4417")


async def test_a_deleted_message_is_forgotten_from_the_reply_someone_made_to_it(
    chatting: Chatting, db: Database, llm: FakeLLM
) -> None:
    """Ben asks Hearth about his locker code's secret, Ana replies to his message to ask Hearth about it, so his words
    are kept with hers. Ben deletes his message: it goes from her turn and its memory too, her own words stay."""
    discord, ana, general = chatting.discord, chatting.ana, chatting.general
    ben = discord.add_user("ben", global_name="Ben")
    secret = await tell_the_code(discord, ben, general, llm)
    llm.script(Reply("I couldn't say."))
    await discord.user_message(general, ana, f"{discord.bot.mention} should he share it?", referenced_message=secret)
    await answered(discord, general, "I couldn't say.")
    await flushed(chatting.bot)
    async with db.reading() as session:
        assert "4417" in str(await session.scalar(select(Message.content).where(Message.content.contains("share"))))

    await delete_on_discord(discord, chatting.guild, secret)
    await forgotten(db, "4417")
    prompt = await prompt_answering(discord, llm, general, ana, "what was that code?")
    assert "4417" not in prompt and "should he share it?" in prompt
    await flushed(chatting.bot)
    assert not await said_anywhere(db, "4417")


async def images_of(db: Database, start: str) -> tuple[list[str], str]:
    """The image links of the stored turn whose text starts ``start``, and its memory."""
    async with db.reading() as session:
        found = (
            await session.execute(
                select(Message.image_urls, Memory.content)
                .join(Memory, Memory.message_id == Message.id)
                .where(Message.content.startswith(start), Memory.kind == "message")
            )
        ).one()
    return [str(url) for url in found.image_urls], str(found.content)


async def test_a_deleted_messages_images_are_forgotten_from_the_reply_someone_made_to_it(
    chatting: Chatting, db: Database, llm: FakeLLM
) -> None:
    """Ben shows Hearth a photo of his locker; Ana replies to his message to ask about it, so his photo is kept
    with her turn (its link, and its description in her memory). Ben deletes his message: his photo goes from her
    turn too, and from what the model is shown; her own words and her own photo stay."""
    discord, ana, general = chatting.discord, chatting.ana, chatting.general
    ben = discord.add_user("ben", global_name="Ben")
    llm.image_descriptions["locker.png"] = "a red locker with a brass padlock"
    llm.image_descriptions["paint.png"] = "a tin of green paint"
    llm.script(Reply("Noted!"))
    mine = await discord.user_message(
        general, ben, f"{discord.bot.mention} my locker", attachments=[("locker.png", PNG)]
    )
    await answered(discord, general, "Noted!")
    llm.script(Reply("Green suits it."))
    await discord.user_message(
        general,
        ana,
        f"{discord.bot.mention} should he paint it this colour?",
        referenced_message=mine,
        attachments=[("paint.png", PNG)],
    )
    await answered(discord, general, "Green suits it.")
    container = container_of(chatting.bot)
    assert container.image_describer is not None
    await container.image_describer.flush()
    await flushed(chatting.bot)
    links, memory = await images_of(db, "@Hearth should he paint")
    assert [link.split("?")[0].rsplit("/", 1)[-1] for link in links] == ["paint.png", "locker.png"]
    assert "brass padlock" in memory and "green paint" in memory

    await delete_on_discord(discord, chatting.guild, mine)
    await forgotten(db, "brass padlock")
    links, memory = await images_of(db, "@Hearth should he paint")
    assert [link.split("?")[0].rsplit("/", 1)[-1] for link in links] == ["paint.png"]
    assert memory.startswith("@Hearth should he paint it this colour?") and "green paint" in memory
    llm.script(Reply("ok"))
    await discord.user_message(general, ana, f"{discord.bot.mention} what colour again?")
    await answered(discord, general, "ok")
    shown = json.dumps(llm.reply_requests[-1].messages)
    assert "locker.png" not in shown and "brass padlock" not in shown
    await flushed(chatting.bot)
    assert not await said_anywhere(db, "brass padlock")


async def test_a_reply_of_hearths_a_moderator_deletes_is_forgotten(
    chatting: Chatting, db: Database, llm: FakeLLM
) -> None:
    discord, ana, general = chatting.discord, chatting.ana, chatting.general
    mention = discord.bot.mention
    llm.script(Reply("Your code is 4417, I'll shout it to everyone!"))
    await discord.user_message(general, ana, f"{mention} what was my code again?")
    await answered(discord, general, "Your code is 4417, I'll shout it to everyone!")
    await flushed(chatting.bot)
    [reply] = discord.sent_messages(general)
    await delete_on_discord(discord, chatting.guild, reply)
    await forgotten(db, "4417")
    prompt = await prompt_answering(discord, llm, general, ana, "that was not nice")
    assert "4417" not in prompt and "what was my code again?" in prompt, "the reply alone is forgotten"


@pytest.mark.parametrize("bulk", [False, True], ids=["deleted", "bulk-deleted"])
async def test_a_reply_that_took_several_messages_is_forgotten_when_an_earlier_one_is_deleted(
    chatting: Chatting, db: Database, llm: FakeLLM, bulk: bool
) -> None:
    """A reply longer than a Discord message goes out in several: a moderator deleting any of them (alone, or
    with others at once) has the reply forgotten, as deleting its last one does."""
    discord, ana, general = chatting.discord, chatting.ana, chatting.general
    mention = discord.bot.mention
    llm.script(Reply("Noted!"))
    await discord.user_message(general, ana, f"{mention} I collect stamps")
    await answered(discord, general, "Noted!")
    story = "Your code is 4417, I'll shout it to everyone! " + " ".join(
        f"Then part {i} of a long tale about lockers." for i in range(60)
    )
    assert len(story) > 2000
    llm.script(Reply(story, chunk_size=500))
    await discord.user_message(general, ana, f"{mention} what was my code again?")
    await eventually(lambda: "".join(m["content"] for m in discord.sent_messages(general)[1:]) == story)
    async with asyncio.timeout(5):  # stored just after it is delivered
        while True:
            if await said_anywhere(db, "4417"):
                break
            await asyncio.sleep(0.05)
    await flushed(chatting.bot)
    first, *_ = discord.sent_messages(general)[1:]
    assert "4417" in first["content"]

    if bulk:
        ids = [first["id"], str(discord.snowflake())]  # with a message Hearth never stored
        await discord.dispatch(
            "MESSAGE_DELETE_BULK", {"ids": ids, "channel_id": str(general), "guild_id": str(chatting.guild.id)}
        )
    else:
        await delete_on_discord(discord, chatting.guild, first)
    await forgotten(db, "4417")
    prompt = await prompt_answering(discord, llm, general, ana, "that was not nice")
    assert "4417" not in prompt and "what was my code again?" in prompt, "the reply alone is forgotten"
    assert "stamps" in prompt and "Noted!" in prompt


@pytest.mark.parametrize("db", ["postgresql"], indirect=True)  # a row lock holds the reply's storing back
async def test_a_reply_deleted_before_hearth_has_stored_it_is_forgotten(
    chatting: Chatting, db: Database, llm: FakeLLM
) -> None:
    """Hearth stores its reply once sent; a moderator deleting it sooner than that still has it forgotten."""
    discord, ana, general = chatting.discord, chatting.ana, chatting.general
    locked, release = asyncio.Event(), asyncio.Event()

    async def hold_the_question() -> None:
        async with db.session() as session:  # storing the reply marks the question answered: it waits for this
            await session.execute(select(Message.id).where(Message.content.contains("code again")).with_for_update())
            locked.set()
            await release.wait()
            await session.rollback()

    holding: list[asyncio.Task[None]] = []

    async def question_awaits_reply() -> bool | None:
        async with db.reading() as session:
            return await session.scalar(select(Message.awaiting_reply).where(Message.content.contains("code again")))

    async def answer_while_holding(body: dict[str, Any]) -> Reply:
        holding.append(asyncio.create_task(hold_the_question()))
        await locked.wait()
        return Reply("Your code is 4417, I'll shout it to everyone!")

    llm.default = answer_while_holding
    await discord.user_message(general, ana, f"{discord.bot.mention} what was my code again?")
    await answered(discord, general, "Your code is 4417, I'll shout it to everyone!")
    [reply] = discord.sent_messages(general)
    await delete_on_discord(discord, chatting.guild, reply)
    await asyncio.sleep(0.5)  # the deletion looks for the reply while it is not stored yet
    release.set()
    await holding[0]
    async with asyncio.timeout(5):  # the reply is stored now, the question marked answered with it
        while True:
            if not await question_awaits_reply():
                break
            await asyncio.sleep(0.05)
    await forgotten(db, "4417")


async def test_a_message_its_author_edits_is_remembered_as_it_now_reads(
    chatting: Chatting, db: Database, llm: FakeLLM
) -> None:
    discord, ana, general = chatting.discord, chatting.ana, chatting.general
    mention = discord.bot.mention
    said = await tell_the_code(discord, ana, general, llm)
    await flushed(chatting.bot)

    await discord.dispatch("MESSAGE_UPDATE", {**said, "content": f"{mention} my locker is the blue one"})
    await forgotten(db, "4417")
    await flushed(chatting.bot)
    prompt = await prompt_answering(discord, llm, general, ana, "which locker is mine?")
    assert "4417" not in prompt and "@Hearth my locker is the blue one" in prompt
    assert not await said_anywhere(db, "4417")
    async with db.reading() as session:
        memory = await session.scalar(select(Memory).where(Memory.message_id.is_not(None)).order_by(Memory.id))
    assert memory is not None and memory.content == "@Hearth my locker is the blue one"
    assert memory.embedding is not None, "embedded again from its new text"


def learns_where_ana_lives(body: dict[str, Any]) -> Step:
    """The model's learning: where Ana lives, from the chat line that says so, citing that line, as a change of
    the known fact when there is one (replies are scripted by the test)."""
    prompt = "\n".join(str(m["content"]) for m in body["messages"])
    facts = []
    for line, city in re.findall(r"^\((\d+)\) Ana: .*?I (?:live in|moved to) (\w+)", prompt, re.M):
        fact = {"speaker": "Ana", "line": int(line), "type": "location", "content": f"lives in {city}"}
        known = re.search(r"^\[(\d+)\] Ana \(location\): lives in", prompt, re.M)
        facts.append(fact | ({"action": "changed", "existing_id": int(known[1])} if known else {}))
    return Reply(json.dumps({"facts": facts}))


async def where_ana_lives(db: Database) -> dict[str, bool]:
    """Every fact about Ana: its text, and whether it is current."""
    async with db.reading() as session:
        rows = await session.execute(select(UserFact.fact_content, UserFact.is_active))
    return {row.fact_content: row.is_active for row in rows.all()}


async def until_facts(db: Database, expected: dict[str, bool]) -> None:
    """Wait until the facts about Ana are ``expected`` (learning and forgetting run in the background)."""
    async with asyncio.timeout(5):
        while True:
            if await where_ana_lives(db) == expected:
                return
            await asyncio.sleep(0.05)


@pytest.mark.parametrize("chatting", [{"learning_batch_messages": 1}], indirect=True)
async def test_what_was_learned_from_a_deleted_or_edited_message_is_forgotten(
    chatting: Chatting, db: Database, llm: FakeLLM
) -> None:
    discord, ana, general = chatting.discord, chatting.ana, chatting.general
    llm.default = learns_where_ana_lives
    mention = discord.bot.mention
    llm.script(Reply("How lovely!"))
    paris = await discord.user_message(general, ana, f"{mention} I live in Paris, by the canal")
    await until_facts(db, {"lives in Paris": True})
    llm.script(Reply("Congratulations!"))
    lyon = await discord.user_message(general, ana, f"{mention} big news: I moved to Lyon!")
    await until_facts(db, {"lives in Paris": False, "lives in Lyon": True})
    await answered(discord, general, "Congratulations!")

    await delete_on_discord(discord, chatting.guild, lyon)
    await until_facts(db, {"lives in Paris": True})
    prompt = await prompt_answering(discord, llm, general, ana, "where do I live?", "Lovely.")
    assert "lives in Paris" in prompt and "Lyon" not in prompt, "the move taken back, Paris is current again"

    await discord.dispatch("MESSAGE_UPDATE", {**paris, "content": f"{mention} I live by a canal"})
    await until_facts(db, {})
    prompt = await prompt_answering(discord, llm, general, ana, "and now?", "By a canal.")
    assert "Paris" not in prompt and "I live by a canal" in prompt


def learns_whatever_ana_shares(body: dict[str, Any]) -> Step:
    """The model's learning, as a careless one reads it: whatever a line of Ana's says about getting engaged is
    taken as hers (replies are scripted by the test)."""
    prompt = "\n".join(str(m["content"]) for m in body["messages"])
    facts = [
        {"speaker": "Ana", "line": int(line), "type": "relationship", "content": "just got engaged to Sam"}
        for line in re.findall(r"^\((\d+)\) Ana: .*engaged", prompt, re.M)
    ]
    return Reply(json.dumps({"facts": facts}))


@pytest.mark.parametrize("chatting", [{"learning_batch_messages": 1}], indirect=True)
async def test_what_someone_forwards_is_not_learned_as_their_own(
    chatting: Chatting, db: Database, llm: FakeLLM
) -> None:
    """Ana forwards Ben's news to Hearth: the learner reads that she forwarded a message, not Ben's words as
    hers, so his engagement is not learned as a fact about Ana."""
    discord, ana = chatting.discord, chatting.ana
    ben = discord.add_user("ben", global_name="Ben")
    dm = discord.dm_channel(ana)
    news = discord.message_payload(chatting.general, ben, "I just got engaged to Sam!")
    llm.default = learns_whatever_ana_shares
    llm.script(Reply("Oh, how wonderful for Ben!"))
    await discord.user_message(dm, ana, "", forwarded=news)
    await answered(discord, dm, "Oh, how wonderful for Ben!")
    await container_of(chatting.bot).learner.flush()

    async with db.reading() as session:
        assert (await session.scalars(select(UserFact.fact_content))).all() == []
    [learning] = [r.prompt_text() for r in llm.chat_requests if "response_format" in r.body]
    assert "(1) Ana: [forwarded a message]" in learning and "engaged" not in learning


async def fact_id_of(db: Database, content: str) -> int:
    async with db.reading() as session:
        found = await session.scalar(select(UserFact.id).where(UserFact.fact_content == content))
    assert found is not None, content
    return int(found)


async def exported_facts(discord: FakeDiscord, ana: FakeUser, channel: int) -> set[str]:
    """The facts Ana's /memory export holds."""
    await run(discord, ana, channel, "memory export")
    exported = json.loads(discord.attachment_bytes(discord.dm_messages(ana)[-1]["attachments"][0]))
    return {row["fact_content"] for row in exported["tables"].get("user_facts", [])}


@pytest.mark.parametrize("chatting", [{"learning_batch_messages": 1}], indirect=True)
async def test_forgetting_a_fact_erases_every_version_of_it(chatting: Chatting, db: Database, llm: FakeLLM) -> None:
    """Ana moved from Paris to Lyon, and forgets where she lives: "lives in Paris", kept as the history of that
    fact, goes with it, so her export holds neither."""
    discord, ana, general = chatting.discord, chatting.ana, chatting.general
    llm.default = learns_where_ana_lives
    mention = discord.bot.mention
    llm.script(Reply("How lovely!"))
    await discord.user_message(general, ana, f"{mention} I live in Paris, by the canal")
    await until_facts(db, {"lives in Paris": True})
    llm.script(Reply("Congratulations!"))
    await discord.user_message(general, ana, f"{mention} big news: I moved to Lyon!")
    await until_facts(db, {"lives in Paris": False, "lives in Lyon": True})
    await answered(discord, general, "Congratulations!")
    assert await exported_facts(discord, ana, general) == {"lives in Paris", "lives in Lyon"}

    lyon = await fact_id_of(db, "lives in Lyon")
    typing = discord.autocomplete_payload(ana, general, "memory forget", focused="fact", value="lives")
    await discord.dispatch("INTERACTION_CREATE", typing)
    assert await discord.wait_for_autocomplete(typing) == [{"name": f"#{lyon} lives in Lyon", "value": lyon}]
    _, answer = await run(discord, ana, general, "memory forget", {"fact": lyon})
    assert await where_ana_lives(db) == {}
    assert "lives in Lyon" in answer["content"] and "1 other version" in answer["content"], answer["content"]
    assert await exported_facts(discord, ana, general) == set()


def learns_whether_ana_smokes(body: dict[str, Any]) -> Step:
    """The model's learning: "I smoke" is a fact of Ana's, "I quit smoking" takes it back (replies are scripted by
    the test)."""
    prompt = "\n".join(str(m["content"]) for m in body["messages"])
    facts: list[dict[str, Any]] = []
    known = re.search(r"^\[(\d+)\] Ana \(general\): smokes", prompt, re.M)
    for line in re.findall(r"^\((\d+)\) Ana: .*\bI smoke\b", prompt, re.M):
        facts.append({"speaker": "Ana", "line": int(line), "type": "general", "content": "smokes"})
    for line in re.findall(r"^\((\d+)\) Ana: .*\bI quit smoking\b", prompt, re.M):
        if known:
            retracted = {"action": "retracted", "existing_id": int(known[1]), "content": "smokes"}
            facts.append({"speaker": "Ana", "line": int(line), "type": "general"} | retracted)
    return Reply(json.dumps({"facts": facts}))


@pytest.mark.parametrize("chatting", [{"learning_batch_messages": 1}], indirect=True)
async def test_a_fact_taken_back_is_offered_to_forget_and_forgotten(
    chatting: Chatting, db: Database, llm: FakeLLM
) -> None:
    """Ana said she smokes, then that she quit: "smokes" is no longer current, but it is still held (her export
    shows it), so /memory forget offers it too, and erases it."""
    discord, ana, general = chatting.discord, chatting.ana, chatting.general
    llm.default = learns_whether_ana_smokes
    mention = discord.bot.mention
    llm.script(Reply("Noted."))
    await discord.user_message(general, ana, f"{mention} I smoke, sadly")
    await until_facts(db, {"smokes": True})
    llm.script(Reply("Well done!"))
    await discord.user_message(general, ana, f"{mention} I quit smoking last week")
    await until_facts(db, {"smokes": False})
    await answered(discord, general, "Well done!")

    smokes = await fact_id_of(db, "smokes")
    typing = discord.autocomplete_payload(ana, general, "memory forget", focused="fact", value="smok")
    await discord.dispatch("INTERACTION_CREATE", typing)
    [choice] = await discord.wait_for_autocomplete(typing)
    assert choice["value"] == smokes and "smokes" in choice["name"] and "no longer" in choice["name"], choice
    _, answer = await run(discord, ana, general, "memory forget", {"fact": smokes})
    assert "smokes" in answer["content"]
    assert await where_ana_lives(db) == {}
    assert await exported_facts(discord, ana, general) == set()


@pytest.mark.parametrize("chatting", [{"learning_batch_messages": 1}], indirect=True)
@pytest.mark.parametrize("how", ["deleted", "edited"])
async def test_a_fact_taken_back_is_current_again_when_the_message_taking_it_back_goes(
    chatting: Chatting, db: Database, llm: FakeLLM, how: str
) -> None:
    """Ana said she smokes, then that she quit, then deleted (or reworded) that message: she took back taking it
    back, so "smokes" is current again, as "lives in Paris" is when the move to Lyon is deleted."""
    discord, ana, general = chatting.discord, chatting.ana, chatting.general
    llm.default = learns_whether_ana_smokes
    mention = discord.bot.mention
    llm.script(Reply("Noted."))
    await discord.user_message(general, ana, f"{mention} I smoke, sadly")
    await until_facts(db, {"smokes": True})
    llm.script(Reply("Well done!"))
    quit_ = await discord.user_message(general, ana, f"{mention} I quit smoking last week")
    await until_facts(db, {"smokes": False})
    await answered(discord, general, "Well done!")

    if how == "deleted":
        await delete_on_discord(discord, chatting.guild, quit_)
    else:
        await discord.dispatch("MESSAGE_UPDATE", {**quit_, "content": f"{mention} I smoked less last week"})
    await until_facts(db, {"smokes": True})
    prompt = await prompt_answering(discord, llm, general, ana, "what do you know about me?", "You smoke.")
    assert "smokes" in prompt, "current again, so it is among what Hearth knows of Ana"


def morning_zone() -> str:
    """A time zone where it is morning now, so that an exam there today is still to come (asked about at 18:00)."""
    offset = min(datetime.now(UTC).hour - 9, 12)  # Etc/GMT+N is N hours behind UTC
    return f"Etc/GMT{offset:+d}" if offset else "UTC"


def asks_about_exams(body: dict[str, Any]) -> Step:
    """The model's learning: whoever says their exam is today (in :func:`morning_zone`) is asked how it went that
    evening (replies are scripted by the test)."""
    prompt = "\n".join(str(m["content"]) for m in body["messages"])
    when = datetime.now(ZoneInfo(morning_zone())).date().isoformat()
    follow_ups = [
        {"speaker": name, "topic": "exam", "date": when, "question": "How did the exam go?"}
        for name in re.findall(r"^\(\d+\) (\w+): my exam is", prompt, re.M)
    ]
    return Reply(json.dumps({"sentiment": 0.5, "intensity": 0.3, "follow_ups": follow_ups}))


async def pending_follow_ups(db: Database) -> list[str]:
    async with db.reading() as session:
        rows = await session.scalars(
            select(ScheduledEvent.title).where(
                ScheduledEvent.event_type == "follow_up", ScheduledEvent.status == "pending"
            )
        )
    return list(rows.all())


@pytest.mark.parametrize("chatting", [{"learning_batch_messages": 1}], indirect=True)
async def test_what_someone_forwards_is_not_taken_for_what_they_said_to_hearth(
    chatting: Chatting, db: Database, llm: FakeLLM
) -> None:
    """Ana and Bo both say their exam is this morning. Ana then forwards Ben's long message about his own exam,
    Bo a short one, that same day: Ben's words neither answer Hearth's question to Ana (still to be asked that
    evening) nor make her talk with Hearth deeper than Bo's."""
    discord, ana = chatting.discord, chatting.ana
    bo = discord.add_user("bo", global_name="Bo")
    ben = discord.add_user("ben", global_name="Ben")
    llm.default = asks_about_exams
    learner = container_of(chatting.bot).learner
    for person in (ana, bo):
        await run(discord, person, discord.dm_channel(person), "timezone set", {"name": morning_zone()})
        llm.script(Reply("Good luck!"))
        await discord.user_message(discord.dm_channel(person), person, "my exam is this morning")
        await answered(discord, discord.dm_channel(person), "Good luck!")
        await learner.flush()
    assert sorted(await pending_follow_ups(db)) == ["exam", "exam"]

    long_news = " ".join(["The exam went great, I answered every question about the history of the city."] * 4)
    for person, news in ((ana, long_news), (bo, "ok")):
        forwarded = discord.message_payload(chatting.general, ben, news)
        llm.script(Reply("Thanks for sharing!"))
        await discord.user_message(discord.dm_channel(person), person, "", forwarded=forwarded)
        await answered(discord, discord.dm_channel(person), "Thanks for sharing!")
        await learner.flush()

    assert sorted(await pending_follow_ups(db)) == ["exam", "exam"], "Ana never said how her exam went"
    async with db.reading() as session:
        rows = await session.execute(
            select(User.discord_id, UserRelationship.relationship_score, UserRelationship.avg_message_length).join(
                User, User.id == UserRelationship.user_id
            )
        )
        closeness = {row.discord_id: (row.relationship_score, row.avg_message_length) for row in rows.all()}
    assert closeness[ana.id] == pytest.approx(closeness[bo.id], abs=1e-3), "what they forwarded is not theirs"

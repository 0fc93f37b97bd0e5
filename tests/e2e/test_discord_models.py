"""End to end: what today's models do — reasoning models' thinking stays hidden, fallback models step in.

The real discord.py client against the fake Discord, the real ``openai`` client against the fake LLM, on both
database backends.
"""

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import select

from bot.db.engine import Database
from bot.db.models import Memory, Message, UserFact
from bot.domain.budget import estimate_tokens
from bot.llm.tokens import counter_for
from bot.services.incoming import Place
from tests.e2e.test_discord_chat import shown, stored_eventually
from tests.fakes.discord import FakeDiscord, FakeGuild, FakeUser
from tests.fakes.llm_server import Fail, FakeLLM, Reply, Step
from tests.support.bot import container_of, running_bot


@pytest.fixture
async def discord_world() -> AsyncIterator[tuple[FakeDiscord, FakeUser, FakeGuild]]:
    async with FakeDiscord() as fake:
        ana = fake.add_user("ana", global_name="Ana")
        guild = fake.add_guild("Cosy Corner", channels=["general"], members=[ana])
        yield fake, ana, guild


async def _rows(db: Database, statement: Any) -> list[Any]:
    async with db.session() as session:
        return list((await session.execute(statement)).all())


async def test_a_reasoning_models_thinking_reaches_no_message_edit_row_or_learner(
    discord_world: tuple[FakeDiscord, FakeUser, FakeGuild], db: Database, llm: FakeLLM
) -> None:
    discord, ana, guild = discord_world
    general = guild.channel("general")
    # Thinking twice over, as servers send it: reasoning_content deltas, then <think> in the content itself,
    # cut into pieces of 3 characters so both tags arrive split, slowly enough for the preview to be edited.
    llm.script(
        Reply(
            "<think>secret plan: flatter Ana</think>\n\nVisible answer, streamed in small pieces.",
            chunk_size=3,
            delay_between_chunks=0.02,
            reasoning="secret musing about Ana",
        )
    )
    async with running_bot(discord, db, llm) as bot:
        await discord.user_message(general, ana, f"{discord.bot.mention} what do you think?")
        await shown(discord, general, "Visible answer, streamed in small pieces.")
        await stored_eventually(db, "assistant", ["Visible answer, streamed in small pieces."])

        shown_texts = [
            (call.body or {}).get("content") or ""
            for call in discord.requests
            if call.route in ("create_message", "edit_message")
        ]
        assert len(shown_texts) >= 3, "the preview was edited while the answer streamed"
        assert not [text for text in shown_texts if "secret" in text or "think>" in text]
        assert all("Visible answer, streamed in small pieces.".startswith(text) for text in shown_texts)

        memories = [row.content for row in await _rows(db, select(Memory.content))]
        contexts = [row.context or "" for row in await _rows(db, select(Memory.context))]
        assert "Visible answer, streamed in small pieces." in memories
        assert not [text for text in memories + contexts if "secret" in text]

        conversation_id = (await _rows(db, select(Message.conversation_id).where(Message.role == "assistant")))[0][0]
        llm.default = Reply('{"facts": []}')
        await container_of(bot).learner.learn(conversation_id)
        learner_prompt = llm.chat_requests[-1].prompt_text()
        assert "Visible answer, streamed in small pieces." in learner_prompt
        assert "secret" not in learner_prompt


async def test_what_the_learner_could_not_read_while_the_model_was_down_is_learned_once_it_is_back(
    discord_world: tuple[FakeDiscord, FakeUser, FakeGuild], db: Database, llm: FakeLLM
) -> None:
    """The conversation goes quiet after the batch the model could not read: it is read again later, not left
    until the next restart (or the next message)."""
    discord, ana, _ = discord_world
    dm = discord.dm_channel(ana)
    down = True
    learned = Reply(json.dumps({"facts": [{"speaker": "Ana", "type": "hobby", "content": "climbs on Sundays"}]}))

    def answer(body: dict[str, Any]) -> Step:
        if "response_format" not in body:
            return Reply("Sounds fun!")
        return Fail(503) if down else learned

    llm.default = answer
    async with running_bot(discord, db, llm, budget_s=0.3, learning_batch_messages=1, learning_idle_seconds=5) as bot:
        await discord.user_message(dm, ana, "I go climbing every Sunday")
        await shown(discord, dm, "Sounds fun!")
        failed = 'hearth_model_calls_total{model="fake-model",purpose="learning",result="failed"} 1.0'
        async with asyncio.timeout(10):
            while failed not in (await container_of(bot).metrics.exposition()).decode():  # noqa: ASYNC110 (polling)
                await asyncio.sleep(0.05)
        down = False  # the model is back; nobody writes any more

        async with asyncio.timeout(15):
            while not (facts := await _rows(db, select(UserFact.fact_content))):  # noqa: ASYNC110 (polling the database)
                await asyncio.sleep(0.05)
        assert [row.fact_content for row in facts] == ["climbs on Sundays"]


async def test_a_reasoning_model_that_thinks_until_max_tokens_is_not_asked_again_and_again(
    discord_world: tuple[FakeDiscord, FakeUser, FakeGuild], db: Database, llm: FakeLLM
) -> None:
    """Its thinking took every token it was given (finish_reason "length") and no answer came: asking again with
    the same room only makes the person wait out the retry budget for the same apology."""
    discord, ana, guild = discord_world
    general = guild.channel("general")
    llm.default = Reply("<think>Let me weigh every side of this question, one by one", finish_reason="length")
    async with running_bot(discord, db, llm, budget_s=3.0, learning_enabled=False):
        await discord.user_message(general, ana, f"{discord.bot.mention} what should I cook tonight?")
        await shown(discord, general, lambda text: "sorry" in text.lower())
        assert len(llm.reply_requests) == 1, "asked once"
        assert not [m for m in discord.sent_messages(general) if "think" in m["content"]]


def _by_model(answers: dict[str, Step]) -> Any:
    """A responder that answers each model its own way."""
    return lambda body: answers[body["model"]]


async def test_when_the_primary_model_keeps_failing_a_fallback_answers_and_its_usage_is_recorded(
    discord_world: tuple[FakeDiscord, FakeUser, FakeGuild], db: Database, llm: FakeLLM
) -> None:
    discord, ana, guild = discord_world
    general = guild.channel("general")
    llm.default = _by_model({"fake-model": Fail(500), "b": Reply("b steps in.", prompt_tokens=321)})
    async with running_bot(discord, db, llm, budget_s=0.5, llm_fallback_models="b") as bot:
        await discord.user_message(general, ana, f"{discord.bot.mention} are you there?")
        await shown(discord, general, "b steps in.")
        await stored_eventually(db, "assistant", ["b steps in."])

        models = [request.body["model"] for request in llm.chat_requests]
        assert models[-1] == "b" and models.count("b") == 1
        assert models.count("fake-model") >= 2, "the primary was retried within its budget first"
        rows = await _rows(db, select(Message.model, Message.prompt_tokens).where(Message.role == "assistant"))
        assert rows == [("b", 321)]
        metrics = (await container_of(bot).metrics.exposition()).decode()
        assert 'hearth_model_calls_total{model="b",purpose="reply",result="ok"} 1.0' in metrics
        assert 'hearth_model_calls_total{model="fake-model",purpose="reply",result="failed"} 1.0' in metrics
        assert 'hearth_model_tokens_total{kind="prompt",model="b",purpose="reply"} 321.0' in metrics


async def test_a_404_falls_back_at_once_behind_the_guilds_own_model(
    discord_world: tuple[FakeDiscord, FakeUser, FakeGuild], db: Database, llm: FakeLLM
) -> None:
    discord, ana, guild = discord_world
    general = guild.channel("general")
    llm.default = _by_model(
        {
            "guild-model": Fail(404, message="The model `guild-model` does not exist"),
            "fake-model": Reply("never asked"),
            "b": Reply("b again."),
        }
    )
    async with running_bot(discord, db, llm, budget_s=5.0, llm_fallback_models="b") as bot:
        place = Place(channel_id=general, guild_id=guild.id, guild_name=guild.name)
        await container_of(bot).directory.update_guild_settings(place, {"model": "guild-model"})
        await discord.user_message(general, ana, f"{discord.bot.mention} hello")
        await shown(discord, general, "b again.")

        assert [request.body["model"] for request in llm.chat_requests] == ["guild-model", "b"]
        await stored_eventually(db, "assistant", ["b again."])
        rows = await _rows(db, select(Message.model).where(Message.role == "assistant"))
        assert rows == [("b",)]


async def test_an_openai_models_prompt_fits_its_window_by_the_tokenizers_count(
    discord_world: tuple[FakeDiscord, FakeUser, FakeGuild], db: Database, llm: FakeLLM
) -> None:
    discord, ana, _ = discord_world
    dm = discord.dm_channel(ana)
    count = counter_for("gpt-4o-mini")
    japanese = "毎週日曜日に妹とジムでクライミングをしています。来週はリヨン近くの大きな岩場に挑戦します。" * 4
    llm.default = Reply("そうなんだ！")
    async with running_bot(discord, db, llm, llm_model="gpt-4o-mini", llm_context_tokens=1024, llm_max_tokens=100):
        for turn in range(6):
            await discord.user_message(dm, ana, f"{turn}: {japanese}")
            await stored_eventually(db, "assistant", ["そうなんだ！"] * (turn + 1))

    replies = [request for request in llm.chat_requests if request.messages[0]["content"].startswith("You are")]
    last = replies[-1]
    assert len(replies) == 6 and last.body["model"] == "gpt-4o-mini"
    sent = sum(count(message["content"]) + 4 for message in last.messages)
    assert sent <= (1024 - 100) * 0.95, "the prompt fits the window as the model's tokenizer counts it"
    assert sum(estimate_tokens(message["content"]) + 4 for message in last.messages) < sent / 2
    assert len(last.messages) >= 3, "some history still fits"


async def test_a_model_with_a_smaller_window_than_configured_still_answers_a_long_conversation(
    discord_world: tuple[FakeDiscord, FakeUser, FakeGuild], db: Database, llm: FakeLLM
) -> None:
    """LLM_CONTEXT_TOKENS says 8192, the server's model takes 2048: once the conversation outgrows the model's
    window, the endpoint refuses the prompt (400), and Hearth answers with a shorter one instead of apologising
    to every message from then on."""
    discord, ana, _ = discord_world
    dm = discord.dm_channel(ana)
    llm.context_windows["fake-model"] = 2048
    llm.default = Reply("Tell me more!")
    story = "We walked along the river and talked about the old mill and the people who worked there. " * 12
    async with running_bot(discord, db, llm, llm_context_tokens=8192, llm_max_tokens=200, learning_enabled=False):
        for turn in range(8):
            await discord.user_message(dm, ana, f"{turn}: {story}")
            await stored_eventually(db, "assistant", ["Tell me more!"] * (turn + 1))
    assert [m["content"] for m in discord.sent_messages(dm)] == ["Tell me more!"] * 8, "no apology"
    last = llm.reply_requests[-1]
    assert "7: We walked" in last.prompt_text() and "5: We walked" in last.prompt_text(), "recent history kept"

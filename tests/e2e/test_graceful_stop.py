"""``docker stop`` (SIGTERM) on a real ``python -m bot run`` process: it stops cleanly, losing nothing.

The bot runs in a process of its own (tests/support/launcher.py points it at the fake Discord); the fake
Discord and the fake LLM run here, on 127.0.0.1. SIGTERM arrives while a reply is being written.
"""

import asyncio
import json
import signal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.db.engine import Database
from bot.db.models import Conversation, Memory, Message, UserFact
from tests.fakes.discord import FakeDiscord, RestCall
from tests.fakes.llm_server import FakeLLM, Reply, Step
from tests.support.process import bot_environment, bot_process, logged, shows

SLOW_REPLY = "Sundays on the wall sound wonderful. Which crag do you like best, and who climbs with you?"


def model(body: dict[str, Any]) -> Step:
    """Replies come slowly (about 4 s, streamed); the learner's request (it asks for JSON) learns a fact."""
    if "response_format" in body:
        fact = {"speaker": "Ana", "type": "hobby", "content": "climbs on Sundays", "confidence": 0.9}
        return Reply(json.dumps({"sentiment": 0.5, "intensity": 0.5, "facts": [fact]}))
    return Reply(SLOW_REPLY, chunk_size=4, delay_between_chunks=0.18)


async def test_sigterm_finishes_the_reply_in_flight_saves_queued_work_and_exits_0(
    db: Database, llm: FakeLLM, tmp_path: Path
) -> None:
    llm.default = model
    async with FakeDiscord() as discord:
        ana = discord.add_user("ana", global_name="Ana")
        dm = discord.dm_channel(ana)
        environment = bot_environment(discord, db, llm) | {"STREAM_EDIT_INTERVAL_SECONDS": "0.2"}
        log = tmp_path / "bot.log"
        async with bot_process(environment, log) as bot:
            await logged(log, "connected as")
            await discord.user_message(dm, ana, "I climb on Sundays")
            await discord.wait_for_request(lambda call: call.route == "create_message", timeout=30)  # streaming

            bot.send_signal(signal.SIGTERM)
            exited = asyncio.create_task(bot.wait())
            async with asyncio.timeout(60):
                while not exited.done() and not shows(log, "SIGTERM received"):  # noqa: ASYNC110
                    await asyncio.sleep(0.05)
            sent_while_stopping = not exited.done()
            if sent_while_stopping:  # the stop began: a message now is kept for the next start, not answered
                await discord.user_message(dm, ana, "are you still there?")
            async with asyncio.timeout(90):
                code = await exited
        stderr_text = log.read_text(errors="replace")
        assert code == 0, stderr_text
        assert "Traceback" not in stderr_text, stderr_text

        delivered = [
            (call.body or {}).get("content")
            for call in discord.requests
            if call.route in ("create_message", "edit_message") and call.channel_id == dm
        ]
        assert delivered[-1] == SLOW_REPLY, "the reply in flight was delivered whole"

    async with db.session() as session:
        messages = (
            await session.execute(
                select(Message.id, Message.role, Message.content, Message.awaiting_reply).order_by(Message.id)
            )
        ).all()
        remembered = set((await session.scalars(select(Memory.message_id))).all())
        facts = (await session.scalars(select(UserFact.fact_content))).all()
        learned = await session.scalar(select(func.max(Conversation.learned_message_id)))
    answered = [("user", "I climb on Sundays", False), ("assistant", SLOW_REPLY, False)]
    kept = [("user", "are you still there?", True)] if sent_while_stopping else []
    # By content, not by id: the kept message may be stored before the reply in flight is.
    assert sorted((role, content, awaiting) for _, role, content, awaiting in messages) == sorted(answered + kept), (
        "the reply in flight was stored; a message sent while stopping was kept, awaiting the next start"
    )
    assert {row[0] for row in messages} <= remembered, "every turn's memory was written"
    assert list(facts) == ["climbs on Sundays"], "the learner's pending batch was learned from"
    reply_id = next(row[0] for row in messages if row[1] == "assistant")
    assert learned is not None and learned >= reply_id, "the conversation is marked learned past the reply"
    chats = [request for request in llm.chat_requests if "response_format" not in request.body]
    assert len(chats) == 1, "the message sent after SIGTERM was not answered"


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_a_stop_lets_a_slash_command_being_run_finish_and_answer(
    db: Database, llm: FakeLLM, tmp_path: Path, stop: signal.Signals
) -> None:
    """Ana runs /remember while the embeddings endpoint is slow; the bot is told to stop while the command works
    (acknowledged, "thinking…"). The command finishes as a reply in flight does: the fact is kept and Ana is
    told so, rather than left with "thinking…" and her fact lost; then the process exits with status 0."""
    async with FakeDiscord() as discord:
        ana = discord.add_user("ana", global_name="Ana")
        guild = discord.add_guild("Cosy Corner", channels=["general"], members=[ana])
        log = tmp_path / "bot.log"
        async with bot_process(bot_environment(discord, db, llm), log) as bot:
            await logged(log, "connected as")
            payload = discord.command_payload(ana, guild.channel("general"), "remember", {"text": "I grow tomatoes"})

            def acknowledged(call: RestCall) -> bool:
                return call.route == "interaction_callback" and call.params["interaction_id"] == payload["id"]

            with llm.slow_embeddings():
                await discord.dispatch("INTERACTION_CREATE", payload)
                await discord.wait_for_request(acknowledged, timeout=30)
                bot.send_signal(stop)
                await logged(log, f"{stop.name} received")
            answer = await discord.wait_for_response(
                payload, lambda message: "Got it" in (message.get("content") or ""), timeout=30
            )
            async with asyncio.timeout(90):
                code = await bot.wait()
    stderr_text = log.read_text(errors="replace")
    assert code == 0, stderr_text
    assert "Traceback" not in stderr_text, stderr_text
    assert answer["content"].endswith("I'll remember that in this server.")
    async with db.session() as session:
        facts = (await session.scalars(select(UserFact.fact_content))).all()
    assert list(facts) == ["I grow tomatoes"], "the fact told while stopping was kept"


async def test_a_reply_still_streaming_when_the_stop_runs_out_of_time_is_taken_down_not_left_half_written(
    db: Database, llm: FakeLLM, tmp_path: Path
) -> None:
    """The reply streams for longer than a stop waits: it is cut short, and what it had shown ("…Which crag do
    y") is taken off Discord rather than left there unfinished; Ana's message still awaits its answer, so the next
    start answers it whole, with no half reply above."""

    def slower(body: dict[str, Any]) -> Step:
        step = model(body)
        return Reply(SLOW_REPLY, chunk_size=4, delay_between_chunks=0.8) if isinstance(step, Reply) else step

    llm.default = slower
    async with FakeDiscord() as discord:
        ana = discord.add_user("ana", global_name="Ana")
        dm = discord.dm_channel(ana)
        environment = bot_environment(discord, db, llm) | {"STREAM_EDIT_INTERVAL_SECONDS": "0.2"}
        log = tmp_path / "bot.log"
        async with bot_process(environment, log) as bot:
            await logged(log, "connected as")
            await discord.user_message(dm, ana, "I climb on Sundays")
            await discord.wait_for_request(lambda call: call.route == "create_message", timeout=30)  # streaming
            bot.send_signal(signal.SIGTERM)
            async with asyncio.timeout(90):
                code = await bot.wait()
        stderr_text = log.read_text(errors="replace")
        assert code == 0, stderr_text
        assert "Traceback" not in stderr_text, stderr_text
        assert "did not finish in time" in stderr_text, "the reply was cut short"
        assert discord.dm_messages(ana) == [], "the unfinished reply is not left on Discord"
        assert discord.calls("delete_message"), "it was taken down"

    async with db.session() as session:
        messages = (await session.execute(select(Message.role, Message.content, Message.awaiting_reply))).all()
    assert [tuple(row) for row in messages] == [("user", "I climb on Sundays", True)], "answered at the next start"

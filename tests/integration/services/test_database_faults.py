"""Nothing said is lost, and nothing escapes, while PostgreSQL restarts or its connections are killed.

The restart and killed-connection tests run their own embedded server (never the session's shared one):
≥ 60 messages arrive over time while the server is restarted (``pg_ctl restart -m fast``) or every Hearth
connection is killed six times (``pg_terminate_backend``). Afterwards every message is a stored row, every
sender got an answer, and ``ConversationService.handle`` raised nothing.
"""

import asyncio
import json
import logging
from collections.abc import Callable, Coroutine
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, text

from bot.db.engine import Database
from bot.db.models import Message, UserFact
from bot.services.companion import CompanionContext
from bot.services.conversation import MEMORY_TROUBLE, ConversationService
from bot.services.incoming import IncomingMessage, Place, Reached
from bot.services.learning import Learner, LearningConfig
from bot.services.limits import TokenQuota
from bot.services.memory import MemoryService
from bot.services.personas import PersonaService
from tests.fakes.llm_server import FakeLLM, Reply
from tests.support.chat import RecordingReply, chat_model, conversation_service, eventually, message
from tests.support.embedding import shared_embedder
from tests.support.postgres import OwnPostgres

MESSAGES = 60
GAP_S = 0.05  # between two messages: the faults land while messages are arriving and being answered


async def send_through_faults(
    service: ConversationService, faults: dict[int, Callable[[], Coroutine[Any, Any, object]]]
) -> tuple[list[RecordingReply], list[BaseException]]:
    """Send MESSAGES messages GAP_S apart (guild mentions and DMs, each its own sender), running ``faults[i]``
    alongside just before message ``i``; returns each message's front end and what escaped ``handle``."""
    targets = [RecordingReply() for _ in range(MESSAGES)]
    escaped: list[BaseException] = []
    tasks: list[asyncio.Task[object]] = []

    async def one(index: int) -> None:
        text, user, name = f"message number {index}", 1000 + index, f"user{index}"
        if index % 2:  # a mention in one of the guild's channels
            incoming = message(text, user=user, name=name, channel=700 + index % 4, guild=42, mention=True)
        else:  # a DM
            incoming = message(text, user=user, name=name, channel=9000 + index)
        try:
            await service.handle(incoming, targets[index])
        except BaseException as exc:  # counting whatever escapes is the point
            escaped.append(exc)

    for index in range(MESSAGES):
        if index in faults:
            tasks.append(asyncio.create_task(faults[index]()))
        tasks.append(asyncio.create_task(one(index)))
        await asyncio.sleep(GAP_S)
    await asyncio.gather(*tasks)
    return targets, escaped


async def wired(db: Database, llm: FakeLLM) -> ConversationService:
    """The service as the bot wires it (memories, what Hearth knows, the guild's quota counted from the
    database), warmed up by one message in the guild."""
    memory = MemoryService(db, await shared_embedder())
    # The guild's quota counted from the database on every message.
    quota = TokenQuota(db, refresh_s=0.0)
    service = conversation_service(db, llm, memory=memory, companion=CompanionContext(db), quota=quota)
    await service.handle(message("warm up", user=1, guild=42, channel=700, mention=True), RecordingReply())
    await service.directory.update_guild_settings(Place(channel_id=700, guild_id=42), {"daily_token_quota": 10**9})
    return service


async def stored_user_messages(db: Database) -> int:
    async with db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(Message).where(Message.role == "user")) or 0)


async def test_nothing_is_lost_while_postgresql_restarts(
    own_server: OwnPostgres, own_db: Database, llm: FakeLLM
) -> None:
    service = await wired(own_db, llm)

    targets, escaped = await send_through_faults(service, {MESSAGES // 4: own_server.restart})

    assert escaped == []
    assert await stored_user_messages(own_db) == MESSAGES + 1
    assert [len(target.sent) for target in targets] == [1] * MESSAGES, "every sender is answered"


async def test_nothing_is_lost_while_connections_are_killed(
    own_server: OwnPostgres, own_db: Database, llm: FakeLLM
) -> None:
    service = await wired(own_db, llm)
    name = own_db.url.database
    assert name is not None

    async def kill() -> int:
        return await own_server.terminate_backends(name)

    faults: dict[int, Callable[[], Coroutine[Any, Any, object]]] = {5 + 9 * i: kill for i in range(6)}
    targets, escaped = await send_through_faults(service, faults)

    assert escaped == []
    assert await stored_user_messages(own_db) == MESSAGES + 1
    assert [len(target.sent) for target in targets] == [1] * MESSAGES, "every sender is answered"


async def test_storing_outlasts_a_long_fault_and_a_message_that_cannot_be_stored_is_answered_kindly(
    db: Database, llm: FakeLLM, caplog: pytest.LogCaptureFixture
) -> None:
    """Storing keeps trying for its time budget, not a number of tries: a fault that outlasts many tries is
    ridden out; a fault that outlasts the budget gets MEMORY_TROUBLE, and nothing raises."""
    service = conversation_service(db, llm, store_budget_s=60.0)
    caplog.set_level(logging.WARNING, logger="bot.services.conversation")

    async def table(old: str, new: str) -> None:
        async with db.session() as session:
            await session.execute(text(f"ALTER TABLE {old} RENAME TO {new}"))

    await table("messages", "messages_away")  # every try to store now fails
    try:
        target = RecordingReply()
        turn = asyncio.create_task(service.handle(message("are you there?"), target))
        await eventually(lambda: caplog.text.count("retrying in") >= 6, timeout_s=60)
    finally:
        await table("messages_away", "messages")
    outcome = await turn
    assert outcome.status == "replied" and len(target.sent) == 1
    assert await stored_user_messages(db) == 1

    short = conversation_service(db, llm, store_budget_s=0.5)
    await table("messages", "messages_away")
    try:
        target = RecordingReply()
        outcome = await short.handle(message("and now?"), target)
    finally:
        await table("messages_away", "messages")
    assert outcome.status == "apologised" and target.sent == [[MEMORY_TROUBLE]]


async def test_a_reply_written_while_the_connections_drop_is_kept_and_not_sent_again(
    own_server: OwnPostgres, own_db: Database, llm: FakeLLM
) -> None:
    """The connections die while the model writes (a restart, a failover): the reply already shown to the person
    is kept all the same, so the next turn remembers it and the next start does not answer the message again."""
    service = conversation_service(own_db, llm)
    await service.handle(message("hi, I'm Ana", user=7), RecordingReply())  # the pool now holds connections
    name = own_db.url.database
    assert name is not None

    async def connections_dropped_meanwhile(_body: dict[str, Any]) -> Reply:
        await own_server.terminate_backends(name)
        return Reply("Lovely to meet you, Ana!")

    llm.default = connections_dropped_meanwhile
    target = RecordingReply()
    assert (await service.handle(message("do you like tea?", user=7), target)).status == "replied"
    assert target.sent == [["Lovely to meet you, Ana!"]]

    llm.default = Reply("back again")
    after = conversation_service(own_db, llm)  # the next start
    caught_up = RecordingReply()

    async def target_for(incoming: IncomingMessage) -> Reached:
        return Reached(incoming, caught_up)

    assert await after.catch_up(timedelta(minutes=10), target_for) == 0
    assert caught_up.sent == [], "answered once, not again after a restart"
    await after.handle(message("and coffee?", user=7), RecordingReply())
    assert "Lovely to meet you, Ana!" in llm.chat_requests[-1].prompt_text(), "the reply is in the history"


async def test_a_learning_batch_cut_off_by_dropped_connections_is_learned_without_another_message(
    own_server: OwnPostgres, own_db: Database, llm: FakeLLM
) -> None:
    """The connections die while the model reads a batch (a restart, a failover): writing what it learned fails,
    and the batch is read again once the conversation has been quiet, not left until someone speaks there again
    or the bot restarts."""
    learner = Learner(
        own_db,
        chat_model(llm.base_url),
        await shared_embedder(),
        PersonaService(own_db),
        LearningConfig(model="fake-model", batch_messages=1, idle=timedelta(seconds=1), workers=1),
    )
    service = conversation_service(own_db, llm, learner=learner)
    name = own_db.url.database
    assert name is not None
    learning_calls = 0

    async def model(body: dict[str, Any]) -> Reply:
        nonlocal learning_calls
        if "response_format" not in body:
            return Reply("ok")
        learning_calls += 1
        if learning_calls == 1:
            await own_server.terminate_backends(name)
        fact = {"speaker": "Ana", "type": "work", "content": "works as a nurse", "confidence": 0.9}
        return Reply(json.dumps({"facts": [fact], "sentiment": 0.5, "intensity": 0.5}))

    llm.default = model
    await service.handle(message("I'm a nurse, back from a night shift", user=7), RecordingReply())
    learner.start()
    try:
        await eventually(lambda: learner.batches == 1, timeout_s=15)
    finally:
        await learner.stop()
    assert learning_calls == 2
    async with own_db.session() as session:
        assert list((await session.scalars(select(UserFact.fact_content))).all()) == ["works as a nurse"]

"""Catching up after a restart, on both backends: only what is still owed a reply, recent enough, once, even
when two processes catch up at the same time."""

import asyncio
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from bot.db.engine import Database
from bot.db.models import Message
from bot.services.conversation import ConversationService
from bot.services.incoming import IncomingMessage, Reached
from tests.fakes.llm_server import FakeLLM, Reply, Stall
from tests.support.chat import RecordingReply, conversation_service, eventually, message

WINDOW = timedelta(minutes=10)


async def stored(db: Database) -> int:
    async with db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(Message).where(Message.role == "user")) or 0)


async def stopped_before_replying(
    db: Database, service: ConversationService, llm: FakeLLM, *incoming: IncomingMessage
) -> None:
    """Hand the messages in, one after the other, and stop while the model is still writing the first reply (as
    a crash would): all of them stored, none answered."""
    calls, rows = len(llm.chat_requests), await stored(db)
    llm.script(Stall(60))
    turns = [asyncio.create_task(service.handle(incoming[0], RecordingReply()))]
    await eventually(lambda: len(llm.chat_requests) > calls)
    turns += [asyncio.create_task(service.handle(later, RecordingReply())) for later in incoming[1:]]
    while await stored(db) < rows + len(incoming):  # noqa: ASYNC110 (polling the database)
        await asyncio.sleep(0.01)
    for turn in turns:
        turn.cancel()
    await asyncio.gather(*turns, return_exceptions=True)


async def test_only_messages_still_owed_a_reply_are_answered_once_in_order(db: Database, llm: FakeLLM) -> None:
    now = datetime.now(UTC)
    before = conversation_service(db, llm)
    llm.script(Reply("answered at the time"))
    await before.handle(message("answered already", user=1, channel=10), RecordingReply())
    before.rest(True)
    await before.handle(message("sent while resting", user=2, channel=20), RecordingReply())
    before.rest(False)
    await stopped_before_replying(db, before, llm, message("too long ago", user=3, channel=30, at=now - 2 * WINDOW))
    await stopped_before_replying(
        db,
        before,
        llm,
        message("first, just before the stop", user=4, channel=40, at=now - timedelta(minutes=2)),
        message("second, just before the stop", user=4, channel=40, at=now - timedelta(minutes=1)),
    )

    after = conversation_service(db, llm)  # a new process
    llm.script(Reply("I was away, sorry! Both, yes."))
    targets: dict[int, RecordingReply] = {}

    async def target_for(incoming: IncomingMessage) -> Reached:
        return Reached(incoming, targets.setdefault(incoming.place.channel_id, RecordingReply()))

    assert await after.catch_up(WINDOW, target_for) == 1
    assert {channel: target.sent for channel, target in targets.items()} == {40: [["I was away, sorry! Both, yes."]]}
    prompt = llm.chat_requests[-1].body["messages"]
    assert "You were away for a while" in prompt[0]["content"]
    assert prompt[-1] == {"role": "user", "content": "first, just before the stop\nsecond, just before the stop"}

    assert await conversation_service(db, llm).catch_up(WINDOW, target_for) == 0, "once: not after a second restart"


async def test_two_processes_catching_up_at_once_answer_each_message_once(db: Database, llm: FakeLLM) -> None:
    before = conversation_service(db, llm)
    for user in range(5):
        await stopped_before_replying(
            db, before, llm, message(f"hello from {user}", user=100 + user, channel=200 + user)
        )
    first, second = conversation_service(db, llm), conversation_service(db, llm)
    llm.default = Reply("back now")

    async def target_for(incoming: IncomingMessage) -> Reached:
        return Reached(incoming, RecordingReply())

    answered = await asyncio.gather(first.catch_up(WINDOW, target_for), second.catch_up(WINDOW, target_for))
    assert sum(answered) == 5


async def test_a_channel_this_process_cannot_reach_is_left_for_one_that_can(db: Database, llm: FakeLLM) -> None:
    before = conversation_service(db, llm)
    await stopped_before_replying(db, before, llm, message("hi, other shard", user=7, channel=70))
    llm.default = Reply("back now")

    async def unreachable(incoming: IncomingMessage) -> Reached | None:
        return None

    assert await conversation_service(db, llm).catch_up(WINDOW, unreachable) == 0
    reached = RecordingReply()

    async def reachable(incoming: IncomingMessage) -> Reached:
        return Reached(incoming, reached)

    assert await conversation_service(db, llm).catch_up(WINDOW, reachable) == 1
    assert reached.sent == [["back now"]]


async def test_messages_another_process_answers_do_not_keep_this_ones_waiting(db: Database, llm: FakeLLM) -> None:
    """After a long outage, the oldest waiting messages may all be other shards' (or in channels no process can
    reach any more): this process reads past them to its own."""
    before = conversation_service(db, llm)
    for n in range(5):
        assert (await before.keep(message(f"hi, other shard {n}", user=300 + n, channel=300 + n))).status == "kept"
    assert (await before.keep(message("hi, this shard", user=400, channel=400))).status == "kept"
    llm.default = Reply("back now")
    reached = RecordingReply()

    async def this_shard(incoming: IncomingMessage) -> Reached | None:
        return Reached(incoming, reached) if incoming.place.channel_id == 400 else None

    assert await conversation_service(db, llm).catch_up(WINDOW, this_shard, limit=2) == 1
    assert reached.sent == [["back now"]]
    assert llm.chat_requests[-1].body["messages"][-1] == {"role": "user", "content": "hi, this shard"}

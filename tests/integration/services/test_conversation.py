"""The conversation pipeline on a real database, against the fake LLM server, on both backends."""

import asyncio
import contextlib
import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import delete, func, select, update

from bot.db.engine import Database
from bot.db.models import Conversation, Message, Persona
from bot.domain.guild_settings import InvalidSetting
from bot.services.conversation import RESTING, ConversationService
from bot.services.directory import Directory
from bot.services.guild_config import GuildConfigService
from bot.services.incoming import Place
from bot.services.personas import FALLBACK_APOLOGY, PersonaService
from tests.fakes.llm_server import BrokenStream, Fail, FakeLLM, Reply, Stall
from tests.support.chat import RecordingReply, conversation_service, eventually, message


@pytest.fixture
def service(db: Database, llm: FakeLLM) -> ConversationService:
    return conversation_service(db, llm)


async def stored(db: Database, role: str | None = None) -> list[Message]:
    async with db.session() as session:
        statement = select(Message).order_by(Message.id)
        if role:
            statement = statement.where(Message.role == role)
        return list((await session.scalars(statement)).all())


async def test_a_dm_is_answered_and_both_turns_are_stored(
    db: Database, llm: FakeLLM, service: ConversationService
) -> None:
    llm.script(Reply("Hello Ana! How was the climb?", prompt_tokens=321, completion_tokens=9))
    target = RecordingReply()
    outcome = await service.handle(message("hi there"), target)

    assert outcome.status == "replied" and outcome.answered_messages == 1
    assert target.sent == [["Hello Ana! How was the climb?"]] and target.typing_entered == 1
    user_turn, reply = await stored(db)
    assert (user_turn.role, user_turn.content) == ("user", "hi there")
    assert (reply.role, reply.content, reply.prompt_tokens, reply.completion_tokens) == (
        "assistant",
        "Hello Ana! How was the climb?",
        321,
        9,
    )
    assert reply.model == "fake-model" and reply.latency_ms is not None and reply.user_id == user_turn.user_id
    prompt = llm.chat_requests[0].body
    assert prompt["model"] == "fake-model" and prompt["stream"] is True
    assert prompt["messages"][0]["role"] == "system" and "You are Hearth." in prompt["messages"][0]["content"]
    assert prompt["messages"][-1] == {"role": "user", "content": "hi there"}


async def test_earlier_turns_are_in_the_prompt(llm: FakeLLM, service: ConversationService) -> None:
    llm.script(Reply("Nice to meet you, Ana."), Reply("You said your name is Ana."))
    await service.handle(message("my name is Ana and I climb"), RecordingReply())
    await service.handle(message("what did I tell you?"), RecordingReply())
    messages = llm.chat_requests[1].body["messages"]
    assert [m["content"] for m in messages[1:]] == [
        "my name is Ana and I climb",
        "Nice to meet you, Ana.",
        "what did I tell you?",
    ]


async def test_messages_sent_while_writing_are_answered_together_once(
    db: Database, llm: FakeLLM, service: ConversationService
) -> None:
    llm.script(Reply("a slow first answer " * 5, chunk_size=10, delay_between_chunks=0.05), Reply("both at once"))
    first = asyncio.create_task(service.handle(message("first"), RecordingReply()))
    await eventually(lambda: llm.chat_requests)
    second_target, third_target = RecordingReply(), RecordingReply()
    second = asyncio.create_task(service.handle(message("second"), second_target))
    await asyncio.sleep(0.05)
    third = asyncio.create_task(service.handle(message("third"), third_target))
    outcomes = await asyncio.gather(first, second, third)

    assert [o.status for o in outcomes] == ["replied", "replied", "queued"]
    assert outcomes[1].answered_messages == 2
    assert len(llm.chat_requests) == 2
    assert llm.chat_requests[1].body["messages"][-1]["content"] == "second\nthird"
    assert second_target.sent == [["both at once"]] and third_target.sent == []
    assert [m.content for m in await stored(db, "user")] == ["first", "second", "third"]


async def test_within_the_cooldown_a_user_waits_and_what_they_send_meanwhile_joins_the_turn(
    db: Database, llm: FakeLLM
) -> None:
    service = conversation_service(db, llm, cooldown_s=1.0)
    llm.script(Reply("first answer"), Reply("both at once"))
    assert (await service.handle(message("first"), RecordingReply())).status == "replied"
    # Answered already, so without a cooldown "second" would be answered alone, at once.
    second = asyncio.create_task(service.handle(message("second"), RecordingReply()))
    async with asyncio.timeout(5):
        while len(await stored(db, "user")) < 2:  # noqa: ASYNC110 (polling the database: "second" waits its turn)
            await asyncio.sleep(0.01)
    third = await service.handle(message("third"), RecordingReply())
    assert third.status == "queued" and len(llm.chat_requests) == 1
    answered = await second
    assert (answered.status, answered.answered_messages) == ("replied", 2)
    assert len(llm.chat_requests) == 2
    assert llm.chat_requests[1].body["messages"][-1]["content"] == "second\nthird"
    other = await service.handle(message("hi", user=12, name="bo"), RecordingReply())
    assert other.status == "replied", "the cooldown is per user"


async def test_a_turn_cancelled_during_the_cooldown_does_not_silence_the_user(db: Database, llm: FakeLLM) -> None:
    """A handler cancelled while its user waits out the cooldown (the bot stopping, a task torn down) leaves
    the message stored; the user's next message gets a turn of its own rather than joining one that is gone."""
    service = conversation_service(db, llm, cooldown_s=0.5)
    llm.script(Reply("first answer"), Reply("still here"))
    assert (await service.handle(message("first"), RecordingReply())).status == "replied"
    waiting = asyncio.create_task(service.handle(message("second"), RecordingReply()))
    async with asyncio.timeout(5):
        while len(await stored(db, "user")) < 2:  # noqa: ASYNC110 (polling the database: "second" waits its turn)
            await asyncio.sleep(0.01)
    waiting.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await waiting
    target = RecordingReply()
    later = await service.handle(message("third"), target)
    assert later.status == "replied" and target.sent == [["still here"]]
    assert llm.chat_requests[-1].body["messages"][-1]["content"] == "third"


async def test_the_owners_rest_and_a_spent_quota_keep_the_message_and_call_no_model(db: Database, llm: FakeLLM) -> None:
    service = conversation_service(db, llm)
    service.rest(True)
    target = RecordingReply()
    outcomes = [await service.handle(message(text), target) for text in ("you there?", "hello??")]
    assert [o.status for o in outcomes] == ["held", "held"]
    assert target.sent == [[RESTING]], "told once"
    assert llm.chat_requests == []
    assert [m.content for m in await stored(db, "user")] == ["you there?", "hello??"]
    service.rest(False)
    llm.script(Reply("back!"))
    assert (await service.handle(message("and now?"), RecordingReply())).status == "replied"


async def test_429_is_retried_after_retry_after(llm: FakeLLM, service: ConversationService) -> None:
    llm.script(Fail(429, retry_after=0.3), Reply("made it"))
    target = RecordingReply()
    outcome = await service.handle(message("hello?"), target)
    assert outcome.status == "replied" and target.sent == [["made it"]]
    first, second = llm.chat_requests
    assert second.at - first.at >= 0.3


@pytest.mark.parametrize(
    ("fault", "waited"),
    [
        (Fail(429, retry_after=2.0, retry_after_date=True), 1.0),  # a date has whole seconds: 1 to 2 s from now
        (Fail(429, retry_after_ms=1500), 1.5),
        (Fail(503, retry_after_ms=1500), 1.5),
    ],
    ids=["http-date", "retry-after-ms", "503-retry-after-ms"],
)
async def test_a_wait_asked_as_a_date_or_in_milliseconds_is_honoured(
    llm: FakeLLM, service: ConversationService, fault: Fail, waited: float
) -> None:
    llm.script(fault, Reply("made it"))
    target = RecordingReply()
    outcome = await service.handle(message("hello?"), target)
    assert outcome.status == "replied" and target.sent == [["made it"]]
    first, second = llm.chat_requests
    assert second.at - first.at >= waited * 0.95


@pytest.mark.parametrize(
    "fault",
    [
        Fail(429, retry_after=3600),
        Fail(429, retry_after=3600, retry_after_date=True),
        Fail(429, retry_after_ms=3_600_000),
    ],
    ids=["seconds", "http-date", "retry-after-ms"],
)
async def test_a_wait_asked_beyond_the_retry_budget_ends_the_turn_at_once(
    db: Database, llm: FakeLLM, service: ConversationService, fault: Fail
) -> None:
    llm.script(fault, Reply("never sent"))
    target = RecordingReply()
    outcome = await service.handle(message("hello?"), target)
    assert outcome.status == "apologised" and len(llm.chat_requests) == 1
    assert [m.content for m in await stored(db)] == ["hello?"]


async def test_server_errors_timeouts_and_broken_streams_are_retried(db: Database, llm: FakeLLM) -> None:
    service = conversation_service(db, llm, timeout_s=0.3)
    llm.script(Fail(500), Stall(1.0), BrokenStream("partial answ", after_chars=7), Reply("finally whole"))
    target = RecordingReply()
    outcome = await service.handle(message("hello?"), target)
    assert outcome.status == "replied" and target.sent == [["finally whole"]]
    assert len(llm.chat_requests) == 4
    assert [m.content for m in await stored(db, "assistant")] == ["finally whole"]


async def test_when_the_model_keeps_failing_hearth_apologises_and_keeps_the_message(db: Database, llm: FakeLLM) -> None:
    service = conversation_service(db, llm, budget_s=0.6)
    llm.script(Fail(500), Fail(502), Fail(503), Fail(500), Fail(500), Fail(500))
    target = RecordingReply()
    outcome = await service.handle(message("are you there?"), target)

    assert outcome.status == "apologised"
    assert target.sent == [[FALLBACK_APOLOGY]] or target.sent[0][0].startswith("Sorry")
    assert [m.content for m in await stored(db)] == ["are you there?"]

    llm._script.clear()
    llm.script(Reply("I'm back."))
    again = RecordingReply()
    assert (await service.handle(message("now?"), again)).status == "replied"
    assert again.sent == [["I'm back."]]
    # The unanswered message stays in the history the model sees.
    assert [m["content"] for m in llm.chat_requests[-1].body["messages"][1:]] == ["are you there?", "now?"]


async def test_a_refused_request_is_not_retried(llm: FakeLLM, service: ConversationService) -> None:
    llm.script(Fail(401, message="bad key"), Reply("never sent"))
    outcome = await service.handle(message("hi"), RecordingReply())
    assert outcome.status == "apologised" and len(llm.chat_requests) == 1


async def test_an_answer_the_endpoint_withholds_for_its_content_is_apologised_for_at_once(
    db: Database, llm: FakeLLM, service: ConversationService
) -> None:
    llm.script(*[Reply("", finish_reason="content_filter")] * 20)  # withheld however often it is asked
    outcome = await service.handle(message("hi"), RecordingReply())
    assert outcome.status == "apologised" and len(llm.chat_requests) == 1
    assert [m.content for m in await stored(db)] == ["hi"]


async def test_an_answer_a_content_filter_cuts_part_way_is_shown_and_kept_as_cut(
    db: Database, llm: FakeLLM, service: ConversationService
) -> None:
    cut = "Once upon a time a dragon"
    llm.script(Reply(cut, finish_reason="content_filter"), Reply("never asked"))
    target = RecordingReply()
    outcome = await service.handle(message("tell me a story"), target)

    assert outcome.status == "replied" and len(llm.chat_requests) == 1
    (shown,) = target.sent
    assert shown[0].startswith(cut) and shown[-1] != cut and "content filter" in shown[-1]
    assert [m.content for m in await stored(db, "assistant")] == ["".join(shown)]


async def test_an_answer_cut_off_at_its_max_tokens_is_shown_as_cut_and_the_log_says_so(
    db: Database, llm: FakeLLM, service: ConversationService, caplog: pytest.LogCaptureFixture
) -> None:
    """A reasoning model's thinking counts in max_tokens on most servers: what is left of the answer may stop
    mid-sentence."""
    cut = "First, preheat the oven to 200 degrees. Then"
    llm.script(Reply(cut, finish_reason="length"))
    target = RecordingReply()
    outcome = await service.handle(message("how do I bake bread?"), target)

    assert outcome.status == "replied" and len(llm.chat_requests) == 1
    (shown,) = target.sent
    assert shown[0].startswith(cut) and shown[-1] != cut and "ran out of room" in shown[-1]
    assert [m.content for m in await stored(db, "assistant")] == ["".join(shown)]
    assert "LLM_MAX_TOKENS" in caplog.text


@pytest.mark.parametrize(
    "all_thinking",
    [
        Reply("<think>Bread. Let me weigh every recipe I know, one by one, starting with</think>\n\n"),
        Reply("", reasoning="Bread. Let me weigh every recipe I know, one by one, starting with"),
    ],
    ids=["think-tags", "reasoning-content"],
)
async def test_an_answer_that_is_all_thinking_is_apologised_for_at_once_and_the_log_says_to_give_it_room(
    db: Database, llm: FakeLLM, caplog: pytest.LogCaptureFixture, all_thinking: Reply
) -> None:
    """Some servers end a reasoning model's answer with finish_reason "stop" when its thinking took every token:
    nothing is left once the thinking is hidden. Asking again with the same room ends the same way, while the
    person waits out the whole retry budget for an apology and the log speaks only of an empty answer."""
    caplog.set_level(logging.WARNING)
    service = conversation_service(db, llm, budget_s=3.0)
    llm.script(*[all_thinking] * 30)
    target = RecordingReply()
    outcome = await service.handle(message("how do I bake bread?"), target)

    assert outcome.status == "apologised" and target.sent == [[outcome.reply]]
    assert len(llm.chat_requests) == 1
    assert len([record for record in caplog.records if "LLM_MAX_TOKENS" in record.getMessage()]) == 1
    assert [m.content for m in await stored(db)] == ["how do I bake bread?"]


@pytest.mark.parametrize(
    "end",
    [Reply("First, preheat the oven. Then", finish_reason="length"), Reply("", reasoning="Bread. " * 40)],
    ids=["cut", "all-thinking"],
)
async def test_a_reply_out_of_the_personas_own_max_tokens_is_logged_with_that_setting_to_raise(
    db: Database, llm: FakeLLM, service: ConversationService, caplog: pytest.LogCaptureFixture, end: Reply
) -> None:
    """A persona that sets its own max_tokens gives its replies that room, whatever LLM_MAX_TOKENS says: raising
    LLM_MAX_TOKENS, as the log said, changed nothing."""
    caplog.set_level(logging.WARNING)
    persona = await PersonaService(db).ensure_default()
    async with db.session() as session:
        await session.execute(
            update(Persona).where(Persona.id == persona.id).values(config={**persona.config, "max_tokens": 300})
        )
    llm.script(end)
    await service.handle(message("how do I bake bread?"), RecordingReply())

    assert [request.body["max_tokens"] for request in llm.chat_requests] == [300]
    advice = [record.getMessage() for record in caplog.records if "give it more" in record.getMessage()]
    assert len(advice) == 1 and f"persona {persona.name}" in advice[0] and "LLM_MAX_TOKENS" not in advice[0]


async def test_a_database_error_after_the_model_answered_still_delivers(
    db: Database, llm: FakeLLM, service: ConversationService, caplog: pytest.LogCaptureFixture
) -> None:
    llm.script(Reply("worth keeping " * 20, chunk_size=20, delay_between_chunks=0.05))
    target = RecordingReply()
    turn = asyncio.create_task(service.handle(message("hi"), target))
    await eventually(lambda: target.previews)
    async with db.session() as session:  # the conversation vanishes while the model writes
        await session.execute(delete(Conversation))
    outcome = await turn

    assert outcome.status == "replied" and target.sent == [["worth keeping " * 20]]
    assert "reply delivered but not stored" in caplog.text
    llm.script(Reply("still fine"))
    assert (await service.handle(message("hello again"), RecordingReply())).status == "replied"


async def test_streaming_previews_are_throttled(llm: FakeLLM, service: ConversationService) -> None:
    llm.script(Reply("x" * 60, chunk_size=2, delay_between_chunks=0.02))  # ~0.6 s of streaming
    target = RecordingReply()
    started = time.monotonic()
    await service.handle(message("stream please"), target)
    elapsed = time.monotonic() - started
    assert 2 <= len(target.previews) <= elapsed / 0.2 + 1, "first text at once, then at most one per interval"
    assert all(p != "x" * 60 for p in target.previews[:1])
    assert target.sent == [["x" * 60]]


async def test_a_new_conversation_starts_after_the_idle_gap(db: Database, llm: FakeLLM) -> None:
    start = datetime(2026, 11, 1, 12, tzinfo=UTC)
    now = [start]
    service = conversation_service(db, llm, clock=lambda: now[0])
    for text, offset in [
        ("morning", timedelta(0)),
        ("still here", timedelta(minutes=59)),
        ("evening", timedelta(hours=3)),
    ]:
        now[0] = start + offset
        await service.handle(message(text, at=now[0]), RecordingReply())
    async with db.session() as session:
        conversations = (await session.scalars(select(Conversation).order_by(Conversation.id))).all()
    assert [c.is_active for c in conversations] == [False, True]
    assert conversations[0].message_count == 4 and conversations[1].message_count == 2
    assert [m["content"] for m in llm.chat_requests[-1].body["messages"][1:]] == ["evening"]


async def test_guild_rules_decide_who_is_answered_and_only_answered_messages_are_stored(
    db: Database, llm: FakeLLM, service: ConversationService
) -> None:
    guild = 9000
    await service.directory.update_guild_settings(
        Place(channel_id=1, guild_id=guild, guild_name="Cosy Corner"),
        {"chat_channels": [701], "blocked_channels": [702], "blocked_users": [66]},
    )
    outcomes = [
        await service.handle(message("anyone?", channel=701, guild=guild), RecordingReply()),
        await service.handle(message("just us humans", channel=703, guild=guild), RecordingReply()),
        await service.handle(message("hey Hearth", channel=703, guild=guild), RecordingReply()),
        await service.handle(message("@Hearth hi", channel=702, guild=guild, mention=True), RecordingReply()),
        await service.handle(message("me too", user=66, channel=701, guild=guild), RecordingReply()),
    ]
    assert [o.status for o in outcomes] == ["replied", "ignored", "replied", "ignored", "ignored"]
    assert [m.content for m in await stored(db, "user")] == ["anyone?", "hey Hearth"]


async def test_admins_block_people_and_channels_and_gate_by_role(
    db: Database, llm: FakeLLM, service: ConversationService
) -> None:
    """What /config block-user, block-channel and roles change: a blocked person's messages are neither
    answered nor stored (so never learned from) until unblocked; with roles set, only their members."""
    guild, place = 9100, Place(channel_id=1, guild_id=9100, guild_name="Cosy Corner")
    config = GuildConfigService(service.directory)

    async def status(text: str, **kwargs: Any) -> str:
        return (await service.handle(message(text, guild=guild, mention=True, **kwargs), RecordingReply())).status

    assert await status("hi", user=66) == "replied"  # the guild is known from here on
    await config.block_user(place, 66)
    await config.block_channel(place, 702)
    calls = len(llm.chat_requests)
    assert [await status("me again", user=66), await status("in here?", user=12, channel=702)] == ["ignored"] * 2
    assert len(llm.chat_requests) == calls
    await config.unblock_user(place, 66)
    assert await status("back?", user=66) == "replied"
    await config.add_role(place, 555)
    assert await status("no role", user=12) == "ignored"
    assert await status("with the role", user=12, role_ids=frozenset({555, 9})) == "replied"
    await config.remove_role(place, 555)
    assert await status("anyone now", user=12) == "replied"
    assert [m.content for m in await stored(db, "user")] == ["hi", "back?", "with the role", "anyone now"]
    shown = await config.show(place)
    listed = (shown.blocked_users, shown.blocked_channels, shown.allowed_roles)
    assert listed == (frozenset(), frozenset({702}), frozenset())
    with pytest.raises(InvalidSetting, match="not blocked"):
        await config.unblock_user(place, 66)


async def test_a_reset_starts_the_channels_next_turn_with_no_history(
    db: Database, llm: FakeLLM, service: ConversationService
) -> None:
    for channel in (31, 32):
        await service.handle(message("my cat is called Miso", channel=channel), RecordingReply())
    assert await service.reset(31) is True
    assert await service.reset(31) is False, "nothing is going on there any more"
    await service.handle(message("what is my cat called?", channel=31), RecordingReply())
    assert [m["content"] for m in llm.chat_requests[-1].body["messages"][1:]] == ["what is my cat called?"]
    await service.handle(message("and now?", channel=32), RecordingReply())
    kept = [m["content"] for m in llm.chat_requests[-1].body["messages"][1:]]
    assert kept[0] == "my cat is called Miso" and kept[-1] == "and now?"


async def test_other_speakers_are_named_in_a_guild_prompt(llm: FakeLLM, service: ConversationService) -> None:
    await service.handle(
        message("I love climbing", user=1, name="bo", channel=7, guild=1, mention=True), RecordingReply()
    )
    await service.handle(message("me too!", user=2, name="ana", channel=7, guild=1, mention=True), RecordingReply())
    messages = llm.chat_requests[-1].body["messages"]
    assert [m["content"] for m in messages[1:]] == ["Bo: I love climbing", "ok", "Ana: me too!"]
    assert "#general in Cosy Corner" in messages[0]["content"]


async def test_different_channels_are_answered_concurrently(llm: FakeLLM, service: ConversationService) -> None:
    llm.script(Reply("slow " * 20, chunk_size=5, delay_between_chunks=0.05))  # about a second
    slow = asyncio.create_task(service.handle(message("slow one", channel=1), RecordingReply()))
    await eventually(lambda: llm.chat_requests)
    fast = await service.handle(message("quick one", user=12, channel=2), RecordingReply())
    assert fast.status == "replied" and not slow.done(), "the second channel did not wait for the first"
    assert (await slow).status == "replied"


async def test_a_user_erased_elsewhere_does_not_break_the_cache(db: Database, llm: FakeLLM) -> None:
    service = conversation_service(db, llm)
    directory: Directory = service.directory
    await service.handle(message("hi"), RecordingReply())
    async with db.session() as session:
        from bot.db.models import User

        await session.execute(delete(User))
    assert (await service.handle(message("hi again"), RecordingReply())).status == "replied"
    directory.forget()
    async with db.session() as session:
        assert await session.scalar(select(func.count()).select_from(Message)) == 2

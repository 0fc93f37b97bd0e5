"""Whatever a user can send is stored and answered with its memories, on both backends: lone surrogates and NUL
in the text or in any name, and Discord ids up to 2**64 - 1."""

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from bot.db.engine import Database
from bot.db.models import Conversation, Guild, Message, User
from bot.db.repositories.guilds import GuildRepository
from bot.db.repositories.users import UserRepository
from bot.services.embedding_worker import EmbeddingWorker
from bot.services.incoming import Author, IncomingMessage, Place
from bot.services.memory import MemoryService
from tests.fakes.llm_server import FakeLLM, Reply
from tests.support.chat import RecordingReply, conversation_service, message
from tests.support.embedding import shared_embedder

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
HUGE = 2**64 - 1  # the largest id a Discord snowflake's 64 bits can hold


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


async def stored_user_texts(db: Database) -> list[str]:
    async with db.session() as session:
        statement = select(Message.content).where(Message.role == "user").order_by(Message.id)
        return list((await session.scalars(statement)).all())


async def test_a_lone_surrogate_is_stored_answered_and_recalled_with_memories(db: Database, llm: FakeLLM) -> None:
    memory = MemoryService(db, await shared_embedder())
    worker = EmbeddingWorker(db, memory.embedder)
    worker.start()
    clock = Clock(NOW)
    service = conversation_service(db, llm, memory=memory, worker=worker, clock=clock)
    llm.script(Reply("A beagle! Lovely."), Reply("Toast, of course."))
    await service.handle(message("my beagle is called Toast", at=NOW), RecordingReply())
    await worker.flush()

    clock.now = NOW + timedelta(days=10)  # a new conversation: only memory can bring the beagle back
    target = RecordingReply()
    outcome = await service.handle(message("what is my dog called? \ud800", at=clock.now), target)
    await worker.stop()

    assert outcome.status == "replied" and target.sent == [["Toast, of course."]]
    assert await stored_user_texts(db) == ["my beagle is called Toast", "what is my dog called? \ufffd"]
    system = llm.chat_requests[-1].body["messages"][0]["content"]
    assert 'Ana said: "my beagle is called Toast"' in system, "recalled with its memories"


async def test_nul_and_surrogates_in_every_name_and_the_text_are_stored_and_answered(
    db: Database, llm: FakeLLM
) -> None:
    service = conversation_service(db, llm)
    llm.script(Reply("Hello!"), Reply("Hello again!"))
    base = message("hi \x00there\ud83d", guild=901, mention=True, at=NOW)
    hostile = replace(
        base,
        author=Author(
            discord_id=11,
            username="an\x00a\udfff",
            display_name="A\x00na\ud800",
            nickname="\ud800\x00",
            roles=("r\x00",),
        ),
        place=Place(channel_id=500, channel_name="gen\x00eral\udc00", guild_id=901, guild_name="Co\x00sy\ud800"),
    )
    target = RecordingReply()
    outcome = await service.handle(hostile, target)

    assert outcome.status == "replied" and target.sent == [["Hello!"]]
    assert await stored_user_texts(db) == ["hi there\ufffd"]
    async with db.session() as session:
        user = await UserRepository(session).get_by_discord_id(11)
        guild = await GuildRepository(session).get_by_discord_id(901)
    assert user is not None and (user.discord_username, user.discord_display_name) == ("ana\ufffd", "Ana\ufffd")
    assert guild is not None and guild.name == "Cosy\ufffd"
    assert hostile.message_id is not None
    again = await service.handle(replace(hostile, text="still me", message_id=hostile.message_id + 1), target)
    assert again.status == "replied"


async def test_discord_ids_up_to_two_to_the_64_are_stored_answered_and_found_again(db: Database, llm: FakeLLM) -> None:
    service = conversation_service(db, llm)
    llm.script(Reply("Hi, big number."), Reply("Still here."))

    def huge(text: str, message_id: int) -> IncomingMessage:
        incoming = message(text, user=HUGE, channel=HUGE - 1, guild=HUGE - 2, mention=True, at=NOW)
        return replace(incoming, message_id=message_id)

    first = await service.handle(huge("hello", HUGE - 3), RecordingReply())
    service.forget_cached()  # the second message finds everything by its Discord ids, not from a cache
    second = await service.handle(huge("and again", HUGE - 4), RecordingReply())

    assert (first.status, second.status) == ("replied", "replied")
    async with db.session() as session:
        user = await UserRepository(session).get_by_discord_id(HUGE)
        guild = await GuildRepository(session).get_by_discord_id(HUGE - 2)
        conversations = (await session.scalars(select(Conversation))).all()
        messages = (await session.scalars(select(Message).where(Message.role == "user").order_by(Message.id))).all()
        users = (await session.scalars(select(User.discord_id))).all()
        guilds = (await session.scalars(select(Guild.discord_id))).all()
    assert user is not None and guild is not None
    assert (list(users), list(guilds)) == ([HUGE], [HUGE - 2])
    assert [c.channel_id for c in conversations] == [HUGE - 1], "one conversation: the channel was found again"
    assert [(m.content, m.discord_message_id) for m in messages] == [("hello", HUGE - 3), ("and again", HUGE - 4)]

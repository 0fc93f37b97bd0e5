"""The durable memory pipeline, on real databases: a turn's memory is written with the message (no vector yet),
and the embedding worker fills the vectors from the database, oldest first, whatever the load, across restarts
and across processes sharing PostgreSQL."""

import asyncio
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import cast

import pytest
from sqlalchemy import Table, func, select

from bot.db.engine import Database
from bot.db.models import Memory, Message
from bot.db.repositories.memories import MemoryRepository, NewMemory
from bot.db.repositories.users import UserRepository
from bot.domain.recall import RecallScope
from bot.llm.embeddings import LocalEmbedder, Vectors
from bot.services.activity import ReplyActivity
from bot.services.embedding_worker import EmbeddingWorker
from bot.services.memory import MemoryService
from tests.fakes.llm_server import FakeLLM, Reply
from tests.support.chat import RecordingReply, conversation_service, message
from tests.support.embedding import shared_embedder

GUILD = 901


class RecordingEmbedder:
    """The real local model, slowed down (``delay_s`` per call, as a much slower machine would be) and
    recording every text it was asked to embed in the background."""

    def __init__(self, inner: LocalEmbedder, *, delay_s: float = 0.0) -> None:
        self.inner = inner
        self.model_name = inner.model_name
        self.dimension = inner.dimension
        self.delay_s = delay_s
        self.texts: list[str] = []

    async def embed(self, texts: Sequence[str]) -> Vectors:
        self.texts.extend(texts)
        await asyncio.sleep(self.delay_s)
        return await self.inner.embed(texts)

    async def embed_one(self, text: str) -> Vectors:
        return await self.inner.embed_one(text)

    def start_one(self, text: str) -> "asyncio.Future[Vectors]":
        return self.inner.start_one(text)

    async def aclose(self) -> None:
        return None


async def turns_and_memories(db: Database) -> tuple[int, int, int]:
    """Stored turns (with text), their memories, and how many of those have a vector from the model."""
    async with db.reading() as session:
        turns = await session.scalar(
            select(func.count()).select_from(Message).where(Message.role.in_(("user", "assistant")))
        )
        memories = await session.scalar(
            select(func.count(func.distinct(Memory.message_id))).where(Memory.message_id.is_not(None))
        )
        embedded = await session.scalar(
            select(func.count()).where(Memory.message_id.is_not(None), Memory.embedding.is_not(None))
        )
    return int(turns or 0), int(memories or 0), int(embedded or 0)


async def test_a_message_is_found_by_its_words_before_it_is_embedded(db: Database, llm: FakeLLM) -> None:
    embedder = await shared_embedder()
    memory = MemoryService(db, embedder)
    worker = EmbeddingWorker(db, embedder)  # not started: nothing embeds yet
    service = conversation_service(db, llm, memory=memory, worker=worker)
    llm.script(Reply("A beagle! Lovely."))
    await service.handle(message("my beagle is called Toast", guild=GUILD, mention=True), RecordingReply())

    assert await worker.backlog() == 2, "the message and the reply, each with its memory, neither embedded"
    async with db.reading() as session:
        rows = (await session.scalars(select(Memory).order_by(Memory.id))).all()
    assert [(m.content, m.embedding, m.context) for m in rows] == [
        ("my beagle is called Toast", None, None),
        ("A beagle! Lovely.", None, "Ana: my beagle is called Toast"),
    ]
    scope = RecallScope(user_id=rows[0].user_id or 0, guild_id=rows[0].guild_id)
    recalled = await memory.recall("what is Toast doing?", scope, now=datetime.now(UTC))
    assert [r.memory.content for r in recalled][:1] == ["my beagle is called Toast"], "found by its words"

    await worker.flush()
    assert await worker.backlog() == 0
    recalled = await memory.recall("my dog", scope, now=datetime.now(UTC))
    assert "my beagle is called Toast" in [r.memory.content for r in recalled], "and by meaning once embedded"


async def test_a_burst_far_above_the_embedding_rate_loses_nothing(db: Database, llm: FakeLLM) -> None:
    """200 messages arrive at once (with their replies, some answered together: over 200 turns); the worker
    embeds at most 16 every 0.1 s (about 160 a second at best, far below the rate they arrive): every stored
    turn still ends with its memory and a vector, each embedded once."""
    embedder = RecordingEmbedder(await shared_embedder(), delay_s=0.1)
    worker = EmbeddingWorker(db, embedder, batch_size=16, activity=ReplyActivity(), yield_s=0.01)
    worker.start()
    service = conversation_service(db, llm, memory=MemoryService(db, embedder), worker=worker)
    llm.default = Reply("Noted!")
    await asyncio.gather(
        *(
            service.handle(
                message(
                    f"burst message {i}",
                    user=100 + i % 20,
                    name=f"user{i % 20}",
                    channel=700 + i % 10,
                    guild=GUILD,
                    mention=True,
                ),
                RecordingReply(),
            )
            for i in range(200)
        )
    )
    turns, memories, _ = await turns_and_memories(db)
    assert turns == memories and turns > 200, "every turn's memory is written with it"
    assert await worker.backlog() > 0, "sanity: the embedding lags far behind the burst"

    async with asyncio.timeout(60):
        await worker.flush()
    await worker.stop()
    assert await turns_and_memories(db) == (turns, turns, turns)
    assert len(embedder.texts) == turns, "as many texts embedded as turns, all with a vector: each embedded once"


async def test_a_restart_continues_with_the_memories_left_without_a_vector(db: Database, llm: FakeLLM) -> None:
    slow = RecordingEmbedder(await shared_embedder(), delay_s=0.2)
    first = EmbeddingWorker(db, slow, batch_size=4)
    first.start()
    service = conversation_service(db, llm, memory=MemoryService(db, slow), worker=first)
    llm.default = Reply("Noted!")
    for i in range(30):
        await service.handle(message(f"turn {i}", guild=GUILD, mention=True), RecordingReply())
    await first.stop(timeout_s=0.05)  # a stop mid-batch: what was not embedded stays in the database
    left = await first.backlog()
    assert left > 0, "sanity: the stop left memories without a vector"

    again = RecordingEmbedder(await shared_embedder())
    restarted = EmbeddingWorker(db, again)
    restarted.start()
    async with asyncio.timeout(30):
        await restarted.flush()
    await restarted.stop()
    assert await turns_and_memories(db) == (60, 60, 60)
    assert len(again.texts) == left, "the restarted worker embedded exactly what was left"


async def test_two_processes_on_one_postgresql_never_embed_the_same_row_twice(pg: Database) -> None:
    """Two workers, each on its own engine (as two bot processes are), drain one backlog together."""
    other = Database(pg.url)
    async with pg.session() as session:
        user = await UserRepository(session).upsert(
            discord_id=11, username="ana", display_name="Ana", seen_at=datetime.now(UTC)
        )
        await MemoryRepository(session).add_many(
            [
                NewMemory(
                    kind="message", content=f"memory {i}", scope="dm", created_at=datetime.now(UTC), user_id=user.id
                )
                for i in range(300)
            ],
            None,
            None,
        )
    inner = await shared_embedder()
    recorders = [RecordingEmbedder(inner, delay_s=0.02), RecordingEmbedder(inner, delay_s=0.02)]
    workers = [
        EmbeddingWorker(pg, recorders[0], batch_size=8),
        EmbeddingWorker(other, recorders[1], batch_size=8),
    ]
    try:
        for worker in workers:
            worker.start()
        async with asyncio.timeout(60):
            await asyncio.gather(*(worker.flush() for worker in workers))
        for worker in workers:
            await worker.stop()
    finally:
        await other.dispose()

    embedded = Counter(text for recorder in recorders for text in recorder.texts)
    assert len(embedded) == 300 and max(embedded.values()) == 1, "every row embedded, none twice"
    assert all(recorder.texts for recorder in recorders), "sanity: both processes took part"
    async with pg.reading() as session:
        assert await MemoryRepository(session).count_unembedded() == 0


@pytest.mark.parametrize("stale", [False, True])
async def test_a_vector_made_from_a_context_erased_meanwhile_is_not_stored(db: Database, stale: bool) -> None:
    """The worker read a memory with a context; if the context is cleared before its vector is stored (an
    erasure), the vector is dropped and the memory embedded again from what it says now."""
    async with db.session() as session:
        user = await UserRepository(session).upsert(
            discord_id=11, username="ana", display_name="Ana", seen_at=datetime.now(UTC)
        )
        repo = MemoryRepository(session)
        [memory_id] = await repo.add_many(
            [
                NewMemory(
                    kind="message",
                    content="me too",
                    scope="dm",
                    created_at=datetime.now(UTC),
                    user_id=user.id,
                    context="Bo: I love Porto",
                )
            ],
            None,
            None,
        )
    embedder = await shared_embedder()
    async with db.reading() as session:
        claimed = await MemoryRepository(session).claim_unembedded(10)
    vectors = await embedder.embed(["Bo: I love Porto\nme too"])
    if stale:
        async with db.session() as session:
            await session.execute(
                cast(Table, Memory.__table__).update().where(Memory.id == memory_id).values(context=None)
            )
    async with db.session() as session:
        await MemoryRepository(session).fill_embeddings(claimed, vectors, embedder.model_name)
    async with db.reading() as session:
        assert (await MemoryRepository(session).count_unembedded()) == (1 if stale else 0)

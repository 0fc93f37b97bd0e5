"""The two searches recall fuses, on both backends: nearest vectors and BM25-ranked words, within a scope."""

import contextlib
from datetime import UTC, datetime

import numpy as np
from sqlalchemy import text

from bot.db.engine import Database
from bot.db.repositories.guilds import GuildRepository
from bot.db.repositories.memories import COMMON_WORD_DOCUMENTS, MemoryRepository, NewMemory
from bot.domain.recall import RecallScope

NOW = datetime(2026, 11, 23, tzinfo=UTC)


async def guild(db: Database) -> int:
    async with db.session() as session:
        return (await GuildRepository(session).upsert(discord_id=1, name="Cosy Corner")).id


def note(text: str, guild_id: int, speaker: str | None = "Ana") -> NewMemory:
    return NewMemory("message", text, "guild", NOW, guild_id=guild_id, channel_id=5, speaker_name=speaker)


async def test_rare_words_outrank_common_ones_and_speaker_and_date_are_searchable(db: Database) -> None:
    cosy = await guild(db)
    texts = [f"we had pizza again, round {i}" for i in range(40)] + ["the zebra at the zoo ate pizza"]
    async with db.session() as session:
        ids = await MemoryRepository(session).add_many([note(t, cosy) for t in texts], None, None)
        ben = (await MemoryRepository(session).add_many([note("nothing to report", cosy, speaker="Ben")], None, None))[
            0
        ]
    scope = RecallScope(user_id=0, guild_id=cosy)
    async with db.session() as session:
        repo = MemoryRepository(session)
        assert (await repo.by_words(["pizza", "zebra"], scope, limit=5, exclude_message_ids=[]))[0] == ids[-1]
        assert await repo.by_words(["ben"], scope, limit=5, exclude_message_ids=[]) == [ben]
        assert len(await repo.by_words(["november", "2026"], scope, limit=100, exclude_message_ids=[])) == 42
        assert await repo.by_words(["giraffe"], scope, limit=5, exclude_message_ids=[]) == []
        assert (
            await repo.by_words(["zebra"], RecallScope(user_id=0, guild_id=cosy + 1), limit=5, exclude_message_ids=[])
            == []
        )


async def test_nearest_vectors_come_first_and_other_models_are_ignored(db: Database) -> None:
    cosy = await guild(db)
    rng = np.random.default_rng(7)
    vectors = rng.normal(size=(20, 384)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    async with db.session() as session:
        repo = MemoryRepository(session)
        ids = await repo.add_many([note(f"memory {i}", cosy) for i in range(20)], vectors, "model-a")
        await repo.add_many([note("from another model", cosy)], vectors[:1], "model-b")
    query = vectors[3] + 0.1 * vectors[8]
    query /= np.linalg.norm(query)
    async with db.session() as session:
        found = await MemoryRepository(session).by_vector(
            query, RecallScope(0, cosy), model="model-a", limit=3, exclude_message_ids=[]
        )
    assert found[:2] == [ids[3], ids[8]] and len(found) == 3


async def test_postgresql_leaves_out_words_too_common_to_rank_by(pg: Database) -> None:
    cosy = await guild(pg)
    common = [note(f"hello there, number {i}", cosy) for i in range(COMMON_WORD_DOCUMENTS)]
    async with pg.session() as session:
        await MemoryRepository(session).add_many(common, None, None)
        rare = (await MemoryRepository(session).add_many([note("hello zebra", cosy)], None, None))[0]
    async with pg.session() as session:
        repo = MemoryRepository(session)
        scope = RecallScope(0, cosy)
        assert await repo.by_words(["hello", "zebra"], scope, limit=5, exclude_message_ids=[]) == [rare]
        assert await repo.by_words(["hello"], scope, limit=5, exclude_message_ids=[]) == []


async def test_every_postgresql_connection_keeps_filtered_vector_scans_going(pg: Database) -> None:
    """Set once per connection (no round trip per recall), and a rolled-back transaction does not undo it."""
    with contextlib.suppress(RuntimeError):
        async with pg.session() as session:
            await session.execute(text("SELECT 1"))
            raise RuntimeError("roll back")
    async with pg.session() as session:
        assert (await session.execute(text("SHOW hnsw.iterative_scan"))).scalar() == "relaxed_order"

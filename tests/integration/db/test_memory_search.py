"""The two searches recall fuses, on both backends: nearest vectors and BM25-ranked words, within a scope."""

import contextlib
from datetime import UTC, datetime

import numpy as np
from sqlalchemy import text

from bot.db.engine import HNSW_EF_SEARCH, Database
from bot.db.repositories.guilds import GuildRepository
from bot.db.repositories.memories import WORD_SEARCH_BUDGET, MemoryRepository, MemoryRow, NewMemory
from bot.db.repositories.users import UserRepository
from bot.domain.recall import RecallScope

NOW = datetime(2026, 11, 23, tzinfo=UTC)


async def guild(db: Database) -> int:
    async with db.session() as session:
        return (await GuildRepository(session).upsert(discord_id=1, name="Cosy Corner")).id


def ids(rows: list[MemoryRow]) -> list[int]:
    return [row.id for row in rows]


def note(text: str, guild_id: int, speaker: str | None = "Ana") -> NewMemory:
    return NewMemory("message", text, "guild", NOW, guild_id=guild_id, channel_id=5, speaker_name=speaker)


async def test_rare_words_outrank_common_ones_and_speaker_and_date_are_searchable(db: Database) -> None:
    cosy = await guild(db)
    texts = [f"we had pizza again, round {i}" for i in range(40)] + ["the zebra at the zoo ate pizza"]
    async with db.session() as session:
        added = await MemoryRepository(session).add_many([note(t, cosy) for t in texts], None, None)
        ben = (await MemoryRepository(session).add_many([note("nothing to report", cosy, speaker="Ben")], None, None))[
            0
        ]
    scope = RecallScope(user_id=0, guild_id=cosy)
    async with db.session() as session:
        repo = MemoryRepository(session)
        best = (await repo.by_words(["pizza", "zebra"], scope, limit=5, exclude_message_ids=[]))[0]
        assert (best.id, best.content, best.speaker_name) == (added[-1], texts[-1], "Ana")
        assert ids(await repo.by_words(["ben"], scope, limit=5, exclude_message_ids=[])) == [ben]
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
        added = await repo.add_many([note(f"memory {i}", cosy) for i in range(20)], vectors, "model-a")
        await repo.add_many([note("from another model", cosy)], vectors[:1], "model-b")
    query = vectors[3] + 0.1 * vectors[8]
    query /= np.linalg.norm(query)
    async with db.session() as session:
        found = await MemoryRepository(session).by_vector(
            query, RecallScope(0, cosy), model="model-a", limit=3, exclude_message_ids=[]
        )
    assert ids(found[:2]) == [added[3], added[8]] and len(found) == 3
    assert found[0].content == "memory 3"


async def test_postgresql_looks_up_only_the_rarest_words_within_its_budget(pg: Database) -> None:
    cosy = await guild(pg)
    common = [note(f"hello there, number {i}", cosy) for i in range(WORD_SEARCH_BUDGET)]
    async with pg.session() as session:
        await MemoryRepository(session).add_many(common, None, None)
        rare = (await MemoryRepository(session).add_many([note("hello zebra", cosy)], None, None))[0]
    async with pg.session() as session:
        repo = MemoryRepository(session)
        scope = RecallScope(0, cosy)
        assert ids(await repo.by_words(["hello", "zebra"], scope, limit=5, exclude_message_ids=[])) == [rare]
        assert await repo.by_words(["hello"], scope, limit=5, exclude_message_ids=[]) == []


async def test_postgresql_word_counts_stay_exact_as_memories_come_and_go(pg: Database) -> None:
    """The counts BM25 ranks by are kept per scope by triggers: after inserts, an edit, a move from a guild to
    someone's DMs and deletes they are still what counting the stored memories of each scope gives."""
    cosy = await guild(pg)
    async with pg.session() as session:
        ana = (await UserRepository(session).upsert(discord_id=11, username="ana", display_name="Ana", seen_at=NOW)).id
    counts = text(
        "SELECT guild_id, user_id, lexeme, documents FROM memory_word_counts WHERE documents <> 0 "
        "ORDER BY guild_id, user_id, lexeme"
    )
    folded = text("SELECT guild_id, user_id, lexeme, documents FROM memory_words ORDER BY guild_id, user_id, lexeme")
    recount = text(
        "SELECT coalesce(guild_id, 0), CASE WHEN guild_id IS NULL THEN user_id ELSE 0 END AS user_id, lexeme, "
        "count(*) FROM memories, unnest(tsvector_to_array(search_vector) || ''::text) AS lexeme "
        "GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
    )
    texts = ("zebras graze", "a zebra sings", "otters float", "otters, otters", "a zebra naps")
    async with pg.session() as session:
        added = await MemoryRepository(session).add_many([note(t, cosy) for t in texts], None, None)
        await MemoryRepository(session).add_many(
            [NewMemory("message", "my zebra secret", "dm", NOW, user_id=ana)], None, None
        )
    async with pg.session() as session:
        await session.execute(
            text("UPDATE memories SET search_text = 'Ana: giraffes graze' WHERE id = :id"), {"id": added[0]}
        )
        await session.execute(
            text("UPDATE memories SET guild_id = NULL, user_id = :ana, scope = 'dm' WHERE id = :id"),
            {"id": added[4], "ana": ana},
        )
        await session.execute(text("DELETE FROM memories WHERE id = ANY(:ids)"), {"ids": added[2:4]})
    async with pg.session() as session:
        # What a search reads is exact at once: the counts plus the changes not folded in yet.
        counted = [tuple(row) for row in (await session.execute(counts)).all()]
        assert counted == [tuple(row) for row in (await session.execute(recount)).all()]
        assert await MemoryRepository(session).fold_word_counts() > 0
    async with pg.session() as session:
        kept = [tuple(row) for row in (await session.execute(folded)).all()]
        assert kept == counted
        assert await session.scalar(text("SELECT count(*) FROM memory_word_changes")) == 0
        in_cosy = {lexeme: documents for guild_id, _, lexeme, documents in kept if guild_id == cosy}
        in_dms = {lexeme: documents for _, user_id, lexeme, documents in kept if user_id == ana}
        assert (in_cosy[""], in_cosy["zebra"], in_cosy["giraff"], "otter" in in_cosy) == (2, 1, 1, False)
        assert (in_dms[""], in_dms["zebra"]) == (2, 2)
        # A word no memory holds any more has no row at all (erased words must not stay behind at 0).
        assert await session.scalar(text("SELECT count(*) FROM memory_words WHERE documents <= 0")) == 0


async def test_storing_a_memory_never_waits_for_the_word_counts(pg: Database) -> None:
    """Writers append changes rather than update shared counts: while another transaction holds every count of
    a guild locked (as a slow writer used to), a memory of that guild is still stored at once, and a word search
    finds it."""
    cosy = await guild(pg)
    async with pg.session() as session:
        await MemoryRepository(session).add_many([note("the lighthouse keeper", cosy)], None, None)
        await MemoryRepository(session).fold_word_counts()
    async with pg.session() as holder:
        locked = await holder.scalar(
            text("SELECT count(*) FROM (SELECT 1 FROM memory_words WHERE guild_id = :guild FOR UPDATE) AS held"),
            {"guild": cosy},
        )
        assert locked >= 3, "sanity: the guild's counts are locked"
        async with pg.session() as writer:
            await writer.execute(text("SET LOCAL lock_timeout = '2s'"))
            await MemoryRepository(writer).add_many([note("another lighthouse story", cosy)], None, None)
    async with pg.session() as session:
        found = await MemoryRepository(session).by_words(
            ["lighthouse"], RecallScope(0, cosy), limit=5, exclude_message_ids=[]
        )
    assert sorted(row.content for row in found) == ["another lighthouse story", "the lighthouse keeper"]


async def test_every_postgresql_connection_is_set_up_for_recall(pg: Database) -> None:
    """Filtered vector scans keep going, statements are planned for their values; set once per connection
    (no round trip per recall), and a rolled-back transaction does not undo it."""
    with contextlib.suppress(RuntimeError):
        async with pg.session() as session:
            await session.execute(text("SELECT 1"))
            raise RuntimeError("roll back")
    async with pg.session() as session:
        assert (await session.execute(text("SHOW hnsw.iterative_scan"))).scalar() == "relaxed_order"
        assert (await session.execute(text("SHOW hnsw.ef_search"))).scalar() == str(HNSW_EF_SEARCH)
        assert (await session.execute(text("SHOW plan_cache_mode"))).scalar() == "force_custom_plan"


async def test_postgresql_keeps_a_memory_in_its_row_and_its_vector_there_always(pg: Database) -> None:
    """What a search reads stays in the row: out of line, each row found costs a TOAST fetch (seven page reads
    for the word search instead of one), which the planner does not count. A memory with its vector is past
    PostgreSQL's 2 kB TOAST threshold, yet stays whole while it fits a page; one too large for a page moves
    its text out of line, never its vector."""
    cosy = await guild(pg)
    vector = np.full((1, 384), 1 / np.sqrt(384), dtype=np.float32)
    chat_turn = " ".join(f"word{i}" for i in range(120))  # with its vector and word index, a 4 kB row
    essay = " ".join(f"word{i}" for i in range(1200))  # its word index alone is 17 kB
    async with pg.session() as session:
        added = await MemoryRepository(session).add_many(
            [note(chat_turn, cosy), note(essay, cosy)], np.vstack([vector, vector]), "model-a"
        )
        out_of_line = {
            memory_id: (words, embedding)
            for memory_id, words, embedding in await session.execute(
                text(
                    "SELECT id, pg_column_toast_chunk_id(search_vector) IS NOT NULL,"
                    " pg_column_toast_chunk_id(embedding) IS NOT NULL FROM memories WHERE id = ANY(:ids)"
                ),
                {"ids": added},
            )
        }
    assert out_of_line == {added[0]: (False, False), added[1]: (True, False)}

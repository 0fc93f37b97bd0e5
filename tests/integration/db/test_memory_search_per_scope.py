"""The searches at scale: each scope's word ranking is its own, and a filtered vector search finds its nearest."""

from datetime import UTC, datetime

import numpy as np
from sqlalchemy import text

from bot.db.engine import Database
from bot.db.repositories.guilds import GuildRepository
from bot.db.repositories.memories import MemoryRepository, NewMemory
from bot.db.repositories.users import UserRepository
from bot.domain.recall import RecallScope

NOW = datetime(2026, 12, 6, tzinfo=UTC)


async def places(db: Database) -> tuple[int, int, int, int]:
    """Two guilds and two users: (cosy, busy, ana, ben)."""
    async with db.session() as session:
        guilds = GuildRepository(session)
        cosy = (await guilds.upsert(discord_id=1, name="Cosy Corner")).id
        busy = (await guilds.upsert(discord_id=2, name="Busy Bazaar")).id
        users = UserRepository(session)
        ana = (await users.upsert(discord_id=11, username="ana", display_name="Ana", seen_at=NOW)).id
        ben = (await users.upsert(discord_id=12, username="ben", display_name="Ben", seen_at=NOW)).id
    return cosy, busy, ana, ben


def said(text: str, *, guild_id: int | None = None, user_id: int | None = None) -> NewMemory:
    scope = "guild" if guild_id is not None else "dm"
    return NewMemory("message", text, scope, NOW, user_id=user_id, guild_id=guild_id, channel_id=5)


async def test_a_scopes_word_ranking_does_not_move_when_other_scopes_talk(db: Database) -> None:
    """How rare a word is counts within the scope searched: another guild, or another person's DMs, talking
    about pizza all day does not make pizza a common word in this guild or in Ana's DMs."""
    cosy, busy, ana, ben = await places(db)
    # Here pizza is rare and zebras are everywhere: the one pizza memory ranks first.
    own = [
        "pizza on the roof terrace",
        "a zebra at the zoo gate",
        "the zebra keeper waved",
        "zebra stripes on my socks",
        "that zebra sneezed twice",
    ]
    async with db.session() as session:
        repo = MemoryRepository(session)
        in_cosy = await repo.add_many([said(text, guild_id=cosy, user_id=ana) for text in own], None, None)
        in_dms = await repo.add_many([said(text, user_id=ana) for text in own], None, None)
    cosy_scope, dm_scope = RecallScope(ana, cosy), RecallScope(ana, None)

    async def rankings() -> tuple[list[int], list[int]]:
        async with db.reading() as session:
            repo = MemoryRepository(session)
            return (
                [r.id for r in await repo.by_words(["pizza", "zebra"], cosy_scope, limit=10, exclude_message_ids=[])],
                [r.id for r in await repo.by_words(["pizza", "zebra"], dm_scope, limit=10, exclude_message_ids=[])],
            )

    before = await rankings()
    assert before[0][0] == in_cosy[0] and sorted(before[0]) == in_cosy
    assert before[1][0] == in_dms[0] and sorted(before[1]) == in_dms

    # Elsewhere, pizza is all anyone talks about, at length, and zebras never come up.
    chatter = "pizza again tonight with extra cheese, olives, basil, garlic and a crust as thick as a mattress"
    async with db.session() as session:
        repo = MemoryRepository(session)
        await repo.add_many([said(f"{chatter} {i}", guild_id=busy, user_id=ben) for i in range(150)], None, None)
        await repo.add_many([said(f"{chatter} {i}", user_id=ben) for i in range(150)], None, None)
    assert await rankings() == before


async def test_a_small_scope_among_many_memories_still_gets_its_nearest(db: Database) -> None:
    """PostgreSQL's vector index is searched across every scope and filtered after: a guild holding 1% of the
    memories must still get its own nearest ones, all of them and in order, not just those that happened to
    pass the filter among the index's first candidates. (PostgreSQL takes the index on large tables; this one
    is small, so sorting is ruled out to make it. SQLite searches exactly.)"""
    cosy, busy, ana, ben = await places(db)
    rng = np.random.default_rng(21)
    vectors = rng.normal(size=(3030, 384)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    async with db.session() as session:
        repo = MemoryRepository(session)
        await repo.add_many([said(f"busy {i}", guild_id=busy, user_id=ben) for i in range(3000)], vectors[:3000], "m")
        own = await repo.add_many(
            [said(f"cosy {i}", guild_id=cosy, user_id=ana) for i in range(30)], vectors[3000:], "m"
        )
    for seed in range(5):
        query = np.random.default_rng(seed).normal(size=384).astype(np.float32)
        query /= np.linalg.norm(query)
        nearest = [own[i] for i in np.argsort(-(vectors[3000:] @ query))[:10]]
        async with db.session() as session:
            if db.backend == "postgresql":
                await session.execute(text("SET LOCAL enable_sort = off"))
            found = await MemoryRepository(session).by_vector(
                query, RecallScope(ana, cosy), model="m", limit=10, exclude_message_ids=[]
            )
        assert [row.id for row in found] == nearest

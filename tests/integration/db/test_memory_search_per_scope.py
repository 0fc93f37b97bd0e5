"""The searches at scale: each scope's word ranking is its own, and a filtered vector search finds its nearest."""

from datetime import UTC, datetime

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

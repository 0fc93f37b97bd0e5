"""Migration 0010: stored turns that had no memory yet (still queued in memory when the older version stopped)
get one, without a vector, so the embedding worker embeds them and the word search finds them at once."""

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.engine import URL

from bot.db import migrations
from bot.db.models import Memory
from bot.db.repositories.conversations import ConversationRepository
from bot.db.repositories.guilds import GuildRepository
from bot.db.repositories.memories import MemoryRepository, NewMemory
from bot.db.repositories.users import UserRepository
from bot.domain.recall import RecallScope
from tests.conftest import EMBEDDING_DIMENSION
from tests.support.migrated import database_at

SAID_AT = datetime(2026, 5, 8, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_upgrading_writes_the_memories_of_turns_that_had_none(
    backend: str, tmp_path: Path, postgres_server_url: URL
) -> None:
    async with database_at(backend, "0009", tmp_path=tmp_path, server_url=postgres_server_url) as database:
        async with database.session() as session:
            user = await UserRepository(session).upsert(
                discord_id=11, username="ana", display_name="Ana", seen_at=SAID_AT
            )
            guild = await GuildRepository(session).upsert(discord_id=901, name="Cosy Corner")
            await GuildRepository(session).upsert_member(
                guild_id=guild.id, user_id=user.id, nickname="Annie", roles=[], joined_at=None
            )
            repo = ConversationRepository(session)
            conversation = await repo.open(channel_id=500, guild_id=guild.id, user_id=None, at=SAID_AT)
            ids = [
                await repo.add_message(
                    conversation_id=conversation.id, user_id=user.id, role=role, content=text, at=SAID_AT
                )
                for role, text in (
                    ("user", "remembered already"),
                    ("user", "my cello lesson is on Thursday"),
                    ("assistant", "Good luck with the cello!"),
                    ("user", "   "),  # nothing to remember
                )
            ]
            await MemoryRepository(session).add_many(
                [
                    NewMemory(
                        kind="message",
                        content="remembered already",
                        scope="guild",
                        created_at=SAID_AT,
                        user_id=user.id,
                        guild_id=guild.id,
                        conversation_id=conversation.id,
                        message_id=ids[0],
                    )
                ],
                None,
                None,
            )

        await migrations.upgrade(database, embedding_dimension=EMBEDDING_DIMENSION)

        async with database.reading() as session:
            rows = (await session.scalars(select(Memory).order_by(Memory.message_id))).all()
            assert [(m.message_id, m.speaker_name, m.search_text, m.scope, m.embedding) for m in rows] == [
                (ids[0], None, "remembered already (8 May 2026)", "guild", None),
                (ids[1], "Annie", "Annie: my cello lesson is on Thursday (8 May 2026)", "guild", None),
                (ids[2], None, "Good luck with the cello! (8 May 2026)", "guild", None),
            ]
            assert await MemoryRepository(session).count_unembedded() == 3
            found = await MemoryRepository(session).by_words(
                ["cello"], RecallScope(user_id=user.id, guild_id=guild.id), limit=5, exclude_message_ids=[]
            )
            assert {m.message_id for m in found} == {ids[1], ids[2]}, "found by the word search at once"

        await migrations.downgrade(database, revision="0009")
        async with database.reading() as session:
            assert len((await session.scalars(select(Memory.id))).all()) == 3, "the memories written stay"

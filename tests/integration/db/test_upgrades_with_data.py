"""Upgrading (and downgrading) a database that holds a conversation, as an existing install does, through the
migrations that once rebuilt a table on SQLite (alembic's batch mode copies it, drops the old one and renames the
copy). The rows written at the older revision, and what links them, are all there afterwards."""

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Boolean, DateTime, column, delete, insert, select, table
from sqlalchemy.engine import URL

from bot.db import migrations
from bot.db.engine import Database
from bot.db.models import Memory, Message
from bot.db.repositories.memories import MemoryRepository
from bot.domain.recall import RecallScope
from tests.conftest import EMBEDDING_DIMENSION
from tests.support.migrated import database_at

SAID_AT = datetime(2026, 5, 8, 12, 0, tzinfo=UTC)
_AT = DateTime(timezone=True)

# The tables as revision 0008 has them (the models are head's): only the columns written here.
_USERS = table(
    "users",
    column("id"),
    column("discord_id"),
    column("discord_username"),
    column("first_seen_at", _AT),
    column("last_seen_at", _AT),
)
_CONVERSATIONS = table(
    "conversations",
    column("id"),
    column("user_id"),
    column("channel_id"),
    column("started_at", _AT),
    column("last_message_at", _AT),
    column("message_count"),
    column("learned_message_id"),
)
_MESSAGES = table(
    "messages",
    column("id"),
    column("conversation_id"),
    column("user_id"),
    column("discord_message_id"),
    column("role"),
    column("content"),
    column("has_images", Boolean),
    column("created_at", _AT),
)
_MEMORIES = table(
    "memories",
    column("id"),
    column("kind"),
    column("content"),
    column("search_text"),
    column("user_id"),
    column("conversation_id"),
    column("message_id"),
    column("scope"),
    column("last_accessed_at", _AT),
    column("created_at", _AT),
)

TURNS = [
    (1, "user", "my cello lesson is on Thursday", 7001),
    (2, "assistant", "Good luck with the cello!", 8001),
    (3, "user", "thanks, I will practise the scales", 7002),
]


async def _a_conversation(database: Database) -> None:
    """Ana's DM with Hearth: three turns, a memory of each, and a summary (a memory of no one turn)."""
    async with database.engine.begin() as connection:
        await connection.execute(
            insert(_USERS).values(
                id=1, discord_id=11, discord_username="ana", first_seen_at=SAID_AT, last_seen_at=SAID_AT
            )
        )
        await connection.execute(
            insert(_CONVERSATIONS).values(
                id=1,
                user_id=1,
                channel_id=500,
                started_at=SAID_AT,
                last_message_at=SAID_AT,
                message_count=len(TURNS),
                learned_message_id=TURNS[-1][0],
            )
        )
        for message_id, role, content, discord_id in TURNS:
            await connection.execute(
                insert(_MESSAGES).values(
                    id=message_id,
                    conversation_id=1,
                    user_id=1 if role == "user" else None,
                    discord_message_id=discord_id,
                    role=role,
                    content=content,
                    has_images=False,
                    created_at=SAID_AT,
                )
            )
        memories: list[tuple[int | None, str, str]] = [(turn, "message", content) for turn, _, content, _ in TURNS]
        memories.append((None, "summary", "Ana is learning the cello"))
        for number, (of_message, kind, content) in enumerate(memories, start=1):
            await connection.execute(
                insert(_MEMORIES).values(
                    id=number,
                    kind=kind,
                    content=content,
                    search_text=content,
                    user_id=1,
                    conversation_id=1,
                    message_id=of_message,
                    scope="dm",
                    last_accessed_at=SAID_AT,
                    created_at=SAID_AT,
                )
            )


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_upgrading_a_conversation_with_memories_keeps_every_turn_and_memory(
    backend: str, tmp_path: Path, postgres_server_url: URL
) -> None:
    async with database_at(backend, "0008", tmp_path=tmp_path, server_url=postgres_server_url) as database:
        await _a_conversation(database)

        await migrations.upgrade(database, embedding_dimension=EMBEDDING_DIMENSION)

        assert await migrations.current_revision(database) == migrations.head_revision()
        async with database.reading() as session:
            messages = (await session.execute(select(Message.id, Message.content, Message.awaiting_reply))).all()
            assert sorted(messages) == [(message_id, content, False) for message_id, _, content, _ in TURNS]
            memories = (await session.execute(select(Memory.id, Memory.message_id, Memory.kind))).all()
            assert sorted(memories) == [(1, 1, "message"), (2, 2, "message"), (3, 3, "message"), (4, None, "summary")]
            found = await MemoryRepository(session).by_words(
                ["cello"], RecallScope(user_id=1, guild_id=None), limit=5, exclude_message_ids=[]
            )
            assert {memory.id for memory in found} == {1, 2, 4}, "the word search still finds them"

        # The links are still foreign keys: a turn's deletion (as erasing it does) takes its memory.
        async with database.session() as session:
            await session.execute(delete(Message).where(Message.id == 1))
        async with database.reading() as session:
            assert sorted((await session.scalars(select(Memory.id))).all()) == [2, 3, 4]


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_downgrading_below_awaiting_reply_keeps_every_turn_and_memory(
    backend: str, tmp_path: Path, postgres_server_url: URL
) -> None:
    async with database_at(backend, "0009", tmp_path=tmp_path, server_url=postgres_server_url) as database:
        await _a_conversation(database)

        await migrations.downgrade(database, revision="0008")

        assert await migrations.current_revision(database) == "0008"
        async with database.reading() as session:
            messages = (await session.execute(select(Message.id, Message.content))).all()
            assert sorted(messages) == [(message_id, content) for message_id, _, content, _ in TURNS]
            memories = (await session.execute(select(Memory.id, Memory.message_id))).all()
            assert sorted(memories) == [(1, 1), (2, 2), (3, 3), (4, None)]
        async with database.session() as session:
            await session.execute(delete(Message).where(Message.id == 1))
        async with database.reading() as session:
            assert sorted((await session.scalars(select(Memory.id))).all()) == [2, 3, 4]

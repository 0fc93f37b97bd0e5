"""Migration 0021: a user's message stored twice (Discord delivered it again) is kept once, with its memory, and
cannot be stored twice after it; Hearth's replies, which may share the Discord message that shows them, stay."""

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.engine import URL

from bot.db import migrations
from bot.db.models import Memory, Message
from bot.db.repositories.conversations import AlreadyStored, ConversationRepository
from bot.db.repositories.memories import MemoryRepository, NewMemory
from bot.db.repositories.users import UserRepository
from tests.conftest import EMBEDDING_DIMENSION
from tests.support.migrated import database_at

SAID_AT = datetime(2026, 5, 8, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_upgrading_keeps_one_row_of_a_message_stored_twice(
    backend: str, tmp_path: Path, postgres_server_url: URL
) -> None:
    async with database_at(backend, "0020", tmp_path=tmp_path, server_url=postgres_server_url) as database:
        async with database.session() as session:
            user = await UserRepository(session).upsert(
                discord_id=11, username="ana", display_name="Ana", seen_at=SAID_AT
            )
            repo = ConversationRepository(session)
            conversation = await repo.open(channel_id=500, guild_id=None, user_id=user.id, at=SAID_AT)
            turns = [
                ("user", "my exam is tomorrow", 7001),
                ("assistant", "Good luck!", 8001),
                ("user", "my exam is tomorrow", 7001),  # delivered again
                ("assistant", "Good luck!", 8002),
                ("user", "thanks", 7002),
                ("assistant", "Any time.", 8003),
                ("assistant", "Any time!", 8003),  # shown in the same Discord message
            ]
            ids = [
                await repo.add_message(
                    conversation_id=conversation.id,
                    user_id=user.id,
                    role=role,
                    content=text,
                    at=SAID_AT,
                    discord_message_id=discord_id,
                )
                for role, text, discord_id in turns
            ]
            memories = [
                NewMemory(
                    kind="message",
                    content=text,
                    scope="dm",
                    created_at=SAID_AT,
                    user_id=user.id,
                    conversation_id=conversation.id,
                    message_id=message_id,
                )
                for message_id, (_, text, _) in zip(ids, turns, strict=True)
            ]
            await MemoryRepository(session).add_many(memories, None, None)

        await migrations.upgrade(database, embedding_dimension=EMBEDDING_DIMENSION)

        async with database.reading() as session:
            kept = (await session.scalars(select(Message.id).order_by(Message.id))).all()
            assert kept == [ids[0], ids[1], ids[3], ids[4], ids[5], ids[6]], "the copy alone is gone"
            remembered = (await session.scalars(select(Memory.message_id).order_by(Memory.message_id))).all()
            assert remembered == kept, "and its memory with it"
        with pytest.raises(AlreadyStored):
            async with database.session() as session:
                await ConversationRepository(session).add_message(
                    conversation_id=conversation.id,
                    user_id=user.id,
                    role="user",
                    content="my exam is tomorrow",
                    at=SAID_AT,
                    discord_message_id=7001,
                )

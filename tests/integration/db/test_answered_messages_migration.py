"""Migration 0023: a reply records the people's messages it answered; one stored before keeps the rule it had
(the person's messages since the reply before it), and downgrading takes the record away again."""

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import inspect
from sqlalchemy.engine import URL

from bot.db import migrations
from bot.db.repositories.alternatives import AlternativeRepository
from bot.db.repositories.conversations import ConversationRepository
from bot.db.repositories.users import UserRepository
from tests.conftest import EMBEDDING_DIMENSION
from tests.support.migrated import database_at

SAID_AT = datetime(2026, 5, 8, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_a_reply_stored_before_the_upgrade_answered_the_persons_messages_since_the_reply_before(
    backend: str, tmp_path: Path, postgres_server_url: URL
) -> None:
    async with database_at(backend, "0022", tmp_path=tmp_path, server_url=postgres_server_url) as database:
        async with database.session() as session:
            users = UserRepository(session)
            ana = await users.upsert(discord_id=11, username="ana", display_name="Ana", seen_at=SAID_AT)
            bo = await users.upsert(discord_id=12, username="bo", display_name="Bo", seen_at=SAID_AT)
            repo = ConversationRepository(session)
            conversation = await repo.open(channel_id=500, guild_id=None, user_id=None, at=SAID_AT)
            turns = [
                (ana.id, "user", "my exam is tomorrow", 7001),
                (ana.id, "assistant", "Good luck!", 8001),
                (ana.id, "user", "thanks", 7002),
                (bo.id, "user", "mine too", 7003),
                (ana.id, "user", "wish me luck again", 7004),
                (ana.id, "assistant", "Good luck, again!", 8002),
            ]
            ids = [
                await repo.add_message(
                    conversation_id=conversation.id,
                    user_id=user_id,
                    role=role,
                    content=text,
                    at=SAID_AT,
                    discord_message_id=discord_id,
                )
                for user_id, role, text, discord_id in turns
            ]

        await migrations.upgrade(database, embedding_dimension=EMBEDDING_DIMENSION)

        async with database.reading() as session:
            alternatives = AlternativeRepository(session)
            reply = await alternatives.reply_shown_in(8002)
            assert reply is not None and reply.answered == ()
            answered = await alternatives.answered_by(reply)
        assert [row.message_id for row in answered] == [ids[2], ids[4]], "Ana's since the reply before, as before"

        await migrations.downgrade(database, revision="0022")
        async with database.engine.connect() as connection:
            columns = await connection.run_sync(lambda sync: {c["name"] for c in inspect(sync).get_columns("messages")})
        assert "answered_ids" not in columns and "discord_part_ids" in columns

"""Migration 0024: a fact taken back records the message that took it back, so deleting that message makes the
fact current again; one taken back before the upgrade has no such record and stays set aside; downgrading takes
the record away again."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import inspect, select, update
from sqlalchemy.engine import URL

from bot.db import migrations
from bot.db.models import UserFact
from bot.db.repositories.conversations import ConversationRepository
from bot.db.repositories.facts import FactRepository, NewFact
from bot.db.repositories.users import UserRepository
from tests.conftest import EMBEDDING_DIMENSION
from tests.support.migrated import database_at

SAID_AT = datetime(2026, 5, 8, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_a_fact_taken_back_comes_back_with_the_message_that_took_it_back_from_the_upgrade_on(
    backend: str, tmp_path: Path, postgres_server_url: URL
) -> None:
    async with database_at(backend, "0023", tmp_path=tmp_path, server_url=postgres_server_url) as database:
        async with database.session() as session:
            ana = await UserRepository(session).upsert(
                discord_id=11, username="ana", display_name="Ana", seen_at=SAID_AT
            )
            conversations = ConversationRepository(session)
            conversation = await conversations.open(channel_id=500, guild_id=None, user_id=ana.id, at=SAID_AT)
            said, took_back = [
                await conversations.add_message(
                    conversation_id=conversation.id, user_id=ana.id, role="user", content=text, at=SAID_AT
                )
                for text in ("I smoke", "I quit smoking")
            ]
            fact = NewFact(
                user_id=ana.id,
                fact_type="general",
                content="smokes",
                scope="dm",
                guild_id=None,
                learned_at=SAID_AT,
                extracted_from_message_id=said,
            )
            old = await FactRepository(session).add(fact, None, None)
            # Taken back as revisions before 0024 did: set aside, with no word of the message that did it.
            await session.execute(update(UserFact).where(UserFact.id == old).values(is_active=False, valid_to=SAID_AT))

        await migrations.upgrade(database, embedding_dimension=EMBEDDING_DIMENSION)

        later = SAID_AT + timedelta(days=1)
        async with database.session() as session:
            facts = FactRepository(session)
            new = await facts.add(fact, None, None)
            await facts.supersede(new, at=later, retracted_in=took_back)
            assert await facts.forget_learned_from([took_back], now=later) == 0, "it learned nothing itself"
        async with database.reading() as session:
            active = dict((await session.execute(select(UserFact.id, UserFact.is_active))).all())
        assert active == {old: False, new: True}, "only the fact whose retraction was recorded comes back"

        await migrations.downgrade(database, revision="0023")
        async with database.engine.connect() as connection:
            columns = await connection.run_sync(
                lambda sync: {c["name"] for c in inspect(sync).get_columns("user_facts")}
            )
        assert "retracted_by_message_id" not in columns and "extracted_from_message_id" in columns

"""An image's description rewrites its turn's memory, on real databases: the word search finds it at once, and a
vector made from the text before it is not stored (the memory is embedded again from what it says now)."""

from datetime import UTC, datetime

import pytest

from bot.db.engine import Database
from bot.db.repositories.memories import MemoryRepository, NewMemory
from bot.db.repositories.users import UserRepository
from bot.domain.memory_text import with_images
from bot.domain.recall import RecallScope
from tests.support.embedding import shared_embedder


@pytest.mark.parametrize("described_meanwhile", [False, True])
async def test_a_vector_made_before_the_image_was_described_is_not_stored(
    db: Database, described_meanwhile: bool
) -> None:
    at = datetime.now(UTC)
    async with db.session() as session:
        user = await UserRepository(session).upsert(discord_id=11, username="ana", display_name="Ana", seen_at=at)
        [memory_id] = await MemoryRepository(session).add_many(
            [
                NewMemory(
                    kind="message",
                    content=with_images("look who took my seat", [None]),
                    scope="dm",
                    created_at=at,
                    user_id=user.id,
                    speaker_name="Ana",
                )
            ],
            None,
            None,
        )
    scope = RecallScope(user_id=user.id, guild_id=None)
    embedder = await shared_embedder()
    async with db.reading() as session:
        claimed = await MemoryRepository(session).claim_unembedded(10)
    vectors = await embedder.embed(["Ana: look who took my seat\n[image]"])
    if described_meanwhile:
        async with db.session() as session:
            await MemoryRepository(session).rewrite(
                memory_id,
                with_images("look who took my seat", ["a ginger cat asleep on a keyboard"]),
                created_at=at,
                speaker_name="Ana",
            )
    async with db.session() as session:
        await MemoryRepository(session).fill_embeddings(claimed, vectors, embedder.model_name)
    async with db.reading() as session:
        repo = MemoryRepository(session)
        assert await repo.count_unembedded() == (1 if described_meanwhile else 0)
        found = await repo.by_words(["ginger", "keyboard"], scope, limit=5, exclude_message_ids=[])
    if described_meanwhile:
        assert [row.content for row in found] == ["look who took my seat\n[image: a ginger cat asleep on a keyboard]"]
    else:
        assert found == []

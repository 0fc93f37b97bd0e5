"""Erasing someone takes their words out of what others keep too: the context others' memories were embedded
with, and the summaries of conversations they were part of. On both backends."""

import asyncio
from datetime import UTC, datetime

import numpy as np
from sqlalchemy import select

from bot.db.engine import Database
from bot.db.models import Memory
from bot.db.repositories.memories import NewMemory
from bot.services.memory import MemoryService
from bot.services.memory_writer import MemoryWriter
from bot.services.privacy import PrivacyService
from tests.fakes.llm_server import FakeLLM, Reply
from tests.support.chat import RecordingReply, conversation_service, message
from tests.support.embedding import shared_embedder

GUILD, CHANNEL = 901, 1901


async def test_erasing_ana_rewrites_the_memories_that_quote_her_and_drops_shared_summaries(
    db: Database, llm: FakeLLM
) -> None:
    embedder = await shared_embedder()
    memory = MemoryService(db, embedder)
    writer = MemoryWriter(memory, db)
    writer.start()
    service = conversation_service(db, llm, memory=memory, writer=writer)
    llm.default = Reply("Sounds lovely!")
    said = [("ana", 11, "my sister Marta moves to Porto in May"), ("bo", 12, "I should visit Porto too")]
    # Said at the same moment: Bo's message is stored right after Ana's, so hers is its context.
    await asyncio.gather(
        *(
            service.handle(
                message(text, user=user, name=name, guild=GUILD, channel=CHANNEL, mention=True), RecordingReply()
            )
            for name, user, text in said
        )
    )
    await writer.flush()
    async with db.session() as session:
        conversation = (await session.scalars(select(Memory.conversation_id))).first()
    await memory.remember(
        [
            NewMemory(
                kind="summary",
                content="Ana said her sister Marta moves to Porto; Bo wants to visit.",
                scope="guild",
                created_at=datetime.now(UTC),
                guild_id=(await service.directory.guild(message("x", guild=GUILD).place)).guild_id,  # type: ignore[union-attr]
                conversation_id=conversation,
            )
        ]
    )
    async with db.session() as session:
        before = {m.id: m for m in (await session.scalars(select(Memory))).all()}
    ana_id = next(m.user_id for m in before.values() if m.content.startswith("my sister Marta"))
    quoting = [
        m for m in before.values() if m.context and "Marta" in m.context and m.user_id != ana_id and m.kind == "message"
    ]
    assert quoting, "sanity: a memory of Bo's talk was embedded with Ana's line as its context"

    privacy = PrivacyService(db, embedder, writer=writer)
    assert await privacy.forget_everything(11)
    await writer.stop()

    async with db.session() as session:
        after = {m.id: m for m in (await session.scalars(select(Memory))).all()}
    assert not [m for m in after.values() if "Marta" in f"{m.content} {m.context}"]
    assert {m.kind for m in after.values()} == {"message"}, "the shared summary is gone"
    for memory_before in quoting:
        kept = after[memory_before.id]
        assert kept.content == memory_before.content and kept.context is None
        assert kept.embedding is not None and not np.allclose(kept.embedding, memory_before.embedding)
    assert any("visit Porto" in m.content for m in after.values()), "Bo's own words stay"

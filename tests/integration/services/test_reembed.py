"""Re-embedding memories after a change of embedding model, on SQLite and on PostgreSQL."""

import asyncio
import hashlib
import shutil
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from bot.cli import main
from bot.db.engine import Database
from bot.db.models import Memory
from bot.db.repositories.memories import MemoryRepository, MemoryText, NewMemory
from bot.db.repositories.users import UserRepository
from bot.domain.memory_text import embedding_text
from bot.domain.recall import RecallScope
from bot.llm.embeddings import EmbeddingUnavailable, Vectors
from bot.services.embedding_worker import EmbeddingWorker
from bot.services.memory import MemoryService
from bot.services.privacy import PrivacyService
from bot.services.reembed import embedding_model_mismatch, reembed
from tests.conftest import EMBEDDING_DIMENSION
from tests.fakes.llm_server import FakeLLM, Reply
from tests.support.chat import RecordingReply, conversation_service, message

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
OLD, NEW = "fake-old", "fake-new"


class HashEmbedder:
    """A fast, deterministic `Embedder`: a unit vector seeded by a hash of the model name and the text.

    ``fail_on_call`` makes that call (1-based) raise, as an endpoint that gives up would.
    """

    def __init__(self, model_name: str = NEW, *, fail_on_call: int | None = None) -> None:
        self.model_name = model_name
        self.dimension = EMBEDDING_DIMENSION
        self.fail_on_call = fail_on_call
        self.calls: list[list[str]] = []

    def vector(self, text: str) -> Vectors:
        digest = hashlib.sha256(f"{self.model_name}\0{text}".encode()).digest()
        row = np.random.default_rng(int.from_bytes(digest[:8], "little")).standard_normal(self.dimension)
        return (row / np.linalg.norm(row)).astype(np.float32)

    async def embed(self, texts: Sequence[str]) -> Vectors:
        self.calls.append(list(texts))
        if len(self.calls) == self.fail_on_call:
            raise EmbeddingUnavailable("the embedding model did not answer")
        return np.stack([self.vector(text) for text in texts]) if texts else np.empty((0, self.dimension), np.float32)

    async def embed_one(self, text: str) -> Vectors:
        return self.vector(text)

    def start_one(self, text: str) -> "asyncio.Future[Vectors]":
        return asyncio.ensure_future(self.embed_one(text))

    async def aclose(self) -> None:
        pass


def memories(count: int, *, user_id: int | None = None, start: int = 0) -> list[NewMemory]:
    """Every other memory has a speaker and every third one a context, so each part of the embedded text counts."""
    return [
        NewMemory(
            kind="message",
            content=f"memory number {start + i} about climbing",
            scope="dm" if user_id is not None else "global",
            created_at=T0,
            user_id=user_id,
            speaker_name="Ana" if i % 2 == 0 else None,
            context=f"Bo: question {start + i}?" if i % 3 == 0 else None,
        )
        for i in range(count)
    ]


async def store(database: Database, items: list[NewMemory], model: str | None) -> list[int]:
    """Store memories as ``model`` would have embedded them (``None``: not embedded)."""
    fake = HashEmbedder(model or "unused")
    vectors = (
        None
        if model is None
        else np.stack([fake.vector(embedding_text(m.speaker_name, m.content, m.context)) for m in items])
    )
    async with database.session() as session:
        return await MemoryRepository(session).add_many(items, vectors, model)


async def stored(database: Database) -> list[tuple[int, str, str | None, Vectors | None]]:
    """Every memory's id, embedded text, model and vector, in id order."""
    async with database.session() as session:
        statement = select(
            Memory.id, Memory.content, Memory.speaker_name, Memory.context, Memory.embedding_model, Memory.embedding
        ).order_by(Memory.id)
        rows = (await session.execute(statement)).all()
    return [(row[0], embedding_text(row[2], row[1], row[3]), row[4], row[5]) for row in rows]


# -- the start-up warning ----------------------------------------------------------------------------------


async def test_no_memories_or_all_from_the_configured_model_is_no_warning(db: Database) -> None:
    assert await embedding_model_mismatch(db, NEW) is None
    await store(db, memories(3), NEW)
    assert await embedding_model_mismatch(db, NEW) is None


# How the warning of a running bot says to re-embed: on its SQLite file the command line is refused beside it.
HOW = {
    "sqlite": "`/owner memory reembed` in Discord (or, with Hearth stopped, `python -m bot memory reembed`)",
    "postgresql": "`python -m bot memory reembed`",
}


async def test_the_warning_names_the_count_both_models_and_the_command(db: Database) -> None:
    await store(db, memories(1_234), OLD)
    await store(db, memories(2), NEW)
    assert await embedding_model_mismatch(db, NEW) == (
        "1,234 memories were embedded with 'fake-old' (not the configured 'fake-new'): "
        f"recall ignores them until you run {HOW[db.backend]}."
    )


async def test_the_warning_breaks_down_several_models(db: Database) -> None:
    await store(db, memories(5), OLD)
    await store(db, memories(1), "fake-older")
    await store(db, memories(2), None)
    await store(db, memories(4), NEW)
    assert await embedding_model_mismatch(db, NEW) == (
        "6 memories have no vector from the configured 'fake-new' "
        "(5 embedded with 'fake-old', 1 embedded with 'fake-older'): "
        f"recall ignores them until you run {HOW[db.backend]}."
    )


async def test_memories_not_embedded_yet_are_the_workers_backlog_not_a_mismatch(db: Database) -> None:
    await store(db, memories(2), None)
    assert await embedding_model_mismatch(db, NEW) is None
    await store(db, memories(1), OLD)
    message = await embedding_model_mismatch(db, NEW)
    assert message is not None
    assert message.startswith("1 memory was embedded with 'fake-old' (not the configured 'fake-new'): recall ignores")


# -- re-embedding ------------------------------------------------------------------------------------------


async def test_reembed_converts_every_memory_to_the_configured_model_and_recall_finds_them(db: Database) -> None:
    async with db.session() as session:
        user = await UserRepository(session).upsert(discord_id=1, username="ana", display_name="Ana", seen_at=T0)
    old = HashEmbedder(OLD)
    await MemoryService(db, old).remember(memories(5, user_id=user.id))  # embedded as the service embeds them
    await store(db, memories(2, user_id=user.id, start=5), None)
    current = await store(db, memories(1, user_id=user.id, start=7), NEW)
    embedder = HashEmbedder()
    query = embedder.vector(old.calls[0][0])  # the first memory's text, as the configured model would embed it
    scope = RecallScope(user_id=user.id, guild_id=None)

    async def nearest() -> list[int]:
        async with db.session() as session:
            found = await MemoryRepository(session).by_vector(query, scope, model=NEW, limit=10, exclude_message_ids=())
            return [row.id for row in found]

    assert await nearest() == current  # before: only the memory the configured model made is seen

    assert await reembed(db, embedder, batch_size=3) == 7
    assert [len(batch) for batch in embedder.calls] == [3, 3, 1]
    texts = [text for batch in embedder.calls for text in batch]
    assert texts[:5] == old.calls[0]  # the very texts the memory service embedded, speaker and context included
    assert all("memory number 7" not in text for text in texts)  # already made by the configured model

    rows = await stored(db)
    for memory_id, text, model, vector in rows:
        assert model == NEW, memory_id
        assert vector is not None
        np.testing.assert_allclose(vector, embedder.vector(text), atol=1e-6)
    found = await nearest()
    assert len(found) == 8 and found[0] == rows[0][0]
    assert await embedding_model_mismatch(db, NEW) is None
    assert await reembed(db, HashEmbedder()) == 0


async def test_an_interrupted_run_keeps_its_batches_and_a_rerun_finishes_the_rest(db: Database) -> None:
    ids = await store(db, memories(10), OLD)
    failing = HashEmbedder(fail_on_call=2)
    with pytest.raises(EmbeddingUnavailable):
        await reembed(db, failing, batch_size=4)

    models = {memory_id: model for memory_id, _, model, _ in await stored(db)}
    assert [models[i] for i in ids] == [NEW] * 4 + [OLD] * 6  # the first batch was committed, in id order

    rerun = HashEmbedder()
    assert await reembed(db, rerun, batch_size=4) == 6
    assert [len(batch) for batch in rerun.calls] == [4, 2]
    async with db.session() as session:
        assert await MemoryRepository(session).models_in_use() == {NEW: 10}


async def test_progress_counts_up_to_the_total(db: Database) -> None:
    await store(db, memories(7), OLD)
    await store(db, memories(3), NEW)
    seen: list[tuple[int, int]] = []
    assert await reembed(db, HashEmbedder(), batch_size=3, progress=lambda *pair: seen.append(pair)) == 7
    assert seen == [(3, 7), (6, 7), (7, 7)]


async def test_a_batch_size_below_one_is_refused(db: Database) -> None:
    with pytest.raises(ValueError, match="batch_size"):
        await reembed(db, HashEmbedder(), batch_size=0)


async def test_the_repository_counts_and_lists_what_needs_embedding(db: Database) -> None:
    ids = await store(db, memories(3), OLD)
    await store(db, memories(1), NEW)
    [unembedded] = await store(db, memories(1, start=9), None)
    async with db.session() as session:
        repo = MemoryRepository(session)
        assert await repo.count_needing_embedding(NEW) == 4
        assert await repo.count_needing_embedding(OLD) == 2
        assert await repo.needing_embedding_texts(NEW, after_id=ids[0], limit=10) == [
            MemoryText(ids[1], "memory number 1 about climbing", None, None),
            MemoryText(ids[2], "memory number 2 about climbing", "Ana", None),
            MemoryText(unembedded, "memory number 9 about climbing", "Ana", "Bo: question 9?"),
        ]
        assert await repo.needing_embedding_texts(NEW, after_id=0, limit=1) == [
            MemoryText(ids[0], "memory number 0 about climbing", "Ana", "Bo: question 0?")
        ]


# -- the command -------------------------------------------------------------------------------------------


def test_memory_status_counts_per_model_and_warns(
    tmp_path: Path, sqlite_template: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("DATABASE_URL", "EMBEDDING_PROVIDER", "EMBEDDING_MODEL", "EMBEDDING_DIMENSION", "EMBEDDING_PRECISION"):
        monkeypatch.delenv(name, raising=False)
    path = tmp_path / "hearth.db"
    shutil.copyfile(sqlite_template, path)
    env_file = tmp_path / ".env"
    env_file.write_text(
        f"DATABASE_URL=sqlite+aiosqlite:///{path}\nEMBEDDING_PROVIDER=local\n"
        f"EMBEDDING_MODEL={NEW}\nEMBEDDING_DIMENSION={EMBEDDING_DIMENSION}\nEMBEDDING_PRECISION=fp32\n"
    )

    assert main(["--env-file", str(env_file), "memory", "status"]) == 0
    assert capsys.readouterr().out == "no memories yet\n"

    async def fill(model: str | None, count: int) -> None:
        database = Database(f"sqlite+aiosqlite:///{path}")
        try:
            await store(database, memories(count), model)
        finally:
            await database.dispose()

    asyncio.run(fill(NEW, 3))
    assert main(["--env-file", str(env_file), "memory", "status"]) == 0
    assert capsys.readouterr().out == "           3  fake-new\nall 3 memories use 'fake-new'\n"

    asyncio.run(fill(OLD, 1_500))
    asyncio.run(fill(None, 2))
    assert main(["--env-file", str(env_file), "memory", "status"]) == 1
    assert capsys.readouterr().out.splitlines() == [
        "       1,500  fake-old",
        "           3  fake-new",
        "           2  (not embedded)",
        "2 memories wait for a vector: the bot's embedding worker adds it while the bot runs",
        "1,500 memories were embedded with 'fake-old' (not the configured 'fake-new'): "
        "recall ignores them until you run `python -m bot memory reembed`.",
    ]

    # The same model with its linear layers in int8 makes slightly different vectors: another label.
    env_file.write_text(env_file.read_text().replace("EMBEDDING_PRECISION=fp32", "EMBEDDING_PRECISION=int8"))
    assert main(["--env-file", str(env_file), "memory", "status"]) == 1
    assert capsys.readouterr().out.splitlines()[-1] == (
        "1,503 memories have no vector from the configured 'fake-new@int8-linear' (1,500 embedded with 'fake-old', "
        "3 embedded with 'fake-new'): recall ignores them until you run `python -m bot memory reembed`."
    )


# -- while the bot runs --------------------------------------------------------------------------------------


class EditingEmbedder(HashEmbedder):
    """The configured model, slow enough that Discord reports changes to messages while it embeds a batch:
    ``meanwhile`` runs during its first call, before the vectors come back."""

    def __init__(self, meanwhile: Callable[[], Awaitable[object]]) -> None:
        super().__init__(NEW)
        self.meanwhile = meanwhile

    async def embed(self, texts: Sequence[str]) -> Vectors:
        if not self.calls:
            await self.meanwhile()
        return await super().embed(texts)


async def test_a_memory_changed_while_reembed_embeds_it_keeps_no_vector_of_its_old_words(
    db: Database, llm: FakeLLM
) -> None:
    old = HashEmbedder(OLD)
    worker = EmbeddingWorker(db, old)
    service = conversation_service(db, llm, memory=MemoryService(db, old), worker=worker)
    llm.default = Reply("Porto is lovely in May!")
    edited = message("my sister Marta moves to Porto in May", user=11, name="ana")
    deleted = message("and my cousin Rui moves there too", user=11, name="ana")
    quoting = message("I should visit Porto too", user=12, name="bo")
    for incoming in (edited, deleted, quoting):
        await service.handle(incoming, RecordingReply())
    await worker.flush()  # every memory embedded by the model the bot used before
    privacy = PrivacyService(db, old)

    async def on_discord_meanwhile() -> None:
        assert edited.message_id is not None and deleted.message_id is not None
        await privacy.follow_edited_message(edited.message_id, "my sister Marta moves to Lisbon in May")
        await privacy.forget_deleted_messages([deleted.message_id])

    await reembed(db, EditingEmbedder(on_discord_meanwhile), batch_size=64)

    # What the bot's worker then makes of what changed, with the configured model.
    current = HashEmbedder(NEW)
    await EmbeddingWorker(db, current).flush()
    rows = await stored(db)
    assert any("Lisbon" in text for _, text, _, _ in rows)
    assert all("cousin Rui" not in text for _, text, _, _ in rows)
    for memory_id, text, model, vector in rows:
        assert model == NEW, memory_id
        assert vector is not None, memory_id
        np.testing.assert_allclose(vector, current.vector(text), atol=1e-6, err_msg=f"memory {memory_id}: {text}")

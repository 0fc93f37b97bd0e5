"""Erasing someone takes their words out of what others keep too: the context others' memories were embedded
with, the summaries of conversations they were part of, Hearth's opinions on what they talked about, the word
index and (SQLite) the database file itself. On both backends."""

import asyncio
import json
import shutil
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import event, select, text

from bot.container import Container
from bot.db.engine import Database
from bot.db.models import BotOpinion, Guild, Memory
from bot.db.repositories.facts import FactRepository, NewFact
from bot.db.repositories.memories import NewMemory
from bot.db.repositories.users import UserRepository
from bot.llm.embeddings import LocalEmbedder, Vectors
from bot.services.companion import CompanionContext
from bot.services.embedding_worker import EmbeddingWorker
from bot.services.learning import Learner, LearningConfig
from bot.services.memory import MemoryService
from bot.services.personas import PersonaService
from bot.services.privacy import PrivacyService
from tests.fakes.llm_server import FakeLLM, Reply, echo_last_user_message
from tests.support.bot import bot_settings
from tests.support.chat import RecordingReply, chat_model, conversation_service, message
from tests.support.embedding import shared_embedder

GUILD, CHANNEL = 901, 1901


async def test_erasing_ana_rewrites_the_memories_that_quote_her_and_drops_shared_summaries(
    db: Database, llm: FakeLLM
) -> None:
    embedder = await shared_embedder()
    memory = MemoryService(db, embedder)
    worker = EmbeddingWorker(db, memory.embedder)
    worker.start()
    service = conversation_service(db, llm, memory=memory, worker=worker)
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
    await worker.flush()
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

    privacy = PrivacyService(db, embedder, worker=worker)
    assert await privacy.forget_everything(11)
    await worker.flush()  # the memories that quoted her, re-embedded from their own text
    await worker.stop()

    async with db.session() as session:
        after = {m.id: m for m in (await session.scalars(select(Memory))).all()}
    assert not [m for m in after.values() if "Marta" in f"{m.content} {m.context}"]
    assert {m.kind for m in after.values()} == {"message"}, "the shared summary is gone"
    for memory_before in quoting:
        kept = after[memory_before.id]
        assert kept.content == memory_before.content and kept.context is None
        assert memory_before.embedding is not None and kept.embedding is not None
        assert not np.allclose(kept.embedding, memory_before.embedding)
    assert any("visit Porto" in m.content for m in after.values()), "Bo's own words stay"


# Words only Ana (erased) and only Bo (kept) ever wrote.
ANA_WORD, BO_WORD = "qzorbvik", "bxyloquent"


def _model(body: dict[str, Any]) -> Reply:
    """Replies take up what was said (as replies often do); the learner is told the topics and a fact each."""
    if "response_format" not in body:
        return Reply(f"Oh, {echo_last_user_message(body).text}? Tell me more!")
    prompt = "\n".join(str(m["content"]) for m in body["messages"])
    topics = [{"name": word, "sentiment": 0.6} for word in (ANA_WORD, BO_WORD) if word in prompt]
    facts = [
        {"speaker": name, "type": "preference", "content": f"likes {word}", "confidence": 0.9}
        for name, word in (("Ana", ANA_WORD), ("Bo", BO_WORD))
        if word in prompt
    ]
    return Reply(json.dumps({"facts": facts, "topics": topics, "sentiment": 0.5, "intensity": 0.5}))


async def _talk_then_erase_ana(db: Database, llm: FakeLLM) -> dict[str, int]:
    """Ana and Bo talk in a guild and each in their DM, through the real services; Hearth learns from it; Ana is
    erased. Returns, per table, the rows that held Ana's word before the erasure."""
    embedder = await shared_embedder()
    memory = MemoryService(db, embedder)
    worker = EmbeddingWorker(db, memory.embedder)
    learner = Learner(
        db,
        chat_model(llm.base_url),
        embedder,
        PersonaService(db),
        LearningConfig(model="fake-model", batch_messages=1, workers=1),
    )
    service = conversation_service(
        db, llm, memory=memory, worker=worker, companion=CompanionContext(db), learner=learner
    )
    llm.default = _model
    worker.start()
    learner.start()
    said = [
        ("ana", 11, GUILD, f"my {ANA_WORD} pastries came out perfect"),
        ("bo", 12, GUILD, "how do you bake those?"),  # its context: Hearth's reply to Ana, quoting her
        ("ana", 11, None, f"{ANA_WORD} is my secret, just between us"),
        ("bo", 12, None, f"{BO_WORD} is my secret"),
        ("bo", 12, GUILD, f"I prefer {BO_WORD} myself"),
    ]
    for name, user, guild, words in said:
        channel = CHANNEL if guild is not None else 3000 + user
        await service.handle(
            message(words, user=user, name=name, guild=guild, channel=channel, mention=True), RecordingReply()
        )
        await worker.flush()
        await learner.flush()
    async with db.session() as session:
        guild_id = await session.scalar(select(Guild.id))
        # Opinions formed before their sources were recorded (migration 0006): one on Ana's words, one not.
        session.add_all(
            [
                BotOpinion(guild_id=guild_id, topic=f"{ANA_WORD} pastries", discussion_count=3),
                BotOpinion(guild_id=guild_id, topic="gardening", discussion_count=3),
            ]
        )
    before = await _tables_holding(db, ANA_WORD)

    assert await PrivacyService(db, embedder, worker=worker).forget_everything(11)
    await learner.stop()
    await worker.flush()
    await worker.stop()
    return before


async def _tables_holding(db: Database, word: str) -> dict[str, int]:
    """Per table of the database (every one in its catalogue, not only the models'), the rows holding ``word``
    in any column: text, JSON, tsvector or blob."""
    found: dict[str, int] = {}
    async with db.reading() as session:
        if db.backend == "postgresql":
            names = (await session.scalars(text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'"))).all()
            for name in names:
                statement = text(f'SELECT count(*) FROM "{name}" AS r WHERE strpos(lower(r::text), :word) > 0')
                if hits := await session.scalar(statement, {"word": word}):
                    found[name] = int(hits)
            return found
        names = (await session.scalars(text("SELECT name FROM sqlite_master WHERE type = 'table'"))).all()
        for name in names:
            rows = (await session.execute(text(f'SELECT * FROM "{name}"'))).all()
            hits = sum(any(_holds(value, word) for value in row) for row in rows)
            if hits:
                found[name] = hits
    return found


def _bytes_of(folder: Path, pattern: str) -> bytes:
    """The bytes of every file in ``folder`` matching ``pattern`` (the database, its -wal and -shm)."""
    return b"".join(file.read_bytes() for file in sorted(folder.glob(pattern)))


def _holds(value: object, word: str) -> bool:
    if isinstance(value, bytes | bytearray | memoryview):
        return word.encode() in bytes(value)
    return word in str(value).lower()


async def test_erasing_ana_leaves_none_of_her_words_in_any_table_and_keeps_bos(db: Database, llm: FakeLLM) -> None:
    before = await _talk_then_erase_ana(db, llm)

    # Where her word was: her rows, Bo's memory quoting Hearth's reply to her, opinions and the word counts.
    assert {"messages", "memories", "user_facts", "bot_opinions"} <= set(before), before
    if db.backend == "postgresql":  # counted, or waiting to be (see migration 0013)
        assert {"memory_words", "memory_word_changes"} & set(before), before
    assert await _tables_holding(db, ANA_WORD) == {}
    kept = await _tables_holding(db, BO_WORD)
    assert {"messages", "memories", "user_facts", "bot_opinions"} <= set(kept), kept
    async with db.session() as session:
        opinions = (await session.execute(select(BotOpinion.topic, BotOpinion.guild_id.is_(None)))).all()
        quoting = (await session.scalars(select(Memory.context).where(Memory.context.is_not(None)))).all()
    assert sorted(tuple(o) for o in opinions) == [(BO_WORD, False), (BO_WORD, True), ("gardening", False)]
    assert quoting, "sanity: Bo's memories kept the context that was not Ana's"


async def test_erased_words_are_not_left_in_the_sqlite_file(
    tmp_path: Path, sqlite_template: Path, llm: FakeLLM
) -> None:
    """In a SQLite build that does not zero freed pages by default (as some do), nothing of Ana's is left in the
    database file or its write-ahead log once the erasure is done."""
    path = tmp_path / "hearth.db"
    shutil.copyfile(sqlite_template, path)
    db = Database(f"sqlite+aiosqlite:///{path}")

    def build_default_off(connection: Any, _record: Any) -> None:
        connection.cursor().execute("PRAGMA secure_delete = OFF")

    event.listen(db.engine.sync_engine, "connect", build_default_off, insert=True)  # before Hearth's own set-up
    try:
        await _talk_then_erase_ana(db, llm)  # the erasure ends with a checkpoint of its own: none here
    finally:
        await db.dispose()
    stored = _bytes_of(tmp_path, "hearth.db*")
    assert BO_WORD.encode() in stored, "sanity: the file holds what is kept"
    assert stored.count(ANA_WORD.encode()) == 0


async def test_an_export_shows_which_of_ones_facts_are_linked_but_not_the_other_members_fact(db: Database) -> None:
    """Hearth links two members' facts (a shared interest); Ana's export says which of her facts is linked, and
    nothing of Bo's: not even the id of his fact, which his own export shows."""
    now = datetime(2026, 11, 1, 12, tzinfo=UTC)
    async with db.session() as session:
        users = UserRepository(session)
        ana = await users.upsert(discord_id=11, username="ana", display_name="Ana", seen_at=now)
        bo = await users.upsert(discord_id=12, username="bo", display_name="Bo", seen_at=now)
        guild = Guild(discord_id=GUILD, name="Climbers")
        session.add(guild)
        await session.flush()
        facts = FactRepository(session)
        ana_fact, bo_fact = [
            await facts.add(
                NewFact(
                    user_id=user, fact_type="hobby", content=text, scope="guild", guild_id=guild.id, learned_at=now
                ),
                None,
                None,
            )
            for user, text in ((ana.id, "climbs"), (bo.id, "climbs on weekends"))
        ]
        await facts.associate(ana_fact, bo_fact, kind="shared_interest", strength=0.8, at=now)
    privacy = PrivacyService(db, await shared_embedder())

    for own, others, discord_id in ((ana_fact, bo_fact, 11), (bo_fact, ana_fact, 12)):
        links = (await privacy.export(discord_id))["tables"]["fact_associations"]
        assert {value for link in links for key, value in link.items() if "fact" in key} == {own}, others
        assert [(link["fact_id"], link["association_type"]) for link in links] == [(own, "shared_interest")]


class _NotingEmbedder:
    """The session's embedder, noting each text it is given."""

    def __init__(self, inner: LocalEmbedder) -> None:
        self.inner = inner
        self.model_name = inner.model_name
        self.dimension = inner.dimension
        self.texts: list[str] = []

    async def embed(self, texts: Sequence[str]) -> Vectors:
        self.texts.extend(texts)
        return await self.inner.embed(texts)

    async def embed_one(self, text: str) -> Vectors:
        self.texts.append(text)
        return await self.inner.embed_one(text)

    def start_one(self, text: str) -> "asyncio.Future[Vectors]":
        self.texts.append(text)
        return self.inner.start_one(text)

    async def aclose(self) -> None:
        """The session's embedder stays open."""


async def test_an_erased_persons_name_is_no_longer_one_hearth_knows_at_once(db: Database, llm: FakeLLM) -> None:
    """Recall embeds a question without the names of the people whose words the place holds (names are for the
    word search). Once Ana is erased, her name is no longer among them at the very next reply, not minutes later."""
    embedder = _NotingEmbedder(await shared_embedder())
    container = await Container.create(
        bot_settings(db, llm, learning_enabled=False), chat_model=chat_model(llm.base_url), embedder=embedder
    )
    llm.default = Reply("Nice!")

    async def say(user: int, name: str, text: str) -> list[str]:
        """What was embedded for the question ``text``."""
        await container.conversation.handle(
            message(text, user=user, name=name, guild=GUILD, channel=CHANNEL, mention=True), RecordingReply()
        )
        return [embedded for embedded in embedder.texts if embedded.endswith(text[-12:])]

    try:
        await say(11, "ana", "I climb every weekend")
        before = await say(12, "bo", "what does Ana do on weekends?")
        assert any("Ana" not in embedded for embedded in before), "sanity: her name was taken out"

        assert await container.privacy.forget_everything(11)
        after = await say(12, "bo", "does Ana still climb on Sundays?")
    finally:
        await container.aclose()
    assert after and all("Ana" in embedded for embedded in after), after

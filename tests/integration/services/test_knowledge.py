"""Guild lore on a real database with the real local embedding model, on both backends: a document becomes the
guild's knowledge memories, recalled there (by meaning) and nowhere else; replacing and removing it take its
passages with it; a file that cannot be used, or an upload whose embedding fails, leaves nothing behind."""

import asyncio
import re
import threading
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from sqlalchemy import func, select, text

from bot.db.engine import Database
from bot.db.models import KnowledgeDocument, Memory
from bot.db.repositories.guilds import GuildRepository
from bot.db.repositories.knowledge import KnowledgeRepository
from bot.db.repositories.memories import NewMemory
from bot.db.repositories.users import UserRepository
from bot.domain.documents import MAX_DOCUMENT_BYTES, DocumentError, chunk_document
from bot.domain.recall import RecallScope
from bot.llm.embeddings import Embedder, EmbeddingUnavailable, Vectors
from bot.llm.tokens import counter_for
from bot.services.knowledge import DocumentView, KnowledgeIngestError, KnowledgeService
from bot.services.memory import MemoryService
from tests.fakes.llm_server import FakeLLM
from tests.support.bot import container_on
from tests.support.embedding import shared_embedder
from tests.support.row_locks import waiting_for_row_locks

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)

BRINEFALL = """# Brinefall

Brinefall is a fishing town on a cold northern coast, founded by smugglers three centuries ago.

## The Harbour

The harbour freezes every winter, and the fishing boats are hauled up onto the shingle until the thaw.
Captain Mira runs the ferry to the outer islands twice a week.

## The Lighthouse

The lamp on Gull Point is tended by Oona, a retired sea-witch who lives alone in the tower and keeps the
flame burning through every storm.

## The Market

Every Saturday the square fills with stalls selling smoked herring, rye bread and knitted wool.

# The Council

Brinefall is governed by a council of five elders, elected each spring by the guild of net-makers.
"""

DUNEHOLD = """# Dunehold

Dunehold is a caravan city in the red desert. Its water comes from a single deep well guarded by the
Sisters of the Spring.
"""


class Embeddings:
    """The real embedder, failing from its ``fail_from``-th call on (an endpoint that went away mid-upload)."""

    def __init__(self, real: Embedder, *, fail_from: int) -> None:
        self.real, self.fail_from, self.calls = real, fail_from, 0
        self.model_name, self.dimension = real.model_name, real.dimension

    async def embed(self, texts: Sequence[str]) -> Vectors:
        self.calls += 1
        if self.calls >= self.fail_from:
            raise EmbeddingUnavailable("the embedding endpoint did not answer.")
        return await self.real.embed(texts)

    async def embed_one(self, text: str) -> Vectors:
        return await self.real.embed_one(text)

    def start_one(self, text: str) -> "asyncio.Future[Vectors]":
        return asyncio.ensure_future(self.embed_one(text))

    async def aclose(self) -> None:
        """The shared model stays loaded for the other tests."""


@pytest.fixture
async def memory(db: Database) -> MemoryService:
    return MemoryService(db, await shared_embedder())


@pytest.fixture
async def knowledge(db: Database, memory: MemoryService) -> KnowledgeService:
    return KnowledgeService(db, memory, batch_size=2, clock=lambda: NOW)


async def places(db: Database) -> tuple[int, int, int]:
    """The ids of two guilds and of an admin."""
    async with db.session() as session:
        guilds = GuildRepository(session)
        admin = await UserRepository(session).upsert(discord_id=7, username="ada", display_name="Ada", seen_at=NOW)
        town = await guilds.upsert(discord_id=901, name="Brinefall RP")
        desert = await guilds.upsert(discord_id=902, name="Dunehold RP")
        return town.id, desert.id, admin.id


async def lore_of(db: Database, guild_id: int) -> list[Memory]:
    async with db.session() as session:
        return list(
            (await session.scalars(select(Memory).where(Memory.guild_id == guild_id).order_by(Memory.id))).all()
        )


async def count(db: Database, model: type[Memory] | type[KnowledgeDocument]) -> int:
    async with db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def word_indexed(db: Database, word: str) -> int:
    """How many memories the word index (SQLite FTS5, PostgreSQL's word counts) holds ``word`` in."""
    async with db.session() as session:
        if db.backend == "sqlite":
            query = text("SELECT count(*) FROM memories_fts WHERE memories_fts MATCH :word")
            return int(await session.scalar(query, {"word": word}) or 0)
        query = text(
            "SELECT coalesce(sum(documents), 0) FROM memory_word_counts "
            "WHERE lexeme = ANY(tsvector_to_array(to_tsvector('english', :word)))"
        )
        return int(await session.scalar(query, {"word": word}) or 0)


async def test_a_document_becomes_lore_its_guild_recalls_by_meaning_and_no_other_guild_does(
    db: Database, memory: MemoryService, knowledge: KnowledgeService
) -> None:
    town, desert, admin = await places(db)
    reports: list[tuple[int, int]] = []

    async def progress(done: int, total: int) -> None:
        reports.append((done, total))

    data = BRINEFALL.encode()
    view = await knowledge.add(town, admin, "brinefall.md", "text/markdown; charset=utf-8", data, progress=progress)
    await knowledge.add(desert, admin, "dunehold.md", None, DUNEHOLD.encode())

    chunks = chunk_document(BRINEFALL)
    assert len(chunks) == 5 and chunks[2].startswith("Brinefall > The Lighthouse: The lamp on Gull Point")
    assert view == DocumentView(view.id, "brinefall.md", "completed", 5, len(data), NOW, None)
    assert await knowledge.list(town) == [view]
    assert reports == [(0, 5), (2, 5), (4, 5), (5, 5)]
    stored = await lore_of(db, town)
    assert [m.content for m in stored] == chunks
    for m in stored:
        assert (m.kind, m.scope, m.document_id, m.importance) == ("knowledge", "guild", view.id, 0.6)
        assert m.embedding is not None and m.embedding_model == memory.embedder.model_name

    question = "Who looks after the light out on the headland?"
    best = (await memory.recall(question, RecallScope(user_id=admin, guild_id=town), now=NOW))[0]
    assert best.memory.content == chunks[2]
    assert best.line == f"From this server's notes: {chunks[2]}"
    elsewhere = await memory.recall(question, RecallScope(user_id=admin, guild_id=desert), now=NOW)
    assert elsewhere and all(r.memory.content.startswith("Dunehold:") for r in elsewhere)
    assert await memory.recall(question, RecallScope(user_id=admin, guild_id=None), now=NOW) == []


async def test_the_same_name_replaces_a_document_and_removing_takes_its_passages_in_its_guild_only(
    db: Database, knowledge: KnowledgeService
) -> None:
    town, desert, admin = await places(db)
    first = await knowledge.add(town, admin, "ferry.md", None, b"# Ferry\n\nThe ferry captain is Mira.")
    theirs = await knowledge.add(desert, admin, "ferry.md", None, b"# Ferry\n\nThe camel master is Zubair.")

    async def broken_progress(done: int, total: int) -> None:
        raise RuntimeError("the interaction expired")  # a report that fails does not stop the upload

    upload = b"# Ferry\n\nThe ferry captain is Bartholomew.\n\n## Fares\n\nA crossing costs two silver pennies."
    second = await knowledge.add(town, None, "ferry.md", "text/plain", upload, progress=broken_progress)

    assert await knowledge.list(town) == [second] and second.chunk_count == 2 and second.id != first.id
    assert [m.content for m in await lore_of(db, town)] == [
        "Ferry: The ferry captain is Bartholomew.",
        "Ferry > Fares: A crossing costs two silver pennies.",
    ]
    assert await word_indexed(db, "mira") == 0, "the replaced passages left the word index too"
    assert await knowledge.list(desert) == [theirs], "another guild's document of the same name stays"

    assert await knowledge.remove(desert, second.id) is None, "a guild cannot remove another guild's document"
    assert await knowledge.remove(town, 10_000) is None
    assert await knowledge.list(town) == [second]

    assert await word_indexed(db, "bartholomew") == 1
    assert await knowledge.remove(town, second.id) == second
    assert await knowledge.list(town) == [] and await lore_of(db, town) == []
    assert await word_indexed(db, "bartholomew") == 0
    assert [m.content for m in await lore_of(db, desert)] == ["Ferry: The camel master is Zubair."]


async def test_the_same_name_in_another_case_or_unicode_form_replaces_the_document(
    db: Database, knowledge: KnowledgeService
) -> None:
    """An admin means one document by "Lore.md" and "lore.md", and by "Café.md" as macOS writes it (an e and a
    combining accent, NFD) and as Windows does (é, NFC): a new version under either replaces the old, rather than
    both being kept and recalled at once ("the ferry captain is Mira" next to "… is Bartholomew")."""
    town, desert, admin = await places(db)
    await knowledge.add(town, admin, "Ferry.md", None, b"# Ferry\n\nThe ferry captain is Mira.")
    theirs = await knowledge.add(desert, admin, "ferry.md", None, b"# Ferry\n\nThe camel master is Zubair.")
    newer = await knowledge.add(town, admin, "FERRY.md", None, b"# Ferry\n\nThe ferry captain is Bartholomew.")
    assert await knowledge.list(town) == [newer] and newer.name == "FERRY.md", "kept under the name last given"
    assert [m.content for m in await lore_of(db, town)] == ["Ferry: The ferry captain is Bartholomew."]
    assert await knowledge.list(desert) == [theirs], "another guild's document of the same name stays"

    decomposed, composed = unicodedata.normalize("NFD", "Café.md"), unicodedata.normalize("NFC", "Café.md")
    assert decomposed != composed
    await knowledge.add(town, admin, decomposed, None, b"# Cafe\n\nThe cafe opens at dawn.")
    cafe = await knowledge.add(town, admin, composed, None, b"# Cafe\n\nThe cafe opens at noon.")
    assert await knowledge.list(town) == [cafe, newer]
    assert [m.content for m in await lore_of(db, town)] == [
        "Ferry: The ferry captain is Bartholomew.",
        "Cafe: The cafe opens at noon.",
    ]

    other = await knowledge.add(town, admin, "ferry.txt", None, b"The ferry is painted blue.")
    assert await knowledge.list(town) == [other, cafe, newer], "another extension is another document"


async def test_while_a_new_version_is_learned_replies_recall_the_old_one_only_never_both(
    db: Database, memory: MemoryService, knowledge: KnowledgeService
) -> None:
    town, _, admin = await places(db)
    await knowledge.add(town, admin, "ferry.md", None, b"# Ferry\n\nThe ferry captain is Mira.")
    question = "Who is the captain of the ferry, and what does a crossing cost?"
    scope = RecallScope(user_id=admin, guild_id=town)
    recalled: list[list[str]] = []

    async def ask(done: int, total: int) -> None:
        if 0 < done < total:  # a reply written while the new version is part way through
            recalled.append([r.memory.content for r in await memory.recall(question, scope, now=NOW)])

    upload = (
        b"# Ferry\n\nThe ferry captain is Bartholomew.\n\n## Fares\n\nA crossing costs two silver pennies.\n\n"
        b"## Timetable\n\nThe ferry leaves at dawn on Mondays and Thursdays."
    )
    await knowledge.add(town, admin, "ferry.md", None, upload, progress=ask)

    assert recalled == [["Ferry: The ferry captain is Mira."]], "the old version, whole, until the new one is"
    after = [r.memory.content for r in await memory.recall(question, scope, now=NOW)]
    assert "Ferry: The ferry captain is Bartholomew." in after and "Ferry: The ferry captain is Mira." not in after


# Brinefall in Chinese: one paragraph, as Chinese is written, with no space after a full stop.
BRINEFALL_ZH = (
    "布林福尔是一座位于寒冷北方海岸的渔村，三百年前由走私者建立。港口每年冬天都会结冰，渔船被拖上岸直到解冻。"
    "米拉船长每周两次驾驶渡船前往外岛。灯塔由一位退休的海巫奥娜看守，她独自住在塔里，在每一场风暴中都让火焰燃烧。"
    "每个星期六，广场上都挤满了出售熏鲱鱼、黑麦面包和针织羊毛的摊位。"
) * 8


async def test_lore_written_without_spaces_is_cut_into_passages_a_reply_has_room_for(
    db: Database, memory: MemoryService, knowledge: KnowledgeService
) -> None:
    """Chinese or Japanese holds a token or more per character: a passage measured as if it were English words
    outgrew the whole memory section of a reply, which then recalled nothing at all."""
    town, _, admin = await places(db)
    view = await knowledge.add(town, admin, "布林福尔.md", None, f"# 布林福尔\n\n{BRINEFALL_ZH}".encode())
    assert view.status == "completed"

    scope = RecallScope(user_id=admin, guild_id=town)
    count = counter_for("gpt-4o-mini")  # the tokenizer an OpenAI model's prompt is counted with
    section = await memory.prompt_section("谁看守灯塔？", scope, now=NOW, tokens=1000, count=count)
    assert section.text.startswith("From this server's notes: 布林福尔: "), section.text
    for passage in await lore_of(db, town):
        assert passage.content.startswith("布林福尔: ") and " " not in passage.content.removeprefix("布林福尔: ")


async def test_a_paragraph_written_as_a_heading_is_lore_not_the_title_of_every_passage(
    db: Database, memory: MemoryService, knowledge: KnowledgeService
) -> None:
    """Discord's own Markdown makes a line big text with "# ", and people write whole announcements so. Taken for
    a heading, such a line headed every passage under it, each then too long for a reply's memory section."""
    town, _, admin = await places(db)
    rules = " ".join(f"Rule {i}: the ferry waits for no one, and fares are paid in silver." for i in range(70))
    harbour = "\n\n".join(f"Pier {i} is where the {i}th boat of the harbour is moored." for i in range(20))
    view = await knowledge.add(town, admin, "welcome.md", None, f"# {rules}\n\n{harbour}".encode())

    passages = [m.content for m in await lore_of(db, town)]
    assert view.chunk_count == len(passages) and len(passages) < 20
    assert all(len(passage.split()) <= 180 for passage in passages)
    assert " ".join(passages).count("fares are paid in silver") >= 70, "the line is kept, as text"
    scope = RecallScope(user_id=admin, guild_id=town)
    section = await memory.prompt_section("Where is the 7th boat moored?", scope, now=NOW, tokens=1000)
    assert "Pier 7 is where the 7th boat of the harbour is moored." in section.text


async def test_a_passage_under_long_nested_headings_is_embedded_to_its_end(
    db: Database, memory: MemoryService, knowledge: KnowledgeService
) -> None:
    """The headings a passage sits under are put before it; long nested ones were not counted in its size, so a
    passage could outgrow the local model's 256-token input and the sentences at its end were never embedded (a
    question about them did not find it)."""
    town, _, admin = await places(db)
    titles = [
        "The Northern Reaches of the Kingdom and the Old Roads the Salt Merchants Walked Before the Great Flood Came",
        "The Coastal Towns Along the Grey Sea Where the Fishing Guilds Still Keep Their Ancient Charters and Feasts",
        "Brinefall the Smugglers Haven and Its Harbour Where the Winter Ice Comes Early Every Single Year Without Fail",
        "The Harbour Masters and Ferry Captains Who Have Served the Town Since the Days of the First Council Elders",
    ]
    headings = "\n\n".join(f"{'#' * level} {title}" for level, title in enumerate(titles, start=1))
    sentences = [f"On day {i} of the thaw the boats of pier {i} are hauled back into the water." for i in range(40)]
    view = await knowledge.add(town, admin, "north.md", None, f"{headings}\n\n{' '.join(sentences)}".encode())

    passages = [m.content for m in await lore_of(db, town)]
    assert view.chunk_count == len(passages) > 1
    assert " ".join(passages).count("hauled back into the water") >= len(sentences), "every sentence is kept"
    for passage in passages:
        assert passage.endswith("hauled back into the water."), passage
        shorter = passage.removesuffix("hauled back into the water.")
        whole, without_end = await memory.embedder.embed([passage, shorter])
        assert not np.allclose(whole, without_end), f"the end of the passage is embedded: {passage}"
        assert len(passage.split()) <= 180, "the headings count in a passage's size"


async def test_files_that_cannot_be_used_are_refused_and_store_nothing(
    db: Database, knowledge: KnowledgeService
) -> None:
    town, _, admin = await places(db)
    uploads = {
        "map.txt": (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x01", "looks like a binary file"),
        "tome.md": (b"# Tome\n\n" + b"word " * (MAX_DOCUMENT_BYTES // 5), "is too large (limit 2 MB)"),
        "map.png": (b"# Map", "is not a text document"),
        "headings.md": (b"# Only\n\n## Headings\n", "has only headings"),
    }
    for filename, (data, reason) in uploads.items():
        with pytest.raises(DocumentError, match=re.escape(reason)):
            await knowledge.add(town, admin, filename, None, data)
    assert await knowledge.list(town) == []
    assert await count(db, KnowledgeDocument) == 0 and await count(db, Memory) == 0


async def test_a_file_of_only_invisible_characters_is_refused_as_empty_and_stores_nothing(
    db: Database, knowledge: KnowledgeService
) -> None:
    """Zero-width spaces, joiners, byte order marks and Hangul fillers are not whitespace to Python, but nobody can
    read them: such a file was learned as a passage that shows nothing, recalled as "From this server's notes: "."""
    town, _, admin = await places(db)
    uploads = {
        "blank.txt": "\u200b\u200b\n\u200c\u200d\u2060\n".encode(),
        "marks.md": "\ufeff\ufeff\ufeff\n\n\ufeff".encode(),
        "filler.txt": "\u3164 \u3164\n\u2800\u00ad".encode(),
        "wide.txt": "\u200b\n".encode("utf-16"),
    }
    for filename, data in uploads.items():
        with pytest.raises(DocumentError, match=re.escape(f"“{filename}” is empty: there is nothing in it to learn.")):
            await knowledge.add(town, admin, filename, None, data)
    with pytest.raises(DocumentError, match="has only headings"):
        await knowledge.add(town, admin, "titled.md", None, "# The Harbour\n\n\u200b\u200b\n".encode())
    assert await knowledge.list(town) == []
    assert await count(db, KnowledgeDocument) == 0 and await count(db, Memory) == 0

    view = await knowledge.add(town, admin, "ferry.md", None, "# Ferry\n\n\u200bThe ferry captain is Mira.".encode())
    assert view.chunk_count == 1, "a document with text in it is learned"


async def test_an_upload_whose_embedding_fails_is_listed_as_failed_keeps_nothing_and_replaces_nothing(
    db: Database, knowledge: KnowledgeService
) -> None:
    town, _, admin = await places(db)
    kept = await knowledge.add(town, admin, "lore.md", None, b"# Ferry\n\nThe ferry captain is Mira.")
    flaky = Embeddings(await shared_embedder(), fail_from=2)
    failing = KnowledgeService(db, MemoryService(db, flaky), batch_size=2, clock=lambda: NOW)

    with pytest.raises(KnowledgeIngestError) as failed:
        await failing.add(town, admin, "lore.md", None, BRINEFALL.encode())
    assert str(failed.value) == (
        "“lore.md” could not be learned: the embedding endpoint did not answer. "
        "It is listed as failed; none of it was kept."
    )

    listed = await knowledge.list(town)
    assert [(d.name, d.status, d.chunk_count, d.error) for d in listed] == [
        ("lore.md", "failed", 0, "the embedding endpoint did not answer."),
        ("lore.md", "completed", 1, None),
    ]
    assert listed[1] == kept, "a failed re-upload leaves the old document in place"
    assert [m.content for m in await lore_of(db, town)] == ["Ferry: The ferry captain is Mira."]
    assert await word_indexed(db, "smugglers") == 0, "the first batch, stored before the failure, is gone"

    assert await knowledge.remove(town, listed[0].id) == listed[0]
    assert await knowledge.list(town) == [kept]


@pytest.mark.parametrize("removed_after", [2, 5], ids=["between batches", "after the last batch"])
async def test_a_document_removed_while_it_is_learned_is_refused_and_leaves_no_passages(
    db: Database, knowledge: KnowledgeService, removed_after: int
) -> None:
    town, _, admin = await places(db)
    removed: list[int] = []

    async def remove_it(done: int, total: int) -> None:
        if done == removed_after:  # /knowledge remove, landing while the passages are being stored
            [document] = await knowledge.list(town)
            assert await knowledge.remove(town, document.id) is not None
            removed.append(document.id)

    with pytest.raises(DocumentError, match="was removed or replaced while it was being learned"):
        await knowledge.add(town, admin, "brinefall.md", None, BRINEFALL.encode(), progress=remove_it)
    assert await knowledge.list(town) == []
    assert await count(db, KnowledgeDocument) == 0 and await count(db, Memory) == 0
    async with db.session() as session:  # what tells the upload its document is gone
        assert await KnowledgeRepository(session).set_status(removed[0], "completed", now=NOW) is None


async def test_a_document_is_read_and_cut_off_the_event_loop(
    db: Database, knowledge: KnowledgeService, monkeypatch: pytest.MonkeyPatch
) -> None:
    town, _, admin = await places(db)
    threads: list[str] = []

    def chunk(text: str) -> list[str]:
        threads.append(threading.current_thread().name)
        return chunk_document(text)

    monkeypatch.setattr("bot.services.knowledge.chunk_document", chunk)
    view = await knowledge.add(town, admin, "ferry.md", None, b"# Ferry\n\nThe ferry captain is Mira.")
    assert view.chunk_count == 1
    assert threads and threads[0] != threading.main_thread().name


async def test_at_start_uploads_left_half_done_by_a_stop_are_failed_and_their_passages_removed(
    db: Database, memory: MemoryService
) -> None:
    town, _, admin = await places(db)
    earlier = KnowledgeService(db, memory, batch_size=2, clock=lambda: NOW - timedelta(hours=1))
    done = await earlier.add(town, admin, "harbour.md", None, b"# Harbour\n\nBoats leave at dawn.")
    async with db.session() as session:
        # An upload that stopped mid-way an hour ago, and one another process started a minute ago.
        repo = KnowledgeRepository(session)
        stalled = await repo.add(
            guild_id=town,
            uploaded_by_user_id=admin,
            source_name="old.md",
            mime_type="text/markdown",
            size_bytes=10,
            now=NOW - timedelta(hours=1),
        )
        running = await repo.add(
            guild_id=town,
            uploaded_by_user_id=admin,
            source_name="new.md",
            mime_type="text/markdown",
            size_bytes=10,
            now=NOW - timedelta(minutes=1),
        )
    chunk = NewMemory(kind="knowledge", content="half", scope="guild", created_at=NOW, guild_id=town)
    for document in (stalled, running):
        await memory.remember([replace(chunk, document_id=document.id)])

    assert await KnowledgeService(db, memory, clock=lambda: NOW).recover() == 1
    statuses = {view.name: (view.status, view.chunk_count) for view in await earlier.list(town)}
    assert statuses == {"harbour.md": ("completed", 1), "old.md": ("failed", 0), "new.md": ("processing", 0)}
    async with db.session() as session:
        owners = (await session.scalars(select(Memory.document_id).where(Memory.kind == "knowledge"))).all()
    assert Counter(owners) == Counter([done.id, running.id]), "the stalled upload's passage is gone, the others stay"


async def test_an_upload_still_storing_passages_is_not_taken_for_stalled_however_long_it_runs(
    db: Database, memory: MemoryService
) -> None:
    town, _, admin = await places(db)
    now = [NOW]
    uploading = KnowledgeService(db, memory, batch_size=1, clock=lambda: now[0])
    recovered: list[int] = []

    async def progress(done: int, total: int) -> None:
        if done == 1:  # the first passage is stored; the next one comes an hour later (a slow embedding endpoint)
            now[0] = NOW + timedelta(hours=1)
        if done == 2:  # meanwhile another process starts and looks for uploads a stop left half-done
            recovered.append(await KnowledgeService(db, memory, clock=lambda: now[0] + timedelta(minutes=1)).recover())

    document = b"# Harbour\n\nBoats leave at dawn.\n\n# Lighthouse\n\nOona keeps the light.\n\n# Market\n\nHerring."
    view = await uploading.add(town, admin, "brinefall.md", None, document, progress=progress)

    assert recovered == [0]
    assert (view.status, view.chunk_count) == ("completed", 3)
    assert len(await lore_of(db, town)) == 3


async def test_an_upload_left_half_done_is_failed_while_the_bot_runs_not_only_at_its_next_start(
    db: Database, llm: FakeLLM
) -> None:
    async with container_on(db, llm) as container:
        town, _, admin = await places(db)
        async with db.session() as session:  # a process stopped mid-upload, and started again at once
            stalled = await KnowledgeRepository(session).add(
                guild_id=town,
                uploaded_by_user_id=admin,
                source_name="old.md",
                mime_type="text/markdown",
                size_bytes=10,
                now=datetime.now(UTC) - timedelta(hours=1),
            )
        chunk = NewMemory(kind="knowledge", content="half", scope="guild", created_at=NOW, guild_id=town)
        await container.memory.remember([replace(chunk, document_id=stalled.id)])

        await container.scheduler.run_now("knowledge-recovery")

        [view] = await container.knowledge.list(town)
        assert (view.status, view.chunk_count) == ("failed", 0)
        assert await lore_of(db, town) == []


async def test_two_processes_recovering_uploads_at_once_fail_each_stalled_upload_once(pg: Database) -> None:
    """Processes started together look for uploads a stop left half-done at the same moments (at start, then
    hourly). Recovery is one statement whose rows the other waits for and then finds failed already: each upload is
    failed once, its passages removed once, and neither process fails."""
    memory = MemoryService(pg, await shared_embedder())
    town, _, admin = await places(pg)
    async with pg.session() as session:
        repo = KnowledgeRepository(session)
        stalled = [
            await repo.add(
                guild_id=town,
                uploaded_by_user_id=admin,
                source_name=f"part {number}.md",
                mime_type="text/markdown",
                size_bytes=10,
                now=NOW - timedelta(hours=1),
            )
            for number in range(3)
        ]
    chunk = NewMemory(kind="knowledge", content="half", scope="guild", created_at=NOW, guild_id=town)
    await memory.remember([replace(chunk, document_id=document.id) for document in stalled])
    first, second = (KnowledgeService(pg, memory, clock=lambda: NOW) for _ in range(2))

    async with pg.session() as holding:  # one upload held, so both recoveries are under way at once
        held = select(KnowledgeDocument.id).order_by(KnowledgeDocument.id.desc()).limit(1).with_for_update()
        await holding.execute(held)
        runs = asyncio.gather(first.recover(), second.recover())
        await waiting_for_row_locks(pg, connections=2)
    done = await runs

    assert sorted(done) == [0, 3]
    async with pg.session() as session:
        documents = (await session.execute(select(KnowledgeDocument.status, KnowledgeDocument.chunk_count))).all()
    assert sorted(tuple(row) for row in documents) == [("failed", 0)] * 3
    assert await count(pg, Memory) == 0

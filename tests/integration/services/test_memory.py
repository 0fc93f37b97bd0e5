"""Long-term memory on a real database with the real local embedding model, on both backends: who may recall
what, how memories read in a prompt, the embedding worker, and conversation summaries."""

import asyncio
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from bot.db.engine import Database
from bot.db.models import Memory
from bot.db.repositories.conversations import ConversationRepository
from bot.db.repositories.guilds import GuildRepository
from bot.db.repositories.memories import MemoryRepository, NewMemory
from bot.db.repositories.users import UserRepository
from bot.domain.budget import estimate_tokens
from bot.domain.recall import RecallScope
from bot.llm.embeddings import LocalEmbedder, Vectors
from bot.services.activity import ReplyActivity
from bot.services.embedding_worker import EmbeddingWorker
from bot.services.memory import MemoryService
from tests.fakes.llm_server import FakeLLM, Reply
from tests.support.chat import RecordingReply, conversation_service, message
from tests.support.embedding import shared_embedder

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


@pytest.fixture
async def memory(db: Database) -> MemoryService:
    return MemoryService(db, await shared_embedder())


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


async def people_and_places(db: Database) -> dict[str, int]:
    async with db.session() as session:
        users, guilds = UserRepository(session), GuildRepository(session)
        return {
            "ana": (await users.upsert(discord_id=11, username="ana", display_name="Ana", seen_at=NOW)).id,
            "ben": (await users.upsert(discord_id=12, username="ben", display_name="Ben", seen_at=NOW)).id,
            "cosy": (await guilds.upsert(discord_id=901, name="Cosy Corner")).id,
            "other": (await guilds.upsert(discord_id=902, name="Elsewhere")).id,
        }


def said(
    content: str, speaker: str, user: int, *, scope: str, guild: int | None = None, days_ago: int = 3
) -> NewMemory:
    return NewMemory(
        kind="message",
        content=content,
        scope=scope,
        created_at=NOW - timedelta(days=days_ago),
        user_id=user,
        guild_id=guild,
        channel_id=500,
        channel_name="general" if guild else None,
        speaker_name=speaker,
    )


async def test_each_place_recalls_only_what_it_may(db: Database, memory: MemoryService) -> None:
    ids = await people_and_places(db)
    ana, ben, cosy, other = ids["ana"], ids["ben"], ids["cosy"], ids["other"]
    stored = dict(
        zip(
            ["cosy", "other", "ana_dm", "ana_global", "ben_dm"],
            await memory.remember(
                [
                    said("I started learning the cello last month", "Ana", ana, scope="guild", guild=cosy),
                    said("My cello teacher is called Marta", "Ana", ana, scope="guild", guild=other),
                    said("I practise the cello every morning before work", "Ana", ana, scope="dm"),
                    said("My cello is named Bruno", "Ana", ana, scope="global"),
                    said("Secret: I am planning a surprise cello concert", "Ben", ben, scope="dm"),
                ]
            ),
            strict=True,
        )
    )

    async def recalled(scope: RecallScope) -> set[str]:
        found = {r.memory.id for r in await memory.recall("tell me about the cello", scope, now=NOW)}
        return {name for name, memory_id in stored.items() if memory_id in found}

    assert await recalled(RecallScope(user_id=ana, guild_id=cosy)) == {"cosy"}
    assert await recalled(RecallScope(user_id=ben, guild_id=cosy)) == {"cosy"}, "a guild's memories, whoever asks"
    assert await recalled(RecallScope(user_id=ana, guild_id=other)) == {"other"}
    assert await recalled(RecallScope(user_id=ana, guild_id=None)) == {"ana_dm", "ana_global"}
    assert await recalled(RecallScope(user_id=ben, guild_id=None)) == {"ben_dm"}


async def test_memories_read_with_when_and_where_and_fit_the_budget(db: Database, memory: MemoryService) -> None:
    ids = await people_and_places(db)
    await memory.remember(
        [said("I adopted a grey cat called Pepper", "Ana", ids["ana"], scope="guild", guild=ids["cosy"], days_ago=21)]
        + [
            said(
                f"Cats are great, fact number {n}: they nap a lot", "Ben", ids["ben"], scope="guild", guild=ids["cosy"]
            )
            for n in range(30)
        ]
    )
    scope = RecallScope(user_id=ids["ana"], guild_id=ids["cosy"])
    best = (await memory.recall("what is my cat called? Pepper", scope, now=NOW))[0]
    assert best.line == '3 weeks ago in #general, Ana said: "I adopted a grey cat called Pepper"'

    section = await memory.prompt_section("cats", scope, now=NOW, tokens=60)
    lines = section.text.splitlines()
    assert 1 <= len(lines) < 20 and len(section.text) <= 60 * 4 + len(lines)
    assert len(section.memory_ids) == len(lines)


async def test_turns_already_in_the_prompt_are_not_recalled_again(db: Database, memory: MemoryService) -> None:
    ids = await people_and_places(db)
    ana, cosy = ids["ana"], ids["cosy"]
    async with db.session() as session:
        conversations = ConversationRepository(session)
        conversation = await conversations.open(channel_id=500, guild_id=cosy, user_id=None, at=NOW)
        message_id = await conversations.add_message(
            conversation_id=conversation.id, user_id=ana, role="user", content="I love rock climbing", at=NOW
        )
    in_history = replace(said("I love rock climbing", "Ana", ana, scope="guild", guild=cosy), message_id=message_id)
    memory_id, _ = await memory.remember(
        [in_history, said("climbing gyms are fun", "Ana", ana, scope="guild", guild=cosy)]
    )
    scope = RecallScope(user_id=ana, guild_id=cosy)
    assert memory_id in {r.memory.id for r in await memory.recall("climbing", scope, now=NOW)}
    again = await memory.recall("climbing", scope, now=NOW, exclude_message_ids=[message_id])
    assert memory_id not in {r.memory.id for r in again} and again


async def test_every_turn_is_remembered_with_its_context_and_a_later_talk_recalls_it(
    db: Database, llm: FakeLLM, memory: MemoryService
) -> None:
    clock = Clock(NOW)
    worker = EmbeddingWorker(db, memory.embedder)
    worker.start()
    service = conversation_service(db, llm, memory=memory, worker=worker, clock=clock)
    llm.script(Reply("Oh, what kind of dog?"), Reply("A beagle! Lovely."), Reply("Of course I remember."))
    await service.handle(message("I'm getting a puppy on Saturday", guild=901, mention=True, at=NOW), RecordingReply())
    await service.handle(message("a beagle called Toast", guild=901, mention=True, at=NOW), RecordingReply())
    await worker.flush()

    async with db.session() as session:
        rows = (await session.scalars(select(Memory).order_by(Memory.id))).all()
    assert [(m.speaker_name, m.content, m.scope) for m in rows] == [
        ("Ana", "I'm getting a puppy on Saturday", "guild"),
        (None, "Oh, what kind of dog?", "guild"),
        ("Ana", "a beagle called Toast", "guild"),
        (None, "A beagle! Lovely.", "guild"),
    ]
    assert rows[0].context is None and rows[2].context == "you: Oh, what kind of dog?"
    assert all(m.embedding_model == memory.embedder.model_name and m.channel_name == "general" for m in rows)

    clock.now = NOW + timedelta(days=10)  # a new conversation: the old turns are no longer in the history
    later = message("do you remember my dog's name?", guild=901, mention=True, at=clock.now)
    await service.handle(later, RecordingReply())
    await worker.stop()
    system = llm.chat_requests[-1].body["messages"][0]["content"]
    assert '10 days ago in #general, Ana said: "a beagle called Toast"' in system
    assert [m["content"] for m in llm.chat_requests[-1].body["messages"][1:]] == ["Ana: do you remember my dog's name?"]
    async with db.session() as session:
        toast = await session.scalar(select(Memory).where(Memory.content == "a beagle called Toast"))
    assert toast is not None and toast.last_accessed_at == clock.now  # marked as recalled, for pruning


async def test_a_recall_is_marked_to_the_day_not_at_every_use(db: Database, memory: MemoryService) -> None:
    ana = (await people_and_places(db))["ana"]
    ids = await memory.remember([said("I play the oboe", "Ana", ana, scope="dm", days_ago=5)])
    for at, expected in (
        (NOW, NOW),  # five days since it was said: marked
        (NOW + timedelta(hours=20), NOW),  # the same day: left as it is (no rewrite of the row and its vector)
        (NOW + timedelta(days=2), NOW + timedelta(days=2)),
    ):
        async with db.session() as session:
            await MemoryRepository(session).touch(ids, now=at)
        async with db.session() as session:
            assert await session.scalar(select(Memory.last_accessed_at).where(Memory.id == ids[0])) == expected


async def test_the_worker_holds_back_while_a_reply_is_prepared(db: Database, memory: MemoryService) -> None:
    ana = (await people_and_places(db))["ana"]
    activity = ReplyActivity()
    worker = EmbeddingWorker(db, memory.embedder, activity=activity, yield_s=30)
    worker.start()
    preparing = activity.begin()  # a reply is on its way to the model
    async with db.session() as session:
        await MemoryRepository(session).add_many([said("I play the oboe", "Ana", ana, scope="dm")], None, None)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.5):
            await worker.flush()
    assert worker.embedded == 0 and await worker.backlog() == 1

    preparing()
    async with asyncio.timeout(10):
        await worker.flush()
    assert worker.embedded == 1 and await worker.backlog() == 0
    await worker.stop()


async def talk(
    db: Database, memory: MemoryService, channel: int, guild: int | None, turns: list[NewMemory]
) -> list[int]:
    """Store ``turns`` as one conversation in ``channel``, in order; returns their memory ids."""
    async with db.session() as session:
        conversation = await ConversationRepository(session).open(
            channel_id=channel, guild_id=guild, user_id=None if guild else turns[0].user_id, at=turns[0].created_at
        )
    return await memory.remember([replace(turn, conversation_id=conversation.id) for turn in turns])


async def test_the_reply_to_what_was_found_is_recalled_with_it(db: Database, memory: MemoryService) -> None:
    ids = await people_and_places(db)
    ana, ben, cosy = ids["ana"], ids["ben"], ids["cosy"]
    question, answer, _ = await talk(
        db,
        memory,
        500,
        cosy,
        [
            said("Could somebody lend me a ladder for the weekend?", "Ana", ana, scope="guild", guild=cosy),
            said("Sure thing! I can bring it over tomorrow", "Ben", ben, scope="guild", guild=cosy),
            said("Did anyone watch the match last night?", "Ana", ana, scope="guild", guild=cosy, days_ago=2),
        ],
    )
    # Other talk about ladders, each a conversation of its own turn.
    for n, text in enumerate(["Ladders scare me a little", "Our ladder is in the garage", "I bought a new ladder"]):
        await talk(db, memory, 600 + n, cosy, [said(text, "Ben", ben, scope="guild", guild=cosy, days_ago=5)])

    recalled = [
        r.memory.id for r in await memory.recall("Who can lend Ana a ladder?", RecallScope(ana, cosy), now=NOW, limit=3)
    ]
    assert question in recalled and answer in recalled, "the answer shares no word with the question"


async def test_neighbours_never_bring_what_the_place_may_not_recall(db: Database, memory: MemoryService) -> None:
    ids = await people_and_places(db)
    ana, ben, cosy, other = ids["ana"], ids["ben"], ids["cosy"], ids["other"]
    async with db.session() as session:
        conversations = ConversationRepository(session)
        conversation = await conversations.open(channel_id=500, guild_id=cosy, user_id=None, at=NOW)
        in_history = await conversations.add_message(
            conversation_id=conversation.id, user_id=ben, role="user", content="I'll take the blue one", at=NOW
        )
    # One conversation whose turns belong to different places (as no real one would): whatever sits next to a
    # strong match is recalled only where it may be.
    turns = [
        said("Ben's secret: the blue kayak is a birthday gift", "Ben", ben, scope="dm"),
        said("Elsewhere: we rent kayaks by the hour", "Ana", ana, scope="guild", guild=other),
        said("Which kayak should I buy, the red or the blue one?", "Ana", ana, scope="guild", guild=cosy),
        replace(said("I'll take the blue one", "Ben", ben, scope="guild", guild=cosy), message_id=in_history),
        said("Ana's diary: kayaking calms me", "Ana", ana, scope="dm"),
    ]
    stored = await memory.remember([replace(turn, conversation_id=conversation.id) for turn in turns])
    ben_dm, other_guild, match, excluded, ana_dm = stored

    async def recalled(scope: RecallScope, **options: list[int]) -> set[int]:
        return {r.memory.id for r in await memory.recall("kayak red or blue", scope, now=NOW, limit=50, **options)}

    assert await recalled(RecallScope(ana, cosy)) == {match, excluded}
    assert await recalled(RecallScope(ana, cosy), exclude_message_ids=[in_history]) == {match}
    assert await recalled(RecallScope(ben, other)) == {other_guild}
    assert await recalled(RecallScope(ana, None)) == {ana_dm}
    assert await recalled(RecallScope(ben, None)) == {ben_dm}


async def test_the_memory_section_fills_its_budget_however_many_memories_that_takes(
    db: Database, memory: MemoryService
) -> None:
    ids = await people_and_places(db)
    await memory.remember(
        [said(f"tea note {n}", "Ana", ids["ana"], scope="guild", guild=ids["cosy"]) for n in range(60)]
    )
    section = await memory.prompt_section("tea", RecallScope(ids["ana"], ids["cosy"]), now=NOW, tokens=1000)
    lines = section.text.splitlines()
    assert len(lines) == len(section.memory_ids) > 40, "short memories: many fit"
    assert estimate_tokens(section.text) <= 1000


async def test_what_the_person_a_question_names_said_comes_before_what_others_said_to_them(
    db: Database, memory: MemoryService
) -> None:
    ids = await people_and_places(db)
    ana, ben, cosy = ids["ana"], ids["ben"], ids["cosy"]
    hearths_words = "Camping trips with friends are the best kind of trips!"
    async with db.session() as session:
        conversations = ConversationRepository(session)
        conversation = await conversations.open(channel_id=500, guild_id=cosy, user_id=None, at=NOW)
        reply = await conversations.add_message(
            conversation_id=conversation.id,
            user_id=ben,
            role="assistant",
            content=hearths_words,
            at=NOW,
            speaker_name="Hearth",
        )
    hearth_said = said(hearths_words, "Hearth", ben, scope="guild", guild=cosy)
    _, answer, _ = await memory.remember(
        [
            replace(turn, conversation_id=conversation.id)
            for turn in (
                said("Ana, what is your best camping trip memory?", "Ben", ben, scope="guild", guild=cosy),
                said("We pitched our tent by the lake under the stars", "Ana", ana, scope="guild", guild=cosy),
                replace(hearth_said, message_id=reply),
            )
        ]
    )

    async def best(question: str) -> int:
        return (await memory.recall(question, RecallScope(ben, cosy), now=NOW, limit=1))[0].memory.id

    # Ben's question matches best by both searches; the answer is in Ana's own words.
    assert await best("Where has Ana camped?") == answer
    # Hearth is addressed by its name, not asked about: what it said does not rise for that.
    assert await best("Hearth, where has Ana camped?") == answer

    # What Ana said in her DMs is hers alone, however well it answers a question naming her elsewhere.
    in_dm, *_ = await memory.remember([said("I camped where we camped, by the lake", "Ana", ana, scope="dm")])
    for who, where in ((ben, cosy), (ben, None), (ana, cosy)):
        found = await memory.recall("Where has Ana camped?", RecallScope(who, where), now=NOW, limit=50)
        assert in_dm not in {r.memory.id for r in found}
    found = await memory.recall("Where has Ana camped?", RecallScope(ana, None), now=NOW, limit=1)
    assert [r.memory.id for r in found] == [in_dm], "in her own DMs, it is found"


class Listening:
    """The real embedder, noting each query text it is asked to embed."""

    def __init__(self, embedder: LocalEmbedder) -> None:
        self.embedder = embedder
        self.model_name, self.dimension = embedder.model_name, embedder.dimension
        self.queries: list[str] = []

    async def embed(self, texts: Sequence[str]) -> Vectors:
        return await self.embedder.embed(texts)

    async def embed_one(self, text: str) -> Vectors:
        return await self.start_one(text)

    def start_one(self, text: str) -> "asyncio.Future[Vectors]":
        self.queries.append(text)
        return self.embedder.start_one(text)

    async def aclose(self) -> None:
        return None


async def test_a_query_is_embedded_without_the_names_of_the_people_in_its_place(db: Database) -> None:
    ids = await people_and_places(db)
    ana, ben, cosy, other = ids["ana"], ids["ben"], ids["cosy"], ids["other"]
    embedder = Listening(await shared_embedder())
    memory = MemoryService(db, embedder)
    cello, *_ = await memory.remember(
        [
            said("I practise the cello every morning before work", "Ana", ana, scope="guild", guild=cosy),
            said("Thanks Ana, you are the best, Ana", "Ben", ben, scope="guild", guild=cosy),
            said("Cleo plays the violin", "Cleo", ben, scope="guild", guild=other),
        ]
    )
    scope = RecallScope(ben, cosy)

    # A name means little to the model, and every turn that greets Ana would match it: the vector search looks
    # for the meaning, the word search for the name. Cleo has said nothing here: her name is kept.
    recalled = await memory.recall("What instrument does ANA play, and Cleo's?", scope, now=NOW, limit=1)
    assert embedder.queries == ["What instrument does play, and Cleo's?"]
    assert [r.memory.id for r in recalled] == [cello]

    # A query made as a message arrives starts embedding at once: as it is, until a recall in its place has
    # read the names there; from then on, without them.
    for text, embedded in (
        ("Ana plays what", ["Ana plays what", "plays what"]),
        ("and ana's sister?", ["and sister?"]),
        ("what does she play", ["what does she play"]),
    ):
        embedder.queries.clear()
        query = memory.query(text, place="guild:901")
        await memory.recall(query, scope, now=NOW)
        query.close()
        assert embedder.queries == embedded

    # Everyone in a server recalls the same memories, so the names read for Ben's recalls serve Ana's, though Dee
    # has spoken there since: Ana's query is embedded once, as it arrived (a newcomer's name waits for the next read).
    await memory.remember([said("Hi all, I'm new here", "Dee", ben, scope="guild", guild=cosy)])
    embedder.queries.clear()
    query = memory.query("did Ben and Dee like the cello?", place="guild:901")
    await memory.recall(query, RecallScope(ana, cosy), now=NOW)
    query.close()
    assert embedder.queries == ["did and Dee like the cello?"]

    # A question that is only a name keeps it: nothing else would be left to embed.
    embedder.queries.clear()
    await memory.recall("Ana?", scope, now=NOW)
    assert embedder.queries == ["Ana?"]

"""The maintenance jobs on a real database (both backends), each run by hand as the owner would."""

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from bot.db.engine import Database
from bot.db.models import GuildDailyTokenUsage, Memory, ReplyAlternative, UserDailyTokenUsage, UserFact
from bot.db.repositories.alternatives import AlternativeRepository
from bot.db.repositories.conversations import ConversationRepository
from bot.db.repositories.facts import FactRepository, NewFact
from bot.db.repositories.guilds import GuildRepository
from bot.db.repositories.memories import MemoryRepository, NewMemory
from bot.db.repositories.moods import MoodRepository
from bot.db.repositories.users import UserRepository
from bot.domain.mood import Mood
from bot.domain.place import StatePlace
from bot.services.maintenance import Maintenance, MaintenanceConfig
from bot.services.memory import MemoryService
from bot.services.personas import PersonaService
from bot.services.summaries import ConversationSummaries, SummaryConfig
from tests.fakes.llm_server import FakeLLM
from tests.support.chat import chat_model
from tests.support.embedding import shared_embedder
from tests.support.row_locks import waiting_for_row_locks

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


async def maintenance(db: Database, llm: FakeLLM, retention_days: int = 30) -> Maintenance:
    personas = PersonaService(db)
    summaries = ConversationSummaries(
        db, chat_model(llm.base_url), MemoryService(db, await shared_embedder()), personas, SummaryConfig("fake-model")
    )
    config = MaintenanceConfig(memory_retention=timedelta(days=retention_days))
    return Maintenance(db, personas, summaries, config, clock=lambda: NOW)


async def test_moods_settle_and_expired_facts_stop_being_current(db: Database, llm: FakeLLM) -> None:
    async with db.session() as session:
        user = await UserRepository(session).upsert(discord_id=11, username="ana", display_name="Ana", seen_at=NOW)
        dm = StatePlace(dm_user_id=user.id)
        await MoodRepository(session).save(dm, Mood(0.8, 0.8), at=NOW - timedelta(hours=12))  # two half-lives
        facts = FactRepository(session)
        for content, expiry in (("has exams this week", NOW - timedelta(hours=1)), ("plays chess", None)):
            fact = NewFact(user.id, "event", content, "dm", None, NOW - timedelta(days=9), expiry_date=expiry)
            await facts.add(fact, None, None)
    jobs = await maintenance(db, llm)

    assert await jobs.decay_moods() == 1
    assert await jobs.expire_facts() == 1
    async with db.session() as session:
        mood, since = await MoodRepository(session).get(dm) or (None, None)
        current = {f.fact_content: f.is_active for f in (await session.scalars(select(UserFact))).all()}
    assert mood is not None and abs(mood.valence - 0.2) < 1e-6 and abs(mood.arousal - 0.2) < 1e-6 and since == NOW
    assert current == {"has exams this week": False, "plays chess": True}


async def test_old_unused_message_memories_are_pruned_and_the_rest_kept(db: Database, llm: FakeLLM) -> None:
    old = NOW - timedelta(days=90)

    def memory(content: str, kind: str = "message", importance: float = 0.5) -> NewMemory:
        return NewMemory(kind=kind, content=content, scope="dm", created_at=old, importance=importance)

    async with db.session() as session:
        repo = MemoryRepository(session)
        ids = await repo.add_many(
            [
                memory("forgotten"),
                memory("recalled lately"),
                memory("a summary", kind="summary"),
                memory("vital", importance=0.9),
            ],
            None,
            None,
        )
        await repo.touch([ids[1]], now=NOW - timedelta(days=2))
        await repo.add_many([NewMemory(kind="message", content="recent", scope="dm", created_at=NOW)], None, None)

    assert await (await maintenance(db, llm, retention_days=30)).prune_memories() == 1
    async with db.session() as session:
        kept = sorted((await session.scalars(select(Memory.content))).all())
    assert kept == ["a summary", "recalled lately", "recent", "vital"]


async def test_a_days_replies_are_rolled_up_per_user_and_guild_and_a_rerun_changes_nothing(
    db: Database, llm: FakeLLM
) -> None:
    yesterday = NOW - timedelta(days=1)
    async with db.session() as session:
        user = await UserRepository(session).upsert(discord_id=11, username="ana", display_name="Ana", seen_at=NOW)
        guild = await GuildRepository(session).upsert(discord_id=901, name="Cosy Corner")
        conversations = ConversationRepository(session)
        in_guild = await conversations.open(channel_id=1, guild_id=guild.id, user_id=None, at=yesterday)
        in_dm = await conversations.open(channel_id=2, guild_id=None, user_id=user.id, at=yesterday)
        for conversation, at, prompt in (
            (in_guild, yesterday, 100),
            (in_guild, yesterday, 50),
            (in_dm, yesterday, 7),
            (in_dm, NOW, 1000),
        ):
            await conversations.add_message(
                conversation_id=conversation.id,
                user_id=user.id,
                role="assistant",
                content="hi",
                at=at,
                prompt_tokens=prompt,
                completion_tokens=10,
                model="fake-model",
            )
    jobs = await maintenance(db, llm)
    for _ in range(2):
        assert await jobs.roll_up_tokens() == 2
    async with db.session() as session:
        users = [
            (r.requests, r.prompt_tokens, r.completion_tokens)
            for r in (await session.scalars(select(UserDailyTokenUsage))).all()
        ]
        guilds = [
            (r.requests, r.prompt_tokens, r.completion_tokens)
            for r in (await session.scalars(select(GuildDailyTokenUsage))).all()
        ]
    assert users == [(3, 157, 30)] and guilds == [(2, 150, 20)]


async def test_days_whose_roll_up_was_missed_while_hearth_was_down_are_rolled_up_at_the_next(
    db: Database, llm: FakeLLM
) -> None:
    """Hearth was stopped through two days' roll-up times: the next roll-up counts those days too (once each, however
    often it runs), not only yesterday; a day longer ago than the roll-up looks back is left alone."""
    async with db.session() as session:
        user = await UserRepository(session).upsert(discord_id=11, username="ana", display_name="Ana", seen_at=NOW)
        conversations = ConversationRepository(session)
        opened = NOW - timedelta(days=90)
        conversation = await conversations.open(channel_id=2, guild_id=None, user_id=user.id, at=opened)
        for days_ago, prompt in ((90, 1), (3, 30), (2, 20), (1, 10)):
            await conversations.add_message(
                conversation_id=conversation.id,
                user_id=user.id,
                role="assistant",
                content="hi",
                at=NOW - timedelta(days=days_ago),
                prompt_tokens=prompt,
                completion_tokens=1,
                model="fake-model",
            )
    jobs = await maintenance(db, llm)
    assert await jobs.roll_up_tokens() == 3
    await jobs.roll_up_tokens()
    async with db.session() as session:
        rows = (await session.scalars(select(UserDailyTokenUsage).order_by(UserDailyTokenUsage.day))).all()
    assert [(r.day, r.requests, r.prompt_tokens) for r in rows] == [
        ((NOW - timedelta(days=days_ago)).date(), 1, prompt) for days_ago, prompt in ((3, 30), (2, 20), (1, 10))
    ]


async def test_every_answer_of_a_regenerated_reply_is_rolled_up_on_the_day_it_was_asked_for(
    db: Database, llm: FakeLLM
) -> None:
    """🔄 asks the model again: the daily history counts each answer it gave, as /stats and the quota do, not only the
    one shown now; the first on the day of the reply, each later one on the day it was asked for."""
    yesterday = NOW - timedelta(days=1)
    async with db.session() as session:
        user = await UserRepository(session).upsert(discord_id=11, username="ana", display_name="Ana", seen_at=NOW)
        guild = await GuildRepository(session).upsert(discord_id=901, name="Cosy Corner")
        conversations = ConversationRepository(session)
        conversation = await conversations.open(channel_id=1, guild_id=guild.id, user_id=None, at=yesterday)
        message_id = await conversations.add_message(
            conversation_id=conversation.id,
            user_id=user.id,
            role="assistant",
            content="first",
            at=yesterday,
            prompt_tokens=20,
            completion_tokens=5,
            model="fake-model",
        )
        alternatives = AlternativeRepository(session)
        # Regenerated an hour after the reply (the first answer is kept then, with the second), and again today.
        for position, prompt, completion, at in (
            (1, 20, 5, yesterday + timedelta(hours=1)),
            (2, 30, 6, yesterday + timedelta(hours=1)),
            (3, 40, 7, NOW),
        ):
            await alternatives.add(
                message_id,
                position,
                f"answer {position}",
                model="fake-model",
                prompt_tokens=prompt,
                completion_tokens=completion,
            )
            await session.execute(
                update(ReplyAlternative)
                .where(ReplyAlternative.message_id == message_id, ReplyAlternative.position == position)
                .values(created_at=at)
            )
        await alternatives.show(message_id, 2, at=NOW)  # ◀: the second answer is the one shown
    jobs = await maintenance(db, llm)

    assert await jobs.roll_up_tokens(yesterday.date()) == 2
    assert await jobs.roll_up_tokens(NOW.date()) == 2
    async with db.session() as session:
        users = [
            (r.day, r.requests, r.prompt_tokens, r.completion_tokens)
            for r in (await session.scalars(select(UserDailyTokenUsage).order_by(UserDailyTokenUsage.day))).all()
        ]
        guilds = [
            (r.day, r.requests, r.prompt_tokens, r.completion_tokens)
            for r in (await session.scalars(select(GuildDailyTokenUsage).order_by(GuildDailyTokenUsage.day))).all()
        ]
    expected = [(yesterday.date(), 2, 20 + 30, 5 + 6), (NOW.date(), 1, 40, 7)]
    assert users == expected and guilds == expected


async def test_two_processes_rolling_up_the_same_day_at_once_both_finish(pg: Database, llm: FakeLLM) -> None:
    """Processes started together run the daily roll-up at the same moment: neither fails on the other's rows."""
    yesterday = NOW - timedelta(days=1)
    async with pg.session() as session:
        user = await UserRepository(session).upsert(discord_id=11, username="ana", display_name="Ana", seen_at=NOW)
        guild = await GuildRepository(session).upsert(discord_id=901, name="Cosy Corner")
        conversations = ConversationRepository(session)
        conversation = await conversations.open(channel_id=1, guild_id=guild.id, user_id=None, at=yesterday)
        await conversations.add_message(
            conversation_id=conversation.id,
            user_id=user.id,
            role="assistant",
            content="hi",
            at=yesterday,
            prompt_tokens=100,
            completion_tokens=10,
            model="fake-model",
        )
    first, second = await maintenance(pg, llm), await maintenance(pg, llm)
    for _ in range(5):
        assert list(await asyncio.gather(first.roll_up_tokens(), second.roll_up_tokens())) == [2, 2]
    async with pg.session() as session:
        users = [(r.requests, r.prompt_tokens) for r in (await session.scalars(select(UserDailyTokenUsage))).all()]
        guilds = [(r.requests, r.prompt_tokens) for r in (await session.scalars(select(GuildDailyTokenUsage))).all()]
    assert users == [(1, 100)] and guilds == [(1, 100)]


async def test_mood_decay_keeps_a_mood_the_learner_writes_while_it_runs(pg: Database, llm: FakeLLM) -> None:
    """The hourly decay reads every mood, then writes each one settled: a conversation learned from in between (in
    this process or another) moved the mood on, and that is the mood to keep, not the one decay read before."""
    async with pg.session() as session:
        user = await UserRepository(session).upsert(discord_id=11, username="ana", display_name="Ana", seen_at=NOW)
        dm = StatePlace(dm_user_id=user.id)
        await MoodRepository(session).save(dm, Mood(0.8, 0.8), at=NOW - timedelta(hours=12))
    jobs = await maintenance(pg, llm)

    async with pg.session() as learning:  # a batch's transaction, writing the mood the conversation left
        await MoodRepository(learning).save(dm, Mood(-0.6, 0.4), at=NOW)
        decaying = asyncio.create_task(jobs.decay_moods())
        await waiting_for_row_locks(pg)  # decay read the mood before, and waits to write it
    await decaying

    async with pg.session() as session:
        assert await MoodRepository(session).get(dm) == (Mood(-0.6, 0.4), NOW)


@pytest.mark.parametrize("job", ["expire_facts", "prune_memories"])
async def test_two_processes_running_an_hourly_or_daily_job_at_once_do_its_work_once(
    pg: Database, llm: FakeLLM, job: str
) -> None:
    """Fact expiry and memory pruning run in every process, at the same moments when they started together. Each is
    one statement whose rows the other waits for and then finds done: each row is handled once, and neither fails."""
    old = NOW - timedelta(days=90)
    async with pg.session() as session:
        user = await UserRepository(session).upsert(discord_id=11, username="ana", display_name="Ana", seen_at=NOW)
        facts = FactRepository(session)
        for number in range(5):
            expiry = NOW - timedelta(hours=number + 1)
            fact = NewFact(user.id, "event", f"exam {number}", "dm", None, old, expiry_date=expiry)
            await facts.add(fact, None, None)
        memories = [NewMemory(kind="message", content=f"said {n}", scope="dm", created_at=old) for n in range(5)]
        await MemoryRepository(session).add_many(memories, None, None)
    first, second = await maintenance(pg, llm), await maintenance(pg, llm)
    table = UserFact if job == "expire_facts" else Memory

    async with pg.session() as holding:  # one row held, so both jobs are under way at once
        await holding.execute(select(table.id).order_by(table.id.desc()).limit(1).with_for_update())
        runs = asyncio.gather(getattr(first, job)(), getattr(second, job)())
        await waiting_for_row_locks(pg, connections=2)
    done = await runs

    assert sorted(done) == [0, 5]
    async with pg.session() as session:
        if job == "expire_facts":
            ended = (await session.execute(select(UserFact.is_active, UserFact.valid_to, UserFact.expiry_date))).all()
            assert len(ended) == 5 and all(not active and to == expiry for active, to, expiry in ended)
        else:
            assert not (await session.scalars(select(Memory.id))).all()

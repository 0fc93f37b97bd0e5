"""Figures for ``/stats``, the owner's usage report and the daily quota, on both backends, with a fixed clock."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.engine import Database
from bot.db.models import BotState, Conversation, Guild, GuildMember, Message, Persona, ReplyAlternative, User
from bot.db.repositories.alternatives import AlternativeRepository
from bot.db.repositories.stats import GuildTokens, StatsRepository
from bot.services.stats import StatsService, start_of_day, start_of_month

# Early on the 2nd of March: today began 90 minutes ago, the month a day before that.
NOW = datetime(2026, 3, 2, 1, 30, tzinfo=UTC)
TODAY = datetime(2026, 3, 2, tzinfo=UTC)
MONTH = datetime(2026, 3, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Turn:
    at: datetime
    role: str = "assistant"
    prompt: int | None = None
    completion: int | None = None
    model: str | None = "fake-model"


def reply(at: datetime, prompt: int, completion: int) -> Turn:
    return Turn(at, "assistant", prompt, completion)


def said(at: datetime) -> Turn:
    return Turn(at, "user", model=None)


@dataclass(frozen=True)
class Seeded:
    guild_a: int
    guild_b: int
    guild_empty: int


async def _conversation(session: AsyncSession, guild_id: int | None, channel_id: int, turns: Sequence[Turn]) -> None:
    # As ConversationRepository.add_message keeps it: last_message_at is the latest turn's time.
    conversation = Conversation(
        guild_id=guild_id,
        channel_id=channel_id,
        started_at=min(t.at for t in turns),
        last_message_at=max(t.at for t in turns),
        message_count=len(turns),
    )
    session.add(conversation)
    await session.flush()
    for turn in turns:
        session.add(
            Message(
                conversation_id=conversation.id,
                role=turn.role,
                content=f"{turn.role} at {turn.at:%H:%M:%S}",
                prompt_tokens=turn.prompt,
                completion_tokens=turn.completion,
                model=turn.model if turn.role == "assistant" else None,
                created_at=turn.at,
                updated_at=turn.at,
            )
        )
    await session.flush()


async def seed(db: Database) -> Seeded:
    """Guild A: replies today, earlier this month, on the boundaries and last month; guild B: one big reply today;
    DMs: one reply and one reply without a model (no tokens); an empty guild."""
    async with db.session() as session:
        a, b, empty = (Guild(discord_id=100 + i, name=name) for i, name in enumerate(("Alpha", "Beta", "Empty")))
        users = [User(discord_id=200 + i, discord_username=f"user{i}") for i in range(3)]
        session.add_all([a, b, empty, *users])
        await session.flush()
        session.add_all(
            [
                GuildMember(guild_id=a.id, user_id=users[0].id),
                GuildMember(guild_id=a.id, user_id=users[1].id),
                GuildMember(guild_id=b.id, user_id=users[2].id),
            ]
        )
        # Spans the month boundary and today's: 120 today, 10 at midnight, 55 yesterday, 11 at the month's start.
        await _conversation(
            session,
            a.id,
            1,
            [
                reply(MONTH - timedelta(seconds=1), 1000, 1000),
                reply(MONTH, 11, 0),
                reply(TODAY - timedelta(seconds=1), 50, 5),
                reply(TODAY, 7, 3),
                said(NOW - timedelta(minutes=10)),
                reply(NOW - timedelta(minutes=10), 100, 20),
            ],
        )
        # Wholly last month: counted in neither window.
        await _conversation(session, a.id, 2, [said(MONTH - timedelta(days=3)), reply(MONTH - timedelta(days=3), 9, 9)])
        await _conversation(
            session, b.id, 3, [said(NOW - timedelta(hours=1)), reply(NOW - timedelta(hours=1), 300, 30)]
        )
        await _conversation(
            session,
            None,
            4,
            [
                said(NOW - timedelta(minutes=5)),
                reply(NOW - timedelta(minutes=5), 40, 4),
                Turn(NOW - timedelta(minutes=4), "assistant", None, None, None),
            ],
        )
        return Seeded(a.id, b.id, empty.id)


def test_windows_are_utc_days_and_months() -> None:
    assert start_of_day(NOW) == TODAY and start_of_month(NOW) == MONTH
    west_evening = datetime(2026, 3, 31, 23, 30, tzinfo=timezone(timedelta(hours=-1)))  # 1 April, 00:30 UTC
    assert start_of_day(west_evening) == datetime(2026, 4, 1, tzinfo=UTC)
    assert start_of_month(west_evening) == datetime(2026, 4, 1, tzinfo=UTC)


async def test_guild_stats_count_messages_members_and_tokens_within_the_utc_day_and_month(db: Database) -> None:
    seeded = await seed(db)
    stats = StatsService(db, clock=lambda: NOW)

    alpha = await stats.guild_stats(seeded.guild_a)
    assert (alpha.guild_id, alpha.messages, alpha.users_known) == (seeded.guild_a, 8, 2)
    assert (alpha.tokens_today, alpha.tokens_this_month) == (130, 196)
    beta = await stats.guild_stats(seeded.guild_b)
    assert (beta.messages, beta.users_known, beta.tokens_today, beta.tokens_this_month) == (2, 1, 330, 330)
    empty = await stats.guild_stats(seeded.guild_empty)
    assert (empty.messages, empty.users_known, empty.tokens_today, empty.tokens_this_month) == (0, 0, 0, 0)

    tomorrow = await StatsService(db, clock=lambda: NOW + timedelta(days=1)).guild_stats(seeded.guild_a)
    assert (tomorrow.tokens_today, tomorrow.tokens_this_month) == (0, 196)
    async with db.reading() as session:
        repo = StatsRepository(session)
        assert await repo.tokens_since(seeded.guild_a, MONTH - timedelta(days=30)) == 196 + 2000 + 18


async def test_usage_lists_guilds_by_tokens_with_dms_as_one_line(db: Database) -> None:
    seeded = await seed(db)
    stats = StatsService(db, clock=lambda: NOW)

    assert await stats.usage(MONTH) == [
        GuildTokens(seeded.guild_b, "Beta", requests=1, prompt_tokens=300, completion_tokens=30),
        GuildTokens(seeded.guild_a, "Alpha", requests=4, prompt_tokens=168, completion_tokens=28),
        GuildTokens(None, None, requests=1, prompt_tokens=40, completion_tokens=4),
    ]
    today = await stats.usage(TODAY)
    assert [(row.guild_id, row.total_tokens) for row in today] == [
        (seeded.guild_b, 330),
        (seeded.guild_a, 130),
        (None, 44),
    ]
    assert await stats.usage(NOW) == []


async def test_the_mood_shown_has_decayed_to_now_toward_the_persona_baseline(db: Database) -> None:
    seeded = await seed(db)
    async with db.session() as session:
        # Alpha: excited twelve hours ago (two half-lives), no persona of its own (baseline neutral).
        session.add(
            BotState(
                guild_id=seeded.guild_a, mood_valence=0.8, mood_arousal=0.8, mood_updated_at=NOW - timedelta(hours=12)
            )
        )
        # Beta: no mood stored yet; its persona settles at relaxed.
        session.add(
            Persona(
                name="Drowsy",
                personality_prompt="Slow and kind.",
                guild_id=seeded.guild_b,
                is_default=True,
                config={"mood_baseline": {"valence": 0.6, "arousal": -0.6}},
            )
        )
    stats = StatsService(db, clock=lambda: NOW)

    alpha = (await stats.guild_stats(seeded.guild_a)).mood
    assert abs(alpha.valence - 0.2) < 1e-6 and abs(alpha.arousal - 0.2) < 1e-6
    assert (alpha.label, alpha.updated_at) == ("curious", NOW - timedelta(hours=12))
    async with db.session() as session:
        ana, bo = (await session.scalars(select(User.id).order_by(User.id).limit(2))).all()
        session.add(BotState(dm_user_id=ana, mood_valence=-0.8, mood_updated_at=NOW))  # Ana's DM alone
    assert await stats.mood(seeded.guild_a, ana) == alpha and str(alpha) == "curious"
    much_later = await StatsService(db, clock=lambda: NOW + timedelta(days=5)).guild_stats(seeded.guild_a)
    assert much_later.mood.label == "neutral" and abs(much_later.mood.valence) < 0.01

    beta = (await stats.guild_stats(seeded.guild_b)).mood
    assert (beta.valence, beta.arousal, beta.label, beta.updated_at) == (0.6, -0.6, "relaxed", None)
    assert (await stats.guild_stats(seeded.guild_b)).mood_label == "relaxed"
    assert (await stats.mood(None, bo)).label == "neutral"  # Bo's DM: nothing stored, no persona
    assert (await stats.mood(None, ana)).valence == -0.8  # Ana's DM: her own


async def test_every_answer_a_reply_was_regenerated_into_counts_on_the_day_it_was_asked_for(db: Database) -> None:
    """🔄 asks the model again: each answer's tokens were spent, the ones no longer shown too, and on the day the
    model gave them (the first answer when the reply came, another when it was asked for), like any reply."""
    async with db.session() as session:
        guild = Guild(discord_id=300, name="Gamma")
        session.add(guild)
        await session.flush()
        # A reply two minutes before midnight, regenerated twice after it: 20 + 5 tokens, then 30 + 6, then 40 + 7.
        await _conversation(
            session,
            guild.id,
            5,
            [said(TODAY - timedelta(minutes=3)), reply(TODAY - timedelta(minutes=2), 20, 5)],
        )
        message_id = await session.scalar(select(Message.id).where(Message.role == "assistant"))
        assert message_id is not None
    async with db.session() as session:
        repository = AlternativeRepository(session)
        await repository.add(message_id, 1, "first", model="fake-model", prompt_tokens=20, completion_tokens=5)
        await repository.add(message_id, 2, "second", model="fake-model", prompt_tokens=30, completion_tokens=6)
        await repository.add(message_id, 3, "third", model="fake-model", prompt_tokens=40, completion_tokens=7)
        # The first answer is kept as an alternative when the second is asked for, after midnight; so is the third.
        await session.execute(
            update(ReplyAlternative)
            .where(ReplyAlternative.message_id == message_id)
            .values(created_at=TODAY + timedelta(minutes=10))
        )
        await repository.show(message_id, 2, at=NOW)  # ◀: the second answer is the one shown

    stats = await StatsService(db, clock=lambda: NOW).guild_stats(guild.id)
    assert (stats.messages, stats.tokens_today, stats.tokens_this_month) == (2, 36 + 47, 25 + 36 + 47)
    assert [(row.requests, row.total_tokens) for row in await StatsService(db).usage(MONTH)] == [(3, 108)]
    assert [(row.requests, row.total_tokens) for row in await StatsService(db).usage(TODAY)] == [(2, 83)]
    async with db.reading() as session:
        assert await StatsRepository(session).tokens_since(guild.id, NOW) == 0

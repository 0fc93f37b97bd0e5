"""A guild past its daily token quota: no more model calls there today, from replies, learning or proactive
messages; other guilds are untouched. On both backends."""

from datetime import UTC, datetime

from sqlalchemy import select

from bot.db.engine import Database
from bot.db.models import Conversation, Guild, GuildDailyTokenUsage, User, UserDailyTokenUsage
from bot.db.repositories.guilds import GuildRepository
from bot.db.repositories.usage import UsageRepository
from bot.db.repositories.users import UserRepository
from bot.services.events import EventsConfig, EventService
from bot.services.incoming import Place
from bot.services.learning import Learner, LearningConfig
from bot.services.limits import TokenQuota
from bot.services.personas import PersonaService
from bot.services.stats import StatsService, start_of_day
from tests.fakes.llm_server import FakeLLM, Reply
from tests.support.chat import RecordingReply, chat_model, conversation_service, message
from tests.support.embedding import shared_embedder
from tests.support.events import RecordingNotifier, add

QUIET, BUSY = 901, 902  # two guilds (Discord ids)


async def test_a_spent_quota_stops_replies_learning_and_written_greetings_in_that_guild_only(
    db: Database, llm: FakeLLM
) -> None:
    quota = TokenQuota(db)
    service = conversation_service(db, llm, quota=quota)
    llm.default = Reply("Happy to chat!")
    for guild in (QUIET, BUSY):
        turn = await service.handle(
            message("hi there", guild=guild, channel=guild + 1000, mention=True), RecordingReply()
        )
        assert turn.status == "replied"
    await service.directory.update_guild_settings(
        Place(channel_id=BUSY + 1000, guild_id=BUSY), {"daily_token_quota": 10}
    )
    calls = len(llm.chat_requests)

    over = RecordingReply()
    assert (
        await service.handle(message("more?", guild=BUSY, channel=BUSY + 1000, mention=True), over)
    ).status == "held"
    assert "daily limit" in over.sent[0][0]
    assert (
        await service.handle(message("more?", guild=QUIET, channel=QUIET + 1000, mention=True), RecordingReply())
    ).status == "replied"
    assert len(llm.chat_requests) == calls + 1, "only the guild without a quota called the model"

    async with db.session() as session:
        busy_id = await session.scalar(select(Guild.id).where(Guild.discord_id == BUSY))
        conversation = await session.scalar(select(Conversation.id).where(Conversation.guild_id == busy_id))
        user_id = await session.scalar(select(User.id))
    assert busy_id is not None and conversation is not None and user_id is not None
    learner = Learner(
        db,
        chat_model(llm.base_url),
        await shared_embedder(),
        PersonaService(db),
        LearningConfig(model="m"),
        quota=quota,
    )
    assert (await learner.learn(conversation)).status == "unavailable", "left for tomorrow, not dropped"

    await add(db, user_id, "follow_up", datetime.now(UTC), "exam", guild_id=busy_id, context={"question": "Exam ok?"})
    notifier = RecordingNotifier()
    events = EventService(
        db, chat_model(llm.base_url), PersonaService(db), notifier, EventsConfig(model="m"), quota=quota
    )
    assert await events.tick() == {"sent": 1}
    assert notifier.sent[0][2] == "Exam ok?", "the plain wording: no model call"
    assert len(llm.chat_requests) == calls + 1


async def test_a_greeting_or_follow_up_the_model_wrote_counts_in_stats_the_quota_and_the_roll_up(
    db: Database, llm: FakeLLM
) -> None:
    """The model's tokens for a follow-up in a server count there, as a reply's would: in /stats, the daily quota
    and the day's history; a birthday greeting's count with the DMs, and for the person greeted."""
    now = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    async with db.session() as session:
        user = await UserRepository(session).upsert(discord_id=11, username="ana", display_name="Ana", seen_at=now)
        guild = await GuildRepository(session).upsert(discord_id=BUSY, name="Cosy Corner")
    await add(db, user.id, "follow_up", now, "exam", guild_id=guild.id, context={"question": "Exam ok?"})
    await add(db, user.id, "birthday", now, "birthday")
    llm.script(  # one at a time, the greeting first
        Reply("Happy birthday, Ana!", prompt_tokens=80, completion_tokens=7),
        Reply("How did the exam go, Ana?", prompt_tokens=120, completion_tokens=9),
    )
    notifier = RecordingNotifier()
    config = EventsConfig(model="fake-model", concurrency=1)
    events = EventService(db, chat_model(llm.base_url), PersonaService(db), notifier, config, clock=lambda: now)
    assert await events.tick() == {"sent": 2}
    assert [text for _, _, text in notifier.sent] == ["Happy birthday, Ana!", "How did the exam go, Ana?"]

    stats = StatsService(db, clock=lambda: now)
    assert (await stats.guild_stats(guild.id)).tokens_today == 129
    assert await TokenQuota(db, clock=lambda: now).used_today(guild.id) == 129
    usage = [(row.guild_id, row.requests, row.total_tokens) for row in await stats.usage(start_of_day(now))]
    assert usage == [(guild.id, 1, 129), (None, 1, 87)]
    async with db.session() as session:
        assert await UsageRepository(session).roll_up(now.date()) == 2
        users = (await session.scalars(select(UserDailyTokenUsage))).all()
        guilds = (await session.scalars(select(GuildDailyTokenUsage))).all()
    per_user = [(row.user_id, row.requests, row.prompt_tokens, row.completion_tokens) for row in users]
    per_guild = [(row.guild_id, row.requests, row.prompt_tokens, row.completion_tokens) for row in guilds]
    assert per_user == [(user.id, 2, 200, 16)] and per_guild == [(guild.id, 1, 120, 9)]

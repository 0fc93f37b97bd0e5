"""A guild past its daily token quota: no more model calls there today, from replies, learning or proactive
messages; other guilds are untouched. On both backends."""

from datetime import UTC, datetime

from sqlalchemy import select

from bot.db.engine import Database
from bot.db.models import Conversation, Guild, User
from bot.services.events import EventsConfig, EventService
from bot.services.incoming import Place
from bot.services.learning import Learner, LearningConfig
from bot.services.limits import TokenQuota
from bot.services.personas import PersonaService
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

"""Deleting a user leaves no row about them, in any table, on both backends."""

from datetime import UTC, date, datetime

import numpy as np
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.engine import Database
from bot.db.models import (
    Base,
    BotOpinion,
    BotOpinionSource,
    BotState,
    ChannelCast,
    ChannelPersona,
    Conversation,
    FactAssociation,
    Guild,
    GuildDailyTokenUsage,
    GuildMember,
    KnowledgeDocument,
    Memory,
    Message,
    MoodHistory,
    Persona,
    ReplyAlternative,
    RuntimeFlag,
    ScheduledEvent,
    User,
    UserCommunicationStyle,
    UserDailyTokenUsage,
    UserFact,
    UserPreferences,
    UserRelationship,
)
from bot.db.repositories.users import UserRepository

NOW = datetime(2026, 11, 1, 12, tzinfo=UTC)

# Rows about the guild or Hearth itself, not about any one user: they stay.
GUILD_LEVEL = {
    "guilds",
    "personas",
    "channel_personas",
    "channel_casts",
    "knowledge_documents",
    "guild_daily_token_usage",
    "runtime_flags",
}
# Hearth's own state: the guild's stays, each user's DM has its own (erased with them).
PER_PLACE = {"bot_states", "bot_opinions"}


async def _seed_user(
    session: AsyncSession, guild: Guild, guild_talk: Conversation, opinion: BotOpinion, name: str
) -> User:
    """One user with a row in every table that can hold something about a user; ``name`` marks them."""
    user = User(discord_id=hash(name) & 0xFFFFFFFF, discord_username=name, discord_display_name=f"{name} display")
    session.add(user)
    await session.flush()
    dm = Conversation(user_id=user.id, channel_id=user.discord_id)
    session.add(dm)
    fact = UserFact(user_id=user.id, fact_type="location", fact_content=f"{name} lives in Lisbon", scope="dm")
    guild_fact = UserFact(
        user_id=user.id, fact_type="hobby", fact_content=f"{name} climbs", scope="guild", guild_id=guild.id
    )
    session.add_all([fact, guild_fact])
    await session.flush()
    said = Message(conversation_id=guild_talk.id, user_id=user.id, role="user", content=f"{name}: hi all")
    answer = Message(conversation_id=guild_talk.id, user_id=user.id, role="assistant", content=f"hello {name}")
    dm_said = Message(conversation_id=dm.id, user_id=user.id, role="user", content=f"{name} secret")
    session.add_all([said, answer, dm_said])
    await session.flush()
    session.add_all(
        [
            UserPreferences(user_id=user.id, timezone="Europe/Lisbon", birthday_month=2, birthday_day=29),
            GuildMember(guild_id=guild.id, user_id=user.id, guild_nickname=f"{name} nick", roles=["member"]),
            UserRelationship(user_id=user.id, guild_id=guild.id, shared_references={"nickname": name}),
            UserRelationship(user_id=user.id, guild_id=None, relationship_score=40),
            UserCommunicationStyle(user_id=user.id, engagement_signals={"who": name}),
            ScheduledEvent(
                user_id=user.id,
                guild_id=guild.id,
                event_type="reminder",
                trigger_at=NOW,
                title=f"call {name}'s mom",
            ),
            MoodHistory(
                guild_id=guild.id,
                valence=0.5,
                arousal=0.1,
                trigger_type="conversation",
                trigger_user_id=user.id,
                trigger_description=f"{name} was kind",
            ),
            MoodHistory(dm_user_id=user.id, valence=0.2, arousal=0.1, trigger_type="conversation"),
            BotState(dm_user_id=user.id, mood_valence=0.3),
            BotOpinion(dm_user_id=user.id, topic=f"{name}'s secret hobby"),
            BotOpinionSource(opinion_id=opinion.id, user_id=user.id),
            Memory(
                kind="message",
                content=f"{name}: hi all",
                user_id=user.id,
                guild_id=guild.id,
                scope="guild",
                message_id=said.id,
                conversation_id=guild_talk.id,
                embedding=np.ones(384),
                embedding_model="m",
            ),
            Memory(
                kind="message",
                content=f"{name} secret",
                user_id=user.id,
                scope="dm",
                message_id=dm_said.id,
                conversation_id=dm.id,
            ),
            Memory(kind="fact", content=f"{name} lives in Lisbon", user_id=user.id, scope="dm", fact_id=fact.id),
            UserDailyTokenUsage(day=date(2026, 11, 1), user_id=user.id, model="m", requests=1, prompt_tokens=9),
            # The first answer to a regenerated reply, kept as a branch of the turn.
            ReplyAlternative(message_id=answer.id, position=1, content=f"hi {name}"),
        ]
    )
    await session.flush()
    return user


async def _rows_mentioning(session: AsyncSession, marker: str) -> dict[str, int]:
    """Count, per table, rows whose text rendering contains ``marker`` (every column, any type)."""
    found = {}
    for table in Base.metadata.sorted_tables:
        rows = (await session.execute(select(table))).all()
        hits = sum(marker in repr(tuple(row)) for row in rows)
        if hits:
            found[table.name] = hits
    return found


async def test_deleting_a_user_leaves_no_row_about_them(db: Database) -> None:
    async with db.session() as session:
        guild = Guild(discord_id=1, name="Cosy Corner")
        session.add(guild)
        await session.flush()
        guild_talk = Conversation(guild_id=guild.id, channel_id=10)
        climbing = BotOpinion(guild_id=guild.id, topic="climbing")
        session.add_all([guild_talk, climbing])
        await session.flush()
        ana = await _seed_user(session, guild, guild_talk, climbing, "Ana-7f3a")
        bo = await _seed_user(session, guild, guild_talk, climbing, "Bo-91c2")
        ana_facts = (await session.scalars(select(UserFact.id).where(UserFact.user_id == ana.id))).all()
        bo_facts = (await session.scalars(select(UserFact.id).where(UserFact.user_id == bo.id))).all()
        pair = sorted((ana_facts[1], bo_facts[1]))
        session.add(FactAssociation(fact_id_1=pair[0], fact_id_2=pair[1], association_type="shared_interest"))
        document = KnowledgeDocument(
            guild_id=guild.id,
            uploaded_by_user_id=ana.id,
            source_name="lore.md",
            mime_type="text/markdown",
            size_bytes=10,
        )
        session.add_all(
            [
                document,
                BotState(guild_id=guild.id),
                Persona(name="Hearth", personality_prompt="warm", is_default=True),
                mira := Persona(name="Mira", personality_prompt="dry", guild_id=guild.id),
                GuildDailyTokenUsage(day=date(2026, 11, 1), guild_id=guild.id, model="m", requests=2),
                RuntimeFlag(name="maintenance"),
            ]
        )

    async with db.session() as session:
        session.add(ChannelPersona(channel_id=11, guild_id=guild.id, persona_id=mira.id))
        session.add(ChannelCast(channel_id=12, guild_id=guild.id, persona_id=mira.id))

    async with db.session() as session:
        counts_before = {
            table.name: (await session.execute(select(func.count()).select_from(table))).scalar_one()
            for table in Base.metadata.sorted_tables
        }
        bo_before = await _rows_mentioning(session, "Bo-91c2")
    # The fixture must touch every table, so a new table cannot escape this test unseen.
    assert all(counts_before.values()), f"tables not covered: {[t for t, n in counts_before.items() if not n]}"
    assert await _rows_mentioning_ids(db, ana.id), "sanity: Ana's rows are there before"

    async with db.session() as session:
        assert await UserRepository(session).delete(ana.id)

    async with db.session() as session:
        assert await _rows_mentioning(session, "Ana-7f3a") == {}
        assert await _rows_mentioning(session, "Bo-91c2") == bo_before, "other users' rows are untouched"
        for table in Base.metadata.sorted_tables:
            remaining = await session.scalar(select(func.count()).select_from(table))
            if table.name in GUILD_LEVEL:
                assert remaining == counts_before[table.name], table.name
            elif table.name in PER_PLACE:
                assert remaining == counts_before[table.name] - 1, table.name  # Ana's DM's; the guild's stays
            elif table.name == "conversations":
                assert remaining == counts_before[table.name] - 1  # Ana's DM; the guild channel's stays
            elif table.name == "fact_associations":
                assert remaining == 0  # it linked Ana's fact
            else:
                assert remaining == counts_before[table.name] // 2, f"{table.name}: {remaining}"
        orphaned = await session.scalar(select(KnowledgeDocument.uploaded_by_user_id))
        assert orphaned is None, "the lore stays, without its link to the erased uploader"
    assert await _rows_mentioning_ids(db, ana.id) == []


async def _rows_mentioning_ids(db: Database, user_id: int) -> list[str]:
    """Every (table.column) that references users.id and still holds ``user_id``."""
    holders = []
    async with db.session() as session:
        for table in Base.metadata.sorted_tables:
            for column in table.columns:
                if any(fk.column.table.name == "users" for fk in column.foreign_keys) or (
                    table.name == "users" and column.name == "id"
                ):
                    statement = text(f"SELECT count(*) FROM {table.name} WHERE {column.name} = :id")
                    if await session.scalar(statement, {"id": user_id}):
                        holders.append(f"{table.name}.{column.name}")
    return holders

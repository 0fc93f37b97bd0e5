"""Hearth's state about people and itself: relationships, mood, opinions, users' styles, and what the learner
has read.

Relationships are kept per user and guild, with ``guild_id`` NULL for DMs, unique on ``coalesce(guild_id, 0)``.
Hearth's own mood and opinions are kept per place: a guild, or one user's DM (``dm_user_id``, see
``bot/domain/place.py``), unique on ``coalesce(guild_id, 0), coalesce(dm_user_id, 0)``. The upserts below name
those expressions as their conflict targets.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Select,
    Text,
    and_,
    any_,
    bindparam,
    func,
    insert,
    literal_column,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import (
    BotOpinion,
    BotOpinionSource,
    BotState,
    Conversation,
    Guild,
    GuildMember,
    Message,
    MoodHistory,
    User,
    UserCommunicationStyle,
    UserPreferences,
    UserRelationship,
)
from bot.db.repositories._dialect import dialect_name, insert_for
from bot.db.repositories._names import shown_name
from bot.db.repositories._plain import execute_plain
from bot.db.types import utcnow
from bot.domain.mood import Mood
from bot.domain.opinions import Opinion, normalize_topic
from bot.domain.place import StatePlace
from bot.domain.relationship import Relationship
from bot.domain.style import TYPICAL_WORDS, CommunicationStyle


def _place_key(column: Any) -> ColumnElement[int]:
    """``coalesce(guild_id, 0)`` as the unique indexes spell it: the 0 written out, so a conflict target matches
    the index (a bound parameter would not, on SQLite)."""
    key: ColumnElement[int] = func.coalesce(column, literal_column("0"))
    return key


def _in_place(column: Any, guild_id: int | None) -> ColumnElement[bool]:
    """``column`` (a guild_id) names this guild, or is NULL for DMs."""
    condition: ColumnElement[bool] = column.is_(None) if guild_id is None else column == guild_id
    return condition


def _at(table: Any, place: StatePlace) -> ColumnElement[bool]:
    """The rows of ``table`` (with ``guild_id`` and ``dm_user_id``) kept in ``place``."""
    if place.guild_id is not None:
        condition: ColumnElement[bool] = table.guild_id == place.guild_id
    else:
        condition = and_(table.guild_id.is_(None), table.dm_user_id == place.dm_user_id)
    return condition


def _place_keys(table: Any) -> list[ColumnElement[int]]:
    """The place as the unique indexes of ``table`` spell it (a conflict target)."""
    return [_place_key(table.guild_id), _place_key(table.dm_user_id)]


_RELATIONSHIP_COLUMNS = (
    UserRelationship.relationship_score,
    UserRelationship.total_interactions,
    UserRelationship.positive_interactions,
    UserRelationship.negative_interactions,
    UserRelationship.last_interaction_at,
    UserRelationship.shared_references,
)


def _relationship(row: Any) -> Relationship:
    """A row with ``_RELATIONSHIP_COLUMNS`` as a Relationship."""
    references = row.shared_references or {}
    return Relationship(
        score=row.relationship_score,
        interaction_count=row.total_interactions,
        positive_count=row.positive_interactions,
        negative_count=row.negative_interactions,
        last_interaction_at=row.last_interaction_at,
        nicknames=tuple(str(n) for n in references.get("nicknames", ())),
        inside_jokes=tuple(str(j) for j in references.get("inside_jokes", ())),
    )


_STYLE_COLUMNS = (
    UserCommunicationStyle.preferred_length,
    UserCommunicationStyle.engagement_signals,
    UserCommunicationStyle.preferred_formality,
    UserCommunicationStyle.emoji_affinity,
    UserCommunicationStyle.humor_affinity,
    UserCommunicationStyle.detail_preference,
    UserCommunicationStyle.samples_collected,
)


def _style(row: Any) -> CommunicationStyle:
    """A row with ``_STYLE_COLUMNS`` as a CommunicationStyle."""
    mean_words = (row.engagement_signals or {}).get("mean_words")
    if mean_words is None:  # only the label is known: start from a typical length for it
        mean_words = TYPICAL_WORDS.get(row.preferred_length, TYPICAL_WORDS["medium"])
    return CommunicationStyle(
        mean_words=float(mean_words),
        formality=row.preferred_formality,
        emoji_usage=row.emoji_affinity,
        humor=row.humor_affinity,
        detail=row.detail_preference,
        sample_count=row.samples_collected,
    )


class RelationshipRepository:
    """Hearth and one user, per guild (``guild_id`` None: DMs)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, user_id: int, guild_id: int | None) -> Relationship | None:
        statement = select(*_RELATIONSHIP_COLUMNS).where(
            UserRelationship.user_id == user_id, _in_place(UserRelationship.guild_id, guild_id)
        )
        row = (await self.session.execute(statement)).one_or_none()
        return None if row is None else _relationship(row)

    async def save(
        self, user_id: int, guild_id: int | None, state: Relationship, *, message_length: float | None = None
    ) -> None:
        """Store ``state`` (insert or replace). ``message_length``, when given, is folded into the running mean
        ``avg_message_length`` over ``state.interaction_count`` exchanges (the exchange it belongs to counted).
        ``shared_references`` belongs to this repository: it is written whole."""
        at = state.last_interaction_at or utcnow()
        insert_ = insert_for(self.session, UserRelationship)
        statement = insert_.values(
            user_id=user_id,
            guild_id=guild_id,
            relationship_score=state.score,
            total_interactions=state.interaction_count,
            positive_interactions=state.positive_count,
            negative_interactions=state.negative_count,
            avg_message_length=0.0 if message_length is None else message_length,
            shared_references={"nicknames": list(state.nicknames), "inside_jokes": list(state.inside_jokes)},
            first_interaction_at=at,
            last_interaction_at=at,
        )
        changes: dict[str, Any] = {
            "relationship_score": statement.excluded.relationship_score,
            "total_interactions": statement.excluded.total_interactions,
            "positive_interactions": statement.excluded.positive_interactions,
            "negative_interactions": statement.excluded.negative_interactions,
            "shared_references": statement.excluded.shared_references,
            "updated_at": statement.excluded.updated_at,
        }
        if state.last_interaction_at is not None:
            changes["last_interaction_at"] = statement.excluded.last_interaction_at
        if message_length is not None:
            mean = UserRelationship.avg_message_length
            changes["avg_message_length"] = mean + (float(message_length) - mean) / float(
                max(state.interaction_count, 1)
            )
        await self.session.execute(
            statement.on_conflict_do_update(
                index_elements=[UserRelationship.user_id, _place_key(UserRelationship.guild_id)], set_=changes
            )
        )


class MoodRepository:
    """Hearth's mood per place (a guild, or one user's DM) and the history of its significant changes."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, place: StatePlace) -> tuple[Mood, datetime] | None:
        """The mood and when it was last set."""
        statement = select(BotState.mood_valence, BotState.mood_arousal, BotState.mood_updated_at).where(
            _at(BotState, place)
        )
        row = (await self.session.execute(statement)).one_or_none()
        return None if row is None else (Mood(row[0], row[1]), row[2])

    async def save(self, place: StatePlace, mood: Mood, *, at: datetime) -> None:
        insert_ = insert_for(self.session, BotState)
        statement = insert_.values(
            guild_id=place.guild_id,
            dm_user_id=place.dm_user_id,
            mood_valence=mood.valence,
            mood_arousal=mood.arousal,
            mood_updated_at=at,
            first_activated_at=at,
        )
        await self.session.execute(
            statement.on_conflict_do_update(
                index_elements=_place_keys(BotState),
                set_={
                    "mood_valence": statement.excluded.mood_valence,
                    "mood_arousal": statement.excluded.mood_arousal,
                    "mood_updated_at": statement.excluded.mood_updated_at,
                    "updated_at": statement.excluded.updated_at,
                },
            )
        )

    async def record_change(
        self,
        place: StatePlace,
        mood: Mood,
        *,
        at: datetime,
        trigger_type: str,
        user_id: int | None = None,
        description: str | None = None,
    ) -> None:
        """Append a row to mood_history: the mood reached at ``at``, and what caused it."""
        await self.session.execute(
            insert(MoodHistory).values(
                guild_id=place.guild_id,
                dm_user_id=place.dm_user_id,
                valence=mood.valence,
                arousal=mood.arousal,
                trigger_type=trigger_type,
                trigger_user_id=user_id,
                trigger_description=description,
                recorded_at=at,
            )
        )

    async def last_recorded(self, place: StatePlace) -> Mood | None:
        """The mood of the latest mood_history row here (significant changes are measured from it)."""
        statement = (
            select(MoodHistory.valence, MoodHistory.arousal)
            .where(_at(MoodHistory, place))
            .order_by(MoodHistory.recorded_at.desc(), MoodHistory.id.desc())
            .limit(1)
        )
        row = (await self.session.execute(statement)).one_or_none()
        return None if row is None else Mood(row[0], row[1])

    async def all_states(self) -> list[tuple[StatePlace, Mood, datetime]]:
        """Every stored mood: (its place, mood, when it was set)."""
        statement = select(
            BotState.guild_id,
            BotState.dm_user_id,
            BotState.mood_valence,
            BotState.mood_arousal,
            BotState.mood_updated_at,
        )
        rows = (await self.session.execute(statement.order_by(BotState.id))).all()
        return [(StatePlace(row[0], row[1]), Mood(row[2], row[3]), row[4]) for row in rows]


def _opinions_statement(*, topics: ColumnElement[bool]) -> Select[*tuple[Any, ...]]:
    return select(
        BotOpinion.topic,
        BotOpinion.sentiment,
        BotOpinion.interest_level,
        BotOpinion.discussion_count,
        BotOpinion.formed_at,
        BotOpinion.last_reinforced_at,
    ).where(
        _place_key(BotOpinion.guild_id) == bindparam("guild"),
        _place_key(BotOpinion.dm_user_id) == bindparam("dm"),
        topics,
    )


def _place_parameters(place: StatePlace) -> dict[str, int]:
    """``:guild`` and ``:dm`` as the unique indexes spell a place (0 for the one not set)."""
    return {"guild": place.guild_id or 0, "dm": place.dm_user_id or 0}


# Built once, as every reply reads them: the place as the unique index spells it, and the topics:
# a message's dozens of word runs as one array on PostgreSQL (one statement, whatever their number), expanded
# to one parameter each on SQLite.
_OPINIONS_POSTGRESQL = _opinions_statement(topics=BotOpinion.topic == any_(bindparam("topics", type_=ARRAY(Text))))
_OPINIONS_SQLITE = _opinions_statement(topics=BotOpinion.topic.in_(bindparam("topics", expanding=True)))


class OpinionRepository:
    """Hearth's opinions per place (a guild, or one user's DM); topics are stored normalised (lower-case)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get_many(self, place: StatePlace, topics: Sequence[str]) -> dict[str, Opinion]:
        """The stored opinions on ``topics``, keyed by normalised topic (see ``normalize_topic``)."""
        names = sorted({normalize_topic(topic) for topic in topics} - {""})
        if not names:
            return {}
        statement = _OPINIONS_POSTGRESQL if dialect_name(self.session) == "postgresql" else _OPINIONS_SQLITE
        result = await execute_plain(self.session, statement, {**_place_parameters(place), "topics": names})
        return {
            row.topic: Opinion(
                topic=row.topic,
                sentiment=row.sentiment,
                interest=row.interest_level,
                discussion_count=row.discussion_count,
                formed_at=row.formed_at,
                last_discussed_at=row.last_reinforced_at,
            )
            for row in result.all()
        }

    async def save(self, place: StatePlace, opinion: Opinion, *, sources: Sequence[int] = ()) -> None:
        """Insert or replace the opinion on ``opinion.topic`` (normalised) in this place. ``sources``: the users
        who spoke in the talk it comes from (recorded for a guild opinion, so erasing one of them erases it;
        a DM opinion belongs to its DM's user already)."""
        topic = normalize_topic(opinion.topic)
        if not topic:
            raise ValueError("an opinion needs a topic")
        insert_ = insert_for(self.session, BotOpinion)
        statement = insert_.values(
            guild_id=place.guild_id,
            dm_user_id=place.dm_user_id,
            topic=topic,
            sentiment=opinion.sentiment,
            interest_level=opinion.interest,
            discussion_count=opinion.discussion_count,
            formed_at=opinion.formed_at,
            last_reinforced_at=opinion.last_discussed_at or utcnow(),
        )
        saved = statement.on_conflict_do_update(
            index_elements=[*_place_keys(BotOpinion), BotOpinion.topic],
            set_={
                "sentiment": statement.excluded.sentiment,
                "interest_level": statement.excluded.interest_level,
                "discussion_count": statement.excluded.discussion_count,
                "formed_at": statement.excluded.formed_at,
                "last_reinforced_at": statement.excluded.last_reinforced_at,
                "updated_at": statement.excluded.updated_at,
            },
        )
        opinion_id = (await self.session.execute(saved.returning(BotOpinion.id))).scalar_one()
        if sources and not place.is_dm:
            insert_source = insert_for(self.session, BotOpinionSource)
            await self.session.execute(
                insert_source.values(
                    [{"opinion_id": opinion_id, "user_id": user_id} for user_id in sorted(set(sources))]
                ).on_conflict_do_nothing(index_elements=[BotOpinionSource.opinion_id, BotOpinionSource.user_id])
            )


class StyleRepository:
    """How each user writes (one row per user, wherever they write)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, user_id: int) -> CommunicationStyle | None:
        statement = select(*_STYLE_COLUMNS).where(UserCommunicationStyle.user_id == user_id)
        row = (await self.session.execute(statement)).one_or_none()
        return None if row is None else _style(row)

    async def save(self, user_id: int, style: CommunicationStyle) -> None:
        """Insert or replace the user's style. ``engagement_signals`` belongs to this repository (written whole)."""
        insert_ = insert_for(self.session, UserCommunicationStyle)
        statement = insert_.values(
            user_id=user_id,
            preferred_length=style.preferred_length,
            preferred_formality=style.formality,
            emoji_affinity=style.emoji_usage,
            humor_affinity=style.humor,
            detail_preference=style.detail,
            engagement_signals={"mean_words": style.mean_words},
            samples_collected=style.sample_count,
            confidence=style.confidence,
        )
        await self.session.execute(
            statement.on_conflict_do_update(
                index_elements=[UserCommunicationStyle.user_id],
                set_={
                    name: statement.excluded[name]
                    for name in (
                        "preferred_length",
                        "preferred_formality",
                        "emoji_affinity",
                        "humor_affinity",
                        "detail_preference",
                        "engagement_signals",
                        "samples_collected",
                        "confidence",
                        "updated_at",
                    )
                },
            )
        )


@dataclass(frozen=True, slots=True)
class SpeakerState:
    """What a reply reads about its speaker here, and Hearth's mood here."""

    learning_opt_out: bool
    relationship: Relationship | None
    style: CommunicationStyle | None
    mood: tuple[Mood, datetime] | None  # and when it was last set


def _speaker_state_statement() -> Select[*tuple[Any, ...]]:
    """One statement for what would otherwise be four reads on every reply (opt-out, relationship, style,
    mood): the user's row, with each of the others joined when it exists. ``:place`` is the guild's row id,
    0 for DMs, matched as the unique indexes spell it (``coalesce(guild_id, 0)``); ``:dm`` is the user's row
    id in a DM, 0 in a guild: Hearth's mood there is the one of that user's DM."""
    users, preferences = User.__table__, UserPreferences.__table__
    relationships, styles, states = UserRelationship.__table__, UserCommunicationStyle.__table__, BotState.__table__
    place: BindParameter[int] = bindparam("place")
    return (
        select(
            preferences.c.learning_opt_out,
            relationships.c.id.label("relationship_id"),
            *(relationships.c[column.key] for column in _RELATIONSHIP_COLUMNS),
            styles.c.id.label("style_id"),
            *(styles.c[column.key] for column in _STYLE_COLUMNS),
            states.c.id.label("state_id"),
            states.c.mood_valence,
            states.c.mood_arousal,
            states.c.mood_updated_at,
        )
        .select_from(
            users.outerjoin(preferences, preferences.c.user_id == users.c.id)
            .outerjoin(
                relationships,
                and_(relationships.c.user_id == users.c.id, _place_key(relationships.c.guild_id) == place),
            )
            .outerjoin(styles, styles.c.user_id == users.c.id)
            .outerjoin(
                states,
                and_(_place_key(states.c.guild_id) == place, _place_key(states.c.dm_user_id) == bindparam("dm")),
            )
        )
        .where(users.c.id == bindparam("user_id"))
    )


# Built once: a statement made per call costs more of the event loop than PostgreSQL spends running it.
_SPEAKER_STATE = _speaker_state_statement()


class SpeakerStateRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, user_id: int, guild_id: int | None) -> SpeakerState | None:
        """The speaker's state in this guild (``guild_id`` None: DMs) in one round trip; None if there is no
        such user (any more)."""
        place = StatePlace.of(guild_id, user_id)
        parameters = {"user_id": user_id, "place": guild_id or 0, "dm": place.dm_user_id or 0}
        result = await execute_plain(self.session, _SPEAKER_STATE, parameters)
        row = result.one_or_none()
        if row is None:
            return None
        return SpeakerState(
            learning_opt_out=bool(row.learning_opt_out),
            relationship=None if row.relationship_id is None else _relationship(row),
            style=None if row.style_id is None else _style(row),
            mood=None if row.state_id is None else (Mood(row.mood_valence, row.mood_arousal), row.mood_updated_at),
        )


@dataclass(frozen=True, slots=True)
class UnlearnedMessage:
    """A stored turn the learner has not handled yet, with where it was said."""

    id: int
    role: str  # user | assistant
    user_id: int | None  # the author of a user turn; the person answered, for an assistant turn
    content: str
    created_at: datetime
    speaker: str | None  # the author's name as seen in that place; None for Hearth's own turns
    guild_id: int | None
    channel_id: int
    dm_user_id: int | None = None  # in a DM, the user whose DM it is


class LearningRepository:
    """Where the learner stands in each conversation, and whether it may learn at all."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def unlearned(self, conversation_id: int, *, limit: int) -> list[UnlearnedMessage]:
        """The conversation's user and assistant turns after its learning marker, oldest first (at most
        ``limit``)."""
        speaker = shown_name()
        statement = (
            select(
                Message.id,
                Message.role,
                Message.user_id,
                Message.content,
                Message.created_at,
                speaker,
                Conversation.guild_id,
                Conversation.channel_id,
                Conversation.user_id,
            )
            .join(Conversation, Conversation.id == Message.conversation_id)
            .outerjoin(User, User.id == Message.user_id)
            .outerjoin(
                GuildMember, and_(GuildMember.user_id == Message.user_id, GuildMember.guild_id == Conversation.guild_id)
            )
            .where(
                Message.conversation_id == conversation_id,
                Message.id > func.coalesce(Conversation.learned_message_id, 0),
                Message.role.in_(("user", "assistant")),
            )
            .order_by(Message.id)
            .limit(limit)
        )
        return [
            UnlearnedMessage(
                id=row[0],
                role=row[1],
                user_id=row[2],
                content=row[3],
                created_at=row[4],
                speaker=row[5] if row[1] == "user" else None,
                guild_id=row[6],
                channel_id=row[7],
                dm_user_id=row[8] if row[6] is None else None,
            )
            for row in (await self.session.execute(statement)).all()
        ]

    async def conversations_behind(self, *, limit: int) -> list[int]:
        """Conversations holding a user message after their learning marker (what a restart must catch up on),
        least recently active first."""
        pending = select(Message.id).where(
            Message.conversation_id == Conversation.id,
            Message.role == "user",
            Message.id > func.coalesce(Conversation.learned_message_id, 0),
        )
        statement = (
            select(Conversation.id)
            .where(pending.exists())
            .order_by(Conversation.last_message_at, Conversation.id)
            .limit(limit)
        )
        return [int(conversation_id) for conversation_id in (await self.session.scalars(statement)).all()]

    async def mark_learned(self, conversation_id: int, up_to_message_id: int) -> None:
        """Move the conversation's learning marker to ``up_to_message_id``; it never moves backwards."""
        marker = Conversation.learned_message_id
        await self.session.execute(
            update(Conversation)
            .where(Conversation.id == conversation_id, or_(marker.is_(None), marker < up_to_message_id))
            .values(learned_message_id=up_to_message_id)
        )

    async def learning_allowed(self, user_ids: Sequence[int], guild_id: int | None) -> tuple[set[int], bool]:
        """(the users among ``user_ids`` who did not opt out of learning — no preferences row means they did not —,
        whether the guild allows learning: its ``settings["learning"]`` is not false; always in DMs)."""
        allowed = set(user_ids)
        if allowed:
            opted_out = await self.session.scalars(
                select(UserPreferences.user_id).where(
                    UserPreferences.user_id.in_(allowed), UserPreferences.learning_opt_out.is_(True)
                )
            )
            allowed -= set(opted_out.all())
        if guild_id is None:
            return allowed, True
        settings = await self.session.scalar(select(Guild.settings).where(Guild.id == guild_id))
        return allowed, (settings or {}).get("learning", True) is not False

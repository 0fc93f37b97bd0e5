"""What a reply reads about its speaker, in one round trip: opt-out, relationship, style, and Hearth's mood."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import BindParameter, Select, and_, bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import BotState, User, UserCommunicationStyle, UserPreferences, UserRelationship
from bot.db.repositories._places import place_key
from bot.db.repositories._plain import execute_plain
from bot.db.repositories.relationships import RELATIONSHIP_COLUMNS, relationship_of
from bot.db.repositories.styles import STYLE_COLUMNS, style_of
from bot.domain.mood import Mood
from bot.domain.place import StatePlace
from bot.domain.relationship import Relationship
from bot.domain.style import CommunicationStyle


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
            *(relationships.c[column.key] for column in RELATIONSHIP_COLUMNS),
            styles.c.id.label("style_id"),
            *(styles.c[column.key] for column in STYLE_COLUMNS),
            states.c.id.label("state_id"),
            states.c.mood_valence,
            states.c.mood_arousal,
            states.c.mood_updated_at,
        )
        .select_from(
            users.outerjoin(preferences, preferences.c.user_id == users.c.id)
            .outerjoin(
                relationships, and_(relationships.c.user_id == users.c.id, place_key(relationships.c.guild_id) == place)
            )
            .outerjoin(styles, styles.c.user_id == users.c.id)
            .outerjoin(
                states, and_(place_key(states.c.guild_id) == place, place_key(states.c.dm_user_id) == bindparam("dm"))
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
            relationship=None if row.relationship_id is None else relationship_of(row),
            style=None if row.style_id is None else style_of(row),
            mood=None if row.state_id is None else (Mood(row.mood_valence, row.mood_arousal), row.mood_updated_at),
        )

"""What the learner has read: its marker in each conversation, and whether it may learn at all."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import Conversation, Guild, GuildMember, Message, User, UserPreferences
from bot.db.repositories._names import shown_name
from bot.db.repositories._shards import on_shards


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

    async def conversations_behind(self, *, limit: int, shards: tuple[Sequence[int], int] | None = None) -> list[int]:
        """Conversations holding a user message after their learning marker (what a restart must catch up on),
        least recently active first; with ``shards`` (shard ids, shard count), only those of guilds on these
        shards (and DMs, on shard 0)."""
        pending = select(Message.id).where(
            Message.conversation_id == Conversation.id,
            Message.role == "user",
            Message.id > func.coalesce(Conversation.learned_message_id, 0),
        )
        statement = select(Conversation.id).where(pending.exists())
        if shards is not None:
            statement = statement.where(on_shards(Conversation.guild_id, *shards))
        statement = statement.order_by(Conversation.last_message_at, Conversation.id).limit(limit)
        return [int(conversation_id) for conversation_id in (await self.session.scalars(statement)).all()]

    async def unchanged(self, read: Mapping[int, str]) -> set[int]:
        """Which of these messages (id → the text the model read) are still stored with that text, held until
        the transaction ends (on PostgreSQL, a shared row lock): a message deleted or edited while the model
        read it teaches nothing, and one deleted or edited after this waits for what was learned from it to be
        written, then takes it away (``FactRepository.forget_learned_from``). The text is compared, not only
        the id: SQLite gives a new row the id of the last one if that was deleted."""
        if not read:
            return set()
        rows = await self.session.execute(
            select(Message.id, Message.content).where(Message.id.in_(list(read))).with_for_update(read=True)
        )
        return {row.id for row in rows.all() if read.get(row.id) == row.content}

    async def mark_learned(self, conversation_id: int, up_to_message_id: int) -> None:
        """Move the conversation's learning marker to ``up_to_message_id``; it never moves backwards."""
        marker = Conversation.learned_message_id
        await self.session.execute(
            update(Conversation)
            .where(Conversation.id == conversation_id, or_(marker.is_(None), marker < up_to_message_id))
            .values(learned_message_id=up_to_message_id)
        )

    async def mark_batch_learned(self, conversation_id: int, first_message_id: int, up_to_message_id: int) -> bool:
        """Move the marker past a batch, from ``first_message_id`` to ``up_to_message_id``, unless it has moved onto
        the batch since it was read (another process learned from it first: False, and the marker is left alone).
        On PostgreSQL this waits for a transaction moving it to end, and then reads the marker it left."""
        marker = func.coalesce(Conversation.learned_message_id, 0)
        result = await self.session.execute(
            update(Conversation)
            .where(Conversation.id == conversation_id, marker < first_message_id)
            .values(learned_message_id=up_to_message_id)
        )
        return bool(getattr(result, "rowcount", 0))

    async def learning_allowed(self, user_ids: Sequence[int], guild_id: int | None) -> tuple[set[int], bool]:
        """(the users among ``user_ids`` who are still there — not erased — and did not opt out of learning — no
        preferences row means they did not —, whether the guild allows learning: its ``settings["learning"]`` is
        not false; always in DMs)."""
        allowed = set(user_ids)
        if allowed:
            allowed &= set((await self.session.scalars(select(User.id).where(User.id.in_(allowed)))).all())
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

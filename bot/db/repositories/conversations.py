"""Conversations and their messages."""

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import CTE, Select, Table, Update, and_, bindparam, case, exists, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.dml import ReturningInsert

from bot.db.models import Conversation, Guild, GuildMember, Memory, Message, User
from bot.db.repositories._dialect import dialect_name
from bot.db.repositories._plain import execute_plain

# Statements on every reply's path are built once; SQLAlchemy then reuses their compiled form.
_messages, _conversations = cast(Table, Message.__table__), cast(Table, Conversation.__table__)

_MESSAGE_COLUMNS = (
    "conversation_id",
    "user_id",
    "role",
    "content",
    "discord_message_id",
    "has_images",
    "image_urls",
    "token_count",
    "prompt_tokens",
    "completion_tokens",
    "model",
    "latency_ms",
    "awaiting_reply",
    "created_at",
    "updated_at",
)


# A reply also records the messages it answered (revision 0023): a statement of its own, so a person's message is
# stored by the insert as it was (which works on older schemas too).
_REPLY_COLUMNS = (*_MESSAGE_COLUMNS, "answered_ids")


def _insert_message(
    insert: Callable[[Table], postgresql.Insert | sqlite.Insert], columns: Sequence[str]
) -> ReturningInsert[Any]:
    """The insert of a turn, doing nothing where a user's message for that Discord message is stored already (the
    unique index on ``discord_message_id`` for user turns): a message Discord delivers twice is kept once."""
    return (
        insert(_messages)
        .values({name: bindparam(f"m_{name}", type_=_messages.c[name].type) for name in columns})
        .on_conflict_do_nothing()
        .returning(_messages.c.id)
    )


def _touch(dialect: str, *, inserted: CTE | None = None) -> Update:
    """Move the conversation's last-message time forward (never back) and count the new message (``inserted``:
    only if that CTE inserted it)."""
    last = _conversations.c.last_message_at
    at = bindparam("m_created_at", type_=last.type)
    statement = (
        update(_conversations)
        .where(_conversations.c.id == bindparam("m_conversation_id"))
        .values(
            last_message_at=func.greatest(last, at) if dialect == "postgresql" else func.max(last, at),
            message_count=_conversations.c.message_count + 1,
            updated_at=bindparam("m_updated_at", type_=last.type),
        )
    )
    return statement if inserted is None else statement.where(exists(select(inserted.c.id)))


def _add_message_postgresql(columns: Sequence[str]) -> Select[tuple[int]]:
    """PostgreSQL does both in one round trip: the insert and the update as one statement."""
    inserted = _insert_message(postgresql.insert, columns).cte("inserted")
    return select(inserted.c.id).add_cte(_touch("postgresql", inserted=inserted).cte("touched"))


_INSERT_MESSAGE_SQLITE = _insert_message(sqlite.insert, _MESSAGE_COLUMNS)
_INSERT_REPLY_SQLITE = _insert_message(sqlite.insert, _REPLY_COLUMNS)
_TOUCH_SQLITE = _touch("sqlite")
_ADD_MESSAGE_POSTGRESQL = _add_message_postgresql(_MESSAGE_COLUMNS)
_ADD_REPLY_POSTGRESQL = _add_message_postgresql(_REPLY_COLUMNS)


class AlreadyStored(Exception):
    """A user's message is stored already for this Discord message: Discord delivered it again."""


_HISTORY = (
    select(
        Message.id,
        Message.role,
        Message.content,
        # A reply's speaker is the cast character who said it (NULL: Hearth as its persona); a user turn's, its
        # author as people in that place see them. A reply's user is the person answered, not its speaker.
        case(
            (Message.role == "assistant", Message.speaker_name),
            else_=func.coalesce(
                User.custom_name, GuildMember.guild_nickname, User.discord_display_name, User.discord_username
            ),
        ),
        Message.created_at,
    )
    .select_from(Message)
    .join(Conversation, Conversation.id == Message.conversation_id)
    .outerjoin(User, User.id == Message.user_id)
    .outerjoin(GuildMember, and_(GuildMember.user_id == Message.user_id, GuildMember.guild_id == Conversation.guild_id))
    .where(
        Message.conversation_id == bindparam("conversation_id"),
        # Replies finished by earlier turns count even when stored after the messages now being answered.
        or_(Message.id <= bindparam("up_to_id"), Message.role == "assistant"),
        Message.id.not_in(bindparam("exclude_ids", expanding=True)),
    )
    .order_by(Message.id.desc())
    .limit(bindparam("limit"))
)


@dataclass(frozen=True, slots=True)
class HistoryRow:
    """A stored turn with its speaker's name as people in that place see it (a reply's: the cast character who
    said it, None when Hearth spoke as its persona)."""

    message_id: int
    role: str
    content: str
    speaker: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class AwaitingMessage:
    """A user's message still awaiting Hearth's reply, with who wrote it and where (Discord ids)."""

    message_id: int
    conversation_id: int
    user_id: int
    guild_id: int | None  # guilds.id; None in a DM
    content: str
    created_at: datetime
    discord_message_id: int | None
    channel_id: int
    author_discord_id: int
    username: str
    display_name: str | None
    nickname: str | None
    guild_discord_id: int | None
    guild_name: str | None
    image_urls: tuple[str, ...] = field(default=(), kw_only=True)  # the links of the images shown with it

    @classmethod
    def of_row(cls, row: Any) -> "AwaitingMessage":
        """From a row of :data:`USER_MESSAGES_WITH_AUTHORS`."""
        *columns, image_urls = row
        return cls(*columns, image_urls=tuple(image_urls or ()))


# A user's message with who wrote it and where, as an AwaitingMessage holds it (a ``where`` picks which).
USER_MESSAGES_WITH_AUTHORS = (
    select(
        Message.id,
        Message.conversation_id,
        Message.user_id,
        Conversation.guild_id,
        Message.content,
        Message.created_at,
        Message.discord_message_id,
        Conversation.channel_id,
        User.discord_id,
        User.discord_username,
        User.discord_display_name,
        GuildMember.guild_nickname,
        Guild.discord_id,
        Guild.name,
        Message.image_urls,
    )
    .select_from(Message)
    .join(Conversation, Conversation.id == Message.conversation_id)
    .join(User, User.id == Message.user_id)
    .outerjoin(Guild, Guild.id == Conversation.guild_id)
    .outerjoin(GuildMember, and_(GuildMember.user_id == Message.user_id, GuildMember.guild_id == Conversation.guild_id))
    .where(Message.role == "user")
)
_AWAITING = (
    USER_MESSAGES_WITH_AUTHORS.where(
        Message.awaiting_reply, Message.created_at >= bindparam("since"), Message.id > bindparam("after")
    )
    .order_by(Message.id)
    .limit(bindparam("limit"))
)

# A reply's claim on the messages it answers (see ConversationRepository.settle).
_SETTLE = (
    update(_messages)
    .where(_messages.c.id.in_(bindparam("ids", expanding=True)), _messages.c.awaiting_reply)
    .values(awaiting_reply=False)
    .returning(_messages.c.id)
)

# Its undoing, for a claim whose turn was cut short before its reply (see ConversationRepository.reopen).
_REOPEN = (
    update(_messages)
    .where(_messages.c.id.in_(bindparam("ids", expanding=True)), _messages.c.role == "user")
    .values(awaiting_reply=True)
)


class ConversationRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def find_open(self, *, channel_id: int, user_id: int | None, active_since: datetime) -> Conversation | None:
        """The channel's conversation (the user's, in a DM) if its last message is newer than ``active_since``."""
        statement = (
            select(Conversation)
            .where(
                Conversation.channel_id == channel_id,
                Conversation.is_active.is_(True),
                Conversation.last_message_at >= active_since,
            )
            .order_by(Conversation.last_message_at.desc())
            .limit(1)
        )
        if user_id is not None:
            statement = statement.where(Conversation.user_id == user_id)
        return await self.session.scalar(statement)

    async def open(self, *, channel_id: int, guild_id: int | None, user_id: int | None, at: datetime) -> Conversation:
        """Start a conversation; earlier active ones in the channel are marked inactive (idle)."""
        await self.session.execute(
            update(Conversation)
            .where(Conversation.channel_id == channel_id, Conversation.is_active.is_(True))
            .values(is_active=False, closed_at=at)
        )
        conversation = Conversation(
            channel_id=channel_id, guild_id=guild_id, user_id=user_id, started_at=at, last_message_at=at
        )
        self.session.add(conversation)
        await self.session.flush()
        return conversation

    async def add_message(
        self,
        *,
        conversation_id: int,
        user_id: int | None,
        role: str,
        content: str,
        at: datetime,
        speaker_name: str | None = None,
        discord_message_id: int | None = None,
        discord_part_ids: Sequence[int] = (),
        answered_ids: Sequence[int] = (),
        image_urls: Sequence[str] = (),
        prompt_tokens: int | None = None,
        completion_tokens: int | None = None,
        model: str | None = None,
        latency_ms: int | None = None,
        awaiting_reply: bool = False,
        images_pending: bool = False,
        was_away: bool = False,
    ) -> int:
        """Insert a turn, count it in its conversation and move its last-message time; return the turn's id.
        ``speaker_name``: the cast character who said a reply (None when Hearth spoke as its persona).
        ``discord_part_ids``: every Discord message showing a reply, in order (kept when there are several).
        ``answered_ids``: the people's messages (their rows' ids) a reply answers, in order. ``was_away``: a reply
        the catch-up gave, to messages that came while Hearth was stopped. Raises
        :class:`AlreadyStored` for a user's message whose Discord message is stored already (nothing changed).

        On every reply's path, so the statements are built once (and are one statement on PostgreSQL).
        """
        values: dict[str, object] = {
            "m_conversation_id": conversation_id,
            "m_user_id": user_id,
            "m_role": role,
            "m_content": content,
            "m_discord_message_id": discord_message_id,
            "m_has_images": bool(image_urls),
            "m_image_urls": list(image_urls),
            "m_token_count": completion_tokens,
            "m_prompt_tokens": prompt_tokens,
            "m_completion_tokens": completion_tokens,
            "m_model": model,
            "m_latency_ms": latency_ms,
            "m_awaiting_reply": awaiting_reply,
            "m_created_at": at,
            "m_updated_at": at,
        }
        postgres = dialect_name(self.session) == "postgresql"
        if answered_ids:
            values["m_answered_ids"] = list(answered_ids)
            statement = _ADD_REPLY_POSTGRESQL if postgres else _INSERT_REPLY_SQLITE
        else:
            statement = _ADD_MESSAGE_POSTGRESQL if postgres else _INSERT_MESSAGE_SQLITE
        inserted = await self.session.execute(statement, values)
        message_id = cast(int | None, inserted.scalar_one_or_none())
        if message_id is None:
            raise AlreadyStored(f"Discord message {discord_message_id} is stored already")
        if not postgres:
            await self.session.execute(_TOUCH_SQLITE, values)
        # Rare, so statements of their own: the common insert stays as it was (and works on older schemas).
        if images_pending and image_urls:
            await self.session.execute(update(Message).where(Message.id == message_id).values(images_pending=True))
        if speaker_name is not None:
            await self.session.execute(
                update(Message).where(Message.id == message_id).values(speaker_name=speaker_name)
            )
        if was_away:
            await self.session.execute(update(Message).where(Message.id == message_id).values(was_away=True))
        if len(discord_part_ids) > 1:
            await self.session.execute(
                update(Message).where(Message.id == message_id).values(discord_part_ids=list(discord_part_ids))
            )
        return message_id

    async def find_user_message(self, *, discord_message_id: int, user_id: int) -> tuple[int, int] | None:
        """(conversation id, message id) of the user's message stored for this Discord message, if any."""
        row = (
            await self.session.execute(
                select(Message.conversation_id, Message.id)
                .where(
                    Message.discord_message_id == discord_message_id,
                    Message.user_id == user_id,
                    Message.role == "user",
                )
                .order_by(Message.id)
                .limit(1)
            )
        ).first()
        return None if row is None else (row[0], row[1])

    async def find_reply(self, *, conversation_id: int, at: datetime, content: str) -> int | None:
        """The id of the reply stored in the conversation at ``at`` with this text, if any."""
        statement = (
            select(Message.id)
            .where(
                Message.conversation_id == conversation_id,
                Message.role == "assistant",
                Message.created_at == at,
                Message.content == content,
            )
            .order_by(Message.id)
            .limit(1)
        )
        found: int | None = await self.session.scalar(statement)
        return found

    async def with_images_pending(self, *, limit: int) -> list[int]:
        """Ids of messages whose images are still to be described, oldest first."""
        statement = select(Message.id).where(Message.images_pending).order_by(Message.id).limit(limit)
        return list((await self.session.execute(statement)).scalars().all())

    async def claim_images(self, message_id: int) -> tuple[str, list[str]] | None:
        """Take a message's images to describe (its text and image links), clearing its pending flag: None when
        another process took them first. The flag cleared first, a crash costs the description, never a second
        model call."""
        statement = (
            update(Message)
            .where(Message.id == message_id, Message.images_pending)
            .values(images_pending=False)
            .returning(Message.content, Message.image_urls)
        )
        row = (await self.session.execute(statement)).first()
        return None if row is None else (row[0], [str(url) for url in row[1] or ()])

    async def release_images(self, message_id: int) -> None:
        """Give back a message's images taken to describe (the model could not answer): pending again, so they
        are described once it can."""
        await self.session.execute(update(Message).where(Message.id == message_id).values(images_pending=True))

    async def awaiting_reply(self, *, since: datetime, limit: int, after: int = 0) -> list[AwaitingMessage]:
        """Users' messages stored since ``since`` and still awaiting a reply, oldest first, from the one after the
        message row ``after`` (the next page)."""
        parameters = {"since": since, "limit": limit, "after": after}
        rows = (await self.session.execute(_AWAITING, parameters)).all()
        return [AwaitingMessage.of_row(row) for row in rows]

    async def settle(self, message_ids: Sequence[int]) -> list[int]:
        """Mark messages as no longer awaiting a reply; returns those that were (a claim: of two processes
        settling the same message, one gets it)."""
        if not message_ids:
            return []
        result = await execute_plain(self.session, _SETTLE, {"ids": list(message_ids)})
        return sorted(result.scalars().all())

    async def reopen(self, message_ids: Sequence[int]) -> None:
        """Mark users' messages as awaiting a reply again: claimed (see :meth:`settle`), their turn was cut short
        before it was answered, and the next catch-up is to answer them."""
        if message_ids:
            await execute_plain(self.session, _REOPEN, {"ids": list(message_ids)})

    async def history(
        self, conversation_id: int, *, up_to_id: int, exclude_ids: Sequence[int] = (), limit: int
    ) -> list[HistoryRow]:
        """The last ``limit`` turns, oldest first, with speakers' names: users' messages up to ``up_to_id`` and
        every reply so far, but for ``exclude_ids`` (the messages being answered)."""
        parameters = {
            "conversation_id": conversation_id,
            "up_to_id": up_to_id,
            "exclude_ids": list(exclude_ids),
            "limit": limit,
        }
        rows = (await self.session.execute(_HISTORY, parameters)).all()
        return [HistoryRow(*row) for row in reversed(rows)]

    async def due_for_summary(
        self, *, idle_before: datetime, since: datetime, limit: int, skip: Collection[int] = ()
    ) -> list[Conversation]:
        """Conversations quiet since ``idle_before`` (and active after ``since``) with at least one exchange and
        no summary memory yet, oldest first; none of ``skip``."""
        summarised = select(Memory.id).where(Memory.conversation_id == Conversation.id, Memory.kind == "summary")
        statement = (
            select(Conversation)
            .where(
                Conversation.last_message_at < idle_before,
                Conversation.last_message_at >= since,
                Conversation.message_count >= 2,
                ~summarised.exists(),
                Conversation.id.not_in(sorted(skip)),
            )
            .order_by(Conversation.last_message_at)
            .limit(limit)
        )
        return list((await self.session.scalars(statement)).all())

    async def is_summarised(self, conversation_id: int) -> bool:
        """Whether the conversation has its summary memory."""
        summary = select(Memory.id).where(Memory.conversation_id == conversation_id, Memory.kind == "summary")
        return await self.session.scalar(summary.limit(1)) is not None

    async def close_in_channel(self, *, channel_id: int, at: datetime) -> list[int]:
        """Close the channel's active conversations (a DM channel is one person's); returns their ids."""
        statement = (
            update(Conversation)
            .where(Conversation.channel_id == channel_id, Conversation.is_active.is_(True))
            .values(is_active=False, closed_at=at)
            .returning(Conversation.id)
        )
        return [int(row) for row in (await self.session.scalars(statement)).all()]

    async def close_idle(self, *, idle_before: datetime, at: datetime) -> int:
        """Mark conversations quiet since ``idle_before`` as closed; returns how many."""
        result = await self.session.execute(
            update(Conversation)
            .where(Conversation.is_active.is_(True), Conversation.last_message_at < idle_before)
            .values(is_active=False, closed_at=at)
        )
        return int(getattr(result, "rowcount", 0) or 0)

    async def messages_by_ids(self, ids: Sequence[int]) -> list[Message]:
        if not ids:
            return []
        return list((await self.session.scalars(select(Message).where(Message.id.in_(ids)).order_by(Message.id))).all())

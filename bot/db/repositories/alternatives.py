"""Regenerated replies: the reply a 🔄 was pressed on, the messages it answered, and its alternatives."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import Message, ReplyAlternative, User
from bot.db.repositories.conversations import USER_MESSAGES_WITH_AUTHORS, AwaitingMessage


@dataclass(frozen=True, slots=True)
class SentReply:
    """A reply Hearth sent, found by the Discord message that shows it, as regenerating it needs."""

    message_id: int
    conversation_id: int
    answered_discord_id: int | None  # the person it answered (None: erased since)
    content: str
    model: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    created_at: datetime
    latest: bool  # no reply came after it in its conversation
    parts: tuple[int, ...]  # the Discord messages that show it, in order (the last one carries its buttons)
    answered: tuple[int, ...] = ()  # the people's messages it answered (rows' ids); () when stored before 0023
    was_away: bool = False  # given by the catch-up, to messages that came while Hearth was stopped


@dataclass(frozen=True, slots=True)
class Alternative:
    position: int
    content: str
    is_shown: bool


class AlternativeRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def reply_shown_in(self, discord_message_id: int) -> SentReply | None:
        """The reply whose last Discord message (where its buttons are) is ``discord_message_id``."""
        reply = (
            await self.session.execute(
                select(
                    Message.id,
                    Message.conversation_id,
                    User.discord_id,
                    Message.content,
                    Message.model,
                    Message.prompt_tokens,
                    Message.completion_tokens,
                    Message.created_at,
                    Message.discord_part_ids,
                    Message.answered_ids,
                    Message.was_away,
                )
                .outerjoin(User, User.id == Message.user_id)
                .where(Message.discord_message_id == discord_message_id, Message.role == "assistant")
                .order_by(Message.id.desc())
                .limit(1)
            )
        ).first()
        if reply is None:
            return None
        later = await self.session.scalar(
            select(func.count())
            .select_from(Message)
            .where(Message.conversation_id == reply[1], Message.role == "assistant", Message.id > reply[0])
        )
        return SentReply(
            message_id=reply[0],
            conversation_id=reply[1],
            answered_discord_id=reply[2],
            content=reply[3],
            model=reply[4],
            prompt_tokens=reply[5],
            completion_tokens=reply[6],
            created_at=reply[7],
            latest=not later,
            parts=tuple(int(part) for part in reply[8] or ()) or (discord_message_id,),
            answered=tuple(int(message_id) for message_id in reply[9] or ()),
            was_away=reply[10],
        )

    async def reshown(self, message_id: int, parts: Sequence[int]) -> None:
        """The reply ``message_id`` is now shown in the Discord messages ``parts``, in order (another answer of it
        needed more of them, or fewer)."""
        await self.session.execute(
            update(Message)
            .where(Message.id == message_id)
            .values(discord_message_id=parts[-1], discord_part_ids=list(parts) if len(parts) > 1 else [])
        )

    async def answered_by(self, reply: SentReply) -> list[AwaitingMessage]:
        """The user's messages the reply answered, those still stored, as catch-up reads messages (with who wrote
        them and where). A reply stored before revision 0023 did not record them: for it, they are the person's
        messages since the reply before it in the conversation."""
        if reply.answered:
            # By id alone: a turn's messages may span two conversations (one reset or idle while they waited).
            recorded = USER_MESSAGES_WITH_AUTHORS.where(Message.id.in_(reply.answered)).order_by(Message.id)
            return [AwaitingMessage.of_row(row) for row in (await self.session.execute(recorded)).all()]
        before = (
            select(func.coalesce(func.max(Message.id), 0))
            .where(
                Message.conversation_id == reply.conversation_id,
                Message.role == "assistant",
                Message.id < reply.message_id,
            )
            .scalar_subquery()
        )
        answered_user = select(Message.user_id).where(Message.id == reply.message_id).scalar_subquery()
        statement = USER_MESSAGES_WITH_AUTHORS.where(
            Message.conversation_id == reply.conversation_id,
            Message.user_id == answered_user,
            Message.id > before,
            Message.id < reply.message_id,
        ).order_by(Message.id)
        rows = (await self.session.execute(statement)).all()
        return [AwaitingMessage.of_row(row) for row in rows]

    async def of(self, message_id: int) -> list[Alternative]:
        """The reply's alternatives in the order they were asked for (none until it was first regenerated)."""
        rows = await self.session.execute(
            select(ReplyAlternative.position, ReplyAlternative.content, ReplyAlternative.is_shown)
            .where(ReplyAlternative.message_id == message_id)
            .order_by(ReplyAlternative.position)
        )
        return [Alternative(*row) for row in rows.all()]

    async def add(
        self,
        message_id: int,
        position: int,
        content: str,
        *,
        model: str | None,
        prompt_tokens: int | None,
        completion_tokens: int | None,
    ) -> None:
        self.session.add(
            ReplyAlternative(
                message_id=message_id,
                position=position,
                content=content,
                model=model,
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
            )
        )
        await self.session.flush()

    async def show(self, message_id: int, position: int, *, at: datetime) -> str:
        """Make the alternative at ``position`` the reply the conversation continues from; returns its text."""
        chosen = (
            await self.session.execute(
                select(
                    ReplyAlternative.content,
                    ReplyAlternative.model,
                    ReplyAlternative.prompt_tokens,
                    ReplyAlternative.completion_tokens,
                ).where(ReplyAlternative.message_id == message_id, ReplyAlternative.position == position)
            )
        ).one()
        await self.session.execute(
            update(ReplyAlternative)
            .where(ReplyAlternative.message_id == message_id)
            .values(is_shown=ReplyAlternative.position == position, updated_at=at)
        )
        await self.session.execute(
            update(Message)
            .where(Message.id == message_id)
            .values(
                content=chosen[0],
                model=chosen[1],
                prompt_tokens=chosen[2],
                completion_tokens=chosen[3],
                token_count=chosen[3],
                updated_at=at,
            )
        )
        return str(chosen[0])


def positions(alternatives: Sequence[Alternative]) -> tuple[int, int]:
    """(the shown alternative's position, how many there are); (1, 1) for a reply never regenerated."""
    shown = next((a.position for a in alternatives if a.is_shown), 1)
    return shown, max(len(alternatives), 1)

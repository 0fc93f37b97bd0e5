"""Counts for the owner's usage report, the admins' ``/stats`` and the per-guild daily token quota.

Tokens are counted from the stored replies (assistant messages carry their prompt and completion tokens, and a
reply regenerated with 🔄 each of its answers') and from the proactive messages the model wrote (their scheduled
events carry theirs), so the figures are current to the last reply; the daily roll-up tables
(``UsageRepository``) are for history.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Subquery, and_, case, func, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from bot.db.models import Conversation, Guild, GuildMember, Message, ReplyAlternative, ScheduledEvent


def _prompt(spent: Subquery) -> ColumnElement[Any]:
    return func.coalesce(func.sum(spent.c.prompt_tokens), 0)


def _completion(spent: Subquery) -> ColumnElement[Any]:
    return func.coalesce(func.sum(spent.c.completion_tokens), 0)


def answers_spent(since: datetime, until: datetime | None = None) -> Subquery:
    """Each model answer in a reply from ``since`` on (and before ``until``): the person answered, its guild (None:
    a DM), model and tokens; what the live counts and the daily roll-up both read. The birthday greetings and
    follow-ups the model wrote count too, in the place of their event. A reply 🔄 asked
    the model again for keeps every answer as one of its alternatives and holds the one shown in its own row, so a
    reply with alternatives counts them instead: the first when the reply was given, each later one when it was
    asked for (which may be another day; regenerating moves no ``last_message_at``).

    For the replies, a conversation's ``last_message_at`` is never earlier than any of its messages
    (``ConversationRepository.add_message`` only moves it forward), so that condition changes no result; it lets
    the database skip a guild's old conversations through an index instead of probing each of them."""
    first = aliased(ReplyAlternative)
    regenerated = first.id.is_not(None)
    replies = (
        select(
            Message.user_id.label("user_id"),
            Conversation.guild_id.label("guild_id"),
            case((regenerated, first.model), else_=Message.model).label("model"),
            case((regenerated, first.prompt_tokens), else_=Message.prompt_tokens).label("prompt_tokens"),
            case((regenerated, first.completion_tokens), else_=Message.completion_tokens).label("completion_tokens"),
        )
        .select_from(Message)
        .join(Conversation, Conversation.id == Message.conversation_id)
        .outerjoin(first, and_(first.message_id == Message.id, first.position == 1))
        .where(Message.role == "assistant", Message.created_at >= since, Conversation.last_message_at >= since)
    )
    asked_again = (
        select(
            Message.user_id,
            Conversation.guild_id,
            ReplyAlternative.model,
            ReplyAlternative.prompt_tokens,
            ReplyAlternative.completion_tokens,
        )
        .select_from(ReplyAlternative)
        .join(Message, Message.id == ReplyAlternative.message_id)
        .join(Conversation, Conversation.id == Message.conversation_id)
        .where(ReplyAlternative.position > 1, ReplyAlternative.created_at >= since)
    )
    # A birthday greeting or a follow-up the model wrote: where its event was for, when it was last sent or tried.
    written = select(
        ScheduledEvent.user_id,
        ScheduledEvent.guild_id,
        ScheduledEvent.model,
        ScheduledEvent.prompt_tokens,
        ScheduledEvent.completion_tokens,
    ).where(ScheduledEvent.model.is_not(None), ScheduledEvent.triggered_at >= since)
    if until is not None:
        replies = replies.where(Message.created_at < until)
        asked_again = asked_again.where(ReplyAlternative.created_at < until)
        written = written.where(ScheduledEvent.triggered_at < until)
    return union_all(replies, asked_again, written).subquery("spent")


@dataclass(frozen=True, slots=True)
class GuildTokens:
    """Replies in one guild (``guild_id`` None: all DMs together) and the tokens they took."""

    guild_id: int | None
    guild_name: str | None
    requests: int
    prompt_tokens: int
    completion_tokens: int

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True, slots=True)
class GuildCounts:
    messages: int  # stored turns (both sides) in the guild's conversations
    users_known: int  # guild_members rows


class StatsRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def tokens_since(self, guild_id: int, since: datetime) -> int:
        """Prompt plus completion tokens of the model's answers in this guild from ``since`` on (see
        ``answers_spent``)."""
        spent = answers_spent(since)
        statement = select(_prompt(spent) + _completion(spent)).where(spent.c.guild_id == guild_id)
        return int(await self.session.scalar(statement) or 0)

    async def tokens_by_guild(self, since: datetime) -> list[GuildTokens]:
        """Per guild (and one row for DMs), replies and tokens from ``since`` on, most tokens first. A request
        is an answer that names its model, i.e. one LLM call (as in the daily roll-up); a reply regenerated with 🔄
        made one for each of its answers."""
        spent = answers_spent(since)
        total = _prompt(spent) + _completion(spent)
        statement = (
            select(spent.c.guild_id, Guild.name, func.count(spent.c.model), _prompt(spent), _completion(spent))
            .select_from(spent)
            .outerjoin(Guild, Guild.id == spent.c.guild_id)
            .group_by(spent.c.guild_id, Guild.name)
            .order_by(total.desc(), func.coalesce(spent.c.guild_id, 0))
        )
        rows = (await self.session.execute(statement)).all()
        return [
            GuildTokens(
                guild_id=None if guild_id is None else int(guild_id),
                guild_name=name,
                requests=int(requests),
                prompt_tokens=int(prompt or 0),
                completion_tokens=int(completion or 0),
            )
            for guild_id, name, requests, prompt, completion in rows
        ]

    async def guild_counts(self, guild_id: int) -> GuildCounts:
        """Messages stored in the guild's conversations and the members Hearth knows there, in one round trip."""
        messages = (
            select(func.count())
            .select_from(Message)
            .join(Conversation, Conversation.id == Message.conversation_id)
            .where(Conversation.guild_id == guild_id)
            .scalar_subquery()
        )
        members = (
            select(func.count()).select_from(GuildMember).where(GuildMember.guild_id == guild_id).scalar_subquery()
        )
        row = (await self.session.execute(select(messages, members))).one()
        return GuildCounts(messages=int(row[0] or 0), users_known=int(row[1] or 0))

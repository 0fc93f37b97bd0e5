"""Counts for the owner's usage report, the admins' ``/stats`` and the per-guild daily token quota.

Tokens are counted from the stored replies (assistant messages carry their prompt and completion tokens), so
the figures are current to the last reply; the daily roll-up tables (``UsageRepository``) are for history.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import Conversation, Guild, GuildMember, Message

_PROMPT = func.coalesce(func.sum(Message.prompt_tokens), 0)
_COMPLETION = func.coalesce(func.sum(Message.completion_tokens), 0)


def _since_filter(since: Any) -> tuple[ColumnElement[bool], ...]:
    """Replies from ``since`` on. A conversation's ``last_message_at`` is never earlier than any of its messages
    (``ConversationRepository.add_message`` only moves it forward), so the second condition changes no result; it
    lets the database skip a guild's old conversations through an index instead of probing each of them."""
    return (
        Message.role == "assistant",
        Message.created_at >= since,
        Conversation.last_message_at >= since,
    )


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
        """Prompt plus completion tokens of the replies in this guild from ``since`` on: one aggregate over the
        guild's recent conversations."""
        statement = (
            select(_PROMPT + _COMPLETION)
            .select_from(Message)
            .join(Conversation, Conversation.id == Message.conversation_id)
            .where(Conversation.guild_id == guild_id, *_since_filter(since))
        )
        return int(await self.session.scalar(statement) or 0)

    async def tokens_by_guild(self, since: datetime) -> list[GuildTokens]:
        """Per guild (and one row for DMs), replies and tokens from ``since`` on, most tokens first. A request
        is a reply that names its model, i.e. one LLM call (as in the daily roll-up)."""
        total = _PROMPT + _COMPLETION
        statement = (
            select(
                Conversation.guild_id,
                Guild.name,
                func.count(Message.model),
                _PROMPT,
                _COMPLETION,
            )
            .select_from(Message)
            .join(Conversation, Conversation.id == Message.conversation_id)
            .outerjoin(Guild, Guild.id == Conversation.guild_id)
            .where(*_since_filter(since))
            .group_by(Conversation.guild_id, Guild.name)
            .order_by(total.desc(), func.coalesce(Conversation.guild_id, 0))
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

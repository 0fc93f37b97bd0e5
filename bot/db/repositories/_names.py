"""How a person is named in a place, as SQL: for queries that join users and their guild membership."""

from typing import Any

from sqlalchemy import ColumnElement, func

from bot.db.models import GuildMember, User


def shown_name() -> ColumnElement[Any]:
    """The name they chose, else their nickname in the guild, else their display name, else their username
    (the query joins ``User`` and, outer, ``GuildMember`` of the conversation's guild)."""
    return func.coalesce(User.custom_name, GuildMember.guild_nickname, User.discord_display_name, User.discord_username)

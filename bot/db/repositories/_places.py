"""Where Hearth's state is kept: the place columns as the unique indexes spell them.

Relationships are kept per user and guild, with ``guild_id`` NULL for DMs, unique on ``coalesce(guild_id, 0)``.
Hearth's own mood and opinions are kept per place: a guild, or one user's DM (``dm_user_id``, see
``bot/domain/place.py``), unique on ``coalesce(guild_id, 0), coalesce(dm_user_id, 0)``. The upserts name
those expressions as their conflict targets.
"""

from typing import Any

from sqlalchemy import ColumnElement, and_, func, literal_column

from bot.domain.place import StatePlace


def place_key(column: Any) -> ColumnElement[int]:
    """``coalesce(guild_id, 0)`` as the unique indexes spell it: the 0 written out, so a conflict target matches
    the index (a bound parameter would not, on SQLite)."""
    key: ColumnElement[int] = func.coalesce(column, literal_column("0"))
    return key


def in_place(column: Any, guild_id: int | None) -> ColumnElement[bool]:
    """``column`` (a guild_id) names this guild, or is NULL for DMs."""
    condition: ColumnElement[bool] = column.is_(None) if guild_id is None else column == guild_id
    return condition


def at_place(table: Any, place: StatePlace) -> ColumnElement[bool]:
    """The rows of ``table`` (with ``guild_id`` and ``dm_user_id``) kept in ``place``."""
    if place.guild_id is not None:
        condition: ColumnElement[bool] = table.guild_id == place.guild_id
    else:
        condition = and_(table.guild_id.is_(None), table.dm_user_id == place.dm_user_id)
    return condition


def place_keys(table: Any) -> list[ColumnElement[int]]:
    """The place as the unique indexes of ``table`` spell it (a conflict target)."""
    return [place_key(table.guild_id), place_key(table.dm_user_id)]


def place_parameters(place: StatePlace) -> dict[str, int]:
    """``:guild`` and ``:dm`` as the unique indexes spell a place (0 for the one not set)."""
    return {"guild": place.guild_id or 0, "dm": place.dm_user_id or 0}

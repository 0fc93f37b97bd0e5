"""Which rows belong to a process's Discord shards, by the guild they were made in.

Discord's sharding formula: a guild belongs to shard ``(guild_id >> 22) % shard_count``; DMs to shard 0.
"""

from collections.abc import Sequence

from sqlalchemy import ColumnElement, Integer, SQLColumnExpression, literal, or_, select

from bot.db.models import Guild

# An INTEGER: PostgreSQL has ``bigint >> integer`` but no ``bigint >> bigint``.
_SHARD_SHIFT = 22


def on_shards(
    guild_id: SQLColumnExpression[int | None], shard_ids: Sequence[int], shard_count: int
) -> ColumnElement[bool]:
    """Rows whose guild (``guild_id``, a ``guilds.id``) lives on one of ``shard_ids``; rows without a guild (DMs)
    live on shard 0."""
    if shard_count < 1 or not shard_ids or not all(0 <= shard_id < shard_count for shard_id in shard_ids):
        raise ValueError(
            f"shards must be ids within 0..{shard_count - 1} and a shard count of at least 1, got "
            f"({list(shard_ids)}, {shard_count})"
        )
    guilds_here = select(Guild.id).where(
        (Guild.discord_id.op(">>")(literal(_SHARD_SHIFT, Integer)) % shard_count).in_(sorted(set(shard_ids)))
    )
    in_guild_here = guild_id.in_(guilds_here)
    return or_(guild_id.is_(None), in_guild_here) if 0 in shard_ids else in_guild_here

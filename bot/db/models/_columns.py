"""Column shorthands shared by the models."""

from typing import Any

from sqlalchemy import BigInteger, Float, ForeignKey, Integer, text
from sqlalchemy.orm import MappedColumn, mapped_column

# Where a fact or memory was learned, and so where it may be used (see ARCHITECTURE: privacy scopes).
SCOPES = ("dm", "guild", "global")
SCOPE_CHECK = "scope IN ('dm', 'guild', 'global') AND ((scope = 'guild') = (guild_id IS NOT NULL))"
# Hearth's own state (mood, opinions) is kept in one guild or in one user's DM: exactly one of the two.
ONE_PLACE_CHECK = "(guild_id IS NULL) <> (dm_user_id IS NULL)"


def user_fk(
    *, nullable: bool = False, index: bool = True, unique: bool = False, on_delete: str = "CASCADE"
) -> MappedColumn[Any]:
    """A reference to users.id; by default deleting the user deletes the row (a promise to users)."""
    return mapped_column(
        BigInteger,
        ForeignKey("users.id", ondelete=on_delete),
        nullable=nullable,
        index=index and not unique,
        unique=unique,
    )


def guild_fk(*, nullable: bool = True, index: bool = True) -> MappedColumn[Any]:
    """A reference to guilds.id; rows about a guild go when the guild's row goes."""
    return mapped_column(BigInteger, ForeignKey("guilds.id", ondelete="CASCADE"), nullable=nullable, index=index)


def counter() -> MappedColumn[int]:
    """A NOT NULL integer that starts at 0."""
    return mapped_column(Integer, default=0, server_default=text("0"), nullable=False)


def real(default: float) -> MappedColumn[float]:
    """A NOT NULL float with a default, on both the Python and the SQL side."""
    return mapped_column(Float, default=default, server_default=text(repr(float(default))), nullable=False)

"""Where Hearth's own state lives: its mood and its opinions are kept per guild, and per DM.

Each user's DM is a place of its own (see ARCHITECTURE: privacy scopes): what Hearth comes to feel or think
while talking with Ana in private is used only in Ana's DM, never in Ben's.
"""

from dataclasses import dataclass
from typing import Self


@dataclass(frozen=True, slots=True)
class StatePlace:
    """One guild (its row id) or one user's DM (the user's row id): exactly one of the two is set."""

    guild_id: int | None = None
    dm_user_id: int | None = None

    def __post_init__(self) -> None:
        if (self.guild_id is None) == (self.dm_user_id is None):
            raise ValueError("a place is one guild or one user's DM")

    @classmethod
    def of(cls, guild_id: int | None, user_id: int) -> Self:
        """Where a message from ``user_id`` was said: the guild, or (``guild_id`` None) their DM."""
        return cls(guild_id=guild_id) if guild_id is not None else cls(dm_user_id=user_id)

    @property
    def is_dm(self) -> bool:
        return self.dm_user_id is not None

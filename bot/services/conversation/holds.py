"""When Hearth must not call the model for a stored message, and what it says then (once, then silence).

The owner's maintenance switch (resting: said once per channel and user, after each switch) and a guild past
its daily token quota (said once per channel and day). When the quota cannot be counted, it is not spent.
"""

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Literal

from bot.db.engine import DATABASE_FAULTS
from bot.domain import guild_settings
from bot.services.conversation.config import OVER_QUOTA, RESTING
from bot.services.limits import TokenQuota

log = logging.getLogger(__name__)


class Holds:
    def __init__(self, quota: TokenQuota | None, *, clock: Callable[[], datetime]) -> None:
        self.quota = quota
        self.clock = clock
        self.resting = False  # the owner's maintenance switch: messages are stored, and answered only with RESTING
        self._told: set[tuple[object, ...]] = set()

    def rest(self, resting: bool) -> None:
        """The owner's maintenance switch; each channel and user is told again after a new switch."""
        self.resting = resting
        self._told = {key for key in self._told if key[0] != "resting"}

    async def held(
        self, *, channel_id: int, user_id: int, guild_id: int | None, settings: guild_settings.GuildSettings
    ) -> tuple[bool, str | None]:
        """(held back, what to say): (False, None) when the model may be called; the notice only the first time."""
        key: tuple[object, ...]
        if self.resting:
            notice, key = RESTING, ("resting", channel_id, user_id)
        elif guild_id is not None and await self._over_quota(guild_id, settings):
            notice, key = OVER_QUOTA, ("quota", self.clock().date(), channel_id)
        else:
            return False, None
        if key in self._told:
            return True, None
        if key[0] == "quota":  # yesterday's notices are done with
            self._told = {told for told in self._told if told[0] != "quota" or told[1] == key[1]}
        self._told.add(key)
        return True, notice

    async def stopped(
        self, guild_id: int | None, settings: guild_settings.GuildSettings
    ) -> Literal["resting", "over_quota"] | None:
        """Why the model must not be called here now (resting, or the guild's quota spent), None when it may,
        with nothing said: for what asks the model again outside a turn (regenerating a reply)."""
        if self.resting:
            return "resting"
        if guild_id is not None and await self._over_quota(guild_id, settings):
            return "over_quota"
        return None

    def spent(self, guild_id: int | None, tokens: int) -> None:
        """A reply's tokens, counted against its guild's quota."""
        if self.quota is not None and guild_id is not None:
            self.quota.spent(guild_id, tokens)

    async def _over_quota(self, guild_id: int, settings: guild_settings.GuildSettings) -> bool:
        if self.quota is None:
            return False
        try:
            return await self.quota.exhausted(guild_id, settings.daily_token_quota)
        except DATABASE_FAULTS as exc:
            log.warning("could not count guild %s's tokens (%s); answering", guild_id, exc)
            return False

"""What a guild's admins change with ``/config``: each change checked, stored, and in effect at once.

The rules for each value are in ``bot/domain/guild_settings.py``; this service reads and writes them through
the :class:`Directory`, which drops its cached copy of the guild's settings on every change.
"""

from collections.abc import Callable
from typing import Any

from bot.domain import guild_settings as rules
from bot.domain.guild_settings import GuildSettings, InvalidSetting
from bot.services.directory import Directory
from bot.services.incoming import Place

MAX_CHAT_CHANNELS = 50
MAX_LISTED = 200  # blocked users, blocked channels, allowed roles: each list at most this long


class GuildConfigService:
    def __init__(self, directory: Directory) -> None:
        self.directory = directory

    async def show(self, place: Place) -> GuildSettings:
        view = await self.directory.guild(place)
        return rules.read(view.settings if view else {})

    async def guild_row_id(self, place: Place) -> int | None:
        """The guild's row id (``guilds.id``, which its personas are kept under); None in DMs."""
        view = await self.directory.guild(place)
        return view.guild_id if view else None

    async def _change(self, place: Place, **changes: Any) -> GuildSettings:
        return await self._edit(place, changes)

    async def _edit(
        self, place: Place, changes: dict[str, Any] | Callable[[GuildSettings], dict[str, Any]]
    ) -> GuildSettings:
        """Store ``changes``; a list is changed as a function of the settings as stored, in the transaction that
        changes them, so that two admins changing one list at the same moment both see their change kept."""
        if place.guild_id is None:
            raise InvalidSetting("Server settings can only be changed in a server.")
        return rules.read(await self.directory.update_guild_settings(place, changes))

    async def add_chat_channel(self, place: Place, channel_id: int) -> tuple[GuildSettings, bool]:
        """Hearth answers every message in the channel: the channel is taken off the blocked channels too (a block
        would keep it quiet there). Returns the settings and whether the channel was blocked until now."""
        unblocked = False

        def add(settings: GuildSettings) -> dict[str, Any]:
            nonlocal unblocked
            channels = settings.chat_channels
            if channel_id not in channels and len(channels) >= MAX_CHAT_CHANNELS:
                raise InvalidSetting(f"A server can have at most {MAX_CHAT_CHANNELS} chat channels.")
            changes: dict[str, Any] = {"chat_channels": sorted(channels | {channel_id})}
            unblocked = channel_id in settings.blocked_channels
            if unblocked:
                changes["blocked_channels"] = sorted(settings.blocked_channels - {channel_id})
            return changes

        return await self._edit(place, add), unblocked

    async def remove_chat_channel(self, place: Place, channel_id: int) -> GuildSettings:
        def remove(settings: GuildSettings) -> dict[str, Any]:
            if channel_id not in settings.chat_channels:
                raise InvalidSetting("That channel is not a chat channel.")
            return {"chat_channels": sorted(settings.chat_channels - {channel_id})}

        return await self._edit(place, remove)

    async def _listed(self, place: Place, key: str, value: int, *, on: bool, absent: str) -> GuildSettings:
        """Add ``value`` to (``on``) or take it from one of the settings' lists of ids."""

        def change(settings: GuildSettings) -> dict[str, Any]:
            current: frozenset[int] = getattr(settings, key)
            if on:
                if value not in current and len(current) >= MAX_LISTED:
                    raise InvalidSetting(f"That list is full ({MAX_LISTED}); remove someone first.")
                return {key: sorted(current | {value})}
            if value not in current:
                raise InvalidSetting(absent)
            return {key: sorted(current - {value})}

        return await self._edit(place, change)

    async def block_user(self, place: Place, user_id: int) -> GuildSettings:
        """Hearth neither answers nor learns from this member here (their messages are not stored)."""
        return await self._listed(place, "blocked_users", user_id, on=True, absent="")

    async def unblock_user(self, place: Place, user_id: int) -> GuildSettings:
        return await self._listed(place, "blocked_users", user_id, on=False, absent="That member is not blocked.")

    async def block_channel(self, place: Place, channel_id: int) -> GuildSettings:
        return await self._listed(place, "blocked_channels", channel_id, on=True, absent="")

    async def unblock_channel(self, place: Place, channel_id: int) -> GuildSettings:
        return await self._listed(
            place, "blocked_channels", channel_id, on=False, absent="That channel is not blocked."
        )

    async def add_role(self, place: Place, role_id: int) -> GuildSettings:
        """Once any role is set, only members with one of the roles are answered (in every channel)."""
        return await self._listed(place, "allowed_roles", role_id, on=True, absent="")

    async def remove_role(self, place: Place, role_id: int) -> GuildSettings:
        return await self._listed(place, "allowed_roles", role_id, on=False, absent="That role is not on the list.")

    async def channel_deleted(self, place: Place, channel_id: int) -> None:
        """A channel deleted on Discord leaves the chat and blocked channels: Discord offers no deleted channel to
        name in ``/config``, so it would hold one of the server's places for good and show as #deleted-channel."""
        await self.forget_deleted(place, channels=frozenset({channel_id}))

    async def role_deleted(self, place: Place, role_id: int) -> None:
        """A role deleted on Discord leaves the list: nobody holds it any more, and Discord offers no deleted role
        to name in ``/config roles remove``, so it would keep everyone without another listed role unanswered."""
        await self.forget_deleted(place, roles=frozenset({role_id}))

    async def stored(self, guild_id: int) -> GuildSettings | None:
        """The server's settings; None when Hearth holds none for it (nothing is created to find out)."""
        return await self.directory.stored_settings(guild_id)

    async def forget_deleted(
        self, place: Place, *, channels: frozenset[int] = frozenset(), roles: frozenset[int] = frozenset()
    ) -> None:
        """Take channels and roles deleted on Discord off the server's lists; a server with none of them listed (or
        no settings at all) is not written to."""
        if place.guild_id is None:
            return
        settings = await self.stored(place.guild_id)
        if settings is not None and rules.without(settings, channels=channels, roles=roles):
            await self._edit(place, lambda stored: rules.without(stored, channels=channels, roles=roles))

    async def set_reply_mode(self, place: Place, mode: str) -> GuildSettings:
        return await self._change(place, reply_mode=rules.check_reply_mode(mode))

    async def set_chime_in(self, place: Place, percent: float) -> GuildSettings:
        return await self._change(place, chime_in=rules.check_percent(percent))

    async def set_learning(self, place: Place, on: bool) -> GuildSettings:
        return await self._change(place, learning=on)

    async def set_proactive(self, place: Place, on: bool) -> GuildSettings:
        return await self._change(place, proactive=on)

    async def set_quiet_hours(self, place: Place, start: str | None, end: str | None) -> GuildSettings:
        """Both times set quiet hours (read in each user's time zone); neither clears them."""
        if start is None and end is None:
            return await self._change(place, quiet_hours=None)
        if start is None or end is None:
            raise InvalidSetting("Give both a start and an end (like 22:00 and 08:00), or neither to clear them.")
        return await self._change(place, quiet_hours=rules.check_quiet_hours(start, end))

    async def set_language(self, place: Place, language: str | None) -> GuildSettings:
        return await self._change(place, language=None if language is None else rules.check_language(language))

    async def set_model(self, place: Place, model: str | None) -> GuildSettings:
        return await self._change(place, model=None if model is None else rules.check_model(model))

    async def set_temperature(self, place: Place, temperature: float | None) -> GuildSettings:
        value = None if temperature is None else rules.check_temperature(temperature)
        return await self._change(place, temperature=value)

    async def set_cooldown(self, place: Place, seconds: float | None) -> GuildSettings:
        return await self._change(place, cooldown=None if seconds is None else rules.check_cooldown(seconds))

    async def set_daily_token_quota(self, place: Place, tokens: int) -> GuildSettings:
        return await self._change(place, daily_token_quota=rules.check_quota(tokens) or None)

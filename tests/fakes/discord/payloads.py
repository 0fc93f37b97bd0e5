"""JSON as Discord sends it that more than one part of the fake needs: members (in GUILD_CREATE, messages,
interactions and REST answers) and guilds (GUILD_CREATE).

Pure functions: they read what they are given and store nothing. Users and channels build their own payloads
(``FakeUser.payload()``, ``FakeChannel.payload()``); a payload only one part sends is built there.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.fakes.discord.world import FakeChannel, FakeGuild, FakeUser

JSON = dict[str, Any]


def now() -> str:
    return datetime.now(UTC).isoformat()


def member_payload(guild: FakeGuild, user: FakeUser, *, with_user: bool = True) -> JSON:
    """``user`` as a member of ``guild`` (``with_user=False``: without its ``user``, as messages carry it)."""
    data: JSON = {
        "roles": [str(r) for r in guild.member_roles.get(user.id, [])],
        "joined_at": now(),
        "deaf": False,
        "mute": False,
        "flags": 0,
        "nick": None,
        "avatar": None,
        "premium_since": None,
        "pending": False,
        "communication_disabled_until": None,
    }
    return {"user": user.payload(), **data} if with_user else data


def guild_payload(guild: FakeGuild, channels: Mapping[int, FakeChannel]) -> JSON:
    """A GUILD_CREATE payload for ``guild``."""
    return {
        "id": str(guild.id),
        "name": guild.name,
        "icon": None,
        "owner_id": str(guild.owner_id),
        "roles": guild.roles,
        "emojis": [],
        "stickers": [],
        "features": [],
        "channels": [channels[cid].payload() for cid in guild.channels.values()],
        "threads": [  # the active ones only, as Discord sends
            channels[cid].payload()
            for cid in guild.threads.values()
            if not channels[cid].extra["thread_metadata"]["archived"]
        ],
        "members": [member_payload(guild, user) for user in guild.members],
        "member_count": len(guild.members),
        "large": False,
        "unavailable": False,
        "joined_at": now(),
        "voice_states": [],
        "presences": [],
        "stage_instances": [],
        "guild_scheduled_events": [],
        "soundboard_sounds": [],
        "system_channel_id": str(guild.first_channel) if guild.channels else None,
        "preferred_locale": "en-US",
        "verification_level": 0,
        "default_message_notifications": 0,
        "explicit_content_filter": 0,
        "mfa_level": 0,
        "nsfw_level": 0,
        "premium_tier": 0,
    }

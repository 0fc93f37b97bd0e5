"""Discord users and places as the services' plain values."""

from datetime import UTC, datetime

import discord

from bot.services.directory import Directory, Identity
from bot.services.incoming import Author, Place


def author_of(user: discord.User | discord.Member) -> Author:
    nickname = user.nick if isinstance(user, discord.Member) else None
    roles = tuple(role.name for role in user.roles[1:]) if isinstance(user, discord.Member) else ()
    return Author(discord_id=user.id, username=user.name, display_name=user.global_name, nickname=nickname, roles=roles)


def said_in(message: discord.Message) -> str:
    """What ``message`` says, as Hearth keeps and answers it: its text (mentions shown as names), then each sticker
    sent with it by name, a line each (``[sticker: Wave]``), so that a sticker sent alone is said too."""
    stickers = [f"[sticker: {sticker.name}]" for sticker in message.stickers]
    return "\n".join(part for part in (message.clean_content, *stickers) if part)


def replied_webhook_name(message: discord.Message) -> str | None:
    """The name on the webhook message ``message`` replies to (a cast character's), if it does: replying to a
    character is talking to it."""
    reference = message.reference
    resolved = reference.resolved if reference else None
    if isinstance(resolved, discord.Message) and resolved.webhook_id is not None:
        return resolved.author.display_name
    return None


def place_of(interaction: discord.Interaction) -> Place:
    channel = interaction.channel
    guild = interaction.guild
    return Place(
        channel_id=interaction.channel_id or 0,
        channel_name=getattr(channel, "name", None),
        guild_id=interaction.guild_id,
        guild_name=guild.name if guild else None,
    )


async def identify(directory: Directory, interaction: discord.Interaction) -> Identity:
    """The row ids of the person running a command and of the guild it runs in (None in DMs)."""
    return await directory.identify(author_of(interaction.user), place_of(interaction), datetime.now(UTC))

"""Who may run what: real checks, run by discord.py before each command (Discord's own permission UI is only a
hint a server can change). A refusal raises a :class:`~discord.app_commands.CheckFailure` whose message the
central error handler shows the user, privately."""

import discord
from discord import app_commands
from discord.ext import commands

# Discord's hint for the admin commands (a server may change it; :func:`require_admin` is the real check).
MANAGE_SERVER = discord.Permissions(manage_guild=True)


class NotAdmin(app_commands.CheckFailure):
    def __init__(self) -> None:
        super().__init__("Only members with the Manage Server permission can change how I work here.")


class NotOwner(app_commands.CheckFailure):
    def __init__(self) -> None:
        super().__init__("Only my owner can use that.")


class NotInServer(app_commands.CheckFailure):
    def __init__(self) -> None:
        super().__init__("That only works in a server.")


def require_admin(interaction: discord.Interaction) -> None:
    """Manage Server in this guild: ``interaction.permissions`` are the member's, as Discord computed them."""
    if interaction.guild_id is None:
        raise NotInServer()
    if not interaction.permissions.manage_guild:
        raise NotAdmin()


async def require_owner(interaction: discord.Interaction) -> None:
    """``OWNER_IDS``, else the application's owner (or team), as discord.py resolves them."""
    client = interaction.client
    if not isinstance(client, commands.Bot | commands.AutoShardedBot) or not await client.is_owner(interaction.user):
        raise NotOwner()

"""/owner: sync, reload, status, maintenance mode, memory jobs, backup, usage and shutdown, for the bot's owner.

Registered only in DEV_GUILD_ID when it is set; otherwise globally, usable in DMs only.
"""

import discord
from discord import app_commands

from bot.discord.client import HearthBot
from bot.discord.exts import declined
from bot.discord.exts.owner._cog import Owner


async def setup(bot: HearthBot) -> None:
    if declined(bot, __name__):
        return
    services = bot.services
    cog = Owner(bot, services.status, services.operations, services.stats)
    dev_guild = services.settings.dev_guild_id
    if dev_guild is not None:
        await bot.add_cog(cog, guild=discord.Object(id=dev_guild))
    else:
        assert cog.app_command is not None  # a GroupCog always has its group
        cog.app_command.allowed_contexts = app_commands.AppCommandContext(
            guild=False, dm_channel=True, private_channel=False
        )
        await bot.add_cog(cog)

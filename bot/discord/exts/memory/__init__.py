"""/memory show|forget|forget-all|export, /remember, /optout and /optin: what Hearth knows about the caller."""

from bot.discord.client import HearthBot
from bot.discord.exts import declined
from bot.discord.exts.memory._cog import Memory


async def setup(bot: HearthBot) -> None:
    if declined(bot, __name__):
        return
    await bot.add_cog(Memory(bot.services.privacy, bot.services.directory))

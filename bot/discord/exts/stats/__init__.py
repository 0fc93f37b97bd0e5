"""/stats: a server's figures, for its admins."""

from bot.discord.client import HearthBot
from bot.discord.exts import declined
from bot.discord.exts.stats._cog import Stats


async def setup(bot: HearthBot) -> None:
    if declined(bot, __name__):
        return
    await bot.add_cog(Stats(bot.services.stats, bot.services.directory))

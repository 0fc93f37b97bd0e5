"""/hearth about: the persona played here, its mood, and what Hearth remembers."""

from bot.discord.client import HearthBot
from bot.discord.exts import declined
from bot.discord.exts.about._cog import About


async def setup(bot: HearthBot) -> None:
    if declined(bot, __name__):
        return
    services = bot.services
    await bot.add_cog(About(services.personas, services.stats, services.directory))

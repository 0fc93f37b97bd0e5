"""/knowledge: a server's lore documents, for its admins."""

from bot.discord.client import HearthBot
from bot.discord.exts import declined
from bot.discord.exts.knowledge._cog import Knowledge


async def setup(bot: HearthBot) -> None:
    if declined(bot, __name__):
        return
    await bot.add_cog(Knowledge(bot.services.knowledge, bot.services.directory))

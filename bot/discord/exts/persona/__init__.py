"""/persona: the character played in a server, for its admins."""

from bot.discord.client import HearthBot
from bot.discord.exts import declined
from bot.discord.exts.persona._cog import Persona


async def setup(bot: HearthBot) -> None:
    if declined(bot, __name__):
        return
    await bot.add_cog(Persona(bot.services.personas, bot.services.directory))

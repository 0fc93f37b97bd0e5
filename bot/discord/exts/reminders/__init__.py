"""/birthday, /timezone, /remind, /reminders and /proactive: what Hearth sends the caller, and when."""

from bot.discord.client import HearthBot
from bot.discord.exts import declined
from bot.discord.exts.reminders._cog import Reminders


async def setup(bot: HearthBot) -> None:
    if declined(bot, __name__):
        return
    await bot.add_cog(Reminders(bot.services.reminders, bot.services.directory))

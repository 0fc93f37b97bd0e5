"""/config: a server's settings, for its admins."""

from bot.discord.client import HearthBot
from bot.discord.exts import declined
from bot.discord.exts.config._cog import Config, Defaults


async def setup(bot: HearthBot) -> None:
    if declined(bot, __name__):
        return
    settings = bot.services.settings
    defaults = Defaults(settings.llm_model, settings.llm_temperature, settings.user_cooldown_seconds)
    await bot.add_cog(Config(bot.services.guild_config, bot.services.personas, defaults))

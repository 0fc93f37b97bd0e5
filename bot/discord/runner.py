"""Run HearthBot until it is stopped, turning Discord's start-up failures into clear errors."""

import discord

from bot.container import Container
from bot.discord.client import HearthBot
from bot.errors import ConfigError


async def run_bot(container: Container) -> None:
    token = container.settings.discord_token
    if token is None:
        raise ConfigError("DISCORD_TOKEN is not set: put DISCORD_TOKEN=your-bot-token in .env (see .env.example)")
    bot = HearthBot(container)
    try:
        async with bot:
            await bot.start(token.get_secret_value())
    except discord.LoginFailure:
        raise ConfigError(
            "Discord rejected DISCORD_TOKEN: copy the bot token again from the Developer Portal"
        ) from None
    except discord.PrivilegedIntentsRequired:
        raise ConfigError(
            "Discord refused the Message Content intent: enable it under Bot → Privileged Gateway Intents "
            "in the Developer Portal (see README)"
        ) from None

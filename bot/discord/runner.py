"""Run HearthBot until it is stopped, turning Discord's start-up failures into clear errors.

SIGTERM (``docker stop``) and SIGINT (Ctrl-C) stop it cleanly (:meth:`HearthBot.stop`): no new messages are
taken, replies being written finish, and :func:`run_bot` returns, so the launcher can drain the background
work and close the database before the process exits with status 0. A second signal cuts the wait short.
"""

import asyncio
import logging
import signal

import aiohttp
import discord

from bot.container import Container
from bot.discord.client import HearthBot
from bot.discord.probe import INVALID_TOKEN
from bot.errors import ConfigError, DiscordRejected, DiscordUnavailable, describe_connection_error

log = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)

# What to do about the gateway close codes after which Discord will not take the session back, nor discord.py
# try again (4014, a privileged intent, is discord.PrivilegedIntentsRequired): at start or after a reconnect.
REFUSED_SESSIONS = {
    4004: INVALID_TOKEN,  # the token was reset in the Developer Portal while Hearth ran
    4011: "Discord requires more shards for this bot's servers than SHARD_COUNT: raise SHARD_COUNT, or unset it and "
    "SHARD_IDS to take Discord's recommendation",
}


async def run_bot(container: Container, *, sync_commands: bool = False) -> None:
    """Run the bot on ``container``'s services until it stops; ``sync_commands``: publish the commands once set up."""
    token = container.settings.discord_token
    if token is None:
        raise ConfigError("DISCORD_TOKEN is not set: put DISCORD_TOKEN=your-bot-token in .env (see .env.example)")
    bot = HearthBot(container.services(), container, sync_commands=sync_commands)
    loop = asyncio.get_running_loop()

    def on_signal(number: signal.Signals) -> None:
        log.info("%s received: stopping cleanly (send it again to cut replies short)", number.name)
        bot.stop()

    for number in STOP_SIGNALS:
        loop.add_signal_handler(number, on_signal, number)
    try:
        async with bot:
            try:
                await bot.start(token.get_secret_value())
            finally:
                # However the connection ended (a stop, or Discord refusing the session for good), the replies being
                # written get their grace, then are cut short, while the database is still open: a message whose
                # reply cannot be finished still awaits it, for the next start.
                await (bot.stopping or bot.stop())
    except discord.LoginFailure:
        raise DiscordRejected(INVALID_TOKEN) from None
    except discord.PrivilegedIntentsRequired:
        raise DiscordRejected(
            "Discord refused the Message Content intent: enable it under Bot → Privileged Gateway Intents "
            "in the Developer Portal (see README)"
        ) from None
    except discord.ConnectionClosed as exc:  # a close code Discord means for good (the others are reconnected)
        said = REFUSED_SESSIONS.get(
            exc.code, f"Discord closed the gateway connection with code {exc.code} and will not take it back"
        )
        raise DiscordRejected(said) from None
    except discord.HTTPException as exc:  # an outage while logging in (the probe before start got through)
        raise DiscordUnavailable(f"Discord answered {exc.status} during start-up: {exc.text}") from None
    except (discord.GatewayNotFound, aiohttp.ClientError) as exc:
        raise DiscordUnavailable(f"lost Discord while connecting: {describe_connection_error(exc)}") from None
    finally:
        # The launcher now saves the queued work (bounded): a signal meanwhile must not kill it half-way.
        for number in STOP_SIGNALS:
            loop.add_signal_handler(number, log.info, "%s received: already stopping", number.name)

"""Hearth's Discord features, one extension (a package) each.

Each package has an ``async def setup(bot)`` that takes the services its cog needs from ``bot.services`` (a
:class:`~bot.services.bundle.Services`, never the composition root) and adds the cog, or declines with a
logged reason; private modules (``_cog.py``, ``_views.py``) hold the rest. ``HearthBot.setup_hook`` loads
them in this order, and ``/owner reload`` reloads one.
"""

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.discord.client import HearthBot

log = logging.getLogger(__name__)

EXTENSIONS: tuple[str, ...] = (
    "bot.discord.exts.chat",  # conversation: every message the bot sees
    "bot.discord.exts.memory",  # /memory, /remember, /optout, /optin
    "bot.discord.exts.reminders",  # /birthday, /timezone, /remind, /reminders, /proactive
    "bot.discord.exts.about",  # /hearth about
    "bot.discord.exts.config",  # /config (admins)
    "bot.discord.exts.persona",  # /persona (admins)
    "bot.discord.exts.knowledge",  # /knowledge (admins)
    "bot.discord.exts.stats",  # /stats (admins)
    "bot.discord.exts.owner",  # /owner
)


def short_name(extension: str) -> str:
    """``bot.discord.exts.memory`` → ``memory``, the name DISABLED_EXTENSIONS uses."""
    return extension.rsplit(".", 1)[-1]


def declined(bot: "HearthBot", extension: str) -> bool:
    """True, and logged, when the operator switched the extension off (DISABLED_EXTENSIONS)."""
    if short_name(extension) in bot.services.settings.disabled_extensions:
        log.info("extension %s not loaded: switched off by DISABLED_EXTENSIONS", short_name(extension))
        return True
    return False

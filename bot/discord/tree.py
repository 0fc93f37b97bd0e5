"""The command tree: a per-user cooldown before every command, and one error handler for all of them.

Whatever goes wrong in a command reaches :meth:`HearthTree.on_error`: our own errors (a ``HearthError``, whose
message is written for the user) and failed checks are shown as they are; bad arguments get a plain hint;
anything else is logged with the ids needed to find it and answered with a short apology. Every such answer is
ephemeral: only the person who ran the command sees it (by DM once Discord no longer takes the interaction's
follow-ups, 15 minutes after it).
"""

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

import discord
from discord import app_commands

from bot.discord.people import place_of
from bot.errors import HearthError
from bot.observability.logs import set_log_context
from bot.services.bundle import Services

log = logging.getLogger(__name__)

SOMETHING_WENT_WRONG = "Something went wrong on my side; it has been logged. Please try again in a moment."


def _services(interaction: discord.Interaction) -> Services | None:
    return getattr(interaction.client, "services", None)


# Discord refuses a message of more characters than this.
MESSAGE_CHARS = 2000

INVALID_WEBHOOK_TOKEN = 50027  # Discord's error code for an expired interaction token
UNKNOWN_WEBHOOK = 10015
UNKNOWN_INTERACTION = 10062  # an interaction not answered within the 3 seconds Discord waits


def cut(text: str, limit: int = MESSAGE_CHARS) -> str:
    """``text`` cut to ``limit`` characters, an ellipsis showing where (an error may quote much)."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def token_refused(error: discord.HTTPException) -> bool:
    """Whether Discord refused the interaction's token itself (expired), rather than the message sent."""
    return error.status == 401 or error.code in (INVALID_WEBHOOK_TOKEN, UNKNOWN_WEBHOOK)


async def tell(interaction: discord.Interaction, text: str) -> None:
    """An ephemeral message, whether or not the interaction was answered (or deferred) already; cut to what
    Discord takes (an error may quote what the user typed, and an option may hold 6000 characters).

    Discord takes follow-ups for 15 minutes after the interaction: after that, the message goes by DM; so does one
    answering an interaction Discord forgot, not answered within the 3 seconds it waits."""
    try:
        if not interaction.response.is_done():
            await interaction.response.send_message(cut(text), ephemeral=True)
            return
        if not interaction.is_expired():
            await interaction.followup.send(cut(text), ephemeral=True)
            return
    except discord.HTTPException as exc:
        if not token_refused(exc) and exc.code != UNKNOWN_INTERACTION:
            raise
    await tell_by_dm(interaction, text)


def answering(interaction: discord.Interaction) -> str:
    """What a DM about ``interaction`` says it answers: the command run, else the button pressed, the menu used or
    the form sent, and on which message (linked, unless only its reader could see it)."""
    if interaction.command is not None:
        return f"/{interaction.command.qualified_name}"
    if interaction.type is discord.InteractionType.modal_submit:
        used = "The form you sent"
    elif interaction.type is discord.InteractionType.component:
        data: Mapping[str, object] = interaction.data or {}
        button = data.get("component_type") == discord.ComponentType.button.value
        used = "The button you pressed" if button else "The menu you used"
    else:
        return "Your command"
    message = interaction.message
    if message is None or message.flags.ephemeral:  # a link to a message only its reader saw leads nowhere
        return used
    return f"{used} on {message.jump_url}"


async def tell_by_dm(interaction: discord.Interaction, text: str) -> None:
    """``text`` by DM to whoever ran the interaction, saying what it answers (see :func:`answering`), once its
    token has expired (or Discord forgot the interaction); a DM Discord refuses is logged, never raised."""
    user = interaction.user
    try:
        await user.send(cut(f"{answering(interaction)}: {text}"), allowed_mentions=discord.AllowedMentions.none())
    except discord.HTTPException as exc:
        log.warning(
            "could not tell user %s by DM how interaction %s ended (%s): %s", user.id, interaction.id, exc, text
        )


def shown_option(value: object) -> str:
    """An option's value as people know it: a person or role as @name, a channel as #name, anything else as typed
    (in quotes); escaped, so that nothing in it formats the message or mentions anyone."""
    if isinstance(value, discord.abc.User):
        name, prefix = value.display_name, "@"
    elif isinstance(value, discord.Role):
        name, prefix = value.name, "@"
    elif isinstance(value, app_commands.AppCommandChannel | app_commands.AppCommandThread | discord.abc.GuildChannel):
        name, prefix = value.name, "#"
    else:
        return discord.utils.escape_mentions(f"“{discord.utils.escape_markdown(str(value))}”")
    return discord.utils.escape_mentions(prefix + discord.utils.escape_markdown(name))


def explain(error: BaseException) -> str | None:
    """What to tell the user about ``error``; None when it is our fault (logged, then apologised for)."""
    cause = error.original if isinstance(error, app_commands.CommandInvokeError) else error
    if isinstance(cause, HearthError):
        return str(cause)
    if isinstance(error, app_commands.CheckFailure) and str(error):
        return str(error)
    if isinstance(error, app_commands.TransformerError):
        return f"{shown_option(error.value)} is not a valid {error.type.name.lower().replace('_', ' ')} here."
    if isinstance(error, app_commands.CommandOnCooldown):
        return f"Slow down a little: try again in {error.retry_after:.1f} s."
    if isinstance(error, app_commands.CheckFailure):
        return "You can't use that command here."
    if isinstance(error, app_commands.CommandNotFound):
        return "I don't know that command any more; Discord may still be updating its list. Try again shortly."
    return None


class HearthTree(app_commands.CommandTree[Any]):
    async def interaction_check(self, interaction: discord.Interaction, /) -> bool:
        """The per-user cooldown (USER_COOLDOWN_SECONDS, or the server's /config cooldown) between commands.

        First, the interaction's ids go into the log context of the task that runs it (one per interaction), and
        that task is counted in flight: a stop lets it finish, as it lets a reply being written finish."""
        set_log_context(
            guild_id=interaction.guild_id,
            channel_id=interaction.channel_id,
            user_id=interaction.user.id,
            interaction_id=interaction.id,
        )
        in_flight = getattr(interaction.client, "replying", None)
        task = asyncio.current_task()
        if in_flight is not None and task is not None:
            in_flight.keep(task)
        services = _services(interaction)
        if interaction.type is not discord.InteractionType.application_command or services is None:
            return True
        left = await services.command_cooldown.try_acquire(interaction.user.id, place_of(interaction))
        if left:
            await tell(interaction, f"Slow down a little: try again in {left:.1f} s.")
            return False
        return True

    async def on_error(self, interaction: discord.Interaction, error: app_commands.AppCommandError, /) -> None:
        command = interaction.command.qualified_name if interaction.command else "?"
        await report(interaction, error, f"command /{command}")


async def report(interaction: discord.Interaction, error: BaseException, what: str) -> None:
    """Tell the user what went wrong (privately), logging what is our fault; for commands, buttons and forms."""
    message = explain(error)
    if message is None:
        log.error(
            "%s failed (guild %s, channel %s, user %s, interaction %s)",
            what,
            interaction.guild_id,
            interaction.channel_id,
            interaction.user.id,
            interaction.id,
            exc_info=error,
        )
        message = SOMETHING_WENT_WRONG
    try:
        await tell(interaction, message)
    except discord.HTTPException:
        log.warning("could not tell user %s why interaction %s failed", interaction.user.id, interaction.id)

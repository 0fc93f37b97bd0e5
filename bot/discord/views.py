"""Buttons: pages for long lists, and a confirmation for what cannot be undone. Only the person who ran the
command can press them."""

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import discord

from bot.discord.tree import report

log = logging.getLogger(__name__)

TIMEOUT_S = 300.0  # how long pages and menus answer
CONFIRM_TIMEOUT_S = 120.0  # how long a question that cannot be undone waits
HEARTH_COLOUR = 0xE8833A  # the fire's orange, on every embed
# Discord refuses a message whose embeds hold more than this (titles, descriptions, fields, footers together).
EMBED_TOTAL_CHARS = 6000
EMBED_DESCRIPTION_CHARS = 4096
FIELD_VALUE_CHARS = 1024


class _OwnedView(discord.ui.View):
    """Controls only ``owner_id`` may use. When they time out they are taken off the message they were shown in
    (``shown_by``'s answer), so nobody presses one Discord would only answer with "This interaction failed"."""

    timed_out_text: str | None = None  # what the message says once the controls are gone (None: as it was)

    def __init__(self, owner_id: int, *, timeout: float | None = None) -> None:
        super().__init__(timeout=TIMEOUT_S if timeout is None else timeout)
        self.owner_id = owner_id
        self.shown_by: discord.Interaction | None = None

    async def on_timeout(self) -> None:
        if self.shown_by is None or not self.children:
            return
        try:
            if self.timed_out_text is None:
                await self.shown_by.edit_original_response(view=None)
            else:
                await self.shown_by.edit_original_response(content=self.timed_out_text, view=None)
        except discord.HTTPException as exc:  # dismissed by its reader, or Discord is unreachable: nothing to do
            log.debug("could not take timed-out controls off their message: %s", exc)

    async def interaction_check(self, interaction: discord.Interaction, /) -> bool:
        if interaction.user.id != self.owner_id:
            await interaction.response.send_message("Those buttons belong to someone else.", ephemeral=True)
            return False
        return True

    async def on_error(self, interaction: discord.Interaction, error: Exception, item: discord.ui.Item[Any], /) -> None:
        await report(interaction, error, f"button {getattr(item, 'custom_id', '?')}")


class Paginator(_OwnedView):
    """Embeds shown one at a time with ◀ ▶; ``page_items`` adds controls that depend on the page shown."""

    def __init__(self, owner_id: int, pages: Sequence[discord.Embed]) -> None:
        super().__init__(owner_id)
        self.pages = list(pages) or [discord.Embed(description="Nothing here yet.")]
        self.index = 0
        self._update_buttons()

    @property
    def current(self) -> discord.Embed:
        embed = self.pages[self.index]
        if len(self.pages) > 1:
            embed.set_footer(text=f"Page {self.index + 1} of {len(self.pages)}")
        return embed

    def _update_buttons(self) -> None:
        self.previous_page.disabled = self.index == 0
        self.next_page.disabled = self.index >= len(self.pages) - 1
        if len(self.pages) <= 1:
            self.remove_item(self.previous_page)
            self.remove_item(self.next_page)

    async def show(self, interaction: discord.Interaction, *, ephemeral: bool = True) -> None:
        """Send the first page as the answer to ``interaction`` (or its follow-up, when deferred)."""
        self.shown_by = interaction
        if interaction.response.is_done():
            await interaction.followup.send(embed=self.current, view=self, ephemeral=ephemeral)
        else:
            await interaction.response.send_message(embed=self.current, view=self, ephemeral=ephemeral)

    def on_page(self) -> None:
        """Called when the page shown changes: subclasses add controls for the items on it."""

    async def _turn(self, interaction: discord.Interaction, step: int) -> None:
        self.index = min(max(self.index + step, 0), len(self.pages) - 1)
        self._update_buttons()
        self.on_page()
        await interaction.response.edit_message(embed=self.current, view=self)

    @discord.ui.button(label="◀", style=discord.ButtonStyle.secondary, custom_id="page:previous")
    async def previous_page(self, interaction: discord.Interaction, button: discord.ui.Button[Any]) -> None:
        await self._turn(interaction, -1)

    @discord.ui.button(label="▶", style=discord.ButtonStyle.secondary, custom_id="page:next")
    async def next_page(self, interaction: discord.Interaction, button: discord.ui.Button[Any]) -> None:
        await self._turn(interaction, 1)


def hearth_embed(title: str, description: str | None = None) -> discord.Embed:
    """An embed in Hearth's colour."""
    return discord.Embed(title=title, description=description, colour=HEARTH_COLOUR)


def clipped(text: str, limit: int) -> str:
    """``text``, cut to ``limit`` characters with an ellipsis when longer."""
    return text if len(text) <= limit else text[: max(limit - 1, 0)] + "…"


def number_text(value: Any) -> str:
    """A number as a person writes it (1.1, not 1.1000000000000001); a value that does not read as one (a
    persona's config is not checked), as it is."""
    try:
        return f"{float(value):g}"
    except (TypeError, ValueError):
        return str(value)


def describe_in_room_left(embed: discord.Embed, text: str) -> discord.Embed:
    """Give ``embed`` ``text`` as its description, cut to what its fields, title and footer leave of the
    6000 characters Discord allows in all."""
    embed.description = None
    embed.description = clipped(text, min(EMBED_DESCRIPTION_CHARS, EMBED_TOTAL_CHARS - len(embed)))
    return embed


def pages_of(
    title: str,
    lines: Sequence[str],
    *,
    per_page: int = 10,
    empty: str = "Nothing here yet.",
) -> list[discord.Embed]:
    """``lines`` as embeds of ``per_page`` lines each (and within Discord's 4096-character description)."""
    pages: list[discord.Embed] = []
    chunk: list[str] = []
    for line in lines:
        line = line if len(line) <= 1000 else line[:999] + "…"
        if len(chunk) >= per_page or sum(len(x) + 1 for x in chunk) + len(line) > 4000:
            pages.append(hearth_embed(title, "\n".join(chunk)))
            chunk = []
        chunk.append(line)
    if chunk or not pages:
        pages.append(hearth_embed(title, "\n".join(chunk) or empty))
    return pages


class Confirm(_OwnedView):
    """A red button that runs ``action`` once, and a cancel button; the message is edited to the outcome."""

    timed_out_text = "Nothing was changed: the question timed out. Run the command again if you still want to."

    def __init__(
        self, owner_id: int, action: Callable[[discord.Interaction], Awaitable[str]], *, label: str = "Yes, do it"
    ) -> None:
        super().__init__(owner_id, timeout=CONFIRM_TIMEOUT_S)
        self.action = action
        self.confirm.label = label

    async def ask(self, interaction: discord.Interaction, question: str) -> None:
        """Put ``question`` to the owner, privately, with the two buttons."""
        self.shown_by = interaction
        await interaction.response.send_message(question, view=self, ephemeral=True)

    @discord.ui.button(label="Yes", style=discord.ButtonStyle.danger, custom_id="confirm:yes")
    async def confirm(self, interaction: discord.Interaction, button: discord.ui.Button[Any]) -> None:
        self.stop()
        await interaction.response.defer()
        outcome = await self.action(interaction)
        await interaction.edit_original_response(content=outcome, view=None)

    @discord.ui.button(label="Cancel", style=discord.ButtonStyle.secondary, custom_id="confirm:no")
    async def cancel(self, interaction: discord.Interaction, button: discord.ui.Button[Any]) -> None:
        self.stop()
        await interaction.response.edit_message(content="Cancelled: nothing was changed.", view=None)

"""/knowledge: lore documents Hearth draws on in a server (admins: Manage Server).

Every command here is checked in ``interaction_check``, on top of Discord's permission hint (which a server
may loosen): a member without Manage Server is refused whatever Discord shows them.
"""

import discord
from discord import app_commands
from discord.ext import commands

from bot.discord.attachments import read_attachment
from bot.discord.checks import MANAGE_SERVER, require_admin
from bot.discord.deferred import DeferredAnswer
from bot.discord.people import identify
from bot.discord.views import Paginator, pages_of
from bot.domain.documents import MAX_DOCUMENT_BYTES, check_upload
from bot.errors import HearthError
from bot.services.directory import Directory
from bot.services.knowledge import KnowledgeService


class Knowledge(commands.Cog):
    knowledge = app_commands.Group(
        name="knowledge",
        description="Lore documents Hearth can draw on here",
        default_permissions=MANAGE_SERVER,
        guild_only=True,
    )

    def __init__(self, knowledge: KnowledgeService, directory: Directory) -> None:
        self.knowledge_service = knowledge
        self.directory = directory

    async def interaction_check(self, interaction: discord.Interaction, /) -> bool:
        require_admin(interaction)
        return True

    @knowledge.command(name="add", description="Add a lore document (.txt or .md) Hearth can draw on here")
    @app_commands.describe(document="A .txt or .md file")
    async def knowledge_add(self, interaction: discord.Interaction, document: discord.Attachment) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)  # downloading and reading take a while
        async with DeferredAnswer(interaction) as answer:  # a long document may take longer than the token lasts
            here = await identify(self.directory, interaction)
            assert here.guild_id is not None
            check_upload(document.filename, document.size)  # name and size, before downloading it
            data = await read_attachment(document, MAX_DOCUMENT_BYTES, "document")

            shown = discord.utils.escape_markdown(document.filename)  # "__notes__.md" is a name, not bold

            async def progress(done: int, total: int) -> None:
                answer.progress(f"Reading {shown}: {done}/{total} passages…")

            view = await self.knowledge_service.add(
                here.guild_id, here.user_id, document.filename, document.content_type, data, progress=progress
            )
            await answer.finish(
                f"Added {discord.utils.escape_markdown(view.name)}: {view.chunk_count} passages, status {view.status}."
            )

    @knowledge.command(name="list", description="The lore documents stored for this server")
    async def knowledge_list(self, interaction: discord.Interaction) -> None:
        here = await identify(self.directory, interaction)
        assert here.guild_id is not None
        documents = await self.knowledge_service.list(here.guild_id)
        lines = [
            f"`#{d.id}` **{discord.utils.escape_markdown(d.name)}** · {d.chunk_count} passages · {d.status}"
            + (f" ({discord.utils.escape_markdown(d.error.rstrip('. '))})" if d.error else "")
            + f" · {discord.utils.format_dt(d.created_at, 'd')}"
            for d in documents
        ]
        pages = pages_of("Lore documents", lines, empty="None yet. Add one with /knowledge add.")
        await Paginator(interaction.user.id, pages).show(interaction)

    @knowledge.command(name="remove", description="Remove a lore document and everything Hearth took from it")
    @app_commands.describe(document="The document (start typing to search)")
    async def knowledge_remove(self, interaction: discord.Interaction, document: int) -> None:
        # The deletion may wait behind another upload's passages being stored, longer than Discord waits.
        await interaction.response.defer(ephemeral=True, thinking=True)
        here = await identify(self.directory, interaction)
        assert here.guild_id is not None
        removed = await self.knowledge_service.remove(here.guild_id, document)
        if removed is None:
            raise HearthError(f"There is no document #{document} in this server; /knowledge list shows them.")
        await interaction.followup.send(f"Removed {discord.utils.escape_markdown(removed.name)}.", ephemeral=True)

    @knowledge_remove.autocomplete("document")
    async def _document_choices(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[int]]:
        if interaction.guild_id is None or not interaction.permissions.manage_guild:
            return []
        here = await identify(self.directory, interaction)
        assert here.guild_id is not None
        wanted = current.strip().lower()
        documents = [d for d in await self.knowledge_service.list(here.guild_id) if wanted in d.name.lower()]
        return [app_commands.Choice(name=f"#{d.id} {d.name}"[:100], value=d.id) for d in documents[:25]]

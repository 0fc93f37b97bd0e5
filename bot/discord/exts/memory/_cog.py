"""What Hearth knows about you: see it, add to it, export it, erase it, and opt out of learning. Answers are
ephemeral: only you see them."""

import functools
import io
from collections.abc import Awaitable, Callable

import discord
from discord import app_commands
from discord.ext import commands

from bot.discord.people import identify
from bot.discord.render import CANNOT_MESSAGE_USER
from bot.discord.views import Confirm, Paginator, pages_of
from bot.domain.export import ExportFile, export_files
from bot.services.directory import Directory
from bot.services.privacy import PrivacyService

SCOPE_WORDS = {"global": "everywhere", "guild": "this server", "dm": "our DMs"}


async def _send_files(send: Callable[..., Awaitable[object]], text: str, files: list[ExportFile]) -> None:
    """Send the files one to a message (Discord's limit is per upload), ``text`` with the first."""
    for number, file in enumerate(files):
        await send(text if number == 0 else None, file=discord.File(io.BytesIO(file.data), filename=file.name))


def _choice_name(text: str) -> str:
    return text if len(text) <= 100 else text[:99] + "…"


class Memory(commands.Cog):
    memory = app_commands.Group(name="memory", description="What Hearth remembers about you")

    def __init__(self, privacy: PrivacyService, directory: Directory) -> None:
        self.privacy = privacy
        self.directory = directory

    # -- /memory ------------------------------------------------------------------------------------

    @memory.command(name="show", description="What Hearth knows about you here: facts, how close you are, your style")
    async def memory_show(self, interaction: discord.Interaction) -> None:
        me = await identify(self.directory, interaction)
        profile = await self.privacy.profile(me.user_id, me.guild_id)
        lines = [
            f"`#{f.id}` {discord.utils.escape_markdown(f.content)} · *{SCOPE_WORDS.get(f.scope, f.scope)}*"
            for f in profile.facts
        ]
        pages = pages_of("What I know about you here", lines, empty="No facts yet.")
        about = []
        if profile.relationship_level:
            about.append(f"**We are:** {profile.relationship_level} ({profile.relationship_score:.0f}/100)")
        if profile.style:
            about.append(f"**How you write:** {profile.style}")
        if profile.opted_out:
            about.append("**Learning:** off (you opted out; /optin turns it back on)")
        if profile.proactive_off:
            about.append("**Greetings and follow-ups:** off (you turned them off; /proactive on turns them back on)")
        about.append("Forget one fact with /memory forget, or everything with /memory forget-all.")
        for page in pages:
            page.add_field(name="Also", value="\n".join(about)[:1024], inline=False)
        await Paginator(interaction.user.id, pages).show(interaction)

    @memory.command(name="forget", description="Make Hearth forget one fact about you, for good")
    @app_commands.describe(fact="The fact to forget (start typing to search)")
    async def memory_forget(self, interaction: discord.Interaction, fact: int) -> None:
        me = await identify(self.directory, interaction)
        forgotten = await self.privacy.forget_fact(me.user_id, fact)
        others = forgotten.other_versions
        history = f", with {others} other version{'s' if others > 1 else ''} of it (its history)" if others else ""
        await interaction.response.send_message(
            f"Forgotten: ~~{discord.utils.escape_markdown(forgotten.content)}~~{history}", ephemeral=True
        )

    @memory_forget.autocomplete("fact")
    async def _fact_choices(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[int]]:
        me = await identify(self.directory, interaction)
        facts = await self.privacy.forgettable_here(me.user_id, me.guild_id)
        wanted = current.strip().lower().lstrip("#")
        found = [(f, now) for f, now in facts if not wanted or wanted in f.content.lower() or wanted == str(f.id)]
        # A fact no longer current is marked before its text, which a long one loses the end of.
        return [
            app_commands.Choice(
                name=_choice_name(f"#{f.id} {'' if now else '(no longer current) '}{f.content}"), value=f.id
            )
            for f, now in found[:25]
        ]

    @memory.command(name="forget-all", description="Erase everything Hearth holds about you, everywhere")
    async def memory_forget_all(self, interaction: discord.Interaction) -> None:
        async def erase(pressed: discord.Interaction) -> str:
            erased = await self.privacy.forget_everything(pressed.user.id)
            return "Done: I have erased everything I held about you." if erased else "I held nothing about you."

        await Confirm(interaction.user.id, erase, label="Erase everything").ask(
            interaction,
            "This erases everything I hold about you, in every server and in DMs: facts, messages, memories, "
            "reminders, preferences. It cannot be undone. Sure?",
        )

    @memory.command(name="export", description="Get everything Hearth holds about you as a JSON file, by DM")
    async def memory_export(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        data = await self.privacy.export(interaction.user.id)
        # A DM takes files up to Discord's default limit (no server boosts there); larger exports come in parts.
        files = export_files(data, min(interaction.filesize_limit, discord.utils.DEFAULT_FILE_SIZE_LIMIT_BYTES))
        several = f", in {len(files)} files (each is as large as Discord lets me send)" if len(files) > 1 else ""
        try:
            await _send_files(interaction.user.send, f"Here is everything I hold about you{several}.", files)
        except discord.HTTPException as error:
            if error.code != CANNOT_MESSAGE_USER and not isinstance(error, discord.Forbidden):
                raise
            # DMs closed: hand it over here, where only they can see it.
            await _send_files(
                functools.partial(interaction.followup.send, ephemeral=True),
                f"Your DMs are closed, so here it is{several}:",
                files,
            )
            return
        await interaction.followup.send(f"Sent to your DMs{several}.", ephemeral=True)

    # -- facts you give, and learning ---------------------------------------------------------------

    @app_commands.command(name="remember", description="Tell Hearth something to remember about you")
    @app_commands.describe(
        text="What to remember, e.g. I'm vegetarian",
        everywhere="Use it in every server and in DMs (default: only where you say it)",
    )
    async def remember(self, interaction: discord.Interaction, text: str, everywhere: bool = False) -> None:
        # The fact is embedded before it is kept: an embeddings endpoint may take longer than Discord waits.
        await interaction.response.defer(ephemeral=True, thinking=True)
        me = await identify(self.directory, interaction)
        fact_id = await self.privacy.remember(me.user_id, me.guild_id, text, everywhere=everywhere)
        where = "everywhere" if everywhere else ("in this server" if me.guild_id else "in our DMs")
        await interaction.followup.send(f"Got it (`#{fact_id}`), I'll remember that {where}.", ephemeral=True)

    @app_commands.command(
        name="optout", description="Stop Hearth learning about you (what it knows stays until you erase it)"
    )
    async def optout(self, interaction: discord.Interaction) -> None:
        me = await identify(self.directory, interaction)
        await self.privacy.set_learning(me.user_id, opted_out=True)
        await interaction.response.send_message(
            "Done: I won't learn anything new about you. What I already know stays until you erase it with "
            "/memory forget-all.",
            ephemeral=True,
        )

    @app_commands.command(name="optin", description="Let Hearth learn about you again")
    async def optin(self, interaction: discord.Interaction) -> None:
        me = await identify(self.directory, interaction)
        await self.privacy.set_learning(me.user_id, opted_out=False)
        await interaction.response.send_message("Welcome back: I'll get to know you again.", ephemeral=True)

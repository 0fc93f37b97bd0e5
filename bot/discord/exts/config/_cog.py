"""Commands for a server's admins (Manage Server): settings, the persona, lore documents and statistics.

Every command here is checked in :meth:`Admin.interaction_check`, on top of Discord's permission hint (which a
server may loosen): a member without Manage Server is refused whatever Discord shows them.
"""

from typing import Any, Literal

import discord
from discord import app_commands
from discord.ext import commands

from bot.discord.checks import require_admin
from bot.discord.client import HearthBot
from bot.discord.people import identify, place_of
from bot.discord.tree import report
from bot.discord.views import Paginator, hearth_embed, pages_of
from bot.domain.cards import MAX_CARD_BYTES, parse_card
from bot.domain.documents import MAX_DOCUMENT_BYTES, check_upload
from bot.domain.guild_settings import REPLY_MODES, GuildSettings
from bot.errors import HearthError
from bot.services.personas import PersonaView

MANAGE_SERVER = discord.Permissions(manage_guild=True)
OnOff = Literal["on", "off"]


class AttachmentTooLarge(HearthError):
    pass


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB"


async def _read(attachment: discord.Attachment, limit: int, what: str) -> bytes:
    """The attachment's bytes; refused by its declared size first, and again by what actually arrives."""
    if attachment.size > limit:
        raise AttachmentTooLarge(
            f"That {what} is {_megabytes(attachment.size)}; the most I take is {_megabytes(limit)}."
        )
    data = await attachment.read()
    if len(data) > limit:
        raise AttachmentTooLarge(f"That {what} is larger than {_megabytes(limit)}.")
    return data


def _settings_embed(settings: GuildSettings) -> discord.Embed:
    def value(setting: object, default: str = "the bot's default") -> str:
        return default if setting is None else str(setting)

    channels = " ".join(f"<#{c}>" for c in sorted(settings.chat_channels)) or "none"
    quiet = (
        f"{settings.quiet_hours[0].isoformat('minutes')}–{settings.quiet_hours[1].isoformat('minutes')}"
        if settings.quiet_hours
        else "none"
    )
    rows = [
        ("Chat channels", channels),
        ("Reply mode", f"{settings.reply_mode}: {REPLY_MODES[settings.reply_mode]}"),
        ("Chime-in", f"{settings.chime_in_percent}%"),
        ("Learning", "on" if settings.learning else "off"),
        ("Proactive messages", "on" if settings.proactive else "off"),
        ("Quiet hours", quiet),
        ("Language", value(settings.language, "whatever people write in")),
        ("Model", value(settings.model)),
        ("Temperature", value(settings.temperature)),
        ("Cooldown", value(settings.cooldown_s and f"{settings.cooldown_s:g} s")),
        ("Daily token quota", value(settings.daily_token_quota, "none")),
    ]
    embed = hearth_embed("Settings for this server")
    for name, text in rows:
        embed.add_field(name=name, value=text, inline=name not in ("Chat channels", "Reply mode"))
    return embed


def _persona_embed(persona: PersonaView) -> discord.Embed:
    embed = hearth_embed(persona.name, persona.card.personality[:4000])
    if persona.card.backstory:
        embed.add_field(name="Backstory", value=persona.card.backstory[:1024], inline=False)
    if persona.greeting:
        embed.add_field(name="Greeting", value=persona.greeting[:1024], inline=False)
    if persona.card.example_dialogue:
        embed.add_field(name="Example dialogue", value=persona.card.example_dialogue[:1024], inline=False)
    embed.set_footer(text="This server's own persona" if persona.owned_by_guild else "The bot's shared persona")
    return embed


class PersonaEditor(discord.ui.Modal, title="Edit the persona"):
    """Discord's form for the persona's long texts (slash options cannot hold line breaks)."""

    def __init__(self, admin: "Admin", guild_id: int, persona: PersonaView) -> None:
        super().__init__()
        self.admin, self.guild_id = admin, guild_id
        self.name_input: discord.ui.TextInput[Any] = discord.ui.TextInput(
            label="Name", default=persona.name, max_length=100, custom_id="persona:name"
        )
        self.personality: discord.ui.TextInput[Any] = discord.ui.TextInput(
            label="Personality",
            style=discord.TextStyle.paragraph,
            default=persona.card.personality,
            max_length=4000,
            custom_id="persona:personality",
        )
        self.backstory: discord.ui.TextInput[Any] = discord.ui.TextInput(
            label="Backstory",
            style=discord.TextStyle.paragraph,
            default=persona.card.backstory or "",
            max_length=4000,
            required=False,
            custom_id="persona:backstory",
        )
        self.greeting: discord.ui.TextInput[Any] = discord.ui.TextInput(
            label="Greeting",
            style=discord.TextStyle.paragraph,
            default=persona.greeting or "",
            max_length=2000,
            required=False,
            custom_id="persona:greeting",
        )
        self.example: discord.ui.TextInput[Any] = discord.ui.TextInput(
            label="Example dialogue",
            style=discord.TextStyle.paragraph,
            default=persona.card.example_dialogue or "",
            max_length=4000,
            required=False,
            custom_id="persona:example_dialogue",
        )
        for item in (self.name_input, self.personality, self.backstory, self.greeting, self.example):
            self.add_item(item)

    async def on_submit(self, interaction: discord.Interaction, /) -> None:
        persona = await self.admin.container.personas.edit(
            self.guild_id,
            name=self.name_input.value,
            personality_prompt=self.personality.value,
            backstory=self.backstory.value,
            greeting=self.greeting.value,
            example_dialogue=self.example.value,
        )
        await interaction.response.send_message("Saved.", embed=_persona_embed(persona), ephemeral=True)

    async def on_error(self, interaction: discord.Interaction, error: Exception, /) -> None:  # type: ignore[override]
        await report(interaction, error, "the persona form")


class Admin(commands.Cog):
    config = app_commands.Group(
        name="config",
        description="How Hearth behaves in this server",
        default_permissions=MANAGE_SERVER,
        guild_only=True,
    )
    chat_channel = app_commands.Group(
        name="chat-channel", description="Channels where Hearth answers every message", parent=config
    )
    persona = app_commands.Group(
        name="persona",
        description="The character Hearth plays in this server",
        default_permissions=MANAGE_SERVER,
        guild_only=True,
    )
    knowledge = app_commands.Group(
        name="knowledge",
        description="Lore documents Hearth can draw on here",
        default_permissions=MANAGE_SERVER,
        guild_only=True,
    )

    def __init__(self, bot: HearthBot) -> None:
        self.bot = bot
        self.container = bot.container

    async def interaction_check(self, interaction: discord.Interaction, /) -> bool:
        require_admin(interaction)
        return True

    async def _changed(self, interaction: discord.Interaction, settings: GuildSettings, what: str) -> None:
        await interaction.response.send_message(what, embed=_settings_embed(settings), ephemeral=True)

    # -- /config ------------------------------------------------------------------------------------

    @config.command(name="show", description="Show this server's settings")
    async def config_show(self, interaction: discord.Interaction) -> None:
        settings = await self.container.guild_config.show(place_of(interaction))
        await interaction.response.send_message(embed=_settings_embed(settings), ephemeral=True)

    @chat_channel.command(name="add", description="Hearth answers every message in this channel")
    @app_commands.describe(channel="The channel")
    async def chat_channel_add(self, interaction: discord.Interaction, channel: discord.TextChannel) -> None:
        settings = await self.container.guild_config.add_chat_channel(place_of(interaction), channel.id)
        await self._changed(interaction, settings, f"I'll answer every message in {channel.mention}.")

    @chat_channel.command(name="remove", description="Hearth answers in this channel only when addressed")
    @app_commands.describe(channel="The channel")
    async def chat_channel_remove(self, interaction: discord.Interaction, channel: discord.TextChannel) -> None:
        settings = await self.container.guild_config.remove_chat_channel(place_of(interaction), channel.id)
        await self._changed(interaction, settings, f"{channel.mention} is no longer a chat channel.")

    @config.command(name="reply-mode", description="When Hearth answers outside chat channels")
    @app_commands.describe(
        mode="mention: only @mentions and replies; name: also its name; chat-only: chat channels only"
    )
    @app_commands.choices(mode=[app_commands.Choice(name=f"{m}: {d}"[:100], value=m) for m, d in REPLY_MODES.items()])
    async def config_reply_mode(self, interaction: discord.Interaction, mode: str) -> None:
        settings = await self.container.guild_config.set_reply_mode(place_of(interaction), mode)
        await self._changed(interaction, settings, f"Reply mode: {settings.reply_mode}.")

    @config.command(name="chime-in", description="Chance (0–100 %) that Hearth joins a conversation unasked")
    @app_commands.describe(percent="0 never joins in; 100 answers everything")
    async def config_chime_in(self, interaction: discord.Interaction, percent: int) -> None:
        settings = await self.container.guild_config.set_chime_in(place_of(interaction), percent)
        await self._changed(interaction, settings, f"Chime-in: {settings.chime_in_percent}%.")

    @config.command(name="learning", description="Whether Hearth learns facts about people here")
    @app_commands.describe(state="on or off")
    async def config_learning(self, interaction: discord.Interaction, state: OnOff) -> None:
        settings = await self.container.guild_config.set_learning(place_of(interaction), state == "on")
        await self._changed(interaction, settings, f"Learning is {state}.")

    @config.command(name="proactive", description="Whether Hearth sends birthday greetings and follow-ups here")
    @app_commands.describe(state="on or off")
    async def config_proactive(self, interaction: discord.Interaction, state: OnOff) -> None:
        settings = await self.container.guild_config.set_proactive(place_of(interaction), state == "on")
        await self._changed(interaction, settings, f"Proactive messages are {state}.")

    @config.command(name="quiet-hours", description="Hours without unsolicited messages (each member's local time)")
    @app_commands.describe(start="Start, HH:MM (leave both empty to clear)", end="End, HH:MM")
    async def config_quiet_hours(
        self, interaction: discord.Interaction, start: str | None = None, end: str | None = None
    ) -> None:
        settings = await self.container.guild_config.set_quiet_hours(place_of(interaction), start, end)
        await self._changed(interaction, settings, "Quiet hours updated.")

    @config.command(name="language", description="The language Hearth writes in here")
    @app_commands.describe(language="e.g. Portuguese; leave empty to follow whatever people write in")
    async def config_language(self, interaction: discord.Interaction, language: str | None = None) -> None:
        settings = await self.container.guild_config.set_language(place_of(interaction), language)
        await self._changed(interaction, settings, "Language updated.")

    @config.command(name="model", description="The model Hearth uses here")
    @app_commands.describe(model="A model name your endpoint knows; leave empty for the bot's default")
    async def config_model(self, interaction: discord.Interaction, model: str | None = None) -> None:
        settings = await self.container.guild_config.set_model(place_of(interaction), model)
        await self._changed(interaction, settings, "Model updated.")

    @config.command(name="temperature", description="How adventurous replies are (0–2)")
    @app_commands.describe(value="0 steady … 2 wild; leave empty for the bot's default")
    async def config_temperature(
        self, interaction: discord.Interaction, value: app_commands.Range[float, 0.0, 2.0] | None = None
    ) -> None:
        settings = await self.container.guild_config.set_temperature(place_of(interaction), value)
        await self._changed(interaction, settings, "Temperature updated.")

    @config.command(name="cooldown", description="Seconds each member waits between replies and between commands")
    @app_commands.describe(seconds="0–60; leave empty for the bot's default")
    async def config_cooldown(
        self, interaction: discord.Interaction, seconds: app_commands.Range[float, 0.0, 60.0] | None = None
    ) -> None:
        settings = await self.container.guild_config.set_cooldown(place_of(interaction), seconds)
        await self._changed(interaction, settings, "Cooldown updated.")

    @config.command(name="daily-token-quota", description="Most model tokens Hearth spends here per day (0: no limit)")
    @app_commands.describe(tokens="Tokens per day (UTC); 0 removes the quota")
    async def config_daily_token_quota(
        self, interaction: discord.Interaction, tokens: app_commands.Range[int, 0, None]
    ) -> None:
        settings = await self.container.guild_config.set_daily_token_quota(place_of(interaction), tokens)
        await self._changed(interaction, settings, "Daily token quota updated.")

    # -- /persona -----------------------------------------------------------------------------------

    @persona.command(name="show", description="The persona Hearth plays here")
    async def persona_show(self, interaction: discord.Interaction) -> None:
        here = await identify(self.container, interaction)
        persona = await self.container.personas.for_guild(here.guild_id)
        await interaction.response.send_message(embed=_persona_embed(persona), ephemeral=True)

    @persona.command(name="set", description="Play one of the stored personas here")
    @app_commands.describe(name="The persona's name (start typing to search)")
    async def persona_set(self, interaction: discord.Interaction, name: str) -> None:
        here = await identify(self.container, interaction)
        assert here.guild_id is not None
        persona = await self.container.personas.use(here.guild_id, name)
        await interaction.response.send_message(f"I'm {persona.name} here now.", ephemeral=True)

    @persona_set.autocomplete("name")
    async def _persona_choices(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        if interaction.guild_id is None or not interaction.permissions.manage_guild:
            return []  # autocomplete skips the cog's check: admins only see the names
        here = await identify(self.container, interaction)
        assert here.guild_id is not None
        names = sorted({p.name for p in await self.container.personas.available(here.guild_id)})
        wanted = current.strip().lower()
        return [app_commands.Choice(name=n[:100], value=n[:100]) for n in names if wanted in n.lower()][:25]

    @persona.command(name="edit", description="Edit this server's persona in a form")
    async def persona_edit(self, interaction: discord.Interaction) -> None:
        here = await identify(self.container, interaction)
        assert here.guild_id is not None
        persona = await self.container.personas.for_guild(here.guild_id)
        too_long = [
            label
            for label, text in (
                ("personality", persona.card.personality),
                ("example dialogue", persona.card.example_dialogue),
            )
            if text and len(text) > 4000
        ]
        if too_long:
            raise HearthError(
                f"This persona's {' and '.join(too_long)} is longer than a Discord form holds (4000 characters); "
                "change it by importing a character card with /persona import."
            )
        await interaction.response.send_modal(PersonaEditor(self, here.guild_id, persona))

    @persona.command(name="reset", description="Go back to the bot's shared persona here")
    async def persona_reset(self, interaction: discord.Interaction) -> None:
        here = await identify(self.container, interaction)
        assert here.guild_id is not None
        persona = await self.container.personas.reset(here.guild_id)
        await interaction.response.send_message(f"Back to {persona.name}.", ephemeral=True)

    @persona.command(name="import", description="Import a SillyTavern character card (V2/V3 JSON or PNG)")
    @app_commands.describe(card="The card: a .json file, or a .png with the card inside")
    async def persona_import(self, interaction: discord.Interaction, card: discord.Attachment) -> None:
        here = await identify(self.container, interaction)
        assert here.guild_id is not None
        data = await _read(card, MAX_CARD_BYTES, "card")
        parsed = parse_card(data, card.filename)
        persona = await self.container.personas.import_card(here.guild_id, parsed)
        await interaction.response.send_message(
            f"Imported {persona.name}; I play them here now.", embed=_persona_embed(persona), ephemeral=True
        )

    # -- /knowledge ---------------------------------------------------------------------------------

    @knowledge.command(name="add", description="Add a lore document (.txt or .md) Hearth can draw on here")
    @app_commands.describe(document="A .txt or .md file")
    async def knowledge_add(self, interaction: discord.Interaction, document: discord.Attachment) -> None:
        here = await identify(self.container, interaction)
        assert here.guild_id is not None
        check_upload(document.filename, document.size)  # name and size, before downloading it
        data = await _read(document, MAX_DOCUMENT_BYTES, "document")
        await interaction.response.defer(ephemeral=True, thinking=True)

        async def progress(done: int, total: int) -> None:
            await interaction.edit_original_response(content=f"Reading {document.filename}: {done}/{total} passages…")

        view = await self.container.knowledge.add(
            here.guild_id, here.user_id, document.filename, document.content_type, data, progress=progress
        )
        await interaction.edit_original_response(
            content=f"Added {view.name}: {view.chunk_count} passages, status {view.status}."
        )

    @knowledge.command(name="list", description="The lore documents stored for this server")
    async def knowledge_list(self, interaction: discord.Interaction) -> None:
        here = await identify(self.container, interaction)
        assert here.guild_id is not None
        documents = await self.container.knowledge.list(here.guild_id)
        lines = [
            f"`#{d.id}` **{discord.utils.escape_markdown(d.name)}** · {d.chunk_count} passages · {d.status}"
            f" · {discord.utils.format_dt(d.created_at, 'd')}"
            for d in documents
        ]
        pages = pages_of("Lore documents", lines, empty="None yet. Add one with /knowledge add.")
        await Paginator(interaction.user.id, pages).show(interaction)

    @knowledge.command(name="remove", description="Remove a lore document and everything Hearth took from it")
    @app_commands.describe(document="The document (start typing to search)")
    async def knowledge_remove(self, interaction: discord.Interaction, document: int) -> None:
        here = await identify(self.container, interaction)
        assert here.guild_id is not None
        removed = await self.container.knowledge.remove(here.guild_id, document)
        if removed is None:
            raise HearthError(f"There is no document #{document} in this server; /knowledge list shows them.")
        await interaction.response.send_message(f"Removed {removed.name}.", ephemeral=True)

    @knowledge_remove.autocomplete("document")
    async def _document_choices(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[int]]:
        if interaction.guild_id is None or not interaction.permissions.manage_guild:
            return []
        here = await identify(self.container, interaction)
        assert here.guild_id is not None
        wanted = current.strip().lower()
        documents = [d for d in await self.container.knowledge.list(here.guild_id) if wanted in d.name.lower()]
        return [app_commands.Choice(name=f"#{d.id} {d.name}"[:100], value=d.id) for d in documents[:25]]

    # -- /stats -------------------------------------------------------------------------------------

    @app_commands.command(name="stats", description="Messages, people, tokens this month and Hearth's mood here")
    @app_commands.default_permissions(manage_guild=True)
    @app_commands.guild_only()
    async def stats(self, interaction: discord.Interaction) -> None:
        here = await identify(self.container, interaction)
        assert here.guild_id is not None
        stats = await self.container.stats.guild_stats(here.guild_id)
        embed = hearth_embed("Hearth in this server")
        embed.add_field(name="Messages", value=f"{stats.messages:,}")
        embed.add_field(name="People known", value=f"{stats.users_known:,}")
        embed.add_field(name="Tokens this month", value=f"{stats.tokens_this_month:,}")
        embed.add_field(name="Tokens today", value=f"{stats.tokens_today:,}")
        embed.add_field(name="Mood", value=stats.mood_label)
        await interaction.response.send_message(embed=embed, ephemeral=True)


async def setup(bot: HearthBot) -> None:
    await bot.add_cog(Admin(bot))

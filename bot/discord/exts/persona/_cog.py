"""/persona: the character Hearth plays in a server (admins: Manage Server).

Every command here is checked in ``interaction_check``, on top of Discord's permission hint (which a server
may loosen): a member without Manage Server is refused whatever Discord shows them.
"""

from collections.abc import Callable
from typing import Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.discord.attachments import read_attachment
from bot.discord.checks import MANAGE_SERVER, require_admin
from bot.discord.people import identify
from bot.discord.tree import report
from bot.discord.views import FIELD_VALUE_CHARS, clipped, describe_in_room_left, hearth_embed, number_text
from bot.domain.cards import MAX_CARD_BYTES, parse_card
from bot.domain.guild_settings import persona_choices
from bot.errors import HearthError
from bot.services.directory import Directory
from bot.services.personas import PersonaService, PersonaView


def _choices(names: set[str], current: str) -> list[app_commands.Choice[str]]:
    """The names holding what was typed so far, sorted, as Discord takes suggestions (25, 100 characters)."""
    wanted = current.strip().lower()
    return [app_commands.Choice(name=n[:100], value=n[:100]) for n in sorted(names) if wanted in n.lower()][:25]


# How /persona show names the model settings a persona's config may choose (PERSONA_MODEL_KEYS), and writes them.
_MODEL_SETTINGS: dict[str, tuple[str, Callable[[Any], str]]] = {
    "model": ("Model", str),
    "temperature": ("Temperature", number_text),
    "max_tokens": ("Max tokens", str),
}


def _persona_embed(persona: PersonaView) -> discord.Embed:
    """The persona at a glance: each long text shortened, the personality to what the others leave, and the model
    settings of its own that replies use where the server's /config chose none."""
    embed = hearth_embed(persona.name)
    for name, text in (
        ("Backstory", persona.card.backstory),
        ("Greeting", persona.greeting),
        ("Example dialogue", persona.card.example_dialogue),
    ):
        if text:
            embed.add_field(name=name, value=clipped(text, FIELD_VALUE_CHARS), inline=False)
    chosen = persona_choices(persona.config)
    for key, value in chosen.items():
        name, shown = _MODEL_SETTINGS[key]
        embed.add_field(name=name, value=clipped(shown(value), FIELD_VALUE_CHARS))
    footer = "This server's own persona" if persona.owned_by_guild else "The bot's shared persona"
    if chosen:
        footer += "; replies use its model settings where /config chose none"
    embed.set_footer(text=footer)
    return describe_in_room_left(embed, persona.card.personality)


def _settings_channel(interaction: discord.Interaction) -> tuple[int, str, str]:
    """The channel whose persona and cast a command run here reads and changes, how an answer names it, and what
    the answer adds. A thread has none of its own: it plays its channel's, so in a thread that channel is meant."""
    channel = interaction.channel
    if isinstance(channel, discord.Thread) and channel.parent_id is not None:
        return channel.parent_id, f"<#{channel.parent_id}>", " (its threads too)"
    assert interaction.channel_id is not None  # a guild command always comes from a channel
    return interaction.channel_id, "this channel", ""


# The most a Discord form's text input holds (and what each of the persona's long texts may be edited up to).
FORM_TEXT_CHARS = 4000


class PersonaEditor(discord.ui.Modal, title="Edit the persona"):
    """Discord's form for the persona's long texts (slash options cannot hold line breaks)."""

    def __init__(self, cog: "Persona", guild_id: int, persona: PersonaView) -> None:
        super().__init__()
        self.cog, self.guild_id = cog, guild_id
        self.name_input: discord.ui.TextInput[Any] = discord.ui.TextInput(
            label="Name", default=persona.name, max_length=100, custom_id="persona:name"
        )
        self.personality: discord.ui.TextInput[Any] = discord.ui.TextInput(
            label="Personality",
            style=discord.TextStyle.paragraph,
            default=persona.card.personality,
            max_length=FORM_TEXT_CHARS,
            custom_id="persona:personality",
        )
        self.backstory: discord.ui.TextInput[Any] = discord.ui.TextInput(
            label="Backstory",
            style=discord.TextStyle.paragraph,
            default=persona.card.backstory or "",
            max_length=FORM_TEXT_CHARS,
            required=False,
            custom_id="persona:backstory",
        )
        self.greeting: discord.ui.TextInput[Any] = discord.ui.TextInput(
            label="Greeting",
            style=discord.TextStyle.paragraph,
            default=persona.greeting or "",
            max_length=FORM_TEXT_CHARS,
            required=False,
            custom_id="persona:greeting",
        )
        self.example: discord.ui.TextInput[Any] = discord.ui.TextInput(
            label="Example dialogue",
            style=discord.TextStyle.paragraph,
            default=persona.card.example_dialogue or "",
            max_length=FORM_TEXT_CHARS,
            required=False,
            custom_id="persona:example_dialogue",
        )
        self.inputs = {
            "name": self.name_input,
            "personality": self.personality,
            "backstory": self.backstory,
            "greeting": self.greeting,
            "example dialogue": self.example,
        }
        for item in self.inputs.values():
            self.add_item(item)

    def too_long(self) -> list[str]:
        """The fields whose text is longer than their input holds: Discord refuses a form pre-filled so."""
        return [name for name, item in self.inputs.items() if len(item.default or "") > (item.max_length or 0)]

    async def on_submit(self, interaction: discord.Interaction, /) -> None:
        persona = await self.cog.persona_service.edit(
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


class Persona(commands.Cog):
    persona = app_commands.Group(
        name="persona",
        description="The character Hearth plays in this server",
        default_permissions=MANAGE_SERVER,
        guild_only=True,
    )

    cast = app_commands.Group(
        name="cast", description="Characters that answer in this channel when named or replied to", parent=persona
    )

    def __init__(self, personas: PersonaService, directory: Directory) -> None:
        self.persona_service = personas
        self.directory = directory

    async def interaction_check(self, interaction: discord.Interaction, /) -> bool:
        require_admin(interaction)
        return True

    @persona.command(name="show", description="The persona Hearth plays here")
    async def persona_show(self, interaction: discord.Interaction) -> None:
        here = await identify(self.directory, interaction)
        if here.guild_id is not None and interaction.channel_id is not None:  # this channel's own, else the server's
            persona = await self.persona_service.for_channel(here.guild_id, _settings_channel(interaction)[0])
        else:
            persona = await self.persona_service.for_guild(here.guild_id)
        await interaction.response.send_message(embed=_persona_embed(persona), ephemeral=True)

    @persona.command(name="set", description="Play one of the stored personas here")
    @app_commands.describe(name="The persona's name (start typing to search)")
    async def persona_set(self, interaction: discord.Interaction, name: str) -> None:
        here = await identify(self.directory, interaction)
        assert here.guild_id is not None
        persona = await self.persona_service.use(here.guild_id, name)
        await interaction.response.send_message(f"I'm {persona.name} here now.", ephemeral=True)

    @persona_set.autocomplete("name")
    async def _persona_choices(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        if interaction.guild_id is None or not interaction.permissions.manage_guild:
            return []  # autocomplete skips the cog's check: admins only see the names
        here = await identify(self.directory, interaction)
        assert here.guild_id is not None
        return _choices({p.name for p in await self.persona_service.available(here.guild_id)}, current)

    @persona.command(name="edit", description="Edit this server's persona in a form")
    async def persona_edit(self, interaction: discord.Interaction) -> None:
        here = await identify(self.directory, interaction)
        assert here.guild_id is not None
        persona = await self.persona_service.for_guild(here.guild_id)
        editor = PersonaEditor(self, here.guild_id, persona)
        if too_long := editor.too_long():
            raise HearthError(
                f"This persona's {' and '.join(too_long)} {'is' if len(too_long) == 1 else 'are'} longer than a "
                f"Discord form holds ({FORM_TEXT_CHARS} characters); change it by importing a character card with "
                "/persona import."
            )
        await interaction.response.send_modal(editor)

    @persona.command(name="channel", description="Play another stored persona in this channel only")
    @app_commands.describe(name="The persona's name (start typing to search)")
    async def persona_channel(self, interaction: discord.Interaction, name: str) -> None:
        here = await identify(self.directory, interaction)
        assert here.guild_id is not None
        channel_id, where, threads = _settings_channel(interaction)
        persona = await self.persona_service.use_in_channel(here.guild_id, channel_id, name)
        await interaction.response.send_message(f"I'm {persona.name} in {where} now{threads}.", ephemeral=True)

    persona_channel.autocomplete("name")(_persona_choices)

    @persona.command(name="channel-reset", description="This channel plays the server's persona again")
    async def persona_channel_reset(self, interaction: discord.Interaction) -> None:
        here = await identify(self.directory, interaction)
        assert here.guild_id is not None
        channel_id, where, threads = _settings_channel(interaction)
        persona = await self.persona_service.reset_channel(here.guild_id, channel_id)
        await interaction.response.send_message(f"Back to {persona.name} in {where}{threads}.", ephemeral=True)

    @cast.command(name="add", description="A character that answers here when named or replied to")
    @app_commands.describe(name="The persona's name (start typing to search)")
    async def cast_add(self, interaction: discord.Interaction, name: str) -> None:
        here = await identify(self.directory, interaction)
        assert here.guild_id is not None
        channel_id, where, threads = _settings_channel(interaction)
        character = await self.persona_service.cast_add(here.guild_id, channel_id, name)
        said = f"{character.name} joins {where}'s cast{threads}: name them or reply to them and they answer."
        channel = interaction.channel
        me = interaction.guild.me if interaction.guild else None
        webhooks_allowed = (  # a thread's webhooks are its parent channel's, and so is the permission
            not isinstance(channel, discord.abc.GuildChannel | discord.Thread)
            or me is None
            or channel.permissions_for(me).manage_webhooks
        )
        if not webhooks_allowed:
            said += (
                " I don't have the Manage Webhooks permission here, so they will speak through me, with their"
                " name in front, until I'm given it."
            )
        await interaction.response.send_message(said, ephemeral=True)

    cast_add.autocomplete("name")(_persona_choices)

    @cast.command(name="remove", description="Take a character out of this channel's cast")
    @app_commands.describe(name="The character's name")
    async def cast_remove(self, interaction: discord.Interaction, name: str) -> None:
        here = await identify(self.directory, interaction)
        assert here.guild_id is not None
        channel_id, where, threads = _settings_channel(interaction)
        character = await self.persona_service.cast_remove(here.guild_id, channel_id, name)
        await interaction.response.send_message(f"{character.name} left {where}'s cast{threads}.", ephemeral=True)

    @cast_remove.autocomplete("name")
    async def _cast_choices(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        if interaction.guild_id is None or interaction.channel_id is None or not interaction.permissions.manage_guild:
            return []  # as for the persona names: admins only
        here = await identify(self.directory, interaction)
        assert here.guild_id is not None
        cast = await self.persona_service.cast(here.guild_id, _settings_channel(interaction)[0])
        return _choices({p.name for p in cast}, current)

    @persona.command(name="reset", description="Go back to the bot's shared persona here")
    async def persona_reset(self, interaction: discord.Interaction) -> None:
        here = await identify(self.directory, interaction)
        assert here.guild_id is not None
        persona = await self.persona_service.reset(here.guild_id)
        await interaction.response.send_message(f"Back to {persona.name}.", ephemeral=True)

    @persona.command(name="import", description="Import a SillyTavern character card (V2/V3 JSON or PNG)")
    @app_commands.describe(card="The card: a .json file, or a .png with the card inside")
    async def persona_import(self, interaction: discord.Interaction, card: discord.Attachment) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)  # a card of megabytes may come slowly
        here = await identify(self.directory, interaction)
        assert here.guild_id is not None
        data = await read_attachment(card, MAX_CARD_BYTES, "card")
        parsed = parse_card(data, card.filename)
        persona = await self.persona_service.import_card(here.guild_id, parsed)
        await interaction.followup.send(
            f"Imported {persona.name}; I play them here now.", embed=_persona_embed(persona), ephemeral=True
        )

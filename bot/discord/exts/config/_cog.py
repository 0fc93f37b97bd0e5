"""/config: how Hearth behaves in a server (admins: Manage Server).

Every command here is checked in ``interaction_check``, on top of Discord's permission hint (which a server
may loosen): a member without Manage Server is refused whatever Discord shows them.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import discord
from discord import app_commands
from discord.ext import commands

from bot.discord.checks import MANAGE_SERVER, require_admin
from bot.discord.people import place_of
from bot.discord.views import FIELD_VALUE_CHARS, clipped, hearth_embed, number_text
from bot.domain.guild_settings import REPLY_MODES, GuildSettings, in_effect
from bot.services.guild_config import GuildConfigService
from bot.services.incoming import Place
from bot.services.personas import PersonaService, PersonaView

OnOff = Literal["on", "off"]
# Where people talk: text and announcement channels, forums (their posts are threads of the forum) and the chat of
# voice and stage channels. Discord offers only these types in the channel options below.
TalkChannel = discord.TextChannel | discord.ForumChannel | discord.VoiceChannel | discord.StageChannel


# Mentions shown in one field: 40 of 23 characters fit the 1024 Discord allows a field's value.
MAX_MENTIONS_SHOWN = 40


def _listed(ids: frozenset[int], mention: str) -> str:
    """The first ids as mentions (``mention`` formats one), "…" for the rest; "none" when there are none."""
    text = " ".join(mention.format(i) for i in sorted(ids)[:MAX_MENTIONS_SHOWN])
    return (text + (" …" if len(ids) > MAX_MENTIONS_SHOWN else "")) or "none"


def _place_of_guild(guild: discord.Guild) -> Place:
    """The guild itself, for what Discord tells of it outside any channel."""
    return Place(channel_id=0, guild_id=guild.id, guild_name=guild.name)


async def _no_such_channel(guild: discord.Guild, channel_id: int) -> bool:
    """Whether Discord says the channel does not exist (Unknown Channel); not when it refuses to show it or fails."""
    try:
        await guild.fetch_channel(channel_id)
    except discord.NotFound:
        return True
    except (discord.HTTPException, discord.InvalidData):  # hidden from Hearth, another server's, or an outage
        return False
    return False


@dataclass(frozen=True, slots=True)
class Defaults:
    """What a server runs with when it chose nothing: LLM_MODEL, LLM_TEMPERATURE, USER_COOLDOWN_SECONDS."""

    model: str
    temperature: float
    cooldown_s: float


def _seconds(value: float) -> str:
    return f"{value:g} s"


def _settings_embed(settings: GuildSettings, defaults: Defaults, persona: PersonaView) -> discord.Embed:
    """The server's settings; the model and temperature as replies use them, with ``persona`` the server's."""

    def value(setting: object, default: str) -> str:
        return default if setting is None else str(setting)

    def own(setting: object, default: object) -> str:
        """The server's choice, else the bot's default in effect, said to be the default."""
        return value(setting, f"{default} (the bot's default)")

    def used(setting: object, key: str, default: object, shown: Callable[[Any], str] = str) -> str:
        """The server's choice, else the persona's own, else the bot's default, saying whose it is when not the
        server's: the order replies follow."""
        chosen = in_effect(setting, persona.config, key, default)
        whose = {"server": "", "persona": f" (persona {persona.name}'s)", "bot": " (the bot's default)"}
        # Clipped: a persona's config is not checked as /config checks a setting.
        return clipped(shown(chosen.value) + whose[chosen.chosen_by], FIELD_VALUE_CHARS)

    quiet = (
        f"{settings.quiet_hours[0].isoformat('minutes')}–{settings.quiet_hours[1].isoformat('minutes')}"
        if settings.quiet_hours
        else "none"
    )
    rows = [
        ("Chat channels", _listed(settings.chat_channels, "<#{}>")),
        ("Blocked members", _listed(settings.blocked_users, "<@{}>")),
        ("Blocked channels", _listed(settings.blocked_channels, "<#{}>")),
        ("Only these roles", _listed(settings.allowed_roles, "<@&{}>") if settings.allowed_roles else "everyone"),
        ("Reply mode", f"{settings.reply_mode}: {REPLY_MODES[settings.reply_mode]}"),
        ("Chime-in", f"{settings.chime_in_percent}%"),
        ("Learning", "on" if settings.learning else "off"),
        ("Proactive messages", "on" if settings.proactive else "off"),
        ("Quiet hours", quiet),
        ("Language", value(settings.language, "whatever people write in")),
        ("Model", used(settings.model, "model", defaults.model)),
        ("Temperature", used(settings.temperature, "temperature", defaults.temperature, number_text)),
        (
            "Cooldown",
            own(None if settings.cooldown_s is None else _seconds(settings.cooldown_s), _seconds(defaults.cooldown_s)),
        ),
        ("Daily token quota", value(settings.daily_token_quota, "none")),
    ]
    embed = hearth_embed("Settings for this server")
    for name, text in rows:
        wide = ("Chat channels", "Reply mode", "Blocked members", "Blocked channels", "Only these roles")
        embed.add_field(name=name, value=text, inline=name not in wide)
    return embed


class Config(commands.Cog):
    config = app_commands.Group(
        name="config",
        description="How Hearth behaves in this server",
        default_permissions=MANAGE_SERVER,
        guild_only=True,
    )
    chat_channel = app_commands.Group(
        name="chat-channel", description="Channels where Hearth answers every message", parent=config
    )

    roles = app_commands.Group(
        name="roles", description="When any role is set, only members with one of them are answered", parent=config
    )

    def __init__(self, guild_config: GuildConfigService, personas: PersonaService, defaults: Defaults) -> None:
        self.guild_config = guild_config
        self.personas = personas
        self.defaults = defaults

    async def interaction_check(self, interaction: discord.Interaction, /) -> bool:
        require_admin(interaction)
        return True

    async def _embed(self, interaction: discord.Interaction, settings: GuildSettings) -> discord.Embed:
        """The settings as shown, with the server's persona: a model or temperature of its own is what replies use
        when the server chose none. A channel's persona (``/persona channel``) or a cast character may carry other
        ones, in its channel only."""
        guild_id = await self.guild_config.guild_row_id(place_of(interaction))
        persona = await self.personas.for_guild(guild_id)
        return _settings_embed(settings, self.defaults, persona)

    async def _changed(self, interaction: discord.Interaction, settings: GuildSettings, what: str) -> None:
        embed = await self._embed(interaction, settings)
        await interaction.response.send_message(what, embed=embed, ephemeral=True)

    # -- what changes on Discord -------------------------------------------------------------------------

    @commands.Cog.listener()
    async def on_guild_channel_delete(self, channel: discord.abc.GuildChannel) -> None:
        await self.guild_config.channel_deleted(_place_of_guild(channel.guild), channel.id)
        await self.personas.channel_deleted(channel.id)

    @commands.Cog.listener()
    async def on_guild_role_delete(self, role: discord.Role) -> None:
        await self.guild_config.role_deleted(_place_of_guild(role.guild), role.id)

    @commands.Cog.listener()
    async def on_guild_available(self, guild: discord.Guild) -> None:
        await self._forget_deleted_unheard(guild)

    @commands.Cog.listener()
    async def on_guild_join(self, guild: discord.Guild) -> None:
        await self._forget_deleted_unheard(guild)

    async def _forget_deleted_unheard(self, guild: discord.Guild) -> None:
        """Take off the server's lists the channels and roles deleted while Hearth heard no deletion (stopped, or
        reconnected without resuming), once Discord has sent the whole server: a listed channel it did not send
        is asked for, and taken off only when Discord answers that it does not exist; a listed role is taken off
        when the server's roles (always all of them, @everyone first) lack it. A server without settings is only
        read, and an unavailable one, or a channel Discord will not show or could not answer for, is left as is."""
        if guild.unavailable:
            return
        settings = await self.guild_config.stored(guild.id)
        if settings is None:
            return
        sent = {channel.id for channel in guild.channels} | {thread.id for thread in guild.threads}
        unsent = sorted((settings.chat_channels | settings.blocked_channels) - sent)
        channels = frozenset([channel_id for channel_id in unsent if await _no_such_channel(guild, channel_id)])
        roles = {role.id for role in guild.roles}
        gone_roles = settings.allowed_roles - roles if guild.id in roles else frozenset()
        await self.guild_config.forget_deleted(_place_of_guild(guild), channels=channels, roles=gone_roles)

    # -- /config ------------------------------------------------------------------------------------

    @config.command(name="show", description="Show this server's settings")
    async def config_show(self, interaction: discord.Interaction) -> None:
        settings = await self.guild_config.show(place_of(interaction))
        embed = await self._embed(interaction, settings)
        await interaction.response.send_message(embed=embed, ephemeral=True)

    @chat_channel.command(name="add", description="Hearth answers every message in this channel")
    @app_commands.describe(channel="The channel")
    async def chat_channel_add(self, interaction: discord.Interaction, channel: TalkChannel) -> None:
        settings, unblocked = await self.guild_config.add_chat_channel(place_of(interaction), channel.id)
        was_blocked = " (it is no longer blocked)" if unblocked else ""
        await self._changed(interaction, settings, f"I'll answer every message in {channel.mention}{was_blocked}.")

    @chat_channel.command(name="remove", description="Hearth answers in this channel only when addressed")
    @app_commands.describe(channel="The channel")
    async def chat_channel_remove(self, interaction: discord.Interaction, channel: TalkChannel) -> None:
        settings = await self.guild_config.remove_chat_channel(place_of(interaction), channel.id)
        await self._changed(interaction, settings, f"{channel.mention} is no longer a chat channel.")

    # The user options take a discord.User: someone who left the server comes without their membership, and is
    # still blocked and unblocked here (they may come back).
    @config.command(name="block-user", description="Hearth neither answers nor learns from this member")
    @app_commands.describe(user="The member")
    async def config_block_user(self, interaction: discord.Interaction, user: discord.User) -> None:
        settings = await self.guild_config.block_user(place_of(interaction), user.id)
        await self._changed(interaction, settings, f"I won't answer or learn from {user.mention} here.")

    @config.command(name="unblock-user", description="Hearth answers this member again")
    @app_commands.describe(user="The member")
    async def config_unblock_user(self, interaction: discord.Interaction, user: discord.User) -> None:
        settings = await self.guild_config.unblock_user(place_of(interaction), user.id)
        await self._changed(interaction, settings, f"{user.mention} can talk to me again.")

    @config.command(name="block-channel", description="Hearth says nothing in this channel")
    @app_commands.describe(channel="The channel")
    async def config_block_channel(self, interaction: discord.Interaction, channel: TalkChannel) -> None:
        settings = await self.guild_config.block_channel(place_of(interaction), channel.id)
        await self._changed(interaction, settings, f"I'll stay quiet in {channel.mention}.")

    @config.command(name="unblock-channel", description="Hearth may talk in this channel again")
    @app_commands.describe(channel="The channel")
    async def config_unblock_channel(self, interaction: discord.Interaction, channel: TalkChannel) -> None:
        settings = await self.guild_config.unblock_channel(place_of(interaction), channel.id)
        await self._changed(interaction, settings, f"I may talk in {channel.mention} again.")

    @roles.command(name="add", description="Only members with one of the listed roles are answered")
    @app_commands.describe(role="The role")
    async def roles_add(self, interaction: discord.Interaction, role: discord.Role) -> None:
        settings = await self.guild_config.add_role(place_of(interaction), role.id)
        await self._changed(interaction, settings, f"Members with {role.mention} may talk to me.")

    @roles.command(name="remove", description="Take a role off the list (an empty list: everyone is answered)")
    @app_commands.describe(role="The role")
    async def roles_remove(self, interaction: discord.Interaction, role: discord.Role) -> None:
        settings = await self.guild_config.remove_role(place_of(interaction), role.id)
        shown = "Everyone may talk to me again." if not settings.allowed_roles else f"{role.mention} is off the list."
        await self._changed(interaction, settings, shown)

    @config.command(name="reply-mode", description="When Hearth answers outside chat channels")
    @app_commands.describe(
        mode="mention: only @mentions and replies; name: also its name; chat-only: chat channels only"
    )
    @app_commands.choices(mode=[app_commands.Choice(name=f"{m}: {d}"[:100], value=m) for m, d in REPLY_MODES.items()])
    async def config_reply_mode(self, interaction: discord.Interaction, mode: str) -> None:
        settings = await self.guild_config.set_reply_mode(place_of(interaction), mode)
        await self._changed(interaction, settings, f"Reply mode: {settings.reply_mode}.")

    @config.command(name="chime-in", description="Chance (0–100 %) that Hearth joins a conversation unasked")
    @app_commands.describe(percent="0 never joins in; 100 answers everything")
    async def config_chime_in(self, interaction: discord.Interaction, percent: int) -> None:
        settings = await self.guild_config.set_chime_in(place_of(interaction), percent)
        await self._changed(interaction, settings, f"Chime-in: {settings.chime_in_percent}%.")

    @config.command(name="learning", description="Whether Hearth learns facts about people here")
    @app_commands.describe(state="on or off")
    async def config_learning(self, interaction: discord.Interaction, state: OnOff) -> None:
        settings = await self.guild_config.set_learning(place_of(interaction), state == "on")
        await self._changed(interaction, settings, f"Learning is {state}.")

    @config.command(name="proactive", description="Whether Hearth sends birthday greetings and follow-ups here")
    @app_commands.describe(state="on or off")
    async def config_proactive(self, interaction: discord.Interaction, state: OnOff) -> None:
        settings = await self.guild_config.set_proactive(place_of(interaction), state == "on")
        await self._changed(interaction, settings, f"Proactive messages are {state}.")

    @config.command(name="quiet-hours", description="Hours without unsolicited messages (each member's local time)")
    @app_commands.describe(start="Start, HH:MM (leave both empty to clear)", end="End, HH:MM")
    async def config_quiet_hours(
        self, interaction: discord.Interaction, start: str | None = None, end: str | None = None
    ) -> None:
        settings = await self.guild_config.set_quiet_hours(place_of(interaction), start, end)
        await self._changed(interaction, settings, "Quiet hours updated.")

    @config.command(name="language", description="The language Hearth writes in here")
    @app_commands.describe(language="e.g. Portuguese; leave empty to follow whatever people write in")
    async def config_language(self, interaction: discord.Interaction, language: str | None = None) -> None:
        settings = await self.guild_config.set_language(place_of(interaction), language)
        await self._changed(interaction, settings, "Language updated.")

    @config.command(name="model", description="The model Hearth uses here")
    @app_commands.describe(model="A model name your endpoint knows; leave empty for the bot's default")
    async def config_model(self, interaction: discord.Interaction, model: str | None = None) -> None:
        settings = await self.guild_config.set_model(place_of(interaction), model)
        await self._changed(interaction, settings, "Model updated.")

    @config.command(name="temperature", description="How adventurous replies are (0–2)")
    @app_commands.describe(value="0 steady … 2 wild; leave empty for the bot's default")
    async def config_temperature(
        self, interaction: discord.Interaction, value: app_commands.Range[float, 0.0, 2.0] | None = None
    ) -> None:
        settings = await self.guild_config.set_temperature(place_of(interaction), value)
        await self._changed(interaction, settings, "Temperature updated.")

    @config.command(name="cooldown", description="Seconds each member waits between replies and between commands")
    @app_commands.describe(seconds="0–60; leave empty for the bot's default")
    async def config_cooldown(
        self, interaction: discord.Interaction, seconds: app_commands.Range[float, 0.0, 60.0] | None = None
    ) -> None:
        settings = await self.guild_config.set_cooldown(place_of(interaction), seconds)
        await self._changed(interaction, settings, "Cooldown updated.")

    @config.command(name="daily-token-quota", description="Most model tokens Hearth spends here per day (0: no limit)")
    @app_commands.describe(tokens="Tokens per day (UTC); 0 removes the quota")
    async def config_daily_token_quota(
        self, interaction: discord.Interaction, tokens: app_commands.Range[int, 0, None]
    ) -> None:
        settings = await self.guild_config.set_daily_token_quota(place_of(interaction), tokens)
        await self._changed(interaction, settings, "Daily token quota updated.")

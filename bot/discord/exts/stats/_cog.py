"""/stats: messages, people, tokens and Hearth's mood in a server (admins: Manage Server).

Every command here is checked in ``interaction_check``, on top of Discord's permission hint (which a server
may loosen): a member without Manage Server is refused whatever Discord shows them.
"""

import discord
from discord import app_commands
from discord.ext import commands

from bot.discord.checks import require_admin
from bot.discord.people import place_of
from bot.discord.views import hearth_embed
from bot.services.directory import Directory
from bot.services.stats import StatsService


class Stats(commands.Cog):
    def __init__(self, stats: StatsService, directory: Directory) -> None:
        self.stats_service = stats
        self.directory = directory

    async def interaction_check(self, interaction: discord.Interaction, /) -> bool:
        require_admin(interaction)
        return True

    @app_commands.command(name="stats", description="Messages, people, tokens this month and Hearth's mood here")
    @app_commands.default_permissions(manage_guild=True)
    @app_commands.guild_only()
    async def stats(self, interaction: discord.Interaction) -> None:
        # The server alone: the admin who asks is not made one of the people Hearth knows here by asking.
        here = await self.directory.guild(place_of(interaction))
        assert here is not None
        stats = await self.stats_service.guild_stats(here.guild_id)
        embed = hearth_embed("Hearth in this server")
        embed.add_field(name="Messages", value=f"{stats.messages:,}")
        embed.add_field(name="People known", value=f"{stats.users_known:,}")
        embed.add_field(name="Tokens this month", value=f"{stats.tokens_this_month:,}")
        embed.add_field(name="Tokens today", value=f"{stats.tokens_today:,}")
        embed.add_field(name="Mood", value=stats.mood_label)
        await interaction.response.send_message(embed=embed, ephemeral=True)

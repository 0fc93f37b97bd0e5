"""Who Hearth is: its persona, its mood, what it remembers and how to make it forget."""

import discord
from discord import app_commands
from discord.ext import commands

from bot.discord.people import identify
from bot.discord.views import hearth_embed
from bot.services.directory import Directory
from bot.services.personas import PersonaService
from bot.services.stats import StatsService


class About(commands.Cog):
    hearth = app_commands.Group(name="hearth", description="About Hearth")

    def __init__(self, personas: PersonaService, stats: StatsService, directory: Directory) -> None:
        self.personas = personas
        self.stats = stats
        self.directory = directory

    @hearth.command(name="about", description="Who Hearth is, its mood, what it remembers and how to make it forget")
    async def hearth_about(self, interaction: discord.Interaction) -> None:
        me = await identify(self.directory, interaction)
        persona = await self.personas.for_guild(me.guild_id)
        mood = await self.stats.mood(me.guild_id, me.user_id)
        embed = hearth_embed(persona.name, persona.card.personality[:1000])
        embed.add_field(name="Mood right now", value=str(mood), inline=False)
        embed.add_field(
            name="What I remember",
            value=(
                "What people say where I can read it, and facts I learn about them, each kept where it was said: "
                "a server's things stay in that server, DMs stay in DMs. I never tell one person what I know "
                "about another."
            ),
            inline=False,
        )
        embed.add_field(
            name="Making me forget",
            value=(
                "/memory show lists what I know about you; /memory forget erases one fact; /memory forget-all "
                "erases everything; /memory export sends it all to you; /optout stops me learning; /proactive off "
                "stops the birthday greetings and follow-ups I start."
            ),
            inline=False,
        )
        await interaction.response.send_message(embed=embed, ephemeral=True)

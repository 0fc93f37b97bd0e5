"""Commands for everyone: what Hearth knows about you (see, add, export, erase), opting out, your birthday,
time zone and reminders, and who Hearth is. Answers about you are ephemeral: only you see them."""

import io
import json
import zoneinfo
from functools import cache
from typing import Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.discord.client import HearthBot
from bot.discord.people import identify
from bot.discord.views import Confirm, Paginator, hearth_embed, pages_of
from bot.services.reminders import Reminder

SCOPE_WORDS = {"global": "everywhere", "guild": "this server", "dm": "our DMs"}


@cache
def _time_zones() -> tuple[str, ...]:
    return tuple(sorted(zoneinfo.available_timezones()))


def _choice_name(text: str) -> str:
    return text if len(text) <= 100 else text[:99] + "…"


def _when(reminder: Reminder) -> str:
    return discord.utils.format_dt(reminder.at, "f") + f" ({discord.utils.format_dt(reminder.at, 'R')})"


class Me(commands.Cog):
    memory = app_commands.Group(name="memory", description="What Hearth remembers about you")
    birthday = app_commands.Group(name="birthday", description="Your birthday, so Hearth can greet you")
    timezone = app_commands.Group(name="timezone", description="Your time zone, for reminders and greetings")
    hearth = app_commands.Group(name="hearth", description="About Hearth")

    def __init__(self, bot: HearthBot) -> None:
        self.bot = bot
        self.container = bot.container

    # -- /memory ------------------------------------------------------------------------------------

    @memory.command(name="show", description="What Hearth knows about you here: facts, how close you are, your style")
    async def memory_show(self, interaction: discord.Interaction) -> None:
        me = await identify(self.container, interaction)
        profile = await self.container.privacy.profile(me.user_id, me.guild_id)
        lines = [f"`#{f.id}` {f.content} · *{SCOPE_WORDS.get(f.scope, f.scope)}*" for f in profile.facts]
        pages = pages_of("What I know about you here", lines, empty="No facts yet.")
        about = []
        if profile.relationship_level:
            about.append(f"**We are:** {profile.relationship_level} ({profile.relationship_score:.0f}/100)")
        if profile.style:
            about.append(f"**How you write:** {profile.style}")
        if profile.opted_out:
            about.append("**Learning:** off (you opted out; /optin turns it back on)")
        about.append("Forget one fact with /memory forget, or everything with /memory forget-all.")
        for page in pages:
            page.add_field(name="Also", value="\n".join(about)[:1024], inline=False)
        await Paginator(interaction.user.id, pages).show(interaction)

    @memory.command(name="forget", description="Make Hearth forget one fact about you, for good")
    @app_commands.describe(fact="The fact to forget (start typing to search)")
    async def memory_forget(self, interaction: discord.Interaction, fact: int) -> None:
        me = await identify(self.container, interaction)
        content = await self.container.privacy.forget_fact(me.user_id, fact)
        await interaction.response.send_message(
            f"Forgotten: ~~{discord.utils.escape_markdown(content)}~~", ephemeral=True
        )

    @memory_forget.autocomplete("fact")
    async def _fact_choices(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[int]]:
        me = await identify(self.container, interaction)
        facts = await self.container.privacy.facts_here(me.user_id, me.guild_id)
        wanted = current.strip().lower().lstrip("#")
        found = [f for f in facts if not wanted or wanted in f.content.lower() or wanted == str(f.id)]
        return [app_commands.Choice(name=_choice_name(f"#{f.id} {f.content}"), value=f.id) for f in found[:25]]

    @memory.command(name="forget-all", description="Erase everything Hearth holds about you, everywhere")
    async def memory_forget_all(self, interaction: discord.Interaction) -> None:
        async def erase(pressed: discord.Interaction) -> str:
            erased = await self.container.privacy.forget_everything(pressed.user.id)
            return "Done: I have erased everything I held about you." if erased else "I held nothing about you."

        view = Confirm(interaction.user.id, erase, label="Erase everything")
        await interaction.response.send_message(
            "This erases everything I hold about you, in every server and in DMs: facts, messages, memories, "
            "reminders, preferences. It cannot be undone. Sure?",
            view=view,
            ephemeral=True,
        )

    @memory.command(name="export", description="Get everything Hearth holds about you as a JSON file, by DM")
    async def memory_export(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        data = await self.container.privacy.export(interaction.user.id)
        payload = json.dumps(data, ensure_ascii=False, indent=2).encode()
        file = discord.File(io.BytesIO(payload), filename="hearth-export.json")
        try:
            await interaction.user.send("Here is everything I hold about you.", file=file)
        except discord.HTTPException:  # DMs closed: hand it over here, where only they can see it
            file = discord.File(io.BytesIO(payload), filename="hearth-export.json")
            await interaction.followup.send("Your DMs are closed, so here it is:", file=file, ephemeral=True)
            return
        await interaction.followup.send("Sent to your DMs.", ephemeral=True)

    # -- facts you give, and learning ---------------------------------------------------------------

    @app_commands.command(name="remember", description="Tell Hearth something to remember about you")
    @app_commands.describe(
        text="What to remember, e.g. I'm vegetarian",
        everywhere="Use it in every server and in DMs (default: only where you say it)",
    )
    async def remember(self, interaction: discord.Interaction, text: str, everywhere: bool = False) -> None:
        me = await identify(self.container, interaction)
        fact_id = await self.container.privacy.remember(me.user_id, me.guild_id, text, everywhere=everywhere)
        where = "everywhere" if everywhere else ("in this server" if me.guild_id else "in our DMs")
        await interaction.response.send_message(f"Got it (`#{fact_id}`), I'll remember that {where}.", ephemeral=True)

    @app_commands.command(
        name="optout", description="Stop Hearth learning about you (what it knows stays until you erase it)"
    )
    async def optout(self, interaction: discord.Interaction) -> None:
        me = await identify(self.container, interaction)
        await self.container.privacy.set_learning(me.user_id, opted_out=True)
        await interaction.response.send_message(
            "Done: I won't learn anything new about you. What I already know stays until you erase it with "
            "/memory forget-all.",
            ephemeral=True,
        )

    @app_commands.command(name="optin", description="Let Hearth learn about you again")
    async def optin(self, interaction: discord.Interaction) -> None:
        me = await identify(self.container, interaction)
        await self.container.privacy.set_learning(me.user_id, opted_out=False)
        await interaction.response.send_message("Welcome back: I'll get to know you again.", ephemeral=True)

    # -- birthday, time zone, reminders -------------------------------------------------------------

    @birthday.command(name="set", description="Set your birthday, so Hearth can greet you on the day")
    @app_commands.describe(month="Month, 1–12", day="Day of the month", year="Year of birth (optional)")
    async def birthday_set(
        self,
        interaction: discord.Interaction,
        month: app_commands.Range[int, 1, 12],
        day: app_commands.Range[int, 1, 31],
        year: app_commands.Range[int, 1900, 2100] | None = None,
    ) -> None:
        me = await identify(self.container, interaction)
        at = await self.container.reminders.set_birthday(me.user_id, month, day, year)
        await interaction.response.send_message(
            f"Noted! I'll greet you {discord.utils.format_dt(at, 'D')}, and every year after.", ephemeral=True
        )

    @birthday.command(name="clear", description="Forget your birthday")
    async def birthday_clear(self, interaction: discord.Interaction) -> None:
        me = await identify(self.container, interaction)
        await self.container.reminders.clear_birthday(me.user_id)
        await interaction.response.send_message("Your birthday is forgotten.", ephemeral=True)

    @timezone.command(name="set", description="Set your time zone (an IANA name like Europe/Lisbon)")
    @app_commands.describe(name="Your time zone, e.g. Europe/Lisbon (start typing to search)")
    async def timezone_set(self, interaction: discord.Interaction, name: str) -> None:
        me = await identify(self.container, interaction)
        tz = await self.container.reminders.set_timezone(me.user_id, name)
        await interaction.response.send_message(f"Your time zone is now {tz.key}.", ephemeral=True)

    @timezone_set.autocomplete("name")
    async def _zone_choices(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        wanted = current.strip().lower().replace(" ", "_")
        zones = [zone for zone in _time_zones() if wanted in zone.lower()]
        return [app_commands.Choice(name=zone, value=zone) for zone in zones[:25]]

    @app_commands.command(name="remind", description="Have Hearth remind you of something")
    @app_commands.describe(when="When, e.g. in 2 hours, tomorrow at 9, every Monday at 8", what="What to remind you of")
    async def remind(self, interaction: discord.Interaction, when: str, what: str) -> None:
        me = await identify(self.container, interaction)
        reminder = await self.container.reminders.remind(
            me.user_id, f"{when} {what}", guild_id=me.guild_id, channel_id=interaction.channel_id
        )
        again = f", then {reminder.recurrence}" if reminder.recurrence else ""
        await interaction.response.send_message(
            f"⏰ I'll remind you {_when(reminder)}{again}: {discord.utils.escape_mentions(reminder.what)}",
            ephemeral=True,
        )

    @app_commands.command(name="reminders", description="Your reminders: see them and cancel any")
    async def reminders(self, interaction: discord.Interaction) -> None:
        me = await identify(self.container, interaction)
        view = RemindersView(
            self, interaction.user.id, me.user_id, await self.container.reminders.reminders(me.user_id)
        )
        await view.show(interaction)

    # -- about --------------------------------------------------------------------------------------

    @hearth.command(name="about", description="Who Hearth is, its mood, what it remembers and how to make it forget")
    async def hearth_about(self, interaction: discord.Interaction) -> None:
        me = await identify(self.container, interaction)
        persona = await self.container.personas.for_guild(me.guild_id)
        mood = await self.container.stats.mood(me.guild_id, me.user_id)
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
                "erases everything; /memory export sends it all to you; /optout stops me learning."
            ),
            inline=False,
        )
        await interaction.response.send_message(embed=embed, ephemeral=True)


class RemindersView(Paginator):
    """The user's reminders, ten to a page, with a menu to cancel one on the page shown."""

    def __init__(self, cog: Me, owner_id: int, user_id: int, reminders: list[Reminder]) -> None:
        self.cog, self.user_id, self.reminders = cog, user_id, reminders
        self.menu: discord.ui.Select[Any] | None = None
        super().__init__(owner_id, self._pages())
        self.on_page()

    def _pages(self) -> list[discord.Embed]:
        lines = [f"`#{r.id}` {_when(r)} · {discord.utils.escape_mentions(r.what)}" for r in self.reminders]
        return pages_of("Your reminders", lines, empty="No reminders. Set one with /remind.")

    def on_page(self) -> None:
        if self.menu is not None:
            self.remove_item(self.menu)
            self.menu = None
        shown = self.reminders[self.index * 10 : self.index * 10 + 10]
        if not shown:
            return
        self.menu = discord.ui.Select(
            placeholder="Cancel a reminder…",
            custom_id="reminders:cancel",
            options=[discord.SelectOption(label=_choice_name(f"#{r.id} {r.what}"), value=str(r.id)) for r in shown],
        )
        self.menu.callback = self._cancel  # type: ignore[method-assign]
        self.add_item(self.menu)

    async def _cancel(self, interaction: discord.Interaction) -> None:
        assert self.menu is not None
        reminder_id = int(self.menu.values[0])
        await self.cog.container.reminders.cancel(self.user_id, reminder_id)
        self.reminders = await self.cog.container.reminders.reminders(self.user_id)
        self.pages = self._pages()
        self.index = min(self.index, len(self.pages) - 1)
        self._update_buttons()
        self.on_page()
        await interaction.response.edit_message(
            content=f"Cancelled reminder #{reminder_id}.", embed=self.current, view=self
        )


async def setup(bot: HearthBot) -> None:
    await bot.add_cog(Me(bot))

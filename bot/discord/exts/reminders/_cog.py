"""Your birthday, time zone, reminders, and whether Hearth writes to you first. Answers are ephemeral: only you
see them."""

import zoneinfo
from functools import cache
from typing import Any, Literal

import discord
from discord import app_commands
from discord.ext import commands

from bot.discord.people import identify
from bot.discord.views import Paginator, pages_of
from bot.domain.unsolicited import Withheld
from bot.domain.when import MAX_REMINDER_LENGTH
from bot.services.directory import Directory
from bot.services.reminders import Reminder, ReminderService


@cache
def _time_zones() -> tuple[str, ...]:
    return tuple(sorted(zoneinfo.available_timezones()))


def _choice_name(text: str) -> str:
    return text if len(text) <= 100 else text[:99] + "…"


def _when(reminder: Reminder) -> str:
    """Its next time, in each reader's own time zone, and how it repeats (", then weekly")."""
    at = discord.utils.format_dt(reminder.at, "f") + f" ({discord.utils.format_dt(reminder.at, 'R')})"
    return at + (f", then {reminder.recurrence}" if reminder.recurrence else "")


_WHY_UNDELIVERED = {
    "missed": "Hearth was offline then",
    "failed": "Hearth could not send it, in its channel or by DM",
}


# Why a birthday greeting will not come, though the birthday is kept (and greeted once nothing stands in the way).
_NO_GREETING: dict[Withheld, str] = {
    "bot": "This bot sends no birthday greetings, though: its owner has turned them off.",
    "person": (
        "You have messages I start turned off, though, so no birthday greeting will come while they are: "
        "/proactive on turns them back on."
    ),
    "server": "This server has messages I start turned off, though, so no birthday greeting will come here.",
}


# Said under an answer whose time of day was read in UTC, the user having set no time zone (/timezone set moves it).
_READ_IN_UTC = "\n(I read that time in UTC. Not your time zone? Set yours with /timezone set.)"


def _line(reminder: Reminder) -> str:
    """One reminder in the list: its number, when, and its words; one that never reached its user says so."""
    what = discord.utils.escape_mentions(reminder.what)
    if reminder.undelivered is None:
        return f"`#{reminder.id}` {_when(reminder)} · {what}"
    why = _WHY_UNDELIVERED.get(reminder.undelivered, "it could not be sent")
    return f"⚠️ `#{reminder.id}` {discord.utils.format_dt(reminder.at, 'f')} · {what} · not delivered: {why}"


class Reminders(commands.Cog):
    birthday = app_commands.Group(name="birthday", description="Your birthday, so Hearth can greet you")
    timezone = app_commands.Group(name="timezone", description="Your time zone, for reminders and greetings")

    def __init__(self, reminders: ReminderService, directory: Directory) -> None:
        self.reminder_service = reminders
        self.directory = directory

    @birthday.command(name="set", description="Set your birthday, so Hearth can greet you on the day")
    @app_commands.describe(month="Month, 1–12", day="Day of the month", year="Year of birth (optional)")
    async def birthday_set(
        self,
        interaction: discord.Interaction,
        month: app_commands.Range[int, 1, 12],
        day: app_commands.Range[int, 1, 31],
        year: app_commands.Range[int, 1900, 2100] | None = None,
    ) -> None:
        me = await identify(self.directory, interaction)
        at = await self.reminder_service.set_birthday(me.user_id, month, day, year)
        greeting = await self.reminder_service.greeting_of(me.user_id)
        why_not = greeting.withheld
        if why_not is None and greeting.in_utc:
            # 10:00 UTC, which far from UTC is another day: the time shown (on the reader's clock), and why.
            said = f"Noted! I'll greet you {discord.utils.format_dt(at, 'f')}, and every year after.{_READ_IN_UTC}"
        elif why_not is None:
            said = f"Noted! I'll greet you {discord.utils.format_dt(at, 'D')}, and every year after."
        else:
            said = f"Noted, I'll remember your birthday. {_NO_GREETING[why_not]}"
        await interaction.response.send_message(said, ephemeral=True)

    @app_commands.command(
        name="proactive",
        description="Whether Hearth sends you birthday greetings and follow-ups (reminders come anyway)",
    )
    @app_commands.describe(state="on or off")
    async def proactive(self, interaction: discord.Interaction, state: Literal["on", "off"]) -> None:
        me = await identify(self.directory, interaction)
        await self.reminder_service.set_proactive(me.user_id, on=state == "on")
        if state == "off":
            said = (
                "Done: I won't send you birthday greetings or follow-ups, anywhere. Reminders you ask for still come; "
                "/proactive on turns the rest back on."
            )
        else:
            said = "Done: birthday greetings and follow-ups are on again for you (where a server allows them)."
        await interaction.response.send_message(said, ephemeral=True)

    @birthday.command(name="clear", description="Forget your birthday")
    async def birthday_clear(self, interaction: discord.Interaction) -> None:
        me = await identify(self.directory, interaction)
        await self.reminder_service.clear_birthday(me.user_id)
        await interaction.response.send_message("Your birthday is forgotten.", ephemeral=True)

    @timezone.command(name="set", description="Set your time zone (an IANA name like Europe/Lisbon)")
    @app_commands.describe(name="Your time zone, e.g. Europe/Lisbon (start typing to search)")
    async def timezone_set(self, interaction: discord.Interaction, name: str) -> None:
        me = await identify(self.directory, interaction)
        tz = await self.reminder_service.set_timezone(me.user_id, name)
        await interaction.response.send_message(f"Your time zone is now {tz.key}.", ephemeral=True)

    @timezone_set.autocomplete("name")
    async def _zone_choices(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        wanted = current.strip().lower().replace(" ", "_")
        zones = [zone for zone in _time_zones() if wanted in zone.lower()]
        return [app_commands.Choice(name=zone, value=zone) for zone in zones[:25]]

    @app_commands.command(name="remind", description="Have Hearth remind you of something")
    @app_commands.describe(when="When, e.g. in 2 hours, tomorrow at 9, every Monday at 8", what="What to remind you of")
    async def remind(
        self,
        interaction: discord.Interaction,
        when: str,
        what: app_commands.Range[str, 1, MAX_REMINDER_LENGTH],
    ) -> None:
        me = await identify(self.directory, interaction)
        reminder = await self.reminder_service.remind(
            me.user_id, when, what, guild_id=me.guild_id, channel_id=interaction.channel_id
        )
        said = f"⏰ I'll remind you {_when(reminder)}: {discord.utils.escape_mentions(reminder.what)}"
        if reminder.read_in_utc:
            said += _READ_IN_UTC
        await interaction.response.send_message(said, ephemeral=True)

    @app_commands.command(name="reminders", description="Your reminders: see them and cancel any")
    async def reminders(self, interaction: discord.Interaction) -> None:
        me = await identify(self.directory, interaction)
        view = RemindersView(
            self.reminder_service, interaction.user.id, me.user_id, await self.reminder_service.reminders(me.user_id)
        )
        await view.show(interaction)


class RemindersView(Paginator):
    """The user's reminders, ten to a page, with a menu to cancel one still to come on the page shown."""

    def __init__(self, service: ReminderService, owner_id: int, user_id: int, reminders: list[Reminder]) -> None:
        self.service, self.user_id, self.reminders = service, user_id, reminders
        self.menu: discord.ui.Select[Any] | None = None
        super().__init__(owner_id, self._pages())
        self.on_page()

    def _pages(self) -> list[discord.Embed]:
        lines = [_line(r) for r in self.reminders]
        return pages_of("Your reminders", lines, empty="No reminders. Set one with /remind.")

    def on_page(self) -> None:
        if self.menu is not None:
            self.remove_item(self.menu)
            self.menu = None
        shown = [r for r in self.reminders[self.index * 10 : self.index * 10 + 10] if r.undelivered is None]
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
        cancelled = await self.service.cancel(self.user_id, reminder_id)
        self.reminders = await self.service.reminders(self.user_id)
        self.pages = self._pages()
        self.index = min(self.index, len(self.pages) - 1)
        self._update_buttons()
        self.on_page()
        # The list may be older than the reminder's sending: a repeating one's next time has a new number.
        said = (
            f"Cancelled reminder #{reminder_id}."
            if cancelled
            else f"Reminder #{reminder_id} had already gone out or been cancelled; here is the list as it is now."
        )
        await interaction.response.edit_message(content=said, embed=self.current, view=self)

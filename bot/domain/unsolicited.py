"""Whether Hearth may write to someone first at all: a birthday greeting or a follow-up (unsolicited messages).

Reminders are not among them: people ask for those. The scheduler cancels an unsolicited message that falls due
while one of these holds, and ``/birthday set`` tells its user when a greeting would meet the same fate, so the
two never disagree. Quiet hours and the daily cap only put a message off; they are not here.
"""

from typing import Literal

# "bot": the bot's PROACTIVE_DAILY_CAP is 0; "person": they turned off messages Hearth starts; "server": the
# server it would go to has its ``proactive`` setting off.
Withheld = Literal["bot", "person", "server"]


def withheld(*, daily_cap: int, opted_out: bool, server_allows: bool = True) -> Withheld | None:
    """Why no unsolicited message goes to this person (in this server) at all, or None when one may."""
    if daily_cap == 0:
        return "bot"
    if opted_out:
        return "person"
    if not server_allows:
        return "server"
    return None

"""The buttons under a reply: 🔄 asks for another answer, ◀ ▶ move between the answers (see
bot/services/conversation/branches.py for who may press them, and when).

They are dynamic items: what a press needs is in the custom_id (``hearth:reply:<action>``) and the message it is
on, so the buttons keep working after a restart, with no view held in memory.
"""

import asyncio
import contextlib
import logging
import re
from collections.abc import Awaitable
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar, cast

import discord

from bot.discord.render import (
    DISCORD_FAILURES,
    MODEL_MENTIONS,
    TAKE_DOWN_S,
    UNKNOWN_MESSAGE,
    edited,
    only_a_glimpse,
    unless_refused,
)
from bot.discord.tree import UNKNOWN_INTERACTION, report, tell
from bot.domain.chunking import DISCORD_LIMIT, split_message
from bot.services.conversation.branches import Branches, BranchOutcome
from bot.services.incoming import ReplyForbidden, ReplyRefused, ReplyRemoved

if TYPE_CHECKING:
    from bot.discord.client import HearthBot

log = logging.getLogger(__name__)

_T = TypeVar("_T")

# Discord forgets a press not answered within 3 seconds of its making ("This interaction failed"): one the database
# has not answered for by then (a long lock, a restart it waits out) is acknowledged first, with nothing shown
# meanwhile. The seconds count from the press, not from when it reached Hearth (a reconnect or a busy moment may
# deliver it late).
ANSWER_WITHIN_S = 2.0

REFUSALS = {
    "not_yours": "That's not yours to change: only the person I answered can do that.",
    "expired": "This reply is more than a day old; it can't be changed any more.",
    "moved_on": "The conversation has moved on: only my latest reply can be changed.",
    "unknown": "I don't have this reply any more.",
    "resting": "I'm resting for a little while (my keeper is doing some maintenance), so I can't come up with another"
    " answer just now. Try again once I'm back.",
    "over_quota": "I've reached this server's daily limit, so I can't come up with another answer until tomorrow"
    " (00:00 UTC).",
    "failed": "I couldn't come up with another answer just now, so the one before stays. Try again in a little while.",
    "answering": "I'm still writing another answer for this reply: try again once it's shown.",
    "writing": "I'm writing a reply here just now that goes on from this answer, so this one stays for now.",
    "overtaken": "The conversation went on from this answer while I was writing another, so this one stays: only my"
    " latest reply can be changed.",
    "removed": "That reply was deleted meanwhile, so I've left it deleted.",
    "no_sending": "I'm not allowed to send messages here any more, and that answer needs more messages than this"
    " reply has, so the answer shown stays.",
    "hidden": "I can't see this channel any more, so I can't change this reply: the answer shown stays.",
    "dms_closed": "Your DMs are closed to me, and that answer needs more messages than this reply has, so the answer"
    " shown stays.",
}


def _refused(refusal: ReplyRefused) -> str:
    """What the person who pressed is told when Discord will not show the answer they chose."""
    if not isinstance(refusal, ReplyForbidden):
        return REFUSALS["dms_closed"]
    return REFUSALS["hidden"] if refusal.permission == "View Channel" else REFUSALS["no_sending"]


def shown_text(text: str) -> str:
    """An answer as its preview shows it, in one message (one longer than a message is cut there; it is shown
    whole, in as many messages as it needs, once written)."""
    return text if len(text) <= DISCORD_LIMIT else text[: DISCORD_LIMIT - 1] + "…"


def reply_view(position: int = 1, count: int = 1) -> discord.ui.View:
    """🔄, and once there are several answers ◀ *position/count* ▶."""
    view = discord.ui.View(timeout=None)
    if count > 1:
        view.add_item(ReplyButton("prev", disabled=position <= 1))
        view.add_item(discord.ui.Button(label=f"{position}/{count}", disabled=True, custom_id="hearth:reply:shown"))
        view.add_item(ReplyButton("next", disabled=position >= count))
    view.add_item(ReplyButton("regen"))
    return view


def _parts(message: discord.Message, outcome: BranchOutcome) -> list[discord.PartialMessage]:
    """The messages that show the reply whose buttons are on ``message`` (the last of them), in order."""
    return [
        message if part == message.id else discord.PartialMessage(channel=message.channel, id=part)
        for part in outcome.parts or (message.id,)
    ]


async def _shown_whole(message: discord.Message, outcome: BranchOutcome, branches: Branches) -> None:
    """Show ``outcome``'s answer in place of the reply whose buttons are on ``message``: a piece in each of its
    messages, edited in order, the pieces past them posted after, the buttons on the last piece alone; then the
    messages it no longer needs are deleted, once the reply is known by the ones that show it now (deleting a
    reply's message forgets the reply). Discord refusing a message or an edit raises :class:`ReplyRefused` (see
    :func:`unless_refused`), a message of it deleted meanwhile :class:`ReplyRemoved`."""
    with unless_refused(message.channel):
        await _edited_whole(message, outcome, branches)


async def _put_back_whole(message: discord.Message, requester: int, branches: Branches) -> None:
    """Another answer to the reply on ``message``, pressed for by ``requester``, was cut short by a stop as it
    streamed into the reply: the answer it goes on from is shown whole again, best effort and within
    :data:`TAKE_DOWN_S` (Discord, or the database, may be failing too), where the log says so otherwise."""
    try:
        async with asyncio.timeout(TAKE_DOWN_S):
            before = await branches.shown(message.id, requester, channel_id=message.channel.id)
            if before.status == "shown":
                await _shown_whole(message, before, branches)
    except Exception as exc:  # one line, no traceback: the stop goes on
        log.warning("could not show reply %s's answer again after another was cut short: %s", message.id, exc)


async def _edited_whole(message: discord.Message, outcome: BranchOutcome, branches: Branches) -> None:
    pieces, parts = split_message(outcome.text), _parts(message, outcome)
    view = reply_view(outcome.position, outcome.count)
    shown: list[int] = []
    for index, piece in enumerate(pieces):
        last = index == len(pieces) - 1
        if index < len(parts):
            shown.append((await edited(parts[index], content=piece, view=view if last else None)).id)
        else:
            posted = await message.channel.send(
                piece, allowed_mentions=MODEL_MENTIONS, view=view if last else discord.utils.MISSING
            )
            shown.append(posted.id)
    if shown != [part.id for part in parts]:
        await branches.reshown(message.id, shown)
    for leftover in parts[len(pieces) :]:
        try:
            await leftover.delete()
        except discord.NotFound as exc:  # deleted already
            if exc.code != UNKNOWN_MESSAGE:
                raise


def seconds_left_to_answer(pressed_at: datetime, now: datetime) -> float:
    """How much longer a press made at ``pressed_at`` may wait for its answer before it is acknowledged: what is
    left of :data:`ANSWER_WITHIN_S` since the press, none once they have passed, never more than all of them (a
    clock behind Discord's would otherwise make the press seem newer than it is)."""
    left = ANSWER_WITHIN_S - (now - pressed_at).total_seconds()
    return min(max(left, 0.0), ANSWER_WITHIN_S)


async def _in_time(interaction: discord.Interaction, work: Awaitable[_T]) -> _T:
    """``work``'s result; the press is deferred (acknowledged, nothing shown) if that is not ready within
    :data:`ANSWER_WITHIN_S` of the press, so that Discord still knows the press when the answer is ready."""
    task = asyncio.ensure_future(work)
    try:
        timeout = seconds_left_to_answer(interaction.created_at, discord.utils.utcnow())
        done, _ = await asyncio.wait({task}, timeout=timeout)
        if not done and not interaction.response.is_done():
            try:
                await interaction.response.defer()
            except discord.NotFound as exc:  # forgotten already (a busy moment): the reply is edited all the same
                if exc.code != UNKNOWN_INTERACTION:
                    raise
        return await task
    finally:
        task.cancel()  # the press given up (a stop, a fault answering it): so is what it waits for


class _EditedReply:
    """Where a regenerated answer streams to: the reply's first message, edited as it comes."""

    def __init__(self, message: discord.PartialMessage) -> None:
        self.message = message

    def typing(self) -> AbstractAsyncContextManager[None]:
        """No "Hearth is typing…": Discord clears it when the bot posts a message, not when it edits one, so it
        would stay up under the answer for up to ten seconds after it is shown (the press is acknowledged, and the
        answer streams into the reply, meanwhile)."""
        return contextlib.nullcontext()

    def speaking_as(self, name: str, avatar_url: str | None) -> "_EditedReply":
        return self

    def reply_to(self, message_id: int) -> None:
        """The reply being answered again stays where it is."""

    async def preview(self, text: str) -> None:
        # The answer is shown whole once written, whatever an outage costs here; a refusal ends it.
        with unless_refused(self.message.channel), only_a_glimpse(self.message.channel):
            self.message = await edited(self.message, content=shown_text(text))

    async def send(self, pieces: Any, *, regenerable: bool = False) -> list[int]:
        return [self.message.id]  # never called: a regenerated answer is shown by editing


async def _told(interaction: discord.Interaction, message: discord.Message, text: str) -> None:
    """Tell whoever pressed a button on the reply ``message`` why it stays as it is; Discord failing that (an outage
    past the retries, the press no longer answerable) is logged, never raised: there is no one left to tell."""
    try:
        await tell(interaction, text)
    except DISCORD_FAILURES as exc:
        log.warning(
            "could not tell user %s why reply %s stays as it is (interaction %s): %s",
            interaction.user.id,
            message.id,
            interaction.id,
            exc,
        )


_LOOKS = {
    "regen": ("🔄", "Another answer"),
    "prev": ("◀", "The previous answer"),
    "next": ("▶", "The next answer"),
}


class ReplyButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=r"hearth:reply:(?P<action>regen|prev|next)"):
    def __init__(self, action: str, *, disabled: bool = False) -> None:
        emoji, _ = _LOOKS[action]
        super().__init__(
            discord.ui.Button(
                emoji=emoji,
                style=discord.ButtonStyle.secondary,
                custom_id=f"hearth:reply:{action}",
                disabled=disabled,
            )
        )
        self.action = action

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> "ReplyButton":
        return cls(match["action"])

    async def callback(self, interaction: discord.Interaction) -> None:
        message = interaction.message
        if message is None:
            return
        bot = cast("HearthBot", interaction.client)
        task = asyncio.current_task()
        if task is not None:  # a stop lets the press finish, as it lets a reply being written finish
            bot.replying.keep(task)
        branches: Branches = bot.services.conversation.branches
        try:
            await self._press(interaction, message, branches)
        except ReplyRemoved as removed:  # a moderator took (a part of) the reply down meanwhile
            log.info("stopped changing a reply: %s", removed)
            await _told(interaction, message, REFUSALS["removed"])
        except ReplyRefused as refusal:  # a permission taken away, or the person's DMs closed: not a fault
            if isinstance(refusal, ReplyForbidden):
                log.warning(
                    "could not change reply %s: Discord refused it, Hearth lacking the %s permission in channel %s: %s",
                    message.id,
                    refusal.permission,
                    message.channel.id,
                    refusal,
                )
            else:
                log.info("could not change reply %s in channel %s: %s", message.id, message.channel.id, refusal)
            await _told(interaction, message, _refused(refusal))
        except Exception as error:  # a fault of Hearth's (the database failing, say): said kindly, logged once
            await report(interaction, error, f"button {_LOOKS[self.action][0]} on reply {message.id}")

    async def _press(self, interaction: discord.Interaction, message: discord.Message, branches: Branches) -> None:
        if self.action == "regen":
            refusal = await _in_time(interaction, branches.check(message.id, interaction.user.id))
            if refusal.status != "shown":
                await self._show(interaction, message, refusal, branches, deferred=interaction.response.is_done())
                return
            if not interaction.response.is_done():  # the model takes longer than Discord waits for an answer
                await interaction.response.defer()
            channel = message.channel
            parent = channel.parent_id if isinstance(channel, discord.Thread) else None
            try:
                outcome = await branches.regenerate(
                    message.id, interaction.user.id, _EditedReply(_parts(message, refusal)[0]), parent_channel_id=parent
                )
            except asyncio.CancelledError:  # a stop ran out of time: the answer before shown again, not half of one
                await _put_back_whole(message, interaction.user.id, branches)
                raise
            await self._show(interaction, message, outcome, branches, deferred=True)
        else:
            by = -1 if self.action == "prev" else 1
            step = branches.step(message.id, interaction.user.id, by, channel_id=message.channel.id)
            outcome = await _in_time(interaction, step)
            await self._show(interaction, message, outcome, branches, deferred=interaction.response.is_done())

    @staticmethod
    async def _show(
        interaction: discord.Interaction,
        message: discord.Message,
        outcome: BranchOutcome,
        branches: Branches,
        *,
        deferred: bool,
    ) -> None:
        if outcome.status in ("failed", "overtaken"):  # the new answer may have streamed in: the one before returns
            try:
                await _shown_whole(message, outcome, branches)
            except DISCORD_FAILURES as exc:  # an outage past the retries: the one before stays the one stored
                log.warning("could not show reply %s's answer before again after another failed: %s", message.id, exc)
        if outcome.status != "shown":
            await tell(interaction, REFUSALS[outcome.status])
            return
        try:
            if not deferred and len(outcome.parts) <= 1 and len(split_message(outcome.text)) == 1:  # one message
                content, view = outcome.text, reply_view(outcome.position, outcome.count)
                await interaction.response.edit_message(content=content, view=view, allowed_mentions=MODEL_MENTIONS)
                return
            if not deferred:
                await interaction.response.defer()
        except discord.NotFound as exc:
            if exc.code == UNKNOWN_MESSAGE:  # deleted since the press (a moderator took it down)
                raise ReplyRemoved(f"reply {message.id} was deleted as another answer was shown") from exc
            if exc.code != UNKNOWN_INTERACTION:
                raise
            # Answered past the 3 seconds Discord waits, the press is forgotten: the reply is edited all the same.
        try:
            await _shown_whole(message, outcome, branches)
        except (ReplyRefused, *DISCORD_FAILURES):
            # Refused, or an outage past the retries: Discord still shows the answer before, or the start of the new
            # one (its buttons taken off with the edit). The answer before is shown whole again, and stays.
            before = await branches.put_back(message.id, interaction.user.id, outcome, channel_id=message.channel.id)
            if before.status == "shown":
                with contextlib.suppress(ReplyRefused, ReplyRemoved, *DISCORD_FAILURES):  # where nothing could be
                    await _shown_whole(message, before, branches)  # edited, nothing was
            raise

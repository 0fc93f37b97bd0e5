"""Showing a reply to the front end: the streaming preview, throttled and apart from the stream, and the final
pieces, never raising."""

import asyncio
import logging
import time
from collections.abc import Sequence

from bot.domain.chunking import DISCORD_LIMIT
from bot.services.incoming import (
    AnswerWithdrawn,
    ChannelGone,
    IncomingMessage,
    NotShown,
    PartlyShown,
    ReplyForbidden,
    ReplyRefused,
    ReplyRemoved,
    ReplyTarget,
    ThreadClosed,
    TurnOutcome,
)

log = logging.getLogger(__name__)

# What ends a reply kept as Discord showed it, cut short: its first pieces shown, the rest refused or failed.
CUT_SHORT = "…"

# What the preview shows once the model starts its answer again (its stream broke off, and it is asked anew):
# the abandoned try's words are not the answer, and the new try's replace this mark as they come.
STARTING_AGAIN = "…"


class PreviewPump:
    """Shows the reply so far while the model writes it, without holding the model's stream up: the newest text
    is handed to a task of its own that shows it at once, then at most once per ``interval_s``, skipping texts
    overtaken meanwhile. A front end slow to show one (Discord's rate limit waited out, an outage retried) costs
    glimpses, never the reading of the answer. What ends the previews for good (the message answered deleted, a
    refusal) ends the turn: it is raised to the stream with its next piece, and by :meth:`check`. The text
    starting again from nothing (a try abandoned, the model asked anew) shows :data:`STARTING_AGAIN` in place of the
    abandoned try's words, until the new try's come."""

    def __init__(self, target: ReplyTarget, interval_s: float) -> None:
        self.target = target
        self.interval_s = interval_s
        self._latest = ""
        self._fresh = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._failure: Exception | None = None

    async def __call__(self, text: str) -> None:
        """The text so far (called by the stream after each piece)."""
        self.check()
        if not text.strip():
            if self._latest and not text:  # a try was abandoned after showing something: not the answer any more
                self._latest = STARTING_AGAIN
                self._fresh.set()
            return
        self._latest = text if len(text) <= DISCORD_LIMIT else text[: DISCORD_LIMIT - 1] + "…"
        self._fresh.set()
        if self._task is None:
            self._task = asyncio.create_task(self._show(), name="preview")

    async def _show(self) -> None:
        shown = ""
        try:
            while True:
                await self._fresh.wait()
                self._fresh.clear()
                if self._latest == shown:
                    continue
                began, shown = time.monotonic(), self._latest
                await self.target.preview(shown)
                await asyncio.sleep(self.interval_s - (time.monotonic() - began))
        except Exception as exc:  # not an outage (the target rides those out): the turn hears of it
            self._failure = exc

    async def stop(self) -> None:
        """No more previews: one under way is cancelled, for the whole reply goes out next (and must be the last
        thing shown)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait([self._task])

    def check(self) -> None:
        """Raise what ended the previews, if anything did."""
        if self._failure is not None:
            raise self._failure


async def send_safely(
    target: ReplyTarget, pieces: Sequence[str], incoming: IncomingMessage, *, regenerable: bool = False
) -> list[int] | None:
    """Send ``pieces``; the ids of the messages sent, None when the front end failed to show any of them (logged:
    one line for Discord being down, :class:`NotShown`; with the traceback for anything else). The message
    answered, or the reply's own message, being deleted meanwhile is not a failure, nor the person refusing
    Hearth's messages: :class:`AnswerWithdrawn`, :class:`ReplyRemoved` and :class:`ReplyRefused` go to the
    caller. A reply cut short, its first pieces shown and Discord refusing or failing the next (logged: one line
    for a refusal, or for Discord being down, a :class:`NotShown` cause), is the ids of the messages showing those
    first pieces: fewer than ``pieces``, which :func:`shown_part` keeps."""
    try:
        return await target.send(pieces, regenerable=regenerable)
    except (AnswerWithdrawn, ReplyRemoved, ReplyRefused):
        raise
    except PartlyShown as partly:
        place, cause = incoming.place, partly.__cause__
        if isinstance(cause, ReplyForbidden):
            log.warning(
                "reply to message %s in channel %s cut short after %d of %d pieces: Discord refused the rest, Hearth"
                " lacking the %s permission there: %s",
                incoming.message_id,
                place.channel_id,
                len(partly.shown),
                len(pieces),
                cause.permission,
                cause,
            )
        elif isinstance(cause, ReplyRefused):
            log.info(
                "reply to message %s in channel %s cut short after %d of %d pieces: user %s no longer accepts"
                " Hearth's messages: %s",
                incoming.message_id,
                place.channel_id,
                len(partly.shown),
                len(pieces),
                incoming.author.discord_id,
                cause,
            )
        elif isinstance(cause, NotShown):  # Discord failing the rest (an outage, its rate limit): not Hearth's fault
            log.error(
                "reply to message %s cut short after %d of %d pieces (guild %s, channel %s): %s",
                incoming.message_id,
                len(partly.shown),
                len(pieces),
                place.guild_id,
                place.channel_id,
                cause,
            )
        else:
            log.error(
                "reply to message %s cut short after %d of %d pieces (guild %s, channel %s)",
                incoming.message_id,
                len(partly.shown),
                len(pieces),
                place.guild_id,
                place.channel_id,
                exc_info=cause,
            )
        return partly.shown
    except NotShown as lost:
        log.error(
            "could not deliver the reply to message %s (guild %s, channel %s): %s",
            incoming.message_id,
            incoming.place.guild_id,
            incoming.place.channel_id,
            lost,
        )
        return None
    except Exception:
        log.exception(
            "could not deliver a reply (guild %s, channel %s, message %s)",
            incoming.place.guild_id,
            incoming.place.channel_id,
            incoming.message_id,
        )
        return None


def shown_part(text: str, pieces: Sequence[str], sent: Sequence[int]) -> str:
    """What was shown of the reply ``text``, split into ``pieces`` and sent as the messages ``sent``: the whole of
    it, or where Discord took only its first pieces, those, marked with :data:`CUT_SHORT` (the conversation goes on
    from what its reader saw). None sent (a front end that shows no Discord messages: the terminal) keeps the whole
    reply, as written."""
    if not sent or len(sent) >= len(pieces):
        return text
    return "".join(pieces[: len(sent)]).rstrip() + " " + CUT_SHORT


def refused(refusal: ReplyRefused, incoming: IncomingMessage, *, answered_messages: int = 0) -> TurnOutcome:
    """The turn ended by Discord refusing what Hearth showed, said in one line: a permission Hearth lacks in the
    channel (a moderator took it away a moment before: the server's setting, for whoever runs Hearth to hear of),
    or the person no longer accepting Hearth's messages (they blocked it or closed their DMs: their choice, not a
    fault); or the channel deleted, or the thread closed by a moderator, meanwhile. The caller settles the turn's
    messages, if any were stored."""
    place = incoming.place
    if isinstance(refusal, ChannelGone):
        log.info("not answering in channel %s: it was deleted meanwhile (%s)", place.channel_id, refusal)
        return TurnOutcome("gone", answered_messages=answered_messages)
    if isinstance(refusal, ThreadClosed):
        log.info(
            "not answering in thread %s: it was archived or locked meanwhile, and a reply would reopen it",
            place.channel_id,
        )
        return TurnOutcome("closed", answered_messages=answered_messages)
    if isinstance(refusal, ReplyForbidden):
        log.warning(
            "not answering in channel %s: Discord refused the reply, Hearth lacking the %s permission there: %s",
            place.channel_id,
            refusal.permission,
            refusal,
        )
        return TurnOutcome("forbidden", answered_messages=answered_messages)
    log.info(
        "not answering user %s in channel %s, who no longer accepts Hearth's messages: %s",
        incoming.author.discord_id,
        place.channel_id,
        refusal,
    )
    return TurnOutcome("refused", answered_messages=answered_messages)


async def send_notice(
    target: ReplyTarget, text: str, incoming: IncomingMessage, status: str, *, answered_messages: int = 0
) -> TurnOutcome:
    """Say ``text``, a notice of Hearth's own (it is resting, the quota is spent, a fault cost the reply), ending
    the turn with ``status``; Discord refusing it ends the turn as :func:`refused` says, the turn's messages
    already settled. The message answered deleted meanwhile (a moderation bot deletes some at once) ends it as
    ``withdrawn``, the caller forgetting that message; a reply begun and deleted meanwhile, as ``removed``."""
    try:
        sent = await send_safely(target, [text], incoming)
    except ReplyRefused as refusal:
        return refused(refusal, incoming, answered_messages=answered_messages)
    except AnswerWithdrawn as withdrawn:
        log.info("not answering in channel %s: %s", incoming.place.channel_id, withdrawn)
        return TurnOutcome("withdrawn", answered_messages=answered_messages)
    except ReplyRemoved as removed:
        log.info("stopped answering in channel %s: %s", incoming.place.channel_id, removed)
        return TurnOutcome("removed", answered_messages=answered_messages)
    return TurnOutcome(status, reply=text, sent_ids=sent or [], answered_messages=answered_messages)

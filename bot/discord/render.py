"""Rendering replies on Discord: the ReplyTarget for a message, and mention safety."""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Generic, TypeVar

import aiohttp
import discord

from bot.services.incoming import (
    AnswerWithdrawn,
    ChannelGone,
    NotShown,
    PartlyShown,
    ReplyForbidden,
    ReplyRefused,
    ReplyRemoved,
    ThreadClosed,
)

log = logging.getLogger(__name__)

Shown = TypeVar("Shown", discord.Message, discord.WebhookMessage, discord.PartialMessage)

# What Hearth itself sends (commands' answers) pings no one but users, and only where it means to; proactive
# messages ping their own user alone (bot/discord/notifier.py).
SAFE_MENTIONS = discord.AllowedMentions(everyone=False, roles=False, users=True, replied_user=True)
# Model output pings nobody: not everyone/here, not roles, not users, not even the person replied to.
MODEL_MENTIONS = discord.AllowedMentions.none()


# Discord refuses a reply (a message referencing another) with this code where the bot may send messages but not
# read the channel's history: the reply then goes out as a message of its own.
REPLY_NEEDS_HISTORY = 160002
# Discord's code for a body it refuses; a reply to a deleted message is refused so, naming message_reference.
INVALID_FORM = 50035

# What an outage on Discord's side (or on the way there) raises: it costs a preview, never the reply.
DISCORD_OUTAGES = (discord.DiscordServerError, aiohttp.ClientError, TimeoutError, OSError)
# What a request to Discord may end in besides an answer: a refusal, or an outage.
DISCORD_FAILURES = (discord.HTTPException, *DISCORD_OUTAGES)

# Discord's code for a message that is not there (deleted).
UNKNOWN_MESSAGE = 10008
# Discord's code (with 404) for a channel or thread that is not there (an admin deleted it).
UNKNOWN_CHANNEL = 10003

# Discord's code (with 404) for a webhook that is not there (an admin deleted it in the channel's Integrations).
UNKNOWN_WEBHOOK = 10015
# Discord's code (with 401) for a webhook whose token it no longer takes: for Hearth, as good as deleted.
INVALID_WEBHOOK_TOKEN = 50027

# Discord's code (with 403) for a DM the person does not accept: they blocked the bot, or closed their DMs.
CANNOT_MESSAGE_USER = 50007

# Discord's code (with 403) for a request the bot's permissions do not allow (its cached ones may be out of date).
MISSING_PERMISSIONS = 50013

# Discord's code (with 403) for a channel the bot may not see: View Channel taken away, or the bot removed from the
# server (its cached permissions, again, may be out of date).
MISSING_ACCESS = 50001

# Discord's status for a request over its rate limit: discord.py waits and retries it, five times at most.
RATE_LIMITED = 429

# Discord shows "typing…" for about ten seconds after each signal: it is sent again this often.
TYPING_EVERY_S = 5.0
# How long a reply's first message waits for a typing signal still on its way to Discord, which would show "typing…"
# under the message were it to land after it (a signal takes a fraction of a second; one taking longer is being
# retried by discord.py after Discord failed it, and is dropped).
TYPING_SETTLE_S = 2.0

# How long a stop gives a reply cut short to take down what it had shown (Discord may be failing too).
TAKE_DOWN_S = 3.0


def lost_to_discord(exc: BaseException) -> bool:
    """Whether ``exc``, raised by a request to Discord, is Discord failing it rather than refusing it: an outage (on
    its side or on the way there), or its rate limit outlasting discord.py's waits (a plain 429 once its five tries
    are spent; :class:`discord.RateLimited` where the wait asked for was too long to take). Either costs the message
    it was for, as an outage does, never a traceback."""
    if isinstance(exc, (*DISCORD_OUTAGES, discord.RateLimited)):
        return True
    return isinstance(exc, discord.HTTPException) and exc.status == RATE_LIMITED


def cut_short_by(exc: Exception) -> BaseException:
    """What a reply shown in part was cut short by, ``exc`` raised by Discord for its next message, as the turn is
    told of it: Discord failing that message (an outage, or its rate limit past discord.py's retries) as a
    :class:`NotShown` saying so, one line in the log; a refusal, or anything else, as ``exc`` itself."""
    if not lost_to_discord(exc):
        return exc
    lost = NotShown(f"Discord failed the rest of the reply: {exc}")
    lost.__cause__ = exc
    return lost


async def _keep_typing(
    channel: discord.abc.Messageable,
    stop: asyncio.Event,
    wanted: Callable[[], Awaitable[bool]] | None = None,
    *,
    after: float = 0.0,
) -> None:
    """Typing signals in ``channel`` every :data:`TYPING_EVERY_S` until ``stop`` is set, the first ``after`` seconds
    on, none where ``wanted`` (asked before the first) says so."""
    try:
        if after > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), after)
        if stop.is_set() or (wanted is not None and not await wanted()):
            return
        while not stop.is_set():
            await channel.typing()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), TYPING_EVERY_S)
    except (discord.HTTPException, aiohttp.ClientError, TimeoutError, OSError) as exc:
        log.info("stopped showing typing in channel %s: %s", getattr(channel, "id", "?"), exc)


def _log_failure(task: "asyncio.Task[None]") -> None:
    if not task.cancelled() and (error := task.exception()) is not None:  # not one of Discord's refusals above
        log.warning("showing typing failed: %r", error)


class ReplyTyping:
    """ "Hearth is typing…" for one reply in ``channel``: shown while :meth:`shown` runs, until the reply's first
    message is posted (see :meth:`posting`). Discord clears "typing…" when the bot posts a message, not when it
    edits one: a signal landing after the first message would show Hearth typing under its reply (for up to ten
    seconds) while that message is edited as the reply streams in, and after it is whole. ``wanted``, when given,
    says (before the first signal) whether the reply shows the bot typing at all."""

    def __init__(self, channel: discord.abc.Messageable, wanted: Callable[[], Awaitable[bool]] | None = None) -> None:
        self.channel = channel
        self._wanted = wanted
        self._live = False  # within shown()
        self._out = False  # the first message posted (or being posted)
        self._stop = asyncio.Event()
        self._signals: asyncio.Task[None] | None = None

    @contextlib.asynccontextmanager
    async def shown(self) -> AsyncIterator[None]:
        """Signals while the block runs, the reply's first message not yet posted."""
        self._live = True
        if not self._out:
            self._start()
        try:
            yield
        finally:
            self._live = False
            self._stop.set()  # a signal in flight is let finish: cutting its request short would leave nothing better

    @contextlib.asynccontextmanager
    async def posting(self) -> AsyncIterator[None]:
        """Around posting the reply's first message: the signals stop, and one still on its way to Discord is let
        land first, or it could land after the message and show "typing…" under it (for up to
        :data:`TYPING_SETTLE_S`; past that it is dropped, with discord.py's retries of it). While Discord takes long
        over the post (discord.py retrying it after a failure), a signal every :data:`TYPING_EVERY_S` keeps
        "typing…" up; a post that fails (an outage costing a preview) starts the signals again."""
        showing = self._live and not self._out
        self._out = True
        self._stop.set()
        if self._signals is not None and not self._signals.done():
            _, late = await asyncio.wait({self._signals}, timeout=TYPING_SETTLE_S)
            for signal in late:
                signal.cancel()
        if not showing:
            yield
            return
        waiting = self._start(after=TYPING_EVERY_S)
        try:
            yield
        except Exception:
            self._out = False
            raise
        finally:
            self._stop.set()
            waiting.cancel()  # a signal it may have on its way is dropped: the message is out, or about to be
            if not self._out and self._live:
                self._start()

    def _start(self, *, after: float = 0.0) -> "asyncio.Task[None]":
        self._stop = stop = asyncio.Event()
        signals = _keep_typing(self.channel, stop, self._wanted, after=after)
        self._signals = task = asyncio.create_task(signals, name="typing")
        task.add_done_callback(_log_failure)
        return task


def _may_read_history(channel: discord.abc.Messageable) -> bool:
    """Whether the bot may read ``channel``'s history, as its cached permissions say (True where they cannot
    tell: a DM, or a guild not cached yet)."""
    if not isinstance(channel, discord.abc.GuildChannel | discord.Thread):
        return True
    me = channel.guild.me
    return me is None or channel.permissions_for(me).read_message_history


def may_send(channel: discord.abc.Messageable) -> bool:
    """Whether the bot may post in ``channel``, as its cached permissions say (Send Messages; in a thread, Send
    Messages in Threads); True where they cannot tell: a DM, or a guild not cached yet."""
    if not isinstance(channel, discord.abc.GuildChannel | discord.Thread):
        return True
    me: discord.Member | None = channel.guild.me  # typed as always there; not before the guild is cached
    if me is None:
        return True
    permissions = channel.permissions_for(me)
    return permissions.send_messages_in_threads if isinstance(channel, discord.Thread) else permissions.send_messages


@contextlib.contextmanager
def only_a_glimpse(channel: discord.abc.Messageable) -> Iterator[None]:
    """Around showing the reply so far in ``channel``: an outage on Discord's side, or its rate limit outlasting
    discord.py's retries, costs this glimpse (logged), not the reply; a refusal goes on to end the turn."""
    try:
        yield
    except (*DISCORD_FAILURES, discord.RateLimited) as exc:
        if not lost_to_discord(exc):
            raise
        log.info("could not show the reply so far in channel %s: %s", getattr(channel, "id", "?"), exc)


@contextlib.contextmanager
def unless_refused(channel: discord.abc.Messageable) -> Iterator[None]:
    """Around showing a reply in ``channel``: Discord refusing it because the person does not accept Hearth's
    messages any more (they blocked it, or closed their DMs) raises :class:`ReplyRefused`, which ends the turn as
    their choice, not as a fault; refusing it for a permission Hearth lacks there (taken away a moment before, its
    cached permissions not yet told) raises :class:`ReplyForbidden`, naming the permission: View Channel where
    Discord answers that the channel is hidden from Hearth (Missing Access). The channel deleted meanwhile (Unknown
    Channel) raises :class:`ChannelGone`."""
    try:
        yield
    except discord.NotFound as exc:
        if exc.code == UNKNOWN_CHANNEL:
            raise ChannelGone(str(exc)) from exc
        raise
    except discord.Forbidden as exc:
        if exc.code == CANNOT_MESSAGE_USER:
            raise ReplyRefused(str(exc)) from exc
        if exc.code == MISSING_PERMISSIONS:
            needed = "Send Messages in Threads" if isinstance(channel, discord.Thread) else "Send Messages"
            raise ReplyForbidden(str(exc), permission=needed) from exc
        if exc.code == MISSING_ACCESS:
            raise ReplyForbidden(str(exc), permission="View Channel") from exc
        raise


def _closed(channel: discord.abc.Messageable) -> bool:
    """A thread archived or locked, as discord.py last heard (THREAD_UPDATE updates the cached thread in place)."""
    return isinstance(channel, discord.Thread) and (channel.archived or channel.locked)


class LeftClosed:
    """Keeps a reply out of a thread a moderator closed (archived or locked) after the reply was asked for: Discord
    reopens an archived thread the bot posts in, and lets a bot that may manage threads post in a locked one. A
    thread closed already then (a moderator asking in a locked thread) is answered."""

    def __init__(self, channel: discord.abc.Messageable) -> None:
        self.channel = channel
        self._closed_before = _closed(channel)

    def check(self) -> None:
        """Raise :class:`ThreadClosed` if the thread was closed since."""
        if _closed(self.channel) and not self._closed_before:
            raise ThreadClosed(f"thread {getattr(self.channel, 'id', '?')} was archived or locked meanwhile")


async def edited(message: Shown, *, content: str, view: discord.ui.View | None = discord.utils.MISSING) -> Shown:
    """``message``, a reply being shown, edited to show ``content`` (pinging no one; ``view`` None takes its buttons
    off); :class:`ReplyRemoved` where it was deleted meanwhile (a moderator took it down)."""
    try:
        return await message.edit(content=content, allowed_mentions=MODEL_MENTIONS, view=view)
    except discord.NotFound as exc:
        if exc.code != UNKNOWN_MESSAGE:
            raise
        raise ReplyRemoved(f"reply {message.id} was deleted as it was shown") from exc


_Posted = TypeVar("_Posted")


class FirstPost(Generic[_Posted]):
    """A reply's first message, begun by a preview: posted once, however that preview ends. A preview cancelled
    while the post is under way (the whole reply is ready) leaves it going, and :meth:`finished` waits for it, so
    the reply edits that message rather than posting a second one."""

    def __init__(self, delete: Callable[[_Posted], Awaitable[None]] | None = None) -> None:
        """``delete``: how a message of the reply is taken down (by default, its own ``delete()``)."""
        self._task: asyncio.Task[_Posted] | None = None
        self._delete = delete

    async def posted(self, post: Callable[[], Awaitable[_Posted]]) -> _Posted:
        """The message ``post`` makes, begun now unless a post is already under way."""
        if self._task is None:
            self._task = asyncio.ensure_future(post())
        task = self._task
        try:
            return await asyncio.shield(task)
        finally:
            if task.done():
                self._task = None

    async def finished(self) -> _Posted | None:
        """The message a cancelled preview began to post, once posted; None when none was begun, or Discord failed
        it (an outage, or its rate limit past discord.py's retries)."""
        task, self._task = self._task, None
        if task is None:
            return None
        try:
            return await task
        except (*DISCORD_FAILURES, discord.RateLimited) as exc:
            if not lost_to_discord(exc):
                raise
            return None

    async def taken_down(self, first: _Posted | None) -> bool:
        """Delete what a reply cut short had shown (``first``, else the message its preview was posting), best
        effort and within :data:`TAKE_DOWN_S`: the person's message still awaits its answer, which the next start
        gives whole, not below a half one. Whether nothing of it is left showing."""
        with contextlib.suppress(*DISCORD_FAILURES, discord.RateLimited):
            async with asyncio.timeout(TAKE_DOWN_S):
                shown = first if first is not None else await self.finished()
                if shown is not None and self._delete is not None:
                    await self._delete(shown)
                elif isinstance(shown, discord.Message | discord.WebhookMessage):
                    await shown.delete()
                return True
        return False

    async def cut_short(self, first: _Posted | None, channel: discord.abc.Messageable) -> None:
        """:meth:`taken_down`, for a reply in ``channel`` cut short by a stop; where it could not be (Discord failing
        or refusing the delete, or slower than :data:`TAKE_DOWN_S`), one line in the log says what is left."""
        if not await self.taken_down(first):
            shown = f"message {first.id}" if isinstance(first, discord.abc.Snowflake) else "its first message"
            log.warning(
                "could not take down a reply cut short in channel %s (%s): it stays half-written",
                getattr(channel, "id", "?"),
                shown,
            )

    async def unfinished(self, first: _Posted, failure: BaseException) -> NotShown:
        """The reply whose first message, ``first``, Discord failed to finish (an outage past discord.py's retries)
        while it showed a preview of part of it: the preview taken down where Discord lets Hearth (best effort), as
        a reply cut short is, rather than left half-written; what failed, for the turn to end on."""
        gone = await self.taken_down(first)
        preview = "its preview taken down" if gone else "its preview left, its removal failing too"
        return NotShown(f"Discord failed the reply's first message ({preview}): {failure}")


Controls = Callable[[], discord.ui.View]
# Makes the target a cast character's reply goes to, from its name and avatar (bot/discord/webhooks.py).
Characters = Callable[[str, str | None], Any]


class _StreamedReply:
    """A reply shown in ``channel``: the first piece opened by :meth:`_open` (and edited while it streams), the
    rest sent after it. ``controls`` makes the buttons a regenerable reply's last piece carries."""

    def __init__(
        self, channel: discord.abc.Messageable, controls: Controls | None = None, characters: Characters | None = None
    ) -> None:
        self.channel = channel
        self.controls = controls
        self.characters = characters
        self.first: discord.Message | None = None
        self.reference: discord.MessageReference | None = None  # the message the first piece answers; None: none
        self._opening: FirstPost[discord.Message] = FirstPost()
        self._cast: list[Any] = []  # the cast characters' targets this reply handed out
        self._whole = False  # shown whole (sent): a stop leaves it, stored or about to be
        self._typing = ReplyTyping(channel)
        self._left_closed = LeftClosed(channel)

    def speaking_as(self, name: str, avatar_url: str | None) -> Any:
        """A cast character's reply target, where there is one; else this one (the bot's own identity)."""
        if self.characters is None:
            return self
        character = self.characters(name, avatar_url)
        self._cast.append(character)
        return character

    def reply_to(self, message_id: int) -> None:
        """The first piece answers ``message_id`` instead (the message it was to answer was deleted while it waited),
        as it would have answered that one; a reply shown as a message of its own stays one."""
        if self.reference is not None:
            self.reference = discord.MessageReference(
                message_id=message_id,
                channel_id=self.reference.channel_id,
                guild_id=self.reference.guild_id,
                fail_if_not_exists=self.reference.fail_if_not_exists,
            )

    async def cut_short(self) -> None:
        """The reply was cancelled before it was whole (the bot is stopping): take down what it had shown, its
        cast characters' included, rather than leave it half-written. A reply already shown whole stays."""
        mine = () if self._whole else (self._opening.cut_short(self.first, self.channel),)
        await asyncio.gather(*mine, *(cast.cut_short() for cast in self._cast))

    def typing(self) -> AbstractAsyncContextManager[None]:
        return self._typing.shown()

    async def _open(self, text: str, view: discord.ui.View = discord.utils.MISSING) -> discord.Message:
        async with self._typing.posting():
            if self.reference is None:
                return await self.channel.send(text, allowed_mentions=MODEL_MENTIONS, view=view)
            return await self._referring(self.reference, text, view)

    async def preview(self, text: str) -> None:
        """Show the reply so far. An outage on Discord's side, or its rate limit outlasting discord.py's retries,
        costs this glimpse, not the reply: the next glimpse, or the whole reply once written, tries again. A
        refusal (the channel or message gone, a permission missing, the thread closed) ends the turn, as it would end
        the reply."""
        self._left_closed.check()
        with unless_refused(self.channel), only_a_glimpse(self.channel):
            if self.first is None:
                self.first = await self._opening.posted(lambda: self._open(text))
            else:
                self.first = await edited(self.first, content=text)

    async def _referring(
        self, reference: discord.MessageReference, text: str, view: discord.ui.View
    ) -> discord.Message:
        """The first piece as a Discord reply to ``reference``; as a message of its own where Discord refuses the
        reply because the bot may not read the channel's history (known from the cached permissions, else from
        Discord's refusal)."""
        if not _may_read_history(self.channel):
            return await self.channel.send(text, allowed_mentions=MODEL_MENTIONS, view=view)
        try:
            return await self.channel.send(
                text, reference=reference, allowed_mentions=MODEL_MENTIONS, mention_author=False, view=view
            )
        except discord.Forbidden as exc:
            if exc.code != REPLY_NEEDS_HISTORY:
                raise
        except discord.HTTPException as exc:
            if exc.code == INVALID_FORM and "message_reference" in exc.text:  # the message is gone
                raise AnswerWithdrawn(f"message {reference.message_id} was deleted") from exc
            raise
        return await self.channel.send(text, allowed_mentions=MODEL_MENTIONS, view=view)

    async def send(self, pieces: Sequence[str], *, regenerable: bool = False) -> list[int]:
        self._left_closed.check()
        with unless_refused(self.channel):
            sent = await self._send(pieces, regenerable=regenerable)
        self._whole = True
        return sent

    async def _send(self, pieces: Sequence[str], *, regenerable: bool) -> list[int]:
        if not pieces:
            return []
        controls = self.controls if regenerable else None
        alone = len(pieces) == 1
        if self.first is None:  # begun by a preview since cancelled: finished, not posted twice
            self.first = await self._opening.finished()
        if self.first is None:
            try:
                self.first = await self._open(
                    pieces[0], controls() if alone and controls is not None else discord.utils.MISSING
                )
            except (*DISCORD_FAILURES, discord.RateLimited) as exc:
                if not lost_to_discord(exc):
                    raise
                raise NotShown(f"Discord failed the reply's first message: {exc}") from exc  # its previews too
        elif self.first.content != pieces[0] or (alone and controls is not None):
            view = controls() if alone and controls is not None else discord.utils.MISSING
            try:
                self.first = await edited(self.first, content=pieces[0], view=view)
            except (*DISCORD_FAILURES, discord.RateLimited) as exc:
                if not lost_to_discord(exc):
                    raise
                if self.first.content == pieces[0]:  # shown whole already, only its buttons lost: it stays
                    log.info("could not put the buttons on reply %s: %s", self.first.id, exc)
                else:  # a preview of part of it: taken down, as a reply cut short is, not left half-written
                    raise await self._opening.unfinished(self.first, exc) from exc
        shown = [self.first]
        for index, piece in enumerate(pieces[1:], start=2):
            view = controls() if index == len(pieces) and controls is not None else discord.utils.MISSING
            try:
                with unless_refused(self.channel):
                    shown.append(await self.channel.send(piece, allowed_mentions=MODEL_MENTIONS, view=view))
            except Exception as exc:  # a refusal or an outage past the retries: the pieces shown stay the reply
                if controls is not None:
                    await self._with_buttons(shown[-1], controls)
                raise PartlyShown([message.id for message in shown]) from cut_short_by(exc)
        return [message.id for message in shown]

    async def _with_buttons(self, message: discord.Message, controls: Controls) -> None:
        """The buttons put on ``message``, the last piece shown of a reply cut short; where Discord will not, the
        piece stays as it is (logged)."""
        try:
            await edited(message, content=message.content, view=controls())
        except (*DISCORD_FAILURES, ReplyRemoved) as exc:
            log.info("could not put the buttons on reply %s, cut short: %s", message.id, exc)


class MessageReply(_StreamedReply):
    """Shows a reply to ``message``: the first piece as a Discord reply to it."""

    def __init__(
        self, message: discord.Message, controls: Controls | None = None, characters: Characters | None = None
    ) -> None:
        super().__init__(message.channel, controls, characters)
        self.reference = message.to_reference()


class ChannelReply(_StreamedReply):
    """Shows a reply in ``channel`` when there is no Message object to reply to (catching up after a restart):
    the first piece as a Discord reply to ``reply_to`` if that message still exists, else as a plain message."""

    def __init__(
        self,
        channel: discord.abc.Messageable,
        channel_id: int,
        reply_to: int | None,
        controls: Controls | None = None,
        characters: Characters | None = None,
    ) -> None:
        super().__init__(channel, controls, characters)
        self.reference = (
            discord.MessageReference(message_id=reply_to, channel_id=channel_id, fail_if_not_exists=False)
            if reply_to is not None
            else None
        )

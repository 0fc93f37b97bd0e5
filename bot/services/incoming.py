"""Plain values that cross the boundary between a front end (Discord, the terminal) and the services."""

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from bot.domain.triggers import MessageSignals


@dataclass(frozen=True, slots=True)
class Author:
    discord_id: int
    username: str
    display_name: str | None = None
    nickname: str | None = None  # the guild nickname, if any
    roles: tuple[str, ...] = ()

    @property
    def shown_name(self) -> str:
        return self.nickname or self.display_name or self.username


@dataclass(frozen=True, slots=True)
class Place:
    """Where a message was written. ``guild_id`` None: a DM."""

    channel_id: int
    channel_name: str | None = None
    guild_id: int | None = None
    guild_name: str | None = None

    @property
    def is_dm(self) -> bool:
        return self.guild_id is None


@dataclass(frozen=True, slots=True)
class Quoted:
    """Someone else's message a message shows (the one it replies to, one it forwards): whose it is, the lines of the
    message's text that show it (exactly as they appear there), the line that stands for it where that person's
    words are not taken (blocked there), and the links of its images among the message's."""

    author_id: int
    said: str
    withheld: str
    image_urls: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class IncomingMessage:
    author: Author
    place: Place
    text: str
    created_at: datetime
    signals: MessageSignals
    message_id: int | None = None
    image_urls: tuple[str, ...] = ()
    quoted: tuple[Quoted, ...] = ()  # the messages of others it shows whose authors are known

    @property
    def memory_place(self) -> str:
        """Whose memories a reply to it may recall, as one key: the server's, or the author's DMs'."""
        return f"guild:{self.place.guild_id}" if self.place.guild_id is not None else f"dm:{self.author.discord_id}"


class ReplyRemoved(Exception):
    """Raised by a :class:`ReplyTarget`: the reply's own message was deleted while it was being shown (a moderator
    took it down), so the turn ends there: the reply is neither shown again nor kept."""


class ReplyRefused(Exception):
    """Raised by a :class:`ReplyTarget`: the person will not be sent the reply (they blocked Hearth, or closed their
    DMs to it), so the turn ends there: nothing is shown, the reply is not kept, and the message is not answered
    later either."""


class ReplyForbidden(ReplyRefused):
    """Raised by a :class:`ReplyTarget`: Discord refused the reply for a permission Hearth lacks where it was to be
    shown (``permission``, as Discord's settings name it), though its cached permissions still allowed it: a
    moderator took the permission away a moment before. The turn ends as for :class:`ReplyRefused` (nothing more
    shown, the reply not kept, the messages not answered later), but it is the server's setting, for whoever runs
    Hearth to hear of."""

    def __init__(self, message: str, *, permission: str) -> None:
        super().__init__(message)
        self.permission = permission


class ChannelGone(ReplyRefused):
    """Raised by a :class:`ReplyTarget`: the channel or thread the reply was to be shown in was deleted meanwhile
    (Discord answers that it does not exist), so the turn ends there as for :class:`ReplyRefused`, and the other
    turns waiting in that channel end unanswered too: nothing can be shown there any more."""


class ThreadClosed(ReplyRefused):
    """Raised by a :class:`ReplyTarget`: a moderator archived or locked the thread the reply was to be shown in
    after it was asked for, and a post there would reopen it against their decision (Discord reopens an archived
    thread a bot posts in, and lets one allowed to manage threads post in a locked one). The turn ends there as for
    :class:`ReplyRefused`; the thread reopened, its next messages are answered as ever."""


class AnswerWithdrawn(Exception):
    """Raised by a :class:`ReplyTarget`: the message being answered was deleted before the reply could be shown
    (the person took it back), so the turn ends unanswered."""


class PartlyShown(Exception):
    """Raised by a :class:`ReplyTarget`: a reply of several messages was cut short, Discord taking its first pieces
    and then refusing or failing the next (a permission taken away, an outage past the retries). ``shown``: the ids
    of the messages that show those first pieces, in order, the last carrying the reply's buttons where it could be
    given them; what stopped the rest is the exception's cause."""

    def __init__(self, shown: list[int]) -> None:
        super().__init__(f"only the first {len(shown)} pieces of the reply were shown")
        self.shown = shown


class NotShown(Exception):
    """Raised by a :class:`ReplyTarget`: the front end failed to show the reply's first message (Discord down past
    its client's retries), so nothing of the reply was shown; what failed is the exception's cause."""


class ReplyTarget(Protocol):
    """How a front end shows Hearth's reply. The service decides what and when; the target only renders. Either
    way of showing may raise :class:`AnswerWithdrawn`."""

    def typing(self) -> AbstractAsyncContextManager[None]:
        """Shown while the reply is written."""
        ...

    async def preview(self, text: str) -> None:
        """The reply so far, while it streams in (called at most once per edit interval)."""
        ...

    def speaking_as(self, name: str, avatar_url: str | None) -> "ReplyTarget":
        """Where a cast character's reply goes: shown under its own name (and avatar), not the bot's."""
        ...

    def reply_to(self, message_id: int) -> None:
        """Show the reply as an answer to ``message_id``, another of the messages it answers, in the same place:
        the one it was to answer was deleted while it waited (a front end that shows no message as answered
        ignores it)."""
        ...

    async def send(self, pieces: Sequence[str], *, regenerable: bool = False) -> list[int]:
        """The final reply, already split into messages; returns the ids of the messages that hold it.
        ``regenerable``: a model's reply, which its reader may ask to have answered again (not a notice). Raises
        :class:`PartlyShown` when its first pieces were shown but not the rest, :class:`NotShown` when not even the
        first was."""
        ...


@dataclass(frozen=True, slots=True)
class Reached:
    """A message stored before a stop, found again by its front end after the start: as it reads now (its author
    may have edited it meanwhile) and where to answer it; no target when it is not to be answered any more (its
    thread was archived meanwhile, and an answer would reopen it)."""

    message: IncomingMessage
    target: ReplyTarget | None


@dataclass(frozen=True, slots=True)
class TurnOutcome:
    """What happened to an incoming message."""

    # "ignored" | "queued" (answered with a later turn) | "replied" | "apologised" | "held" (resting, quota)
    # | "kept" (stored while stopping, answered after the restart) | "lost" (could not be kept while stopping)
    # | "withdrawn" (the message was deleted while being answered) | "removed" (the reply was deleted as it was
    # shown) | "refused" (the person no longer accepts Hearth's messages: the reply could not be sent)
    # | "forbidden" (Discord refused the reply for a permission Hearth lacks in the channel: not sent, not kept)
    # | "gone" (the channel was deleted while its turn waited or ran: not sent, not kept)
    # | "closed" (the thread was archived or locked while its turn waited or ran: not sent, not kept)
    # | "undelivered" (the front end failed to show any of the reply, Discord down: not kept)
    status: str
    reply: str | None = None
    sent_ids: list[int] = field(default_factory=list)
    answered_messages: int = 0
    own_ms: float = 0.0  # message in to reply out, model time excluded: Hearth's own share of the wait
    model_ms: float = 0.0

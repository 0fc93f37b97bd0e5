"""Cast characters speak through one webhook per channel, made by Hearth on first use and reused after."""

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager

import discord

from bot.discord.render import (
    DISCORD_FAILURES,
    INVALID_WEBHOOK_TOKEN,
    MODEL_MENTIONS,
    UNKNOWN_WEBHOOK,
    FirstPost,
    LeftClosed,
    ReplyTyping,
    cut_short_by,
    edited,
    lost_to_discord,
    only_a_glimpse,
    unless_refused,
)
from bot.domain.chunking import split_message
from bot.services.incoming import NotShown, PartlyShown

log = logging.getLogger(__name__)

WEBHOOK_NAME = "Hearth cast"
# After Discord refuses a channel's webhook (no permission, or as many webhooks as it allows), how long its
# cast speaks as the bot before Hearth asks again: not once per message, each a request against the rate limit.
RETRY_REFUSED_AFTER_S = 300.0
# After Discord fails a channel's webhook (5xx past discord.py's retries, which take it about 25 s), how long its
# cast speaks as the bot at once, as the bot's own replies do, before the webhook is tried again: the wait is paid
# once for an outage of Discord's webhooks, not again for each message said meanwhile.
RETRY_FAILED_AFTER_S = 60.0


class ChannelWebhooks:
    """The webhook Hearth speaks through in each channel: found among the channel's own (one Hearth made), else
    created; None where Hearth may not manage webhooks (said once in the log until it may again)."""

    def __init__(self, me: Callable[[], discord.abc.Snowflake | None]) -> None:
        self.me = me  # the bot's user, known once it has logged in
        self._hooks: dict[int, discord.Webhook] = {}
        self._refused_until: dict[int, float] = {}  # channel → when to ask Discord again
        self._failed_until: dict[int, float] = {}  # channel → when to try its webhook again after an outage
        self._said_refused: set[int] = set()
        self._finding: dict[int, asyncio.Future[discord.Webhook | None]] = {}  # channel → its webhook looked for
        # Names Discord refuses as a webhook message's author (with "clyde" or "discord" in them, say).
        self._refused_names: set[str] = set()

    async def of(self, channel: discord.abc.Messageable) -> discord.Webhook | None:
        if not isinstance(channel, discord.TextChannel):
            return None  # threads and DMs: no webhooks of their own
        if time.monotonic() < self._failed_until.get(channel.id, 0.0):
            return None
        hook = self._hooks.get(channel.id)
        if hook is not None:
            return hook
        finding = self._finding.get(channel.id)
        if finding is None:  # one look for it at a time, its answer shared by all who need it meanwhile
            finding = self._finding[channel.id] = asyncio.ensure_future(self._found(channel))
            finding.add_done_callback(lambda done: self._finding.pop(channel.id, None))
        return await asyncio.shield(finding)

    async def _found(self, channel: discord.TextChannel) -> discord.Webhook | None:
        if not channel.permissions_for(channel.guild.me).manage_webhooks:  # known here: no request to be refused
            self._say_refused(channel.id, "no Manage Webhooks permission")
            return None
        if time.monotonic() < self._refused_until.get(channel.id, 0.0):
            return None
        me = self.me()
        try:
            hook = next(
                (h for h in await channel.webhooks() if h.user and me and h.user.id == me.id and h.token), None
            ) or await channel.create_webhook(name=WEBHOOK_NAME, reason="Characters of this channel's cast")
        except discord.HTTPException as exc:  # Forbidden, or the channel holds as many webhooks as Discord allows
            if not isinstance(exc, discord.DiscordServerError):  # an outage passes: ask again next time
                self._refused_until[channel.id] = time.monotonic() + RETRY_REFUSED_AFTER_S
            reason = "no Manage Webhooks permission" if isinstance(exc, discord.Forbidden) else str(exc)
            self._say_refused(channel.id, reason)
            return None
        self._refused_until.pop(channel.id, None)
        self._said_refused.discard(channel.id)
        self._hooks[channel.id] = hook
        return hook

    def _say_refused(self, channel_id: int, reason: str) -> None:
        if channel_id not in self._said_refused:
            self._said_refused.add(channel_id)
            log.warning("no webhook in channel %s (%s): its cast speaks as the bot", channel_id, reason)

    def takes_name(self, name: str) -> bool:
        """Whether a webhook message may go out under ``name`` (not yet refused by Discord)."""
        return name not in self._refused_names

    def name_refused(self, name: str, reason: object) -> None:
        """Discord refused a webhook message under ``name`` (a 400): its character speaks through the bot."""
        self._refused_names.add(name)
        log.warning("Discord refused a webhook message as %r (%s): it speaks through the bot", name, reason)

    def failed(self, channel_id: int, reason: object) -> None:
        """Discord failed the channel's webhook (an outage, or its rate limit, past discord.py's retries): its cast
        speaks as the bot for :data:`RETRY_FAILED_AFTER_S` (said once in the log for each outage)."""
        if time.monotonic() >= self._failed_until.get(channel_id, 0.0):
            log.warning(
                "Discord failed the webhook in channel %s (%s): its cast speaks as the bot for %.0f s",
                channel_id,
                reason,
                RETRY_FAILED_AFTER_S,
            )
        self._failed_until[channel_id] = time.monotonic() + RETRY_FAILED_AFTER_S

    def forget(self, channel_id: int) -> None:
        """The webhook was deleted (by an admin): make or find another next time."""
        self._hooks.pop(channel_id, None)


class CharacterReply:
    """A cast character's reply in ``channel``: sent through the channel's webhook under the character's name
    and avatar; where there is no webhook, by the bot with the name in front of the first message it says for the
    character (the reply's first, or one after the webhook's, the webhook deleted or failing meanwhile). Its
    replies carry no buttons (a webhook's message cannot be regenerated as the character). Discord refusing or failing
    it ends it as it ends the bot's own reply: a refusal raises :class:`ReplyRefused` (a permission:
    :class:`ReplyForbidden`), the first message failed raises :class:`NotShown`, and a reply cut short, a message
    after the first refused or failed, raises :class:`PartlyShown` with the messages that show its first pieces (a
    piece the name pushed on into a message of its own counts once that message is shown too)."""

    def __init__(
        self, channel: discord.abc.Messageable, webhooks: ChannelWebhooks, name: str, avatar_url: str | None
    ) -> None:
        self.channel = channel
        self.webhooks = webhooks
        self.name = name[:80]  # Discord's limit for a webhook's username
        self.avatar_url = avatar_url
        self.first: discord.Message | discord.WebhookMessage | None = None
        self._opening: FirstPost[discord.Message | discord.WebhookMessage] = FirstPost(self._take_down)
        self._whole = False  # shown whole (sent): a stop leaves it, stored or about to be
        self._typing = ReplyTyping(channel, self._said_by_the_bot)
        self._left_closed = LeftClosed(channel)

    async def _said_by_the_bot(self) -> bool:
        """Whether the reply is to be said by the bot, not through the channel's webhook: only then does it show
        "Hearth is typing…". Discord clears that when the bot posts, not when a webhook does, so a character's
        reply through the webhook would leave the bot typing under it for up to ten seconds."""
        return not self.webhooks.takes_name(self.name) or await self.webhooks.of(self.channel) is None

    def typing(self) -> AbstractAsyncContextManager[None]:
        return self._typing.shown()

    def speaking_as(self, name: str, avatar_url: str | None) -> "CharacterReply":
        return CharacterReply(self.channel, self.webhooks, name, avatar_url)

    def reply_to(self, message_id: int) -> None:
        """A character's message is shown as an answer to none."""

    async def cut_short(self) -> None:
        """The reply was cancelled before it was whole: take down what it had shown (see FirstPost.taken_down). A
        reply already shown whole stays."""
        if not self._whole:
            await self._opening.cut_short(self.first, self.channel)

    async def preview(self, text: str) -> None:
        # Discord's outages and rate limits cost the glimpse, not the reply; a refusal ends the turn, as it would end
        # the reply.
        self._left_closed.check()
        with unless_refused(self.channel), only_a_glimpse(self.channel):
            await self._show(text)

    async def send(self, pieces: Sequence[str], *, regenerable: bool = False) -> list[int]:
        if not pieces:
            return []
        self._left_closed.check()
        with unless_refused(self.channel):
            if self.first is None:  # begun by a preview since cancelled: finished, not posted twice
                self.first = await self._opening.finished()
            opened = self.first is not None
            try:
                first = await self._show(pieces[0])
            except (*DISCORD_FAILURES, discord.RateLimited) as exc:
                if not lost_to_discord(exc):
                    raise
                if opened and self.first is not None:  # a preview of part of it: not left half-written
                    raise await self._opening.unfinished(self.first, exc) from exc
                raise NotShown(f"Discord failed the reply's first message: {exc}") from exc  # its previews too
        # Through the bot, the name in front may push the first piece past 2,000 characters: what it pushes out
        # goes on in the next message.
        overflow = [] if isinstance(first, discord.WebhookMessage) else self._named(pieces[0])[1:]
        sent, shown = [first.id], [first.id]  # every message; those that end one of ``pieces``
        last = first
        for index, piece in enumerate([*overflow, *pieces[1:]]):
            try:
                with unless_refused(self.channel):
                    posted = await self._post(piece, named=isinstance(last, discord.WebhookMessage))
            except Exception as exc:  # a refusal or an outage past the retries: the pieces shown stay the reply
                raise PartlyShown(shown) from cut_short_by(exc)
            last = posted[-1]
            sent.extend(message.id for message in posted)
            if index >= len(overflow):
                shown.append(sent[-1])
        self._whole = True
        return sent

    async def _show(self, text: str) -> discord.Message | discord.WebhookMessage:
        """The first message: posted, then edited as the reply streams in."""
        if self.first is None:
            self.first = await self._opening.posted(lambda: self._open(text))
        elif isinstance(self.first, discord.WebhookMessage):
            if self.first.content != text:
                try:
                    self.first = await edited(self.first, content=text)
                except discord.HTTPException as exc:
                    if not _webhook_gone(exc):
                        raise
                    self.first = await self._instead_of(self.first, text)
        elif self.first.content != (shown := self._named(text)[0]):
            self.first = await edited(self.first, content=shown)
        return self.first

    async def _instead_of(self, stale: discord.WebhookMessage, text: str) -> discord.Message:
        """The first message anew, by the bot with the character's name in front: the webhook ``stale`` went through
        was deleted as the reply streamed into it (it can no longer be edited). ``stale`` is taken down where the
        bot may: a webhook's message, once its webhook is gone, only with Manage Messages in the channel."""
        self.webhooks.forget(getattr(self.channel, "id", 0))
        message = await self.channel.send(self._named(text)[0], allowed_mentions=MODEL_MENTIONS)
        channel = getattr(self.channel, "id", "?")
        try:
            if isinstance(self.channel, discord.TextChannel):  # the only channels with webhooks of their own
                await self.channel.get_partial_message(stale.id).delete()
        except discord.NotFound:
            pass  # deleted already
        except discord.Forbidden:
            log.warning(
                "left %s's unfinished message %s in channel %s (its webhook deleted): taking it down needs the"
                " Manage Messages permission",
                self.name,
                stale.id,
                channel,
            )
        except DISCORD_FAILURES as exc:
            unfinished = f"{self.name}'s unfinished message {stale.id}"
            log.info("could not take down %s in channel %s: %s", unfinished, channel, exc)
        return message

    async def _take_down(self, message: discord.Message | discord.WebhookMessage) -> None:
        """Delete ``message``, a reply's unfinished first message: through its webhook if it went through one, which
        may delete its own messages; where Discord no longer takes that webhook (deleted, its token refused, or
        failing), by the bot, as the Manage Messages permission lets it."""
        try:
            await message.delete()
        except discord.HTTPException as exc:
            if not isinstance(message, discord.WebhookMessage) or not isinstance(self.channel, discord.TextChannel):
                raise
            if _webhook_gone(exc):
                self.webhooks.forget(self.channel.id)
            elif not isinstance(exc, discord.DiscordServerError):
                raise
            await self.channel.get_partial_message(message.id).delete()

    async def _open(self, text: str) -> discord.Message | discord.WebhookMessage:
        """The reply's first message: through the webhook if it may, else by the bot, the character's name in front
        (what the name pushes past Discord's limit goes on with the reply's next messages)."""
        async with self._typing.posting():
            message: discord.Message | discord.WebhookMessage | None = await self._through_webhook(text)
            if message is None:
                message = await self.channel.send(self._named(text)[0], allowed_mentions=MODEL_MENTIONS)
            return message

    async def _post(self, text: str, *, named: bool) -> list[discord.Message | discord.WebhookMessage]:
        """A message of the reply after the first: through the webhook if it may, else by the bot. ``named``: the
        message before it is the webhook's (deleted meanwhile, or refusing this character), so the bot puts the
        character's name in front, in as many messages as that takes: readers see whose words it goes on with."""
        message = await self._through_webhook(text)
        if message is not None:
            return [message]
        posted: list[discord.Message | discord.WebhookMessage] = []
        for part in self._named(text) if named else [text]:
            posted.append(await self.channel.send(part, allowed_mentions=MODEL_MENTIONS))
        return posted

    async def _through_webhook(self, text: str) -> discord.WebhookMessage | None:
        """``text`` sent through the channel's webhook under the character's name; None where it may not be (no
        webhook, the webhook deleted or refused, or the name refused): the bot says it instead."""
        hook = await self.webhooks.of(self.channel) if self.webhooks.takes_name(self.name) else None
        if hook is None:
            return None
        try:
            return await hook.send(
                text,
                username=self.name,
                avatar_url=self.avatar_url or discord.utils.MISSING,
                allowed_mentions=MODEL_MENTIONS,
                wait=True,
            )
        except (discord.NotFound, discord.Forbidden):  # deleted, or the permission taken away: as the bot
            self.webhooks.forget(getattr(self.channel, "id", 0))
        except discord.HTTPException as exc:
            if lost_to_discord(exc):  # an outage or a rate limit past the retries: the bot says it, not waiting again
                self.webhooks.failed(getattr(self.channel, "id", 0), exc)
                return None
            if _webhook_gone(exc):  # its token no longer taken: as if deleted
                self.webhooks.forget(getattr(self.channel, "id", 0))
                return None
            if exc.status != 400:
                raise
            # The webhook is fine, the message as this character is not (Discord refuses names with "clyde" or
            # "discord" in them for a webhook's author): the bot says it, the name in front, from now on.
            self.webhooks.name_refused(self.name, exc)
        return None

    def _named(self, text: str) -> list[str]:
        """``text`` as the bot posts it when there is no webhook: the character's name in front, in as many
        messages as that takes (a code block cut is closed and reopened as in any long reply)."""
        return split_message(f"**{self.name}:** {text}")


def _webhook_gone(exc: discord.HTTPException) -> bool:
    """Whether Discord answered a call to a channel's webhook as for one that is gone: deleted (404, Unknown
    Webhook), or its token no longer taken (401, Invalid Webhook Token)."""
    return (exc.status, exc.code) in ((404, UNKNOWN_WEBHOOK), (401, INVALID_WEBHOOK_TOKEN))

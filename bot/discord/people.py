"""Discord users and places as the services' plain values."""

import asyncio
import logging
import re
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime

import discord

from bot.discord.render import DISCORD_FAILURES
from bot.domain.images import Attachment, shown_images
from bot.services.directory import Directory, Identity
from bot.services.incoming import Author, Place, Quoted

log = logging.getLogger(__name__)


def author_of(user: discord.User | discord.Member) -> Author:
    nickname = user.nick if isinstance(user, discord.Member) else None
    roles = tuple(role.name for role in user.roles[1:]) if isinstance(user, discord.Member) else ()
    return Author(discord_id=user.id, username=user.name, display_name=user.global_name, nickname=nickname, roles=roles)


def said_in(message: discord.Message, client: discord.Client, names: Mapping[int, str] | None = None) -> str:
    """What ``message`` says, as Hearth keeps and answers it: its text (mentions shown as names), then, a line each,
    every sticker sent with it by name (``[sticker: Wave]``) and every file the model is not shown (a document, a
    voice message: ``[file: notes.pdf]``), so that one sent alone is said too; a poll (a message of its own, with
    no text) as its question and answers (``[poll: Where to? (Rome / Oslo)]``); then what it forwards (Discord's
    "Forward" copies a message into it, with no words of its own), the same way, after ``[forwarded]``, its mentions
    shown as names from ``client``'s cache and ``names`` (see :func:`forwarded_text`); or, for a reply to someone
    else's message, that message after ``[in reply to Ben]`` (see :func:`replied_to`), its start when it is long.
    The embeds of what it forwards or replies to (another bot's post is often embeds alone) come as lines of their
    own (see :func:`embed_said`); its own are left out: they are the previews of links it holds, which Discord
    adds a moment later."""
    return said_and_quoted(message, client, names)[0]


def said_and_quoted(
    message: discord.Message, client: discord.Client, names: Mapping[int, str] | None = None
) -> tuple[str, tuple[Quoted, ...]]:
    """What ``message`` says (see :func:`said_in`), and the messages of others it shows there whose authors are
    known: the one it replies to, and one it forwards that ``client`` saw written (Discord does not say whose a
    forwarded message is)."""
    shown = set(shown_images(files_of(message, client)))

    def marks(stickers: Sequence[discord.StickerItem], attachments: Sequence[discord.Attachment]) -> list[str]:
        named = [f"[sticker: {sticker.name}]" for sticker in stickers]
        return named + [f"[file: {a.filename}]" for a in attachments if a.url not in shown]

    def block(parts: Sequence[str]) -> str:
        return "\n".join(part for part in parts if part)

    parts = [text_of(message, client), *marks(message.stickers, message.attachments)]
    if message.poll is not None:
        parts.append(poll_said(message.poll))
    quoted: list[Quoted] = []
    reference = message.reference
    for forwarded in message.message_snapshots:
        text = forwarded_text(forwarded, message, client, names)
        said = block(
            [
                "[forwarded]",
                text,
                *marks(forwarded.stickers, forwarded.attachments),
                *(embed_said(embed) for embed in forwarded.embeds),
            ]
        )
        parts.append(said)
        original = forwarded.cached_message or (reference.cached_message if reference else None)
        if original is not None:
            images = tuple(a.url for a in forwarded.attachments)
            quoted.append(Quoted(original.author.id, said, "[forwarded from a blocked member]", images))
    replied = replied_to(message, client)
    if replied is not None:
        said = block(
            [
                f"[in reply to {replied.author.display_name}]",
                _cut(text_of(replied, client), MAX_QUOTED_CHARS),
                *marks(replied.stickers, replied.attachments),
                poll_said(replied.poll) if replied.poll else "",
                *(embed_said(e) for e in replied.embeds),
            ]
        )
        parts.append(said)
        images = tuple(a.url for a in replied.attachments)
        quoted.append(Quoted(replied.author.id, said, "[in reply to a blocked member]", images))
    return block(parts), tuple(quoted)


def embed_said(embed: discord.Embed) -> str:
    """An embed (another bot's post, a link's preview) as a line: its title, text and fields, the start of them
    when long; empty when it has no words (an image alone)."""
    head = ": ".join(part for part in (embed.title, embed.description) if part)
    fields = (f"{field.name}: {field.value}" for field in embed.fields)
    said = " ".join("; ".join(part for part in (head, *fields) if part).split())  # on one line
    return f"[embed: {_cut(said, MAX_EMBED_CHARS)}]" if said else ""


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def replied_to(message: discord.Message, client: discord.Client) -> discord.Message | None:
    """The message ``message`` replies to when its words are someone else's, which Hearth was not shown otherwise
    (replying to Ben's message with "@Hearth is that right?" asks about Ben's words); None for a reply to Hearth's
    own message or a cast character's (the conversation holds their words), to a deleted message, or none."""
    reference = message.reference
    resolved = reference.resolved if reference else None
    if not isinstance(resolved, discord.Message) or message.message_snapshots:
        return None
    me = client.user
    if me is not None and resolved.author.id == me.id:
        return None
    own_webhook = resolved.webhook_id is not None and resolved.application_id is not None
    if own_webhook and resolved.application_id == client.application_id:
        return None  # a webhook Hearth made: a cast character speaking
    return resolved


# How much of a message someone replies to is quoted with their reply (a Nitro message may hold 4,000 characters).
MAX_QUOTED_CHARS = 500
MAX_EMBED_CHARS = 300  # of each embed with it, or with what it forwards

_MENTION = re.compile(r"<(@[!&]?|#)([0-9]{15,20})>")


def text_of(message: discord.Message, client: discord.Client) -> str:
    """``message``'s text with its mentions shown as names, as ``clean_content`` shows them, except channels: each
    named wherever ``client`` sees it (``clean_content`` looks only among the message's own server's channels, and
    in a DM nowhere, and calls every other "#deleted-channel", which the model takes at its word); one it does not
    see is ``#unknown-channel``, as in a forward. @everyone and @here are made plain words."""
    guild = message.guild

    def name(match: re.Match[str]) -> str:
        kind, target = match[1], int(match[2])
        if kind == "#":
            return _channel_named(client, target)
        if kind == "@&":
            role = (guild.get_role(target) if guild else None) or discord.utils.get(message.role_mentions, id=target)
            return f"@{role.name}" if role else "@unknown-role"
        person = (guild.get_member(target) if guild else None) or discord.utils.get(message.mentions, id=target)
        return f"@{person.display_name}" if person else "@unknown-user"

    return discord.utils.escape_mentions(_MENTION.sub(name, message.content))


def _channel_named(client: discord.Client, channel_id: int) -> str:
    channel = client.get_channel(channel_id)
    return f"#{getattr(channel, 'name', None) or 'unknown-channel'}"


def forwarded_text(
    forwarded: discord.MessageSnapshot,
    message: discord.Message,
    client: discord.Client,
    names: Mapping[int, str] | None = None,
) -> str:
    """The text ``message`` forwards with its mentions shown as names, as :func:`text_of` shows a message's own
    (discord.py has none for a forward): from the original message when ``client`` saw it, else from what the
    client knows. Without the members intent it knows few people: besides the one forwarding and Hearth, the
    people of the server the original was written in that it has seen, and those in ``names`` (looked up: see
    :class:`ForwardedNames`); roles of that server and channels it sees by name; others as ``@unknown-user``
    (``@unknown-role``, ``#unknown-channel``). @everyone and @here are made plain words, as there."""
    original = forwarded.cached_message
    if original is not None:
        return text_of(original, client)
    person_named = _person_namer(message, client)
    origin = _origin(message, client)

    def name(match: re.Match[str]) -> str:
        kind, target = match[1], int(match[2])
        if kind == "#":
            return _channel_named(client, target)
        if kind == "@&":
            role = origin.get_role(target) if origin else None
            return f"@{role.name}" if role else "@unknown-role"
        person = person_named(target) or (names or {}).get(target)
        return f"@{person}" if person else "@unknown-user"

    return discord.utils.escape_mentions(_MENTION.sub(name, forwarded.content))


def unnamed_in_forwards(message: discord.Message, client: discord.Client) -> list[int]:
    """The people mentioned in what ``message`` forwards whom ``client`` cannot name (see :func:`forwarded_text`),
    in the order they are mentioned, each once."""
    person_named = _person_namer(message, client)
    found = [
        int(match[2])
        for forwarded in message.message_snapshots
        if forwarded.cached_message is None
        for match in _MENTION.finditer(forwarded.content)
        if match[1] in ("@", "@!")
    ]
    return [target for target in dict.fromkeys(found) if person_named(target) is None]


def _origin(message: discord.Message, client: discord.Client) -> discord.Guild | None:
    """The server the message ``message`` forwards was written in, where the client has it."""
    reference = message.reference
    return client.get_guild(reference.guild_id) if reference and reference.guild_id else message.guild


def _person_namer(message: discord.Message, client: discord.Client) -> Callable[[int], str | None]:
    """How the client names a person mentioned in what ``message`` forwards, from what it has seen (None: not)."""
    origin = _origin(message, client)
    known = {person.id: person for person in (client.user, message.author, *message.mentions) if person}

    def named(target: int) -> str | None:
        member = origin.get_member(target) if origin else None
        person = member or known.get(target) or client.get_user(target)
        return person.display_name if person else None

    return named


class ForwardedNames:
    """The names of people mentioned in a forwarded message whom Hearth has not seen (discord.py keeps no mentions
    for a forward, and without the members intent it knows few people), asked of Discord: ``per_message`` of them
    at most, together, waiting ``wait_s`` at most (a person Discord did not name in time stays unnamed, and the
    message goes on), and remembered, the latest ``size`` (a person Discord does not know as well)."""

    def __init__(self, client: discord.Client, *, per_message: int = 3, wait_s: float = 2.0, size: int = 1000) -> None:
        self.client = client
        self.per_message = per_message
        self.wait_s = wait_s
        self.size = size
        self._known: OrderedDict[int, str | None] = OrderedDict()

    async def of(self, message: discord.Message) -> dict[int, str]:
        """The names, looked up where needed, of the people ``message`` forwards mentions of whom Hearth has not
        seen; those neither known nor found are left out."""
        if not message.message_snapshots:
            return {}
        wanted = unnamed_in_forwards(message, self.client)
        asking = [target for target in wanted if target not in self._known][: self.per_message]
        if asking:
            lookups = [asyncio.create_task(self._look_up(target)) for target in asking]
            _, late = await asyncio.wait(lookups, timeout=self.wait_s)
            for lookup in late:
                lookup.cancel()
        names: dict[int, str] = {}
        for target in wanted:
            if (name := self._known.get(target)) is not None:
                self._known.move_to_end(target)
                names[target] = name
        return names

    async def _look_up(self, target: int) -> None:
        try:
            user = await self.client.fetch_user(target)
        except discord.NotFound:
            self._remember(target, None)
        except DISCORD_FAILURES as exc:  # not remembered: asked again when next mentioned
            log.info("could not look up user %s, mentioned in a forwarded message (%s)", target, exc)
        else:
            self._remember(target, user.display_name)

    def _remember(self, target: int, name: str | None) -> None:
        self._known[target] = name
        self._known.move_to_end(target)
        while len(self._known) > self.size:
            self._known.popitem(last=False)


def poll_said(poll: discord.Poll) -> str:
    """A poll as a line: its question, then its answers (an answer that is only an emoji, as that emoji)."""
    answers = " / ".join(answer.text or str(answer.emoji or "") for answer in poll.answers)
    return f"[poll: {poll.question} ({answers})]"


def files_of(message: discord.Message, client: discord.Client) -> list[Attachment]:
    """The files sent with ``message``, those of the messages it forwards included, and those of the message it
    replies to when that is someone else's (see :func:`replied_to`): "what breed is this?" under a photo asks
    about the photo."""
    replied = replied_to(message, client)
    attached = [
        *message.attachments,
        *(a for forwarded in message.message_snapshots for a in forwarded.attachments),
        *(replied.attachments if replied is not None else ()),
    ]
    return [Attachment(a.url, a.content_type, a.size) for a in attached]


def replied_webhook_name(message: discord.Message) -> str | None:
    """The name on the webhook message ``message`` replies to (a cast character's), if it does: replying to a
    character is talking to it."""
    reference = message.reference
    resolved = reference.resolved if reference else None
    if isinstance(resolved, discord.Message) and resolved.webhook_id is not None:
        return resolved.author.display_name
    return None


def place_of(interaction: discord.Interaction) -> Place:
    channel = interaction.channel
    guild = interaction.guild
    return Place(
        channel_id=interaction.channel_id or 0,
        channel_name=getattr(channel, "name", None),
        guild_id=interaction.guild_id,
        guild_name=guild.name if guild else None,
    )


async def identify(directory: Directory, interaction: discord.Interaction) -> Identity:
    """The row ids of the person running a command and of the guild it runs in (None in DMs)."""
    return await directory.identify(author_of(interaction.user), place_of(interaction), datetime.now(UTC))

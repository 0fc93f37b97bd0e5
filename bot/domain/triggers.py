"""When Hearth answers a message: a pure decision on facts the Discord layer already knows."""

import re
from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class MessageSignals:
    """What the Discord layer observed about a message, as plain values."""

    text: str
    author_id: int
    channel_id: int
    is_dm: bool
    author_is_bot: bool = False
    is_webhook: bool = False
    is_own: bool = False
    mentions_bot: bool = False
    replies_to_bot: bool = False
    author_role_ids: frozenset[int] = frozenset()  # the author's roles in the guild (none in DMs)
    replied_to_webhook_name: str | None = None  # the name shown on a webhook message it replies to (a character)
    parent_channel_id: int | None = None  # in a thread (a forum's post too): the channel the thread is in


@dataclass(frozen=True, slots=True)
class ChatRules:
    """The parts of a guild's settings that decide whether Hearth speaks there."""

    chat_channels: frozenset[int] = field(default_factory=frozenset)
    blocked_channels: frozenset[int] = field(default_factory=frozenset)
    blocked_users: frozenset[int] = field(default_factory=frozenset)
    allowed_roles: frozenset[int] = field(default_factory=frozenset)  # when any, only their members are answered
    reply_mode: str = "name"  # see bot/domain/guild_settings.py REPLY_MODES
    chime_in_percent: int = 0  # chance of joining in, unasked, outside chat channels


# Where a name is not said: links (a post's slug, a search: "…/my-new-hearth-build/", "?q=hearth"), and Discord's
# markup for a custom emoji ("<:hearth:123…>", named by whoever made it) and for a mention or a channel.
_NOT_SAID = re.compile(r"(?:\w+://|www\.)\S+|<a?:\w+:\d+>|<(?:@[!&]?|#)\d+>", re.IGNORECASE)


def names_persona(text: str, persona_name: str) -> bool:
    """True if ``persona_name`` appears in ``text`` as a word of its own, in any case; not as part of a link or
    a file name ("hearth.example.com", "https://example.com/my-hearth", "hearth.py"), nor as a custom emoji's
    name."""
    name = persona_name.strip()
    if not name:
        return False
    said = _NOT_SAID.sub(" ", text)
    return re.search(rf"(?<![\w/.]){re.escape(name)}(?![\w/]|\.\w)", said, re.IGNORECASE) is not None


def said_in(signals: MessageSignals, channels: frozenset[int]) -> bool:
    """True if the message was said in one of ``channels`` or in a thread of one: a thread belongs to its channel,
    so what an admin set for the channel (blocked, a chat channel) holds in its threads."""
    parent = signals.parent_channel_id
    return signals.channel_id in channels or (parent is not None and parent in channels)


def blocked(signals: MessageSignals, rules: ChatRules) -> bool:
    """Whether the message's author, or the channel (or its thread's parent) it was said in, is blocked."""
    return signals.author_id in rules.blocked_users or said_in(signals, rules.blocked_channels)


def should_reply(signals: MessageSignals, rules: ChatRules, persona_name: str, *, roll: float = 1.0) -> bool:
    """``roll`` is a uniform draw in [0, 1) made by the caller: below the chime-in share, Hearth joins in unasked."""
    if signals.is_own or signals.author_is_bot or signals.is_webhook:
        return False
    if blocked(signals, rules):
        return False
    if signals.is_dm:
        return True
    if rules.allowed_roles and not rules.allowed_roles & signals.author_role_ids:
        return False
    if said_in(signals, rules.chat_channels):
        return True
    if rules.reply_mode == "chat-only":
        return False
    if signals.mentions_bot or signals.replies_to_bot:
        return True
    if rules.reply_mode == "name" and names_persona(signals.text, persona_name):
        return True
    return roll * 100 < rules.chime_in_percent


def addressed_character(signals: MessageSignals, names: Sequence[str]) -> str | None:
    """Which of a channel's cast ``names`` a message is for: the one whose message it replies to, else the first
    it names as a word of its own; None when it is for none of them."""
    replied = (signals.replied_to_webhook_name or "").strip().casefold()
    for name in names:
        if replied and name.strip().casefold() == replied:
            return name
    for name in names:
        if names_persona(signals.text, name):
            return name
    return None

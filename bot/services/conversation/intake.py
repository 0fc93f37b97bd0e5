"""Intake, the first stage of a message: clean it, then decide whether Hearth answers it here.

Deciding reads the place's guild settings and persona. While the database cannot be read, what was last read
for that place stands in (or the defaults), so a database fault never decides that Hearth stays silent.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace

from bot.db.engine import DATABASE_FAULTS
from bot.domain import guild_settings
from bot.domain.text import clean_text
from bot.domain.triggers import ChatRules, addressed_character, should_reply
from bot.services.conversation.config import DEFAULT_VIEW
from bot.services.directory import Directory, GuildView
from bot.services.incoming import IncomingMessage
from bot.services.personas import PersonaService, PersonaView

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Decision:
    """Hearth answers this message: who speaks, and under which guild settings."""

    guild: GuildView | None  # None in DMs
    persona: PersonaView
    settings: guild_settings.GuildSettings
    # Set when ``persona`` is a character of the channel's cast (it speaks through the webhook): the name of the
    # channel's own persona, whose replies carry no speaker.
    host: str | None = None

    @property
    def in_cast(self) -> bool:
        return self.host is not None


def storable(incoming: IncomingMessage) -> IncomingMessage:
    """The message with its text and every name cleaned as storage requires (see bot/domain/text.py): a NUL or
    a lone surrogate anywhere would fail the insert, the embedder and the model's request alike."""
    author, place = incoming.author, incoming.place

    def clean(value: str | None) -> str | None:
        return None if value is None else clean_text(value)

    return replace(
        incoming,
        text=clean_text(incoming.text),
        author=replace(
            author,
            username=clean_text(author.username),
            display_name=clean(author.display_name),
            nickname=clean(author.nickname),
            roles=tuple(clean_text(role) for role in author.roles),
        ),
        place=replace(place, channel_name=clean(place.channel_name), guild_name=clean(place.guild_name)),
        signals=replace(incoming.signals, text=clean_text(incoming.signals.text)),
        quoted=tuple(
            replace(quoted, said=clean_text(quoted.said), withheld=clean_text(quoted.withheld))
            for quoted in incoming.quoted
        ),
    )


def withheld(incoming: IncomingMessage, decision: Decision) -> IncomingMessage:
    """``incoming`` without the words and images of people blocked where it was said: a message of theirs it
    replies to or forwards is only said to be a blocked member's (Hearth neither answers nor keeps what they say,
    whoever brings it)."""
    blocked = decision.guild.rules.blocked_users if decision.guild is not None else frozenset()
    text, images = incoming.text, incoming.image_urls
    for quoted in incoming.quoted:
        if quoted.author_id in blocked and quoted.said in text:
            text = text.replace(quoted.said, quoted.withheld, 1)
            images = tuple(url for url in images if url not in quoted.image_urls)
    if text == incoming.text and images == incoming.image_urls:
        return incoming
    return replace(incoming, text=text, image_urls=images)


class Intake:
    def __init__(self, directory: Directory, personas: PersonaService, *, roll: Callable[[], float]) -> None:
        self.directory = directory
        self.personas = personas
        self.roll = roll
        # The last guild settings and persona read for each place (Discord guild id, None: DMs): what a reply
        # uses while the database cannot be read. Unlike the caches behind them, never dropped after a fault.
        self._last_guild: dict[int, GuildView] = {}
        self._last_persona: dict[tuple[int, int] | None, PersonaView] = {}  # (guild, channel); None: DMs

    async def decide(self, incoming: IncomingMessage) -> Decision | None:
        """Who answers ``incoming`` (a cleaned message) and how, or None when Hearth stays out of it."""
        decision = await self.place_of(incoming)
        rules = decision.guild.rules if decision.guild else ChatRules()
        character = await self._character_for(incoming, decision)
        if character is not None:
            # Named or replied to, a character is addressed as the bot is when mentioned; the guild's rules on
            # who and where (blocks, roles, blocked channels) still hold.
            signals = replace(incoming.signals, mentions_bot=True)
            if not should_reply(signals, rules, character.name, roll=self.roll()):
                return None
            return replace(decision, persona=character, host=decision.persona.name)
        if not should_reply(incoming.signals, rules, decision.persona.name, roll=self.roll()):
            return None
        return decision

    async def speaker_of(self, incoming: IncomingMessage) -> Decision:
        """Who answers ``incoming``, a message already decided on (stored awaiting its reply): the cast character
        it names or replies to, as :meth:`decide` chose when it came, else the place's persona."""
        decision = await self.place_of(incoming)
        character = await self._character_for(incoming, decision)
        return decision if character is None else replace(decision, persona=character, host=decision.persona.name)

    async def _character_for(self, incoming: IncomingMessage, decision: Decision) -> PersonaView | None:
        """The cast character ``incoming`` names or replies to, if the channel has a cast."""
        if decision.guild is None:
            return None
        try:
            cast = await self.personas.cast(decision.guild.guild_id, _settings_channel(incoming))
        except DATABASE_FAULTS as exc:
            log.warning("channel %s's cast unreadable (%s); answering as the bot", incoming.place.channel_id, exc)
            return None
        name = addressed_character(incoming.signals, [member.name for member in cast])
        return next((member for member in cast if member.name == name), None)

    async def place_of(self, incoming: IncomingMessage) -> Decision:
        """The guild's settings and the persona that speaks where ``incoming`` was said."""
        guild = await self._guild_of(incoming)
        persona = await self._persona_of(incoming, guild)
        return Decision(guild, persona, guild.typed if guild else guild_settings.GuildSettings())

    async def _guild_of(self, incoming: IncomingMessage) -> GuildView | None:
        place = incoming.place
        if place.guild_id is None:
            return None
        try:
            view = await self.directory.guild(place)
        except DATABASE_FAULTS as exc:
            log.warning("guild %s settings unreadable (%s); using the last ones read", place.guild_id, exc)
            return self._last_guild.get(place.guild_id)
        if view is not None:
            self._last_guild[place.guild_id] = view
        return view

    async def _persona_of(self, incoming: IncomingMessage, guild: GuildView | None) -> PersonaView:
        """The channel's persona, else the guild's (in DMs, the global one)."""
        place = incoming.place
        key = (place.guild_id, place.channel_id) if place.guild_id is not None else None
        last = self._last_persona.get(key)
        if key is not None and guild is None:  # the guild itself could not be read: nor can its persona
            return last or DEFAULT_VIEW
        try:
            if guild is None:
                persona = await self.personas.for_guild(None)
            else:
                persona = await self.personas.for_channel(guild.guild_id, _settings_channel(incoming))
        except DATABASE_FAULTS as exc:
            log.warning("persona for guild %s unreadable (%s); using the last one read", place.guild_id, exc)
            return last or DEFAULT_VIEW
        self._last_persona[key] = persona
        return persona


def _settings_channel(incoming: IncomingMessage) -> int:
    """The channel whose persona and cast apply: a thread's own channel (a thread has no settings of its own)."""
    return incoming.signals.parent_channel_id or incoming.place.channel_id

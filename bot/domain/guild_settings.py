"""A guild's settings: what its admins may change, how each value is checked, and how it reads back.

Settings live as one JSON object per guild (``guilds.settings``). This module is the one place that knows
their keys, their defaults and their limits, so the admin commands, the chat rules and the scheduler agree.
Each ``check_*`` returns the value to store or raises :class:`InvalidSetting` with a message fit to show the
admin as is.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import time
from typing import Any, Literal

from bot.errors import HearthError

ReplyMode = Literal["mention", "name", "chat-only"]
REPLY_MODES: dict[str, str] = {
    "mention": "only when @mentioned or replied to (and everything in chat channels)",
    "name": "also when its name is said (the default)",
    "chat-only": "only in chat channels; mentions elsewhere are ignored",
}
DEFAULT_REPLY_MODE: ReplyMode = "name"

MAX_COOLDOWN_S = 60.0
MAX_LANGUAGE_CHARS = 40
MAX_MODEL_CHARS = 200


class InvalidSetting(HearthError, ValueError):
    """A value an admin gave is outside what the setting allows."""


@dataclass(frozen=True, slots=True)
class GuildSettings:
    """The typed view of ``guilds.settings``; unset keys take the documented defaults (None: the bot's own)."""

    chat_channels: frozenset[int] = frozenset()
    blocked_users: frozenset[int] = frozenset()  # Discord user ids: neither answered nor learned from
    blocked_channels: frozenset[int] = frozenset()  # Discord channel ids where Hearth says nothing
    allowed_roles: frozenset[int] = frozenset()  # when any: only members with one of these roles are answered
    reply_mode: ReplyMode = DEFAULT_REPLY_MODE
    chime_in_percent: int = 0
    learning: bool = True
    proactive: bool = True
    quiet_hours: tuple[time, time] | None = None
    language: str | None = None
    model: str | None = None
    temperature: float | None = None
    cooldown_s: float | None = None
    daily_token_quota: int | None = None  # None or 0: no quota


def _int_or(value: Any, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _float_or_none(value: Any) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def quiet_hours_of(value: Any) -> tuple[time, time] | None:
    """A stored ``quiet_hours`` ({"start": "22:00", "end": "08:00"}); None when unset or unreadable."""
    if not isinstance(value, dict):
        return None
    try:
        return time.fromisoformat(str(value["start"])), time.fromisoformat(str(value["end"]))
    except (KeyError, ValueError):
        return None


def _ids(values: Any) -> frozenset[int]:
    """A stored list of Discord ids; what does not read as a positive id is left out."""
    if not isinstance(values, list | tuple):
        return frozenset()
    return frozenset(value for value in (_int_or(item, 0) for item in values) if value > 0)


def read(settings: dict[str, Any]) -> GuildSettings:
    """The typed settings; a stored value that no longer reads is treated as unset, never as an error."""
    mode = settings.get("reply_mode")
    quota = _int_or(settings.get("daily_token_quota"), 0)
    return GuildSettings(
        chat_channels=_ids(settings.get("chat_channels", [])),
        blocked_users=_ids(settings.get("blocked_users", [])),
        blocked_channels=_ids(settings.get("blocked_channels", [])),
        allowed_roles=_ids(settings.get("allowed_roles", [])),
        reply_mode=mode if mode in REPLY_MODES else DEFAULT_REPLY_MODE,
        chime_in_percent=min(max(_int_or(settings.get("chime_in"), 0), 0), 100),
        learning=settings.get("learning") is not False,
        proactive=settings.get("proactive") is not False,
        quiet_hours=quiet_hours_of(settings.get("quiet_hours")),
        language=str(settings["language"]) if settings.get("language") else None,
        model=str(settings["model"]) if settings.get("model") else None,
        temperature=_float_or_none(settings.get("temperature")),
        cooldown_s=_float_or_none(settings.get("cooldown")),
        daily_token_quota=quota if quota > 0 else None,
    )


def without(
    settings: GuildSettings, *, channels: frozenset[int] = frozenset(), roles: frozenset[int] = frozenset()
) -> dict[str, list[int]]:
    """The changes that take ``channels`` off the chat and blocked channels and ``roles`` off the allowed roles
    (things deleted on Discord); only the lists that hold any of them change, so nothing to take off is no change."""
    lists = {
        "chat_channels": (settings.chat_channels, channels),
        "blocked_channels": (settings.blocked_channels, channels),
        "allowed_roles": (settings.allowed_roles, roles),
    }
    return {key: sorted(listed - gone) for key, (listed, gone) in lists.items() if listed & gone}


def check_reply_mode(value: str) -> str:
    mode = value.strip().lower()
    if mode not in REPLY_MODES:
        raise InvalidSetting(f"Reply mode must be one of: {', '.join(REPLY_MODES)}.")
    return mode


def check_percent(value: float) -> int:
    if not 0 <= value <= 100:
        raise InvalidSetting(f"Chime-in is a percentage from 0 to 100, not {value:g}.")
    return round(value)


def parse_clock(value: str) -> time:
    """ "22:00", "7:30", "7" or "23h" → a time of day."""
    text = value.strip().lower().removesuffix("h")
    try:
        hour, _, minute = text.partition(":")
        parsed = time(int(hour), int(minute or 0))
    except ValueError:
        raise InvalidSetting(f"{value!r} is not a time of day: use 24-hour HH:MM, like 22:00 or 07:30.") from None
    return parsed


def check_quiet_hours(start: str, end: str) -> dict[str, str]:
    begins, ends = parse_clock(start), parse_clock(end)
    if begins == ends:
        raise InvalidSetting("Quiet hours must start and end at different times.")
    return {"start": begins.isoformat("minutes"), "end": ends.isoformat("minutes")}


def check_language(value: str) -> str:
    language = " ".join(value.split())
    if not language or len(language) > MAX_LANGUAGE_CHARS:
        raise InvalidSetting(f"Name a language in at most {MAX_LANGUAGE_CHARS} characters, like Portuguese or 日本語.")
    return language


def check_model(value: str) -> str:
    model = value.strip()
    if not model or len(model) > MAX_MODEL_CHARS or any(c.isspace() for c in model):
        raise InvalidSetting("A model name is one word as your endpoint spells it, like gpt-4o-mini or llama3.1:8b.")
    return model


def check_temperature(value: float) -> float:
    if not 0 <= value <= 2:
        raise InvalidSetting(f"Temperature goes from 0 (steady) to 2 (wild), not {value:g}.")
    return round(value, 2)


def cooldown_s(settings: GuildSettings | None, default_s: float) -> float:
    """Seconds a member waits between two replies or two commands: the server's ``/config cooldown`` when it
    chose one, else the bot's ``default_s`` (USER_COOLDOWN_SECONDS); DMs (``settings`` None) use the default."""
    if settings is None or settings.cooldown_s is None:
        return default_s
    return settings.cooldown_s


ChosenBy = Literal["server", "persona", "bot"]


@dataclass(frozen=True, slots=True)
class InEffect:
    """A model setting as replies use it, and whose choice it is."""

    value: Any
    chosen_by: ChosenBy


# The model settings a persona's ``config`` may choose for its replies.
PERSONA_MODEL_KEYS = ("model", "temperature", "max_tokens")


def persona_choices(persona_config: Mapping[str, Any]) -> dict[str, Any]:
    """The model settings a persona's config chooses itself, in ``PERSONA_MODEL_KEYS`` order; a key unset or
    null chooses nothing."""
    return {key: persona_config[key] for key in PERSONA_MODEL_KEYS if persona_config.get(key) is not None}


def in_effect(server_choice: object, persona_config: Mapping[str, Any], key: str, default: object) -> InEffect:
    """A model setting replies use (``key``: one of ``PERSONA_MODEL_KEYS``): the server's choice (``/config``),
    else the persona's own (its ``config[key]``), else the bot's ``default``."""
    if server_choice is not None:
        return InEffect(server_choice, "server")
    persona_choice = persona_choices(persona_config).get(key)
    if persona_choice is not None:
        return InEffect(persona_choice, "persona")
    return InEffect(default, "bot")


def check_cooldown(value: float) -> float:
    if not 0 <= value <= MAX_COOLDOWN_S:
        raise InvalidSetting(f"The cooldown is from 0 to {MAX_COOLDOWN_S:g} seconds, not {value:g}.")
    return round(value, 2)


def check_quota(value: int) -> int:
    if value < 0:
        raise InvalidSetting(f"A daily token quota cannot be negative ({value}); 0 means no quota.")
    return value

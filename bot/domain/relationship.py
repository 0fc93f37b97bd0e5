"""How close Hearth is to someone in one place: a score from 0 to 100 that grows with kind, deep and
frequent talk and fades slowly when they stay away.

Levels, by score (each is the lower bound, inclusive), and how many friendly exchanges (sentiment 0.5,
depth 0.3) it takes to get there from nothing; warm, deep talk (1, 1) gets there in about half as many:

    level          score   exchanges
    stranger           0           0
    acquaintance      15         ~10
    friend            35         ~30
    good friend       60         ~60
    close friend      80        ~100

Gains shrink as the score grows (each gain is scaled by the room left below 100), so early closeness
comes quickly and the top is slow. Hostile exchanges cost points whatever the score, so a friendship
is not a shield, and the score never leaves [0, 100].

The stored score is the score as of ``last_interaction_at``. Absence is applied on read: ``decayed``
gives the score as of ``now`` and ``after_exchange`` folds the absence in before adding the new
exchange. Store only what ``after_exchange`` returns, so decay is never counted twice.
"""

import math
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Literal

MAX_SCORE = 100.0


class Level(StrEnum):
    STRANGER = "stranger"
    ACQUAINTANCE = "acquaintance"
    FRIEND = "friend"
    GOOD_FRIEND = "good friend"
    CLOSE_FRIEND = "close friend"


# The lowest score of each level, highest first so the first match wins.
LEVEL_THRESHOLDS: tuple[tuple[float, Level], ...] = (
    (80.0, Level.CLOSE_FRIEND),
    (60.0, Level.GOOD_FRIEND),
    (35.0, Level.FRIEND),
    (15.0, Level.ACQUAINTANCE),
    (0.0, Level.STRANGER),
)

# An exchange's raw gain, before diminishing returns: showing up counts, warmth and depth count more.
BASE_GAIN = 0.5
SENTIMENT_GAIN = 1.5  # times a positive sentiment
DEPTH_GAIN = 1.0  # times depth
# Sentiment at or below this is hostile and costs points; between it and zero an exchange counts as
# neutral, so someone who is sad or venting is not pushed away for it.
HOSTILE_BELOW = -0.25
POSITIVE_FROM = 0.25
MAX_LOSS = 5.0  # points lost to a fully hostile exchange (sentiment -1)

# Absence: nothing is lost for two weeks; after that the part of the score above the floor halves
# every 60 days. The floor is half the score they had reached: a close friend (80+) who vanishes for a
# year is still a friend (40+), a good friend fades to an acquaintance at worst, never to a stranger.
DECAY_GRACE = timedelta(days=14)
DECAY_HALF_LIFE = timedelta(days=60)
DECAY_FLOOR_SHARE = 0.5

ReferenceKind = Literal["nickname", "inside_joke"]
MAX_NICKNAMES = 5
MAX_INSIDE_JOKES = 10
MAX_REFERENCE_CHARS = 120

_TONES: dict[Level, str] = {
    Level.STRANGER: "polite and friendly, a little reserved: you are just getting to know them.",
    Level.ACQUAINTANCE: "friendly and relaxed: you have talked a few times; a light joke is fine.",
    Level.FRIEND: "warm and casual: you know each other; joke, and remember what they told you.",
    Level.GOOD_FRIEND: "warm and familiar: tease gently, bring up things you have shared, speak openly.",
    Level.CLOSE_FRIEND: (
        "warm and familiar; use their nickname and your inside jokes if you have any; speak openly, as old friends do."
    ),
}

_STANDING: dict[Level, str] = {
    Level.STRANGER: "You have only just met them.",
    Level.ACQUAINTANCE: "They are an acquaintance of yours.",
    Level.FRIEND: "They are a friend of yours.",
    Level.GOOD_FRIEND: "They are a good friend of yours.",
    Level.CLOSE_FRIEND: "They are a close friend of yours.",
}


@dataclass(frozen=True, slots=True)
class Relationship:
    """Hearth and one user in one guild (or in DMs). References are newest first."""

    score: float = 0.0
    interaction_count: int = 0
    positive_count: int = 0
    negative_count: int = 0
    last_interaction_at: datetime | None = None
    nicknames: tuple[str, ...] = ()
    inside_jokes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not 0.0 <= self.score <= MAX_SCORE:
            raise ValueError(f"score must be within [0, {MAX_SCORE:g}], got {self.score!r}")
        if min(self.interaction_count, self.positive_count, self.negative_count) < 0:
            raise ValueError("counts cannot be negative")

    @property
    def level(self) -> Level:
        return level_of(self.score)


def level_of(score: float) -> Level:
    for threshold, level in LEVEL_THRESHOLDS:
        if score >= threshold:
            return level
    return Level.STRANGER


def _clamp(value: float, low: float, high: float) -> float:
    """``value`` within [low, high]; NaN (a broken upstream estimate) counts as 0, i.e. neutral."""
    return min(max(0.0 if math.isnan(value) else value, low), high)


def score_change(score: float, *, sentiment: float, depth: float) -> float:
    """Points an exchange adds (or, when hostile, removes) at ``score``, before bounds."""
    sentiment = _clamp(sentiment, -1.0, 1.0)
    depth = _clamp(depth, 0.0, 1.0)
    if sentiment <= HOSTILE_BELOW:
        return -MAX_LOSS * (HOSTILE_BELOW - sentiment) / (1.0 + HOSTILE_BELOW)
    raw = BASE_GAIN + SENTIMENT_GAIN * max(sentiment, 0.0) + DEPTH_GAIN * depth
    return raw * (MAX_SCORE - score) / MAX_SCORE


def decay_floor(score: float) -> float:
    return score * DECAY_FLOOR_SHARE


def decayed(state: Relationship, *, now: datetime) -> Relationship:
    """The relationship as of ``now``, after any absence since the last exchange (see the module notes)."""
    if state.last_interaction_at is None:
        return state
    fading = now - state.last_interaction_at - DECAY_GRACE
    if fading <= timedelta(0):
        return state
    floor = decay_floor(state.score)
    remaining = 0.5 ** (fading / DECAY_HALF_LIFE)
    return replace(state, score=floor + (state.score - floor) * remaining)


def after_exchange(state: Relationship, *, sentiment: float, depth: float, at: datetime) -> Relationship:
    """The relationship after one exchange at ``at``.

    ``sentiment`` is how the user treated the conversation, -1 (hostile) to 1 (warm); ``depth`` is how
    personal or substantial it was, 0 (small talk) to 1 (a real heart-to-heart).
    """
    sentiment = _clamp(sentiment, -1.0, 1.0)
    current = decayed(state, now=at)
    score = _clamp(current.score + score_change(current.score, sentiment=sentiment, depth=depth), 0.0, MAX_SCORE)
    last = at if state.last_interaction_at is None else max(state.last_interaction_at, at)
    return replace(
        current,
        score=score,
        interaction_count=current.interaction_count + 1,
        positive_count=current.positive_count + (sentiment >= POSITIVE_FROM),
        negative_count=current.negative_count + (sentiment <= HOSTILE_BELOW),
        last_interaction_at=last,
    )


def _clean_reference(text: str) -> str:
    return " ".join(text.split())[:MAX_REFERENCE_CHARS].strip()


def _remember(items: tuple[str, ...], text: str, limit: int) -> tuple[str, ...]:
    """``text`` first, an earlier copy (in any case) removed, the oldest dropped past ``limit``."""
    kept = tuple(item for item in items if item.casefold() != text.casefold())
    return (text, *kept)[:limit]


def with_reference(state: Relationship, kind: ReferenceKind, text: str) -> Relationship:
    """Remember a nickname or an inside joke; the lists stay short so the prompt stays small."""
    cleaned = _clean_reference(text)
    if not cleaned:
        return state
    if kind == "nickname":
        return replace(state, nicknames=_remember(state.nicknames, cleaned, MAX_NICKNAMES))
    if kind == "inside_joke":
        return replace(state, inside_jokes=_remember(state.inside_jokes, cleaned, MAX_INSIDE_JOKES))
    raise ValueError(f"unknown reference kind: {kind!r}")


def tone_for(level: Level) -> str:
    """One line of guidance for the prompt: how to sound with someone at this level."""
    return _TONES[level]


def describe(state: Relationship, *, now: datetime | None = None) -> str:
    """The relationship section of the prompt: level, tone, and what the two of them share."""
    current = decayed(state, now=now) if now is not None else state
    level = current.level
    lines = [f"{_STANDING[level]} Be {tone_for(level)}"]
    if current.nicknames:
        lines.append("You call them: " + ", ".join(current.nicknames) + ".")
    if current.inside_jokes:
        lines.append("Your inside jokes: " + "; ".join(current.inside_jokes) + ".")
    return "\n".join(lines)

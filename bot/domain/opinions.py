"""Hearth's opinions: what it comes to think of a topic after talking about it a few times.

Sentiment is a running average in which earlier discussions weigh more than later ones: the newest
counts 1/(n + 2) after n ≥ 1 discussions (never less than 1/20, so a view can still change over many
talks). Once formed (three discussions), an opinion stronger than ±0.25 cannot change sign in one
discussion, however strong. Interest grows with each discussion, faster for strong feelings, closing a
share of the room left below 1, so it approaches 1 and never passes it.
"""

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime

MIN_DISCUSSIONS = 3
INERTIA = 1  # extra weight of the past, in discussions, on top of the plain running mean
MIN_WEIGHT = 0.05
INITIAL_INTEREST = 0.3
INTEREST_GAIN = 0.15  # share of the room left below 1 that a strongly felt discussion adds

# Stances voiced in the prompt, strongest first: (lowest sentiment, phrase).
LOVE_FROM = 0.6
LIKE_FROM = 0.25
DISLIKE_BELOW = -0.25
HATE_BELOW = -0.6
# A formed but mixed opinion is voiced only when the topic holds Hearth's interest.
VOICE_MIXED_FROM_INTEREST = 0.6


@dataclass(frozen=True, slots=True)
class Opinion:
    topic: str
    sentiment: float = 0.0
    interest: float = INITIAL_INTEREST
    discussion_count: int = 0
    formed_at: datetime | None = None
    last_discussed_at: datetime | None = None

    def __post_init__(self) -> None:
        if not -1.0 <= self.sentiment <= 1.0:
            raise ValueError(f"sentiment must be within [-1, 1], got {self.sentiment!r}")
        if not 0.0 <= self.interest <= 1.0:
            raise ValueError(f"interest must be within [0, 1], got {self.interest!r}")
        if self.discussion_count < 0:
            raise ValueError("discussion_count cannot be negative")


def normalize_topic(topic: str) -> str:
    """Topics are stored lower-case with single spaces, so "Rock  Climbing" and "rock climbing" meet."""
    return " ".join(topic.split()).lower()


_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)*")
# Topics are matched as runs of up to this many words of the message ("rock climbing", "the cello").
TOPIC_WORDS = 3


def topics_in(text: str, max_words: int = TOPIC_WORDS) -> list[str]:
    """Every run of one to ``max_words`` words of ``text``, normalised as opinion topics are."""
    words = [w.lower() for w in _WORD.findall(text)]
    runs = {" ".join(words[i : i + n]) for n in range(1, max_words + 1) for i in range(len(words) - n + 1)}
    return sorted(normalize_topic(run) for run in runs if run)


def topics_said(texts: Iterable[str], topics: Iterable[str]) -> set[str]:
    """The ``topics`` (as stored) that some text of ``texts`` says in so many words: what would make an opinion
    on them carry that person's words (erasure)."""
    by_words = {" ".join(w.lower() for w in _WORD.findall(topic)): topic for topic in topics}
    by_words.pop("", None)
    if not by_words:
        return set()
    longest = max(len(words.split()) for words in by_words)
    said: set[str] = set()
    for text in texts:
        said.update(by_words[run] for run in topics_in(text, longest) if run in by_words)
    return said


def _clamp(value: float, low: float, high: float) -> float:
    """``value`` within [low, high]; NaN (a broken upstream estimate) counts as 0, i.e. neutral."""
    return min(max(0.0 if math.isnan(value) else value, low), high)


def weight_of_next(discussion_count: int) -> float:
    """How much the next discussion counts after ``discussion_count`` earlier ones."""
    if discussion_count <= 0:
        return 1.0
    return max(1.0 / (discussion_count + 1 + INERTIA), MIN_WEIGHT)


def after_discussion(opinion: Opinion | None, *, topic: str, sentiment: float, at: datetime) -> Opinion:
    """The opinion on ``topic`` after one more discussion in which it came across with ``sentiment``."""
    name = normalize_topic(topic)
    if not name:
        raise ValueError("topic cannot be empty")
    current = opinion or Opinion(topic=name)
    if normalize_topic(current.topic) != name:
        raise ValueError(f"opinion on {current.topic!r} cannot take a discussion of {topic!r}")
    sentiment = _clamp(sentiment, -1.0, 1.0)
    weight = weight_of_next(current.discussion_count)
    interest = current.interest + INTEREST_GAIN * (1.0 - current.interest) * (0.5 + 0.5 * abs(sentiment))
    count = current.discussion_count + 1
    formed_at = current.formed_at or (at if count >= MIN_DISCUSSIONS else None)
    return replace(
        current,
        topic=name,
        sentiment=_clamp(current.sentiment + weight * (sentiment - current.sentiment), -1.0, 1.0),
        interest=_clamp(interest, 0.0, 1.0),
        discussion_count=count,
        formed_at=formed_at,
        last_discussed_at=at if current.last_discussed_at is None else max(current.last_discussed_at, at),
    )


def is_formed(opinion: Opinion, min_discussions: int = MIN_DISCUSSIONS) -> bool:
    return opinion.discussion_count >= min_discussions


def voice(opinion: Opinion) -> str | None:
    """A line for the prompt ("You love bouldering."), or None while unformed or with nothing to say."""
    if not is_formed(opinion):
        return None
    topic = opinion.topic
    if opinion.sentiment >= LOVE_FROM:
        return f"You love {topic}."
    if opinion.sentiment >= LIKE_FROM:
        return f"You like {topic}."
    if opinion.sentiment <= HATE_BELOW:
        return f"You dislike {topic}."
    if opinion.sentiment <= DISLIKE_BELOW:
        return f"You find {topic} tiresome."
    if opinion.interest >= VOICE_MIXED_FROM_INTEREST:
        return f"You find {topic} interesting, though you have mixed feelings about it."
    return None

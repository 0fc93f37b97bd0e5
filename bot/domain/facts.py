"""Facts about people: what to do with a freshly extracted fact, how long it stays true, which ones reach the
prompt first, and when two members' facts go together.

Pure rules; the learner and the fact repository bring the rows and the embeddings. A fact is never edited in
place: a change supersedes the old row and a retraction deactivates it, so ``decide`` only names the stored
fact a new one acts on.
"""

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

import numpy as np
import numpy.typing as npt

from bot.domain.extraction import MAX_EXPIRES_IN_DAYS, ExtractedFact

MIN_CONFIDENCE = 0.5  # extracted facts below this are ignored
SAME_SIMILARITY = 0.9  # cosine at which a "new" fact is the same as a stored one
SHORT_TERM_DAYS = 14  # default expiry of a short-term fact
ASSOCIATION_SIMILARITY = 0.75  # cosine from which two members' facts of one kind go together
# Share of the doubt left (1 - confidence) that a fully confident confirmation removes.
CONFIRMATION_GAIN = 0.5

# prompt_order's score: what the fact is worth in general, and how much it matters right now.
IMPORTANCE_WEIGHT = 0.4
CONFIDENCE_WEIGHT = 0.2
RELEVANCE_WEIGHT = 0.3  # times the cosine with the message at hand, when known
RECENCY_WEIGHT = 0.1  # mild: a fact brought up lately is a little more likely to matter again
RECENCY_HALF_LIFE = timedelta(days=30)

# Same-type facts that make two members go together, and what the association is called.
ASSOCIATION_TYPES: dict[str, str] = {
    "hobby": "shared_interest",
    "preference": "shared_interest",
    "work": "same_work",
    "location": "same_place",
}
# association_strength at ASSOCIATION_SIMILARITY; it rises linearly to 1 at identical facts.
THRESHOLD_STRENGTH = 0.5

# Month names for fact_line, not strftime's %b, which follows the process locale.
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

DecisionKind = Literal["add", "refresh", "supersede", "retract", "ignore"]

_ACTION_DECISIONS: dict[str, DecisionKind] = {"same": "refresh", "changed": "supersede", "retracted": "retract"}


@dataclass(frozen=True, slots=True)
class StoredFact:
    """A fact Hearth holds about someone, current or not: what the fact repository returns, and what these rules
    and the services read."""

    id: int
    user_id: int
    fact_type: str
    content: str
    confidence: float
    importance: float
    scope: str  # dm | guild | global
    guild_id: int | None
    learned_at: datetime
    last_referenced_at: datetime | None = None
    expiry_date: datetime | None = None
    temporal_relevance: str | None = None
    is_active: bool = True
    valid_to: datetime | None = None
    superseded_by: int | None = None  # the fact that replaced it; None while current, or when retracted
    source: str = "conversation"
    embedding: npt.NDArray[np.float32] | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class FactDecision:
    kind: DecisionKind
    target_id: int | None = None  # the stored fact refreshed, superseded or retracted


def _clamp(value: float, low: float, high: float) -> float:
    """``value`` within [low, high]; NaN (a broken upstream estimate) counts as ``low``."""
    return min(max(low if math.isnan(value) else value, low), high)


def decide(fact: ExtractedFact, known_ids: Collection[int], nearest: tuple[int, float] | None) -> FactDecision:
    """What to do with ``fact``.

    ``known_ids`` are the ids of the speaker's stored facts that the model was shown: only those can be named
    by same/changed/retracted, so a made-up id cannot touch another fact. ``nearest`` is the speaker's closest
    current stored fact by cosine similarity to the new content, as (id, similarity), or None. An action with
    an unusable id falls back to "new", except a retraction, which has nothing left to say.
    """
    if not fact.confidence >= MIN_CONFIDENCE:
        return FactDecision("ignore")
    if fact.action != "new":
        if fact.existing_id is not None and fact.existing_id in known_ids:
            return FactDecision(_ACTION_DECISIONS[fact.action], fact.existing_id)
        if fact.action == "retracted":
            return FactDecision("ignore")
    if nearest is not None and nearest[1] >= SAME_SIMILARITY:
        return FactDecision("refresh", nearest[0])
    return FactDecision("add")


def refreshed_confidence(old: float, seen: float) -> float:
    """Confidence after a confirmation seen with confidence ``seen``: it closes part of the doubt left, so it
    grows with diminishing returns, never drops and never passes 1."""
    old = _clamp(old, 0.0, 1.0)
    return _clamp(old + (1.0 - old) * CONFIRMATION_GAIN * _clamp(seen, 0.0, 1.0), old, 1.0)


def expiry_for(temporal: str, expires_in_days: int | None, learned_at: datetime) -> datetime | None:
    """When a fact stops being true: after its explicit days if given (at least one), after SHORT_TERM_DAYS
    for a short-term fact without them, else never."""
    if expires_in_days is not None:
        return learned_at + timedelta(days=min(max(expires_in_days, 1), MAX_EXPIRES_IN_DAYS))
    if temporal == "short_term":
        return learned_at + timedelta(days=SHORT_TERM_DAYS)
    return None


def is_current(fact: StoredFact, now: datetime) -> bool:
    """Active and not yet expired; a fact is expired from its expiry date on."""
    return fact.is_active and (fact.expiry_date is None or now < fact.expiry_date)


def _recency(fact: StoredFact, now: datetime) -> float:
    """1 for a fact referenced (or, never referenced, learned) just now, halving every RECENCY_HALF_LIFE."""
    last = fact.last_referenced_at or fact.learned_at
    age = max(now - last, timedelta(0))
    return float(0.5 ** (age / RECENCY_HALF_LIFE))


def _score(fact: StoredFact, now: datetime, relevance: Mapping[int, float]) -> float:
    return (
        IMPORTANCE_WEIGHT * _clamp(fact.importance, 0.0, 1.0)
        + CONFIDENCE_WEIGHT * _clamp(fact.confidence, 0.0, 1.0)
        + RELEVANCE_WEIGHT * _clamp(relevance.get(fact.id, 0.0), 0.0, 1.0)
        + RECENCY_WEIGHT * _recency(fact, now)
    )


def prompt_order(
    facts: Sequence[StoredFact], now: datetime, relevance: Mapping[int, float] | None = None
) -> list[StoredFact]:
    """Current facts, best first for the prompt. ``relevance`` maps fact ids to their cosine similarity with the
    message being answered; a fact missing from it counts as unrelated. Ties go to the lower id."""
    scores = relevance or {}
    current = [fact for fact in facts if is_current(fact, now)]
    return sorted(current, key=lambda fact: (-_score(fact, now, scores), fact.id))


def fact_line(fact: StoredFact) -> str:
    """The fact as the prompt lists it: "works as a nurse", or "has exams (until 3 Dec)" when it will expire.
    The year is added only when it differs from the year the fact was learned."""
    content = fact.content.strip()
    if fact.expiry_date is None:
        return content
    until = f"{fact.expiry_date.day} {_MONTHS[fact.expiry_date.month - 1]}"
    if fact.expiry_date.year != fact.learned_at.year:
        until += f" {fact.expiry_date.year}"
    return f"{content} (until {until})"


def association_type(type_a: str, type_b: str, similarity: float) -> str | None:
    """What two members' facts have in common ("shared_interest", "same_work", "same_place"), or None.

    Only judges the two facts; whether they may be compared at all (members of the same guild, facts learned
    in that guild's scope, never DMs) is for the caller to decide before asking.
    """
    if type_a != type_b or not similarity >= ASSOCIATION_SIMILARITY:
        return None
    return ASSOCIATION_TYPES.get(type_a)


def association_strength(similarity: float) -> float:
    """How strongly two associated facts go together, in [0, 1]: THRESHOLD_STRENGTH at ASSOCIATION_SIMILARITY,
    rising linearly to 1 for identical facts; non-decreasing in ``similarity``."""
    if math.isnan(similarity):
        return 0.0
    slope = (1.0 - THRESHOLD_STRENGTH) / (1.0 - ASSOCIATION_SIMILARITY)
    return _clamp(THRESHOLD_STRENGTH + slope * (similarity - ASSOCIATION_SIMILARITY), 0.0, 1.0)

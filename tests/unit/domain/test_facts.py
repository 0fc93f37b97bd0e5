import itertools
import math
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.domain.extraction import MAX_EXPIRES_IN_DAYS, ExtractedFact
from bot.domain.facts import (
    ASSOCIATION_SIMILARITY,
    MIN_CONFIDENCE,
    SAME_SIMILARITY,
    SHORT_TERM_DAYS,
    FactDecision,
    StoredFact,
    association_strength,
    association_type,
    decide,
    expiry_for,
    fact_line,
    is_current,
    prompt_order,
    refreshed_confidence,
)

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
KNOWN = {12, 13}
CLOSE = (5, 0.95)  # a stored fact saying the same thing
FAR = (5, 0.6)


def extracted(action: Any = "new", existing_id: int | None = None, confidence: float = 0.9) -> ExtractedFact:
    return ExtractedFact(
        speaker="Ana",
        action=action,
        existing_id=existing_id,
        type="work",
        content="works as a nurse",
        confidence=confidence,
    )


def stored(fact_id: int, **fields: Any) -> StoredFact:
    values: dict[str, Any] = {
        "user_id": 1,
        "fact_type": "hobby",
        "content": f"fact {fact_id}",
        "confidence": 0.8,
        "importance": 0.5,
        "scope": "dm",
        "guild_id": None,
        "learned_at": T0,
        **fields,
    }
    return StoredFact(id=fact_id, **values)


@pytest.mark.parametrize(
    ("action", "existing_id", "confidence", "nearest", "decision"),
    [
        # Too unsure: nothing happens, whatever the action.
        ("new", None, 0.49, None, FactDecision("ignore")),
        ("same", 12, 0.2, None, FactDecision("ignore")),
        ("changed", 12, 0.3, CLOSE, FactDecision("ignore")),
        ("retracted", 12, 0.1, None, FactDecision("ignore")),
        ("new", None, MIN_CONFIDENCE, None, FactDecision("add")),
        # A known id acts on that fact.
        ("same", 12, 0.9, None, FactDecision("refresh", 12)),
        ("changed", 13, 0.9, None, FactDecision("supersede", 13)),
        ("retracted", 12, 0.9, None, FactDecision("retract", 12)),
        ("changed", 13, 0.9, CLOSE, FactDecision("supersede", 13)),
        # An unknown or missing id: treated as new, except a retraction.
        ("same", 99, 0.9, None, FactDecision("add")),
        ("same", None, 0.9, CLOSE, FactDecision("refresh", 5)),
        ("changed", 99, 0.9, FAR, FactDecision("add")),
        ("changed", None, 0.9, CLOSE, FactDecision("refresh", 5)),
        ("retracted", 99, 0.9, None, FactDecision("ignore")),
        ("retracted", None, 0.9, CLOSE, FactDecision("ignore")),
        # New: the same as a stored fact when close enough, else added. Its id, if any, is not used.
        ("new", None, 0.9, None, FactDecision("add")),
        ("new", None, 0.9, FAR, FactDecision("add")),
        ("new", None, 0.9, (5, SAME_SIMILARITY - 0.001), FactDecision("add")),
        ("new", None, 0.9, (5, SAME_SIMILARITY), FactDecision("refresh", 5)),
        ("new", None, 0.9, (7, 1.0), FactDecision("refresh", 7)),
        ("new", 12, 0.9, None, FactDecision("add")),
        ("new", None, 0.9, (5, math.nan), FactDecision("add")),
    ],
)
def test_decide(
    action: str, existing_id: int | None, confidence: float, nearest: tuple[int, float] | None, decision: FactDecision
) -> None:
    assert decide(extracted(action, existing_id, confidence), KNOWN, nearest) == decision


def test_decide_only_trusts_ids_that_were_shown() -> None:
    fact = extracted("same", 12)
    assert decide(fact, {12}, None) == FactDecision("refresh", 12)
    assert decide(fact, set(), None) == FactDecision("add")
    assert decide(fact, [13, 14], None) == FactDecision("add")


@pytest.mark.parametrize(
    ("old", "seen", "new"),
    [(0.6, 1.0, 0.8), (0.6, 0.0, 0.6), (0.5, 0.5, 0.625), (0.0, 1.0, 0.5), (1.0, 1.0, 1.0), (0.9, 0.8, 0.94)],
)
def test_refreshed_confidence_values(old: float, seen: float, new: float) -> None:
    assert refreshed_confidence(old, seen) == pytest.approx(new)


def test_refreshed_confidence_grows_never_falls_and_stays_at_most_one() -> None:
    grid = [index / 20 for index in range(21)]
    for old in grid:
        results = [refreshed_confidence(old, seen) for seen in grid]
        assert all(old <= result <= 1.0 for result in results)
        assert results == sorted(results)
        if old < 1.0:
            assert results[-1] > old
    for seen in grid[1:]:
        results = [refreshed_confidence(old, seen) for old in grid]
        assert results == sorted(results)


def test_each_confirmation_adds_less_than_the_one_before() -> None:
    confidence, gains = 0.5, []
    for _ in range(30):
        after = refreshed_confidence(confidence, 0.9)
        gains.append(after - confidence)
        confidence = after
    assert all(later < earlier for earlier, later in itertools.pairwise(gains))
    assert 0.99 < confidence <= 1.0


@pytest.mark.parametrize(
    ("old", "seen", "new"), [(1.3, 0.5, 1.0), (0.6, 2.0, 0.8), (0.6, -1.0, 0.6), (0.6, math.nan, 0.6)]
)
def test_refreshed_confidence_survives_out_of_range_inputs(old: float, seen: float, new: float) -> None:
    assert refreshed_confidence(old, seen) == pytest.approx(new)


@pytest.mark.parametrize(
    ("temporal", "days", "expiry"),
    [
        ("short_term", None, T0 + timedelta(days=SHORT_TERM_DAYS)),
        ("short_term", 2, T0 + timedelta(days=2)),
        ("long_term", 3, T0 + timedelta(days=3)),
        ("permanent", 10, T0 + timedelta(days=10)),
        ("long_term", None, None),
        ("permanent", None, None),
        ("short_term", 0, T0 + timedelta(days=1)),
        ("long_term", 10**9, T0 + timedelta(days=MAX_EXPIRES_IN_DAYS)),
    ],
)
def test_expiry_for(temporal: str, days: int | None, expiry: datetime | None) -> None:
    assert expiry_for(temporal, days, T0) == expiry


@pytest.mark.parametrize(
    ("fields", "current"),
    [
        ({}, True),
        ({"is_active": False}, False),
        ({"expiry_date": T0 + timedelta(seconds=1)}, True),
        ({"expiry_date": T0}, False),
        ({"expiry_date": T0 - timedelta(days=1)}, False),
        ({"expiry_date": T0 + timedelta(days=1), "is_active": False}, False),
    ],
)
def test_is_current(fields: dict[str, Any], current: bool) -> None:
    assert is_current(stored(1, **fields), T0) is current


def ids(facts: list[StoredFact]) -> list[int]:
    return [fact.id for fact in facts]


def test_prompt_order_drops_expired_and_inactive_facts() -> None:
    facts = [
        stored(1),
        stored(2, is_active=False, importance=1.0),
        stored(3, expiry_date=T0 - timedelta(hours=1), importance=1.0),
        stored(4, expiry_date=T0 + timedelta(days=3)),
    ]
    assert ids(prompt_order(facts, T0)) == [1, 4]
    assert prompt_order([], T0) == []


def test_prompt_order_puts_important_facts_first_whatever_the_input_order() -> None:
    facts = [stored(1, importance=0.2), stored(2, importance=0.9), stored(3, importance=0.5)]
    for seed in range(5):
        shuffled = random.Random(seed).sample(facts, len(facts))
        assert ids(prompt_order(shuffled, T0)) == [2, 3, 1]


def test_confidence_breaks_an_importance_tie() -> None:
    facts = [stored(1, confidence=0.6), stored(2, confidence=0.95)]
    assert ids(prompt_order(facts, T0)) == [2, 1]


def test_relevance_to_the_message_can_outrank_importance() -> None:
    facts = [stored(1, importance=0.6), stored(2, importance=0.5)]
    assert ids(prompt_order(facts, T0)) == [1, 2]
    assert ids(prompt_order(facts, T0, {2: 0.9, 1: 0.1})) == [2, 1]
    assert ids(prompt_order(facts, T0, {2: 0.9})) == [2, 1]  # missing counts as unrelated
    assert ids(prompt_order(facts, T0, {1: -0.9, 2: -0.1})) == [1, 2]  # negative is no worse than unrelated


def test_recency_of_reference_is_mild() -> None:
    # The fresher fact has the higher id, so only recency can put it first.
    stale = stored(1, last_referenced_at=T0 - timedelta(days=365))
    fresh = stored(2, last_referenced_at=T0 - timedelta(days=1))
    assert ids(prompt_order([stale, fresh], T0)) == [2, 1]
    important_but_stale = stored(3, importance=0.8, last_referenced_at=T0 - timedelta(days=365))
    assert ids(prompt_order([fresh, important_but_stale], T0)) == [3, 2]


def test_a_fact_never_referenced_counts_from_when_it_was_learned() -> None:
    referenced_long_ago = stored(1, learned_at=T0 - timedelta(days=400), last_referenced_at=T0 - timedelta(days=200))
    new = stored(2, learned_at=T0 - timedelta(days=1))
    assert ids(prompt_order([referenced_long_ago, new], T0)) == [2, 1]


def test_equal_facts_are_ordered_by_id() -> None:
    facts = [stored(9), stored(3), stored(5)]
    assert ids(prompt_order(facts, T0)) == [3, 5, 9]


@pytest.mark.parametrize(
    ("fields", "line"),
    [
        ({"content": "works as a nurse"}, "works as a nurse"),
        ({"content": " works as a nurse \n"}, "works as a nurse"),
        (
            {
                "content": "has exams",
                "learned_at": datetime(2026, 11, 20, tzinfo=UTC),
                "expiry_date": datetime(2026, 12, 3, tzinfo=UTC),
            },
            "has exams (until 3 Dec)",
        ),
        (
            {
                "content": "visits family",
                "learned_at": datetime(2026, 12, 28, tzinfo=UTC),
                "expiry_date": datetime(2027, 1, 5, tzinfo=UTC),
            },
            "visits family (until 5 Jan 2027)",
        ),
    ],
)
def test_fact_line(fields: dict[str, Any], line: str) -> None:
    assert fact_line(stored(1, **fields)) == line


@pytest.mark.parametrize(
    ("type_a", "type_b", "similarity", "association"),
    [
        ("hobby", "hobby", 0.8, "shared_interest"),
        ("preference", "preference", 0.9, "shared_interest"),
        ("work", "work", 0.75, "same_work"),
        ("location", "location", 1.0, "same_place"),
        ("hobby", "hobby", ASSOCIATION_SIMILARITY - 0.001, None),
        ("location", "location", 0.2, None),
        ("hobby", "preference", 0.95, None),
        ("work", "location", 0.95, None),
        ("family", "family", 0.95, None),
        ("event", "event", 0.95, None),
        ("relationship", "relationship", 0.95, None),
        ("general", "general", 0.95, None),
        ("hobby", "hobby", math.nan, None),
    ],
)
def test_association_type(type_a: str, type_b: str, similarity: float, association: str | None) -> None:
    assert association_type(type_a, type_b, similarity) == association


def test_association_strength_is_monotonic_and_bounded() -> None:
    grid = [index / 100 for index in range(-100, 101)]
    strengths = [association_strength(similarity) for similarity in grid]
    assert all(0.0 <= strength <= 1.0 for strength in strengths)
    assert strengths == sorted(strengths)
    assert association_strength(ASSOCIATION_SIMILARITY) == pytest.approx(0.5)
    assert association_strength(1.0) == 1.0
    assert association_strength(0.9) > association_strength(0.8)
    assert association_strength(5.0) == 1.0 and association_strength(-5.0) == 0.0
    assert association_strength(math.nan) == 0.0

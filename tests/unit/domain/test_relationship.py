import math
import random
from datetime import UTC, datetime, timedelta

import pytest

from bot.domain.relationship import (
    DECAY_GRACE,
    DECAY_HALF_LIFE,
    MAX_INSIDE_JOKES,
    MAX_LOSS,
    MAX_NICKNAMES,
    Level,
    Relationship,
    after_exchange,
    decay_floor,
    decayed,
    describe,
    level_of,
    score_change,
    tone_for,
    with_reference,
)

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def at_score(score: float, *, last: datetime | None = T0) -> Relationship:
    return Relationship(score=score, interaction_count=10, last_interaction_at=last)


@pytest.mark.parametrize(
    ("score", "level"),
    [
        (0.0, Level.STRANGER),
        (14.99, Level.STRANGER),
        (15.0, Level.ACQUAINTANCE),
        (34.99, Level.ACQUAINTANCE),
        (35.0, Level.FRIEND),
        (59.99, Level.FRIEND),
        (60.0, Level.GOOD_FRIEND),
        (79.99, Level.GOOD_FRIEND),
        (80.0, Level.CLOSE_FRIEND),
        (100.0, Level.CLOSE_FRIEND),
    ],
)
def test_levels_by_score(score: float, level: Level) -> None:
    assert level_of(score) is level
    assert at_score(score).level is level


def test_each_level_has_its_own_one_line_tone() -> None:
    tones = [tone_for(level) for level in Level]
    assert len(set(tones)) == len(Level)
    assert all(tone and "\n" not in tone for tone in tones)
    assert "nickname" in tone_for(Level.CLOSE_FRIEND)
    assert "reserved" in tone_for(Level.STRANGER)


@pytest.mark.parametrize(
    ("exchanges_from", "exchanges_to", "level"),
    [(8, 14, Level.ACQUAINTANCE), (24, 34, Level.FRIEND), (50, 70, Level.GOOD_FRIEND), (90, 120, Level.CLOSE_FRIEND)],
)
def test_friendly_exchanges_reach_each_level_at_the_documented_pace(
    exchanges_from: int, exchanges_to: int, level: Level
) -> None:
    state = Relationship()
    for count in range(1, 200):
        state = after_exchange(state, sentiment=0.5, depth=0.3, at=T0 + timedelta(hours=count))
        if state.level is level:
            break
    assert exchanges_from <= state.interaction_count <= exchanges_to


def test_counts_follow_the_kind_of_exchange() -> None:
    state = Relationship()
    for sentiment in (0.8, 0.3, 0.0, -0.1, -0.5, -1.0):
        state = after_exchange(state, sentiment=sentiment, depth=0.5, at=T0)
    assert (state.interaction_count, state.positive_count, state.negative_count) == (6, 2, 2)
    assert state.last_interaction_at == T0


def test_hostility_costs_points_but_never_goes_below_zero() -> None:
    assert after_exchange(at_score(50), sentiment=-1.0, depth=0.0, at=T0).score == pytest.approx(50 - MAX_LOSS)
    assert after_exchange(at_score(2), sentiment=-1.0, depth=1.0, at=T0).score == 0.0
    assert after_exchange(at_score(50), sentiment=-0.25, depth=0.0, at=T0).score == pytest.approx(50)


def test_someone_sad_or_venting_is_not_pushed_away() -> None:
    after = after_exchange(at_score(40), sentiment=-0.2, depth=0.8, at=T0)
    assert after.score > 40
    assert after.negative_count == 0


def test_diminishing_returns() -> None:
    rng = random.Random(0)
    for _ in range(500):
        sentiment, depth = rng.uniform(-0.2, 1.0), rng.uniform(0.0, 1.0)
        low = after_exchange(at_score(20), sentiment=sentiment, depth=depth, at=T0).score - 20
        high = after_exchange(at_score(80), sentiment=sentiment, depth=depth, at=T0).score - 80
        assert 0 < high < low
        assert high == pytest.approx(low / 4)


def test_more_positive_or_deeper_exchanges_never_lower_the_score() -> None:
    rng = random.Random(0)
    for _ in range(1000):
        state = at_score(rng.uniform(0, 100))
        depth = rng.uniform(0, 1)
        worse, better = sorted(rng.uniform(-1, 1) for _ in range(2))
        assert (
            after_exchange(state, sentiment=worse, depth=depth, at=T0).score
            <= after_exchange(state, sentiment=better, depth=depth, at=T0).score
        )
        sentiment = rng.uniform(0, 1)
        shallow, deep = sorted(rng.uniform(0, 1) for _ in range(2))
        assert (
            state.score
            <= after_exchange(state, sentiment=sentiment, depth=shallow, at=T0).score
            <= after_exchange(state, sentiment=sentiment, depth=deep, at=T0).score
        )


def test_score_stays_bounded_through_any_history() -> None:
    rng = random.Random(0)
    for _ in range(100):
        state, now = Relationship(), T0
        for _ in range(100):
            now += timedelta(hours=rng.expovariate(1 / 200))
            sentiment = rng.choice([rng.uniform(-1, 1), 1.0, -1.0, 5.0, -5.0])
            state = after_exchange(state, sentiment=sentiment, depth=rng.uniform(-1, 2), at=now)
            assert 0.0 <= state.score <= 100.0
            assert state.positive_count + state.negative_count <= state.interaction_count


def test_a_broken_sentiment_counts_as_neutral() -> None:
    assert score_change(50, sentiment=math.nan, depth=math.nan) == score_change(50, sentiment=0.0, depth=0.0)


@pytest.mark.parametrize(
    ("absence", "expected"),
    [
        (timedelta(0), 90.0),
        (timedelta(days=13), 90.0),
        (DECAY_GRACE, 90.0),
        (DECAY_GRACE + DECAY_HALF_LIFE, 67.5),
        (DECAY_GRACE + 2 * DECAY_HALF_LIFE, 56.25),
        (timedelta(days=3650), 45.0),
    ],
)
def test_absence_fades_the_score_toward_half(absence: timedelta, expected: float) -> None:
    assert decayed(at_score(90), now=T0 + absence).score == pytest.approx(expected, abs=0.01)


def test_decay_is_gentle_monotonic_and_never_below_the_floor() -> None:
    rng = random.Random(0)
    for _ in range(1000):
        state = at_score(rng.uniform(0, 100))
        shorter, longer = sorted(timedelta(days=rng.uniform(0, 2000)) for _ in range(2))
        near = decayed(state, now=T0 + shorter).score
        far = decayed(state, now=T0 + longer).score
        assert decay_floor(state.score) <= far <= near <= state.score
        assert decayed(state, now=T0 + timedelta(days=30)).score >= state.score * 0.9


def test_old_friends_stay_friends() -> None:
    year = T0 + timedelta(days=365 * 5)
    assert decayed(at_score(80), now=year).level is Level.FRIEND
    assert decayed(at_score(60), now=year).level is Level.ACQUAINTANCE
    assert decayed(at_score(35), now=year).level is Level.ACQUAINTANCE


def test_decay_needs_a_last_interaction_and_ignores_the_past() -> None:
    assert decayed(Relationship(score=50), now=T0).score == 50
    assert decayed(at_score(50), now=T0 - timedelta(days=100)).score == 50


def test_an_exchange_after_a_long_absence_counts_the_absence_first() -> None:
    soon = after_exchange(at_score(70), sentiment=0.5, depth=0.5, at=T0 + timedelta(days=1))
    later = after_exchange(at_score(70), sentiment=0.5, depth=0.5, at=T0 + timedelta(days=200))
    assert later.score < 70 < soon.score
    assert later.last_interaction_at == T0 + timedelta(days=200)
    late_report = after_exchange(at_score(70), sentiment=0.5, depth=0.5, at=T0 - timedelta(hours=1))
    assert late_report.last_interaction_at == T0


def test_references_are_newest_first_without_duplicates_and_bounded() -> None:
    state = Relationship()
    for number in range(20):
        state = with_reference(state, "nickname", f"nick {number}")
        state = with_reference(state, "inside_joke", f"joke  {number}\n")
    assert len(state.nicknames) == MAX_NICKNAMES
    assert len(state.inside_jokes) == MAX_INSIDE_JOKES
    assert state.nicknames[0] == "nick 19"
    assert state.inside_jokes[0] == "joke 19"

    state = with_reference(state, "nickname", "NICK 17")
    assert state.nicknames[:2] == ("NICK 17", "nick 19")
    assert len(state.nicknames) == MAX_NICKNAMES
    assert with_reference(state, "nickname", "   ") == state
    with pytest.raises(ValueError, match="unknown reference kind"):
        with_reference(state, "catchphrase", "x")  # type: ignore[arg-type]


def test_describe_names_the_level_and_what_they_share() -> None:
    state = with_reference(with_reference(at_score(85), "nickname", "Ana-banana"), "inside_joke", "the lasagna")
    text = describe(state)
    assert text.startswith("They are a close friend of yours. Be warm and familiar")
    assert "You call them: Ana-banana." in text
    assert "Your inside jokes: the lasagna." in text
    assert describe(Relationship()).startswith("You have only just met them.")
    assert describe(at_score(85), now=T0 + timedelta(days=3000)).startswith("They are a friend of yours.")


@pytest.mark.parametrize("changes", [{"score": -0.1}, {"score": 100.5}, {"interaction_count": -1}])
def test_invalid_states_are_refused(changes: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Relationship(**changes)  # type: ignore[arg-type]

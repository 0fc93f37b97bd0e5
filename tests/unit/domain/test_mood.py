import math
import random
from datetime import timedelta

import pytest

from bot.domain.mood import (
    MOOD_MAP,
    NEUTRAL,
    Mood,
    baseline_of,
    decayed,
    describe,
    is_significant_change,
    mood_name,
    nudged,
)


def random_mood(rng: random.Random, spread: float = 1.0) -> Mood:
    return Mood(rng.uniform(-spread, spread), rng.uniform(-spread, spread))


@pytest.mark.parametrize(
    ("valence", "arousal", "name"),
    [
        (1.0, 1.0, "excited"),
        (1.0, -1.0, "relaxed"),
        (-1.0, -1.0, "sad"),
        (-1.0, 1.0, "angry"),
        (0.0, 0.0, "neutral"),
        (0.1, -0.1, "neutral"),
        (0.3, 0.4, "curious"),
        (0.25, 0.5, "curious"),
        (0.9, 0.2, "happy"),
        (0.6, -0.1, "content"),
        (0.2, -0.6, "calm"),
        (0.0, -1.0, "tired"),
        (-0.3, -0.4, "bored"),
        (-0.5, 0.2, "annoyed"),
        (-0.3, 0.9, "anxious"),
        (-0.8, -0.3, "sad"),
    ],
)
def test_names_over_the_grid(valence: float, arousal: float, name: str) -> None:
    assert mood_name(Mood(valence, arousal)) == name


def test_every_prototype_carries_its_own_name_and_the_middle_is_neutral() -> None:
    for name, (valence, arousal) in MOOD_MAP.items():
        assert mood_name(Mood(valence, arousal)) == name
    rng = random.Random(0)
    for _ in range(1000):
        angle, radius = rng.uniform(0, 2 * math.pi), rng.uniform(0, 0.249)
        assert mood_name(Mood(radius * math.cos(angle), radius * math.sin(angle))) == "neutral"


def test_curious_is_the_mildly_pleasant_moderately_lively_region() -> None:
    rng = random.Random(0)
    for _ in range(500):
        assert mood_name(Mood(rng.uniform(0.2, 0.45), rng.uniform(0.25, 0.5))) == "curious"
    assert mood_name(Mood(0.3, 0.0)) != "curious"
    assert mood_name(Mood(0.3, 0.9)) != "curious"


def test_a_nudge_moves_toward_the_exchange_and_stays_bounded() -> None:
    rng = random.Random(0)
    for _ in range(2000):
        mood, baseline = random_mood(rng), random_mood(rng, 0.5)
        sentiment, intensity = rng.uniform(-1, 1), rng.uniform(0, 1)
        after = nudged(mood, sentiment=sentiment, intensity=intensity, baseline=baseline)
        energy = 2 * intensity - 1
        assert min(mood.valence, sentiment) <= after.valence <= max(mood.valence, sentiment)
        assert min(mood.arousal, energy) <= after.arousal <= max(mood.arousal, energy)
        if sentiment > mood.valence:
            assert after.valence > mood.valence


def test_a_warmer_exchange_never_leaves_a_sadder_mood() -> None:
    rng = random.Random(1)
    for _ in range(1000):
        mood, baseline, intensity = random_mood(rng), random_mood(rng, 0.5), rng.uniform(0, 1)
        colder, warmer = sorted(rng.uniform(-1, 1) for _ in range(2))
        assert (
            nudged(mood, sentiment=colder, intensity=intensity, baseline=baseline).valence
            <= nudged(mood, sentiment=warmer, intensity=intensity, baseline=baseline).valence + 1e-12
        )


def test_out_of_range_inputs_are_clamped() -> None:
    for sentiment, intensity in [(9.0, 9.0), (-9.0, -9.0), (math.nan, math.nan), (math.inf, -math.inf)]:
        after = nudged(Mood(0.9, -0.9), sentiment=sentiment, intensity=intensity, baseline=NEUTRAL)
        assert -1 <= after.valence <= 1 and -1 <= after.arousal <= 1


@pytest.mark.parametrize(
    ("sentiment", "intensity", "name"),
    [(0.9, 0.95, "excited"), (-0.9, 0.95, "angry"), (-0.8, 0.2, "sad"), (0.7, 0.2, "relaxed"), (0.0, 0.0, "tired")],
)
def test_a_run_of_alike_exchanges_sets_the_mood(sentiment: float, intensity: float, name: str) -> None:
    mood = NEUTRAL
    for _ in range(30):
        mood = nudged(mood, sentiment=sentiment, intensity=intensity, baseline=NEUTRAL)
    assert mood_name(mood) == name


def test_intense_exchanges_move_the_mood_more_than_flat_ones() -> None:
    intense = nudged(NEUTRAL, sentiment=1.0, intensity=1.0, baseline=NEUTRAL)
    flat = nudged(NEUTRAL, sentiment=1.0, intensity=0.0, baseline=NEUTRAL)
    assert intense == pytest.approx(Mood(0.25, 0.25))
    assert flat == pytest.approx(Mood(0.1, -0.1))


def test_temperament_resists_moving_away_from_the_baseline() -> None:
    cheerful = Mood(0.6, 0.2)
    souring = nudged(Mood(0.6, 0.2), sentiment=-1.0, intensity=0.5, baseline=cheerful)
    already_sour = nudged(Mood(-0.4, 0.2), sentiment=-1.0, intensity=0.5, baseline=cheerful)
    rate = 0.25 * 0.7
    assert souring.valence == pytest.approx(0.6 - rate * 1.6)
    assert already_sour.valence == pytest.approx(-0.4 - rate * 0.6 * 0.75)
    cheering = nudged(Mood(-0.4, 0.2), sentiment=1.0, intensity=0.5, baseline=cheerful)
    assert cheering.valence == pytest.approx(-0.4 + rate * 1.4)


@pytest.mark.parametrize(
    ("hours", "valence"),
    [(0, 1.0), (6, 0.5), (12, 0.25), (24, 0.0625), (-3, 1.0)],
)
def test_decay_halves_the_gap_every_six_hours(hours: float, valence: float) -> None:
    assert decayed(Mood(1.0, -1.0), baseline=NEUTRAL, elapsed=timedelta(hours=hours)) == pytest.approx(
        Mood(valence, -valence)
    )


def test_after_a_day_the_mood_is_back_near_its_baseline() -> None:
    rng = random.Random(0)
    for _ in range(2000):
        mood, baseline = random_mood(rng), random_mood(rng, 0.5)
        after = decayed(mood, baseline=baseline, elapsed=timedelta(hours=24))
        assert after.distance(baseline) < 0.1 * math.sqrt(2)
        assert abs(after.valence - baseline.valence) < 0.1 and abs(after.arousal - baseline.arousal) < 0.1


def test_decay_never_crosses_the_baseline_and_only_closes_the_gap() -> None:
    rng = random.Random(0)
    for _ in range(2000):
        mood, baseline = random_mood(rng), random_mood(rng)
        shorter, longer = sorted(timedelta(minutes=rng.uniform(0, 5000)) for _ in range(2))
        near = decayed(mood, baseline=baseline, elapsed=shorter)
        far = decayed(mood, baseline=baseline, elapsed=longer)
        for axis in ("valence", "arousal"):
            start, base = getattr(mood, axis), getattr(baseline, axis)
            gap_near, gap_far = getattr(near, axis) - base, getattr(far, axis) - base
            assert gap_near * (start - base) >= 0 and gap_far * (start - base) >= 0
            assert abs(gap_far) <= abs(gap_near) + 1e-12 <= abs(start - base) + 2e-12


def test_half_life_must_be_positive() -> None:
    with pytest.raises(ValueError):
        decayed(NEUTRAL, baseline=NEUTRAL, elapsed=timedelta(hours=1), half_life=timedelta(0))


@pytest.mark.parametrize(
    ("before", "after", "significant"),
    [
        (Mood(0.0, 0.0), Mood(0.0, 0.0), False),
        (Mood(0.0, 0.0), Mood(0.1, 0.1), False),
        (Mood(0.0, 0.0), Mood(0.15, 0.0), True),
        (Mood(0.0, 0.0), Mood(0.11, 0.11), True),
        (Mood(-1.0, 1.0), Mood(1.0, -1.0), True),
    ],
)
def test_significant_changes(before: Mood, after: Mood, significant: bool) -> None:
    assert is_significant_change(before, after) is significant


def test_significance_threshold_can_be_tuned() -> None:
    assert is_significant_change(NEUTRAL, Mood(0.1, 0.0), threshold=0.05)
    assert not is_significant_change(NEUTRAL, Mood(0.3, 0.0), threshold=0.5)


@pytest.mark.parametrize(
    ("mood", "line"),
    [
        (Mood(1.0, 1.0), "You feel very excited right now: lively and enthusiastic."),
        (Mood(0.0, 0.0), "You feel neutral right now: even-tempered."),
        (Mood(-0.1, -0.4), "You feel a little bored right now: ready for something new to talk about."),
        (Mood(0.6, -0.5), "You feel relaxed right now: unhurried and easy-going."),
    ],
)
def test_describe(mood: Mood, line: str) -> None:
    assert describe(mood) == line


def test_every_mood_has_a_one_line_description() -> None:
    rng = random.Random(0)
    for _ in range(500):
        mood = random_mood(rng)
        line = describe(mood)
        assert line.startswith("You feel ") and mood_name(mood) in line and "\n" not in line


@pytest.mark.parametrize(("valence", "arousal"), [(1.01, 0.0), (0.0, -1.5), (math.nan, 0.0)])
def test_moods_outside_the_plane_are_refused(valence: float, arousal: float) -> None:
    with pytest.raises(ValueError):
        Mood(valence, arousal)


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({}, NEUTRAL),
        ({"mood_baseline": {"valence": 0.3, "arousal": -0.2}}, Mood(0.3, -0.2)),
        ({"mood_baseline": {"valence": 4}}, Mood(1.0, 0.0)),  # clamped, not refused
        ({"mood_baseline": {"valence": "warm"}}, NEUTRAL),
        ({"mood_baseline": "happy"}, NEUTRAL),
    ],
)
def test_a_persona_baseline_comes_from_its_config_and_a_bad_one_is_neutral(
    config: dict[str, object], expected: Mood
) -> None:
    assert baseline_of(config) == expected

"""Hearth's mood: a point on the valence × arousal plane (Russell's circumplex), both from -1 to 1.

Valence is how pleasant things feel, arousal how energised. Each exchange nudges the mood toward its own
sentiment and energy; between exchanges the mood drifts back to the persona's baseline (its temperament)
with a half-life of six hours, so after a day only a sixteenth of any swing is left.

Names come from the nearest point of a small map (ties go to the earlier entry):

                 anxious (-0.35, 0.8)            excited (0.7, 0.8)
        angry (-0.8, 0.7)          curious (0.3, 0.4)     happy (0.75, 0.3)
              annoyed (-0.5, 0.25)     neutral (0, 0)       content (0.55, -0.1)
        sad (-0.7, -0.4)   bored (-0.3, -0.45)  calm (0.2, -0.5)   relaxed (0.6, -0.6)
                              tired (-0.1, -0.85)

So every corner has a name: (1, 1) excited, (1, -1) relaxed, (-1, -1) sad, (-1, 1) angry; the middle,
within about 0.25 of (0, 0), is neutral; a mildly pleasant, moderately lively mood is curious.
"""

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

DEFAULT_HALF_LIFE = timedelta(hours=6)
# Share of the gap to the exchange's own (sentiment, energy) that an intense exchange closes; a flat one
# (intensity 0) closes 40% of that. The share does not depend on the sentiment, so a warmer exchange
# never leaves a sadder mood than a colder one would.
NUDGE_RATE = 0.25
BLAND_SHARE = 0.4
# Temperament: a step that takes the mood further from the baseline is damped by this share of the
# distance already travelled (out of 2, the widest possible), so a cheerful persona is slow to sour.
RESISTANCE = 0.5
SIGNIFICANT_CHANGE = 0.15

# Name → prototype (valence, arousal); mood_name picks the nearest.
MOOD_MAP: dict[str, tuple[float, float]] = {
    "neutral": (0.0, 0.0),
    "excited": (0.7, 0.8),
    "happy": (0.75, 0.3),
    "curious": (0.3, 0.4),
    "content": (0.55, -0.1),
    "relaxed": (0.6, -0.6),
    "calm": (0.2, -0.5),
    "bored": (-0.3, -0.45),
    "tired": (-0.1, -0.85),
    "sad": (-0.7, -0.4),
    "annoyed": (-0.5, 0.25),
    "angry": (-0.8, 0.7),
    "anxious": (-0.35, 0.8),
}

# How each mood may colour a reply, for the prompt.
_HINTS: dict[str, str] = {
    "neutral": "even-tempered",
    "excited": "lively and enthusiastic",
    "happy": "cheerful and upbeat",
    "curious": "keen to ask questions and learn more",
    "content": "at ease and warm",
    "relaxed": "unhurried and easy-going",
    "calm": "steady and quiet",
    "bored": "ready for something new to talk about",
    "tired": "low on energy; you keep things short",
    "sad": "quieter than usual and a little wistful",
    "annoyed": "a bit short-tempered, though still kind",
    "angry": "upset, though you stay civil",
    "anxious": "a little on edge",
}


def _clamp(value: float, low: float = -1.0, high: float = 1.0) -> float:
    """``value`` within [low, high]; NaN (a broken upstream estimate) counts as 0, i.e. neutral."""
    return min(max(0.0 if math.isnan(value) else value, low), high)


@dataclass(frozen=True, slots=True)
class Mood:
    valence: float = 0.0
    arousal: float = 0.0

    def __post_init__(self) -> None:
        for name in ("valence", "arousal"):
            value = getattr(self, name)
            if not -1.0 <= value <= 1.0:
                raise ValueError(f"{name} must be within [-1, 1], got {value!r}")

    def distance(self, other: "Mood") -> float:
        return math.hypot(self.valence - other.valence, self.arousal - other.arousal)


NEUTRAL = Mood()


def _step(current: float, target: float, baseline: float, rate: float) -> float:
    step = rate * (target - current)
    if step * (current - baseline) > 0:  # heading further from the baseline
        step *= 1.0 - RESISTANCE * abs(current - baseline) / 2.0
    return _clamp(current + step)


def nudged(mood: Mood, *, sentiment: float, intensity: float, baseline: Mood) -> Mood:
    """The mood after an exchange with this ``sentiment`` (-1 to 1) and ``intensity`` (0 flat, 1 intense).

    Valence moves toward the sentiment and arousal toward the energy (intensity 0 → -1, 1 → +1), each
    by at most ``NUDGE_RATE`` of the gap, so the result always lies between the mood and the exchange.
    """
    sentiment = _clamp(sentiment)
    intensity = _clamp(intensity, 0.0, 1.0)
    rate = NUDGE_RATE * (BLAND_SHARE + (1.0 - BLAND_SHARE) * intensity)
    return Mood(
        _step(mood.valence, sentiment, baseline.valence, rate),
        _step(mood.arousal, 2.0 * intensity - 1.0, baseline.arousal, rate),
    )


def decayed(mood: Mood, *, baseline: Mood, elapsed: timedelta, half_life: timedelta = DEFAULT_HALF_LIFE) -> Mood:
    """The mood after ``elapsed`` without exchanges: the gap to the baseline halves every ``half_life``."""
    if half_life <= timedelta(0):
        raise ValueError("half_life must be positive")
    remaining = 0.5 ** (max(elapsed, timedelta(0)) / half_life)
    return Mood(
        _clamp(baseline.valence + (mood.valence - baseline.valence) * remaining),
        _clamp(baseline.arousal + (mood.arousal - baseline.arousal) * remaining),
    )


def mood_name(mood: Mood) -> str:
    point = (mood.valence, mood.arousal)
    return min(MOOD_MAP, key=lambda name: math.dist(point, MOOD_MAP[name]))


def is_significant_change(before: Mood, after: Mood, threshold: float = SIGNIFICANT_CHANGE) -> bool:
    """Whether a change is worth a row in mood_history: the mood moved at least ``threshold``."""
    return before.distance(after) >= threshold


def describe(mood: Mood) -> str:
    """One line for the prompt, e.g. "You feel a little tired right now: low on energy; …"."""
    name = mood_name(mood)
    strength = mood.distance(NEUTRAL)
    if name == "neutral":
        degree = ""
    elif strength < 0.45:
        degree = "a little "
    elif strength > 0.95:
        degree = "very "
    else:
        degree = ""
    return f"You feel {degree}{name} right now: {_HINTS[name]}."


def baseline_of(persona_config: Mapping[str, Any]) -> Mood:
    """The mood a persona settles back to: ``mood_baseline`` {valence, arousal} in its config, else neutral."""
    raw = persona_config.get("mood_baseline")
    if not isinstance(raw, Mapping):
        return NEUTRAL
    try:
        return Mood(_clamp(float(raw.get("valence", 0.0))), _clamp(float(raw.get("arousal", 0.0))))
    except (TypeError, ValueError):
        return NEUTRAL

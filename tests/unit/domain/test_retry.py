import random

from bot.domain.retry import Backoff, fits_budget


def test_delays_grow_exponentially_up_to_the_cap_with_bounded_jitter() -> None:
    backoff = Backoff(base_s=0.5, factor=2, cap_s=4, jitter=0.25)
    rng = random.Random(1)
    for attempt, raw in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (9, 4.0)]:
        samples = [backoff.delay(attempt, rng=rng) for _ in range(200)]
        assert min(samples) >= raw * 0.75 and max(samples) <= raw * 1.25
        assert max(samples) - min(samples) > raw * 0.2, "jitter spreads retries"


def test_retry_after_is_a_floor() -> None:
    backoff = Backoff(base_s=0.1, jitter=0)
    assert backoff.delay(1, retry_after_s=3.0) == 3.0
    assert backoff.delay(1, retry_after_s=0.01) == 0.1


def test_budget() -> None:
    assert fits_budget(1.0, 2.0, 5.0)
    assert not fits_budget(4.0, 2.0, 5.0)

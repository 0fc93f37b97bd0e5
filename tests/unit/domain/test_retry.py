import random
from datetime import UTC, datetime, timedelta

import pytest

from bot.domain.retry import Backoff, PutOff, fits_budget, server_wait_s

NOW = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)


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


@pytest.mark.parametrize(
    ("retry_after", "retry_after_ms", "wait"),
    [
        ("7", None, 7.0),
        ("0.5", None, 0.5),
        ("Sat, 01 Mar 2025 12:00:30 GMT", None, 30.0),  # an HTTP date (RFC 9110)
        ("Sat, 01 Mar 2025 12:00:30 -0000", None, 30.0),
        ("Sat, 01 Mar 2025 11:59:00 GMT", None, 0.0),  # already past: no wait
        ("-3", None, 0.0),
        (None, "250", 0.25),  # OpenAI's milliseconds
        ("1", "1500", 1.5),  # the finer one wins
        ("20", "soon", 20.0),
        ("soon", None, None),
        ("nan", None, None),
        ("inf", None, None),
        (None, None, None),
    ],
)
def test_the_wait_a_server_asks_for(retry_after: str | None, retry_after_ms: str | None, wait: float | None) -> None:
    assert server_wait_s(retry_after, retry_after_ms, now=NOW) == wait


def test_a_refused_key_waits_longer_at_each_refusal_in_a_row_and_afresh_once_answered() -> None:
    put_off = PutOff(Backoff(base_s=3600, factor=2, cap_s=4 * 3600, jitter=0))
    hour = timedelta(hours=1)
    assert put_off.refused(7, NOW) == NOW + hour
    assert put_off.waiting(NOW + 0.5 * hour) == {7} and put_off.waiting(NOW + hour) == set()
    assert put_off.refused(7, NOW + hour) == NOW + 3 * hour
    assert put_off.refused(7, NOW + 3 * hour) == NOW + 7 * hour
    assert put_off.refused(7, NOW + 7 * hour) == NOW + 11 * hour, "at most the cap"
    put_off.answered(7)
    assert put_off.waiting(NOW) == set() and put_off.refused(7, NOW) == NOW + hour

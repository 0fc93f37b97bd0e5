"""How long to wait before trying a failed call again: exponential backoff with jitter, within a budget."""

import math
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime


@dataclass(frozen=True, slots=True)
class Backoff:
    base_s: float = 0.5
    factor: float = 2.0
    cap_s: float = 8.0
    jitter: float = 0.25  # ± this fraction of the delay, so many clients do not retry in step

    def delay(self, attempt: int, *, retry_after_s: float | None = None, rng: random.Random | None = None) -> float:
        """The wait before retry number ``attempt`` (1 for the first retry).

        A server's Retry-After is honoured as a floor (it knows best), still capped by nothing but the budget
        (see :func:`server_wait_s`).
        """
        raw = min(self.cap_s, self.base_s * self.factor ** (attempt - 1))
        spread = raw * self.jitter
        wait = raw + (rng or random).uniform(-spread, spread)
        if retry_after_s is not None:
            wait = max(wait, retry_after_s)
        return max(0.0, wait)


@dataclass(slots=True)
class PutOff:
    """Things asked about in vain (a conversation's summary, by its id), each put off until a time that grows with
    every refusal in a row (``backoff``'s delays, in seconds), and asked about again once that time has passed."""

    backoff: Backoff
    _refused: dict[int, tuple[int, datetime]] = field(default_factory=dict)  # key → (refusals in a row, until)

    def refused(self, key: int, now: datetime) -> datetime:
        """``key`` was refused at ``now``: returns when it may be asked about again."""
        refusals = self._refused[key][0] + 1 if key in self._refused else 1
        until = now + timedelta(seconds=self.backoff.delay(refusals))
        self._refused[key] = (refusals, until)
        return until

    def answered(self, key: int) -> None:
        """``key`` was answered: a later refusal starts from the shortest wait again."""
        self._refused.pop(key, None)

    def waiting(self, now: datetime) -> set[int]:
        """The keys not to be asked about at ``now``."""
        return {key for key, (_, until) in self._refused.items() if until > now}


def fits_budget(elapsed_s: float, wait_s: float, budget_s: float) -> bool:
    """Whether waiting ``wait_s`` more still leaves the retry inside the total time budget."""
    return elapsed_s + wait_s < budget_s


def server_wait_s(retry_after: str | None, retry_after_ms: str | None, *, now: datetime) -> float | None:
    """How long a server asked to be left alone before the next try, in seconds, from its headers: OpenAI's
    ``retry-after-ms`` (milliseconds) first, else ``Retry-After`` as seconds or as an HTTP date (RFC 9110). None
    when it said nothing usable; a date already past is no wait at all. ``now`` is an aware datetime."""
    if retry_after_ms is not None and (ms := _finite(retry_after_ms)) is not None:
        return max(0.0, ms / 1000)
    if retry_after is None:
        return None
    if (seconds := _finite(retry_after)) is not None:
        return max(0.0, seconds)
    try:
        when = parsedate_to_datetime(retry_after.strip())
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000": an HTTP date is always GMT
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def _finite(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None

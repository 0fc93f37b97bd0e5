"""How long to wait before trying a failed call again: exponential backoff with jitter, within a budget."""

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Backoff:
    base_s: float = 0.5
    factor: float = 2.0
    cap_s: float = 8.0
    jitter: float = 0.25  # ± this fraction of the delay, so many clients do not retry in step

    def delay(self, attempt: int, *, retry_after_s: float | None = None, rng: random.Random | None = None) -> float:
        """The wait before retry number ``attempt`` (1 for the first retry).

        A server's Retry-After is honoured as a floor (it knows best), still capped by nothing but the budget.
        """
        raw = min(self.cap_s, self.base_s * self.factor ** (attempt - 1))
        spread = raw * self.jitter
        wait = raw + (rng or random).uniform(-spread, spread)
        if retry_after_s is not None:
            wait = max(wait, retry_after_s)
        return max(0.0, wait)


def fits_budget(elapsed_s: float, wait_s: float, budget_s: float) -> bool:
    """Whether waiting ``wait_s`` more still leaves the retry inside the total time budget."""
    return elapsed_s + wait_s < budget_s

"""Doing a piece of database work again while the database fails: a restart takes seconds, and killed
connections fail one statement each."""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from bot.db.engine import DATABASE_FAULTS, DATABASE_REFUSALS
from bot.domain.retry import Backoff, fits_budget

log = logging.getLogger(__name__)

_T = TypeVar("_T")

_BACKOFF = Backoff(base_s=0.1, cap_s=2.0)


async def through_database_faults(
    work: Callable[[int], Awaitable[_T]],
    *,
    what: str,
    budget_s: float,
    refusal_tries: int = 1,
    before_retry: Callable[[], None] | None = None,
) -> _T:
    """``work(attempt)`` (attempt 1 first; a later one may find its earlier try's commit went through, its
    answer lost with the connection) until it gets through, with backoff while the database fails, for up to
    ``budget_s``; past that the fault is raised. A change the database refuses (a constraint, bad data) is
    raised once tried ``refusal_tries`` times. ``before_retry`` runs before each new try (to drop cached rows
    that may be what failed)."""
    began = time.monotonic()
    attempt = 0
    while True:
        attempt += 1
        try:
            return await work(attempt)
        except DATABASE_FAULTS as exc:
            wait = _BACKOFF.delay(attempt)
            refused = isinstance(exc, DATABASE_REFUSALS) and attempt >= refusal_tries
            if refused or not fits_budget(time.monotonic() - began, wait, budget_s):
                raise
            log.warning("%s failed (%s); retrying in %.1f s", what, exc, wait)
            if before_retry is not None:
                before_retry()
            await asyncio.sleep(wait)

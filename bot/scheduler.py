"""Hearth's clock: APScheduler's AsyncIOScheduler running plain service methods at intervals.

Each job is a coroutine function with no arguments (a bound service method). A job never overlaps itself,
missed runs collapse into one, and an exception is logged without stopping the job's next runs. While the
database is unreachable, a job says so once (and again every ``STILL_FAILING_EVERY``), not at every run, and
says when it works again; a run the database failed is made again soon (``DATABASE_RETRY``: 30 s, then longer
waits up to 10 minutes) when the job's next time is further off, so an hourly or daily job is not skipped for
an hour or a day by a restart of the database. Stopping starts no new run, waits briefly for the running ones, then
cancels them, saying so in one line.
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.db.engine import DATABASE_FAULTS, DATABASE_REFUSALS
from bot.domain.retry import Backoff

log = logging.getLogger(__name__)

# While the database keeps failing a job, how often that is said again (the events' jobs run every second).
STILL_FAILING_EVERY = timedelta(minutes=5)
# When a run the database failed is made again, if the job's next time is later than that.
DATABASE_RETRY = Backoff(base_s=30.0, cap_s=600.0)


@dataclass(frozen=True, slots=True)
class IntervalJob:
    name: str
    run: Callable[[], Awaitable[Any]]
    every: timedelta
    first_after: timedelta = timedelta(seconds=30)  # let start-up settle first


class Scheduler:
    def __init__(self, jobs: Sequence[IntervalJob], *, retry: Backoff = DATABASE_RETRY) -> None:
        self.jobs = list(jobs)
        self.retry = retry
        self._scheduler: AsyncIOScheduler | None = None
        self._running: set[asyncio.Task[Any]] = set()
        self._cut: set[asyncio.Task[Any]] = set()  # cancelled by :meth:`stop`, its wait over

    @property
    def running(self) -> bool:
        return self._scheduler is not None

    def add(self, job: IntervalJob) -> None:
        """Add a job; on a running scheduler it is scheduled at once (its first run ``first_after`` from now)."""
        if any(existing.name == job.name for existing in self.jobs):
            raise ValueError(f"a job named {job.name!r} is already scheduled")
        self.jobs.append(job)
        if self._scheduler is not None:
            self._schedule(self._scheduler, job, datetime.now(UTC))

    def start(self) -> None:
        """Start on the running event loop (idempotent)."""
        if self._scheduler is not None:
            return
        scheduler = AsyncIOScheduler(timezone=UTC, event_loop=asyncio.get_running_loop())
        now = datetime.now(UTC)
        for job in self.jobs:
            self._schedule(scheduler, job, now)
        scheduler.start()
        self._scheduler = scheduler

    def _schedule(self, scheduler: AsyncIOScheduler, job: IntervalJob, now: datetime) -> None:
        scheduler.add_job(
            self._guarded(job),
            "interval",
            seconds=job.every.total_seconds(),
            id=job.name,
            name=job.name,
            next_run_time=now + job.first_after,
            coalesce=True,
            max_instances=1,
            misfire_grace_time=max(1, int(job.every.total_seconds())),
        )

    def next_runs(self) -> dict[str, datetime | None]:
        """Each job's next run (None while the scheduler is stopped), for the owner's status."""
        found: dict[str, datetime | None] = {}
        for job in self.jobs:
            scheduled = self._scheduler.get_job(job.name) if self._scheduler is not None else None
            found[job.name] = scheduled.next_run_time if scheduled is not None else None
        return found

    async def run_now(self, name: str) -> Any:
        """Run a job at once, outside its schedule (the owner's maintenance commands, tests)."""
        job = next(job for job in self.jobs if job.name == name)
        return await job.run()

    async def stop(self, timeout_s: float = 5.0) -> None:
        scheduler, self._scheduler = self._scheduler, None
        if scheduler is None:
            return
        # Paused, not shut down yet: APScheduler's shutdown cancels the running jobs at once, whatever they do (a
        # reminder being sent, a roll-up being committed); they are given ``timeout_s`` to finish first.
        scheduler.pause()
        if self._running:
            _, pending = await asyncio.wait(set(self._running), timeout=timeout_s)
            for task in pending:
                self._cut.add(task)
                task.cancel()
            for task in pending:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        scheduler.shutdown(wait=False)

    def _run_again_soon(self, job: IntervalJob, failures: int) -> None:
        """Bring the job's next run forward to a retry's time, if that is sooner."""
        scheduled = self._scheduler.get_job(job.name) if self._scheduler is not None else None
        if scheduled is None or scheduled.next_run_time is None:
            return
        soon = datetime.now(UTC) + timedelta(seconds=self.retry.delay(failures))
        if soon < scheduled.next_run_time:
            scheduled.modify(next_run_time=soon)

    def _guarded(self, job: IntervalJob) -> Callable[[], Awaitable[None]]:
        outage = _Outage(job.name)

        async def run() -> None:
            task = asyncio.current_task()
            if task is not None:
                self._running.add(task)
            try:
                await job.run()
            except DATABASE_FAULTS as exc:
                if isinstance(exc, DATABASE_REFUSALS):  # not an outage: the same would fail again
                    log.exception("scheduled job %s failed; it runs again at its next time", job.name)
                else:
                    outage.failed(exc)
                    self._run_again_soon(job, outage.runs)
            except Exception:
                log.exception("scheduled job %s failed; it runs again at its next time", job.name)
            except asyncio.CancelledError:
                if task not in self._cut:
                    raise
                # Ours: ended here, or APScheduler logs the cancellation as the job's failure, with a traceback.
                log.warning("scheduled job %s was cut short by the stop", job.name)
            else:
                outage.worked()
            finally:
                if task is not None:
                    self._running.discard(task)
                    self._cut.discard(task)

        return run


class _Outage:
    """One job's runs that the database failed in a row: said at the first, then every STILL_FAILING_EVERY."""

    def __init__(self, job: str) -> None:
        self.job = job
        self.runs = 0
        self._said_at = 0.0

    def failed(self, exc: BaseException) -> None:
        self.runs += 1
        now = time.monotonic()
        if self.runs == 1:
            log.warning("scheduled job %s: the database failed (%s); trying again until it answers", self.job, exc)
        elif now - self._said_at >= STILL_FAILING_EVERY.total_seconds():
            log.warning("scheduled job %s: the database still fails (%d runs; %s)", self.job, self.runs, exc)
        else:
            log.debug("scheduled job %s: the database failed again (%s)", self.job, exc)
            return
        self._said_at = now

    def worked(self) -> None:
        if self.runs:
            log.info("scheduled job %s works again, after %d runs the database failed", self.job, self.runs)
        self.runs = 0

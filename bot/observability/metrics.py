"""Hearth's Prometheus metrics: one :class:`Metrics` per bot, in a registry of its own.

Services and the Discord layer call its small methods (a counter increment or two each); nothing here reads
settings or the environment, and nothing outside this package imports ``prometheus_client``. What is cheaper
to read when asked than to keep up to date (the embedding backlog, the learner's queue) is read at scrape
time: :meth:`Metrics.exposition` refreshes it, then renders the text format.
"""

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)

log = logging.getLogger(__name__)

# What a conversation turn's outcome (``TurnOutcome.status``) counts as in ``hearth_replies_total``; messages
# Hearth was not asked to answer ("ignored") are not replies and are not counted.
REPLY_OUTCOMES: Mapping[str, str] = {
    "replied": "replied",
    "apologised": "failed",  # the model or the database failed: Hearth apologised in character
    "held": "skipped",  # resting (maintenance) or over the server's daily token quota
    "queued": "queued",  # answered together with the same person's next message
    "kept": "kept",  # stored while stopping; answered by the next start's catch-up
    "lost": "lost",  # could not be stored while stopping
    "withdrawn": "deleted",  # the message answered was deleted meanwhile: nothing shown or kept
    "removed": "deleted",  # the reply was deleted (by a moderator) as it was shown: not shown again, not kept
    "gone": "deleted",  # the channel was deleted while its turn waited or ran: not shown, not kept
    "closed": "skipped",  # the thread was archived or locked while its turn waited or ran: not shown, not kept
    "refused": "refused",  # the person blocked Hearth or closed their DMs: the reply could not be sent, not kept
    "undelivered": "failed",  # Discord failed to show any of the reply (an outage): not kept
    "forbidden": "forbidden",  # Discord refused the reply for a permission Hearth lacks there: not sent, not kept
}

# Hearth's own share of a reply is milliseconds; the model's is seconds.
_OWN_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_MODEL_BUCKETS = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0, 120.0)

# How long a scrape waits for a value read from the database before it reports it unknown (NaN).
SCRAPE_READ_TIMEOUT_S = 2.0

CONTENT_TYPE = CONTENT_TYPE_LATEST


class Metrics:
    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry()
        ProcessCollector(registry=registry)  # process_*: memory, CPU seconds, open files (read from /proc when scraped)
        self._replies = Counter(
            "hearth_replies",
            "Messages Hearth was asked to answer, by what became of them.",
            ["outcome"],
            registry=registry,
        )
        self._own_seconds = Histogram(
            "hearth_reply_own_seconds",
            "Hearth's own time per reply: from the message in to the reply out, the model's time excluded.",
            buckets=_OWN_BUCKETS,
            registry=registry,
        )
        self._model_seconds = Histogram(
            "hearth_reply_model_seconds",
            "Time per reply spent waiting for the model, retries included.",
            buckets=_MODEL_BUCKETS,
            registry=registry,
        )
        self._model_calls = Counter(
            "hearth_model_calls",
            "Calls to the chat model, by model, purpose and result (ok, failed).",
            ["model", "purpose", "result"],
            registry=registry,
        )
        self._model_tokens = Counter(
            "hearth_model_tokens",
            "Tokens of answered model calls, by model, purpose and kind (prompt, completion).",
            ["model", "purpose", "kind"],
            registry=registry,
        )
        self._model_errors = Counter(
            "hearth_model_errors",
            "Failed model attempts (retried or final), by purpose and kind.",
            ["purpose", "kind"],
            registry=registry,
        )
        self._embedding_backlog = Gauge(
            "hearth_memory_embedding_backlog",
            "Memories waiting for a vector, in the database (every process's); NaN when it cannot be read.",
            registry=registry,
        )
        self._learner_backlog = Gauge(
            "hearth_learner_backlog",
            "Conversations queued for learning in this process.",
            registry=registry,
        )
        self._events = Counter(
            "hearth_scheduled_events",
            "Scheduled events (reminders, greetings, follow-ups) handled, by outcome.",
            ["outcome"],
            registry=registry,
        )
        self._database_errors = Counter(
            "hearth_database_errors",
            "Errors raised by the database or its driver, by kind (disconnect, or the error's class).",
            ["kind"],
            registry=registry,
        )
        self._rate_limits = Counter(
            "hearth_discord_rate_limits",
            "Discord API answers of 429 (rate limited), by scope (route, global).",
            ["scope"],
            registry=registry,
        )
        self._rate_limit_seconds = Counter(
            "hearth_discord_rate_limit_wait_seconds",
            "Seconds Discord asked Hearth to wait before retrying rate-limited requests.",
            registry=registry,
        )
        self._on_scrape: list[Callable[[], Awaitable[None]]] = []

    # -- what the services and the Discord layer call ----------------------------------------------------

    def turn(self, status: str, *, own_ms: float = 0.0, model_ms: float = 0.0) -> None:
        """A conversation turn ended with ``status`` (``TurnOutcome.status``); a reply's times go to the histograms."""
        outcome = REPLY_OUTCOMES.get(status)
        if outcome is None:
            return
        self._replies.labels(outcome).inc()
        if outcome == "replied":
            self._own_seconds.observe(max(own_ms, 0.0) / 1000)
            self._model_seconds.observe(max(model_ms, 0.0) / 1000)

    def caught_up(self, replies: int) -> None:
        """Replies to messages that arrived while Hearth was stopped, answered at start."""
        if replies:
            self._replies.labels("caught_up").inc(replies)

    def model_answered(
        self, *, model: str, purpose: str, prompt_tokens: int, completion_tokens: int, faults: Sequence[str] = ()
    ) -> None:
        self._model_calls.labels(model, purpose, "ok").inc()
        self._model_tokens.labels(model, purpose, "prompt").inc(max(prompt_tokens, 0))
        self._model_tokens.labels(model, purpose, "completion").inc(max(completion_tokens, 0))
        self._faults(purpose, faults)

    def model_failed(self, *, model: str, purpose: str, faults: Sequence[str]) -> None:
        self._model_calls.labels(model, purpose, "failed").inc()
        self._faults(purpose, faults)

    def _faults(self, purpose: str, faults: Sequence[str]) -> None:
        for kind in faults:
            self._model_errors.labels(purpose, kind).inc()

    def events_handled(self, counts: Iterable[tuple[str, int]]) -> None:
        """One scheduler tick's outcomes and their counts (``EventService.tick``: sent, missed, failed, …)."""
        for outcome, count in counts:
            if count:
                self._events.labels(outcome).inc(count)

    def database_error(self, kind: str) -> None:
        self._database_errors.labels(kind).inc()

    def rate_limited(self, seconds: float, *, scope: str) -> None:
        self._rate_limits.labels(scope).inc()
        if seconds > 0:
            self._rate_limit_seconds.inc(seconds)

    # -- what is read when scraped --------------------------------------------------------------------

    def watch_learner_backlog(self, read: Callable[[], int]) -> None:
        """``read`` (cheap, in memory) gives the learner's queue length at each scrape."""
        self._learner_backlog.set_function(read)

    def watch_embedding_backlog(self, read: Callable[[], Awaitable[int]]) -> None:
        """``read`` counts the memories without a vector in the database; it runs at each scrape."""

        async def refresh() -> None:
            try:
                async with asyncio.timeout(SCRAPE_READ_TIMEOUT_S):
                    value: float = await read()
            except Exception as exc:  # the database down or slow: the scrape still answers
                log.debug("could not read the embedding backlog for /metrics: %r", exc)
                value = math.nan
            self._embedding_backlog.set(value)

        self._on_scrape.append(refresh)

    async def exposition(self) -> bytes:
        """Every metric in the Prometheus text format (``CONTENT_TYPE``), the scrape-time values read first."""
        for refresh in self._on_scrape:
            await refresh()
        return generate_latest(self.registry)

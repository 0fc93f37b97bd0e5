"""Hearing what other bot processes changed: one dedicated PostgreSQL connection that LISTENs.

Every process keeps a connection of its own (outside the pool) listening on :data:`CHANNEL`. A notification
names what changed (:class:`Change`); the listener hands it to a callback. Notifications sent while the
connection is down are lost, so after every (re)connect the ``on_connect`` callback runs: it must drop or
re-read whatever may have changed meanwhile. A dropped connection is noticed at once (asyncpg's termination
callback) or, for a silently dead one, by a ping every ``ping_s``; it is opened again with backoff.
"""

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

import asyncpg

from bot.db.engine import Database
from bot.domain.retry import Backoff

log = logging.getLogger(__name__)

CHANNEL = "hearth_changes"

ChangeKind = Literal["maintenance", "guild_settings", "persona", "turns", "erased"]
CHANGE_KINDS: tuple[ChangeKind, ...] = ("maintenance", "guild_settings", "persona", "turns", "erased")


@dataclass(frozen=True, slots=True)
class Change:
    """``maintenance``: ``key`` is 1 (on) or 0 (off). ``guild_settings``: ``key`` is the guild's Discord id.
    ``persona``: ``key`` is the guild's row id, or None for the global personas (every guild may use them).
    ``turns``: stored turns were deleted or rewritten (a message deleted or edited on Discord); no key.
    ``erased``: a person was erased; ``key`` is their Discord id."""

    kind: ChangeKind
    key: int | None = None

    def payload(self) -> str:
        return json.dumps({"kind": self.kind, "key": self.key})

    @classmethod
    def parse(cls, payload: str) -> "Change | None":
        """The change a notification names, or None for one this version does not know."""
        try:
            data = json.loads(payload)
            kind, key = data["kind"], data.get("key")
        except (ValueError, TypeError, KeyError):
            return None
        if kind not in CHANGE_KINDS or not (key is None or isinstance(key, int)):
            return None
        return cls(kind, key)


class ChangeListener:
    def __init__(
        self,
        database: Database,
        on_change: Callable[[Change], None],
        on_connect: Callable[[], Awaitable[None]],
        *,
        backoff: Backoff | None = None,
        ping_s: float = 15.0,
    ) -> None:
        self.database = database
        self.on_change = on_change
        self.on_connect = on_connect
        self.backoff = backoff or Backoff(base_s=0.1, cap_s=2.0)
        self.ping_s = ping_s
        self.connections = 0  # how many times it has connected (the first time included)
        self.heard = 0  # how many changes it has handed on
        self._task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="change-listener")

    async def wait_connected(self) -> None:
        """Until the listener is connected and has caught up (``on_connect`` done)."""
        await self._connected.wait()

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _connect(self) -> asyncpg.Connection:
        options = self.database.connect_options()
        for pool_only in ("prepared_statement_cache_size", "prepared_statement_name_func", "async_creator_fn"):
            options.pop(pool_only, None)
        options.setdefault("server_settings", {})["application_name"] = "hearth-listen"
        connection: asyncpg.Connection = await asyncpg.connect(**options)
        return connection

    async def _run(self) -> None:
        attempt = 0
        while True:
            lost = asyncio.Event()
            connection = None
            try:
                connection = await self._connect()
                connection.add_termination_listener(lambda _connection, lost=lost: lost.set())
                await connection.add_listener(CHANNEL, self._notified)
                self.connections += 1
                await self.on_connect()
                attempt = 0
                self._connected.set()
                while not lost.is_set():
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(self.ping_s):
                            await lost.wait()
                    if not lost.is_set():
                        async with asyncio.timeout(5):
                            await connection.execute("SELECT 1")
                log.warning("lost the connection that hears other processes' changes; reconnecting")
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("cannot listen for other processes' changes (%s); retrying", exc)
            except Exception:  # on_connect failed (the database): retry rather than stop listening for good
                log.exception("catching up with other processes' changes failed; retrying")
            finally:
                self._connected.clear()
                if connection is not None and not connection.is_closed():
                    connection.terminate()
            attempt += 1
            await asyncio.sleep(self.backoff.delay(attempt))

    def _notified(self, _connection: object, _pid: int, _channel: str, payload: str) -> None:
        change = Change.parse(payload)
        if change is None:
            log.warning("ignoring a change notification this version does not understand: %.200s", payload)
            return
        self.on_change(change)
        self.heard += 1

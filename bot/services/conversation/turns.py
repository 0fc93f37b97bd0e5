"""Turns, the second stage: when a stored message is answered.

One turn at a time per channel, so replies come in the order people wrote. Messages a user sends while their
turn waits (their cooldown, or another turn in the channel) join it and are answered together. A user answered
less than their cooldown ago waits out the rest, unless the channel is deleted meanwhile: then the turn ends at
once, its messages unanswered, the channel and the user's cooldown untouched. What is done between two turns (an
edit or a deletion followed, another answer kept) goes before the next turn, even one that was waiting first: that
turn reads what it left.
"""

import contextlib
from collections import defaultdict
from collections.abc import AsyncIterator

from bot.services.conversation.config import StoredTurn
from bot.services.conversation.gone import GoneChannels
from bot.services.limits import Cooldowns
from bot.services.locks import KeyedLocks


class Turns:
    def __init__(self, cooldowns: Cooldowns) -> None:
        self.cooldowns = cooldowns
        self.gone = GoneChannels()  # the channels deleted: the turns waiting there end unanswered
        self._locks = KeyedLocks()  # the channel: held by the turn being answered, or by work between turns
        self._queue = KeyedLocks()  # the turns waiting for the channel, in the order they came
        self._pending: defaultdict[tuple[int, int], list[StoredTurn]] = defaultdict(list)
        self._waiting: set[tuple[int, int]] = set()
        self._answering: set[int] = set()  # the channels a turn is being answered in (read, written, stored)

    @contextlib.asynccontextmanager
    async def turn(
        self, channel_id: int, user_id: int, stored: StoredTurn, *, cooldown_s: float
    ) -> AsyncIterator[list[StoredTurn] | None]:
        """The batch of the user's messages this turn answers, the channel held until the block ends; None when a
        turn already waiting for this user will answer ``stored`` too. A channel deleted while the turn waits out
        the cooldown yields the batch at once, the channel not held: the caller finds it in :attr:`gone`."""
        key = (channel_id, user_id)
        self._pending[key].append(stored)
        if key in self._waiting:
            yield None
            return
        self._waiting.add(key)
        taken = False
        try:
            wait = self.cooldowns.remaining(user_id, cooldown_s)
            # What the user sends meanwhile joins this turn.
            if wait and await self.gone.sleep(channel_id, wait):
                batch, taken = self._take(key), True
                yield batch
                return
            self.cooldowns.mark(user_id)
            async with self.answering(channel_id):
                batch, taken = self._take(key), True
                yield batch
        finally:
            if not taken:  # cancelled before its turn: its messages stay stored, awaiting a reply
                self._waiting.discard(key)
                self._pending.pop(key, None)

    def _take(self, key: tuple[int, int]) -> list[StoredTurn]:
        """The user's messages waiting in the channel, now the turn's: what they send next starts another."""
        self._waiting.discard(key)
        return self._pending.pop(key)

    def channel(self, channel_id: int) -> contextlib.AbstractAsyncContextManager[None]:
        """The channel held between turns."""
        return self._locks.hold(channel_id)

    @contextlib.asynccontextmanager
    async def answering(self, channel_id: int) -> AsyncIterator[None]:
        """The channel held for a turn: a live message's, or one that is not (catching up after a restart). Turns
        queue apart from the work between turns: when a turn ends, what waits to be done between turns goes before
        the next one."""
        async with self._queue.hold(channel_id), self._locks.hold(channel_id):
            self._answering.add(channel_id)
            try:
                yield
            finally:
                self._answering.discard(channel_id)

    def busy(self, channel_id: int) -> bool:
        """Whether a turn is being answered in the channel: its reply goes on from the history it read."""
        return channel_id in self._answering

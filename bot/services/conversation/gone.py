"""The channels and threads deleted while Hearth runs, so that the turns waiting in one end without asking the model.

Discord never gives a deleted channel's id to another, but a bot in many servers hears of many deleted threads: only
the most recent are kept, far more than could have turns waiting at once.
"""

import asyncio
import contextlib

REMEMBERED = 10_000


class GoneChannels:
    """The ids of the last :data:`REMEMBERED` channels deleted, the oldest forgotten first."""

    def __init__(self, size: int = REMEMBERED) -> None:
        self._ids: dict[int, None] = {}  # in the order they went
        self._size = size
        self._sleepers: dict[int, set[asyncio.Event]] = {}  # the turns sleeping in a channel, woken if it goes

    def add(self, channel_id: int) -> None:
        self._ids[channel_id] = None
        if len(self._ids) > self._size:
            del self._ids[next(iter(self._ids))]
        for sleeper in self._sleepers.pop(channel_id, ()):
            sleeper.set()

    def __contains__(self, channel_id: object) -> bool:
        return channel_id in self._ids

    async def sleep(self, channel_id: int, seconds: float) -> bool:
        """Sleep ``seconds``, woken early should the channel be deleted meanwhile: whether it was (or had been)."""
        if channel_id in self:
            return True
        gone = asyncio.Event()
        self._sleepers.setdefault(channel_id, set()).add(gone)
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(seconds):
                    await gone.wait()
        finally:
            sleepers = self._sleepers.get(channel_id)
            if sleepers is not None:
                sleepers.discard(gone)
                if not sleepers:
                    del self._sleepers[channel_id]
        return gone.is_set()

"""The channels and threads deleted while Hearth runs, so that the turns waiting in one end without asking the model.

Discord never gives a deleted channel's id to another, but a bot in many servers hears of many deleted threads: only
the most recent are kept, far more than could have turns waiting at once.
"""

REMEMBERED = 10_000


class GoneChannels:
    """The ids of the last :data:`REMEMBERED` channels deleted, the oldest forgotten first."""

    def __init__(self, size: int = REMEMBERED) -> None:
        self._ids: dict[int, None] = {}  # in the order they went
        self._size = size

    def add(self, channel_id: int) -> None:
        self._ids[channel_id] = None
        if len(self._ids) > self._size:
            del self._ids[next(iter(self._ids))]

    def __contains__(self, channel_id: object) -> bool:
        return channel_id in self._ids

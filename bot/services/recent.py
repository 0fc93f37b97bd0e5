"""The last turns of each active conversation, kept in memory so a reply does not re-read them every time.

Every turn this process stores is added here as it is committed; the first time a conversation is read, what
the database holds is merged in (by message id, so whatever order writes and the read land in, nothing is lost
or doubled). A channel is served by one process (its guild's shard), so this process sees every write to it.
Anything that deletes messages elsewhere (erasure, maintenance) calls :meth:`RecentTurns.forget`.
"""

import bisect
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from bot.db.repositories.conversations import HistoryRow


@dataclass(slots=True)
class _Conversation:
    rows: list[HistoryRow] = field(default_factory=list)  # sorted by message id
    loaded: bool = False  # True once the stored history was merged in


class RecentTurns:
    """The last ``keep`` turns of up to ``conversations`` conversations (least recently used dropped first)."""

    def __init__(self, keep: int, *, conversations: int = 4096) -> None:
        self.keep = keep
        self.capacity = conversations
        self._conversations: OrderedDict[int, _Conversation] = OrderedDict()

    def add(self, conversation_id: int, row: HistoryRow) -> None:
        """Record a turn just stored."""
        entry = self._entry(conversation_id)
        bisect.insort(entry.rows, row, key=lambda r: r.message_id)
        self._trim(entry)

    def replace(self, conversation_id: int, message_id: int, content: str) -> None:
        """A known turn's text changed (a regenerated reply); nothing happens for a turn not held here."""
        entry = self._conversations.get(conversation_id)
        if entry is None:
            return
        for index, row in enumerate(entry.rows):
            if row.message_id == message_id:
                entry.rows[index] = HistoryRow(row.message_id, row.role, content, row.speaker, row.created_at)

    def last(self, conversation_id: int) -> HistoryRow | None:
        """The latest turn known of the conversation (stored by this process, or read), if any."""
        entry = self._conversations.get(conversation_id)
        return entry.rows[-1] if entry is not None and entry.rows else None

    async def history(
        self,
        conversation_id: int,
        *,
        up_to_id: int,
        exclude_ids: Sequence[int],
        load: Callable[[int], Awaitable[list[HistoryRow]]],
    ) -> list[HistoryRow]:
        """The last turns before the messages being answered, as ``ConversationRepository.history`` gives them.

        ``load(limit)`` reads the stored history; it is called once per conversation, the first time.
        """
        entry = self._entry(conversation_id)
        if not entry.loaded:
            stored = await load(self.keep + len(exclude_ids))
            known = {row.message_id for row in entry.rows}
            entry.rows = sorted([*entry.rows, *(row for row in stored if row.message_id not in known)], key=_by_id)
            entry.loaded = True
            self._trim(entry, extra=len(exclude_ids))
        excluded = set(exclude_ids)
        chosen = [
            row
            for row in entry.rows
            if row.message_id not in excluded and (row.message_id <= up_to_id or row.role == "assistant")
        ]
        return chosen[-self.keep :] if self.keep else []

    def forget(self, conversation_id: int | None = None) -> None:
        """Drop one conversation's turns, or all (after messages were deleted or a database fault)."""
        if conversation_id is None:
            self._conversations.clear()
        else:
            self._conversations.pop(conversation_id, None)

    def _entry(self, conversation_id: int) -> _Conversation:
        entry = self._conversations.get(conversation_id)
        if entry is None:
            entry = self._conversations[conversation_id] = _Conversation()
            while len(self._conversations) > self.capacity:
                self._conversations.popitem(last=False)
        else:
            self._conversations.move_to_end(conversation_id)
        return entry

    def _trim(self, entry: _Conversation, extra: int = 0) -> None:
        # Room for the turns being answered (excluded from the history) plus a few stored meanwhile.
        limit = self.keep + max(extra, 32)
        if len(entry.rows) > limit:
            del entry.rows[: len(entry.rows) - limit]


def _by_id(row: HistoryRow) -> int:
    return row.message_id

"""Showing a reply to the front end: the streaming preview, throttled, and the final pieces, never raising."""

import logging
import time
from collections.abc import Sequence

from bot.domain.chunking import DISCORD_LIMIT
from bot.services.incoming import AnswerWithdrawn, IncomingMessage, ReplyTarget

log = logging.getLogger(__name__)


class PreviewThrottle:
    """Shows the streaming text at once, then at most once per ``interval_s``."""

    def __init__(self, target: ReplyTarget, interval_s: float) -> None:
        self.target = target
        self.interval_s = interval_s
        self.last = float("-inf")

    async def __call__(self, text: str) -> None:
        now = time.monotonic()
        if not text.strip() or now - self.last < self.interval_s:
            return
        self.last = now
        await self.target.preview(text if len(text) <= DISCORD_LIMIT else text[: DISCORD_LIMIT - 1] + "…")


async def send_safely(
    target: ReplyTarget, pieces: Sequence[str], incoming: IncomingMessage, *, regenerable: bool = False
) -> list[int]:
    """Send ``pieces``; the ids of the messages sent, none when the front end failed (logged). The message
    answered being deleted meanwhile is not a failure: :class:`AnswerWithdrawn` goes to the caller."""
    try:
        return await target.send(pieces, regenerable=regenerable)
    except AnswerWithdrawn:
        raise
    except Exception:
        log.exception(
            "could not deliver a reply (guild %s, channel %s, message %s)",
            incoming.place.guild_id,
            incoming.place.channel_id,
            incoming.message_id,
        )
        return []

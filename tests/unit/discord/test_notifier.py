"""DiscordNotifier's verdict on a failed send: retried only when the message surely did not go out.

Discord's objects are mocks specced from discord.py's; the DM path is used (no channel given)."""

from unittest.mock import AsyncMock, MagicMock

import aiohttp
import discord
import pytest

from bot.discord.notifier import DiscordNotifier
from bot.services.events import DeliveryFailed

LONG = "word " * 900  # more than one Discord message: sent in pieces


def _response(status: int) -> MagicMock:
    response = MagicMock(spec=aiohttp.ClientResponse)
    response.status, response.reason = status, "scripted"
    return response


def _notifier(*outcomes: BaseException | None) -> tuple[DiscordNotifier, AsyncMock]:
    """A notifier whose DM channel answers each send with the next outcome (None: sent)."""
    dm = MagicMock(spec=discord.DMChannel)
    dm.send = AsyncMock(side_effect=list(outcomes))
    user = MagicMock(spec=discord.User)
    user.create_dm = AsyncMock(return_value=dm)
    bot = MagicMock(spec=discord.Client)
    bot.get_user.return_value = user
    return DiscordNotifier(bot), dm.send


async def _failure(notifier: DiscordNotifier, text: str) -> DeliveryFailed:
    with pytest.raises(DeliveryFailed) as raised:
        await notifier.deliver(user_discord_id=11, channel_id=None, text=text)
    return raised.value


@pytest.mark.parametrize(
    ("error", "retryable"),
    [
        (discord.DiscordServerError(_response(503), "unavailable"), True),
        (discord.HTTPException(_response(429), "slow down"), True),
        (discord.Forbidden(_response(403), {"code": 50007, "message": "Cannot send messages to this user"}), False),
        (aiohttp.ClientConnectorError(MagicMock(), OSError("connection refused")), True),
    ],
)
async def test_a_send_discord_refused_or_that_never_connected_was_not_sent(
    error: BaseException, retryable: bool
) -> None:
    notifier, send = _notifier(error)
    failure = await _failure(notifier, "⏰ Reminder: call mom")
    assert (failure.retryable, failure.maybe_sent) == (retryable, False)
    assert send.await_count == 1


@pytest.mark.parametrize(
    "error", [TimeoutError(), aiohttp.ServerDisconnectedError(), ConnectionResetError("reset by peer")]
)
async def test_a_send_cut_off_after_the_request_left_may_have_been_delivered(error: BaseException) -> None:
    notifier, _ = _notifier(error)
    assert (await _failure(notifier, "⏰ Reminder: call mom")).maybe_sent is True


async def test_a_failure_after_the_first_piece_of_a_long_message_may_have_been_delivered() -> None:
    notifier, send = _notifier(None, discord.DiscordServerError(_response(503), "unavailable"))
    failure = await _failure(notifier, LONG)
    assert failure.maybe_sent is True and send.await_count == 2

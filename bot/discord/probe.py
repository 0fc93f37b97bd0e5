"""Ask Discord whose token this is (``GET /users/@me``): for ``doctor``, and before ``run`` does its heavy work.

``run`` calls :func:`wait_for_discord` before it migrates the database and loads the embedding model, so a
wrong token or an unreachable Discord is one line within seconds (or after the retries), not a traceback after
the model has loaded.
"""

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Literal

import aiohttp
import discord
from discord.http import HTTPClient

from bot.domain.retry import Backoff
from bot.errors import DiscordRejected, DiscordUnavailable, describe_connection_error

log = logging.getLogger(__name__)

# One attempt may take this long (a firewall that drops packets answers nothing at all).
PROBE_TIMEOUT_S = 10.0
# Waits between attempts at start-up: about 1, 2, 4, 8, 15, 15 … seconds, within DISCORD_CONNECT_RETRY_SECONDS.
START_BACKOFF = Backoff(base_s=1.0, factor=2.0, cap_s=15.0, jitter=0.1)

INVALID_TOKEN = "Discord rejected DISCORD_TOKEN: copy the bot token again from the Developer Portal (Bot → Reset Token)"


@dataclass(frozen=True, slots=True)
class TokenCheck:
    status: Literal["ok", "invalid", "unreachable"]
    detail: str


async def check_token(token: str, *, timeout_s: float = PROBE_TIMEOUT_S) -> TokenCheck:
    """One ``GET /users/@me`` with the token, through discord.py's own HTTP client (same URL, same headers)."""
    http = HTTPClient(asyncio.get_running_loop())
    try:
        user = await asyncio.wait_for(http.static_login(token), timeout_s)
    except discord.LoginFailure:
        return TokenCheck("invalid", INVALID_TOKEN)
    except discord.HTTPException as exc:  # 5xx (after discord.py's own retries), 403 from a proxy, …
        return TokenCheck("unreachable", f"Discord answered {exc.status} {exc.text or exc.response.reason}".strip())
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        return TokenCheck("unreachable", describe_connection_error(exc))
    finally:
        await http.close()
    return TokenCheck("ok", f"valid: the bot {user.get('username', '?')} (id {user.get('id', '?')})")


async def wait_for_discord(token: str, *, budget_s: float) -> None:
    """Return once Discord accepts the token; retry an unreachable Discord with backoff for up to ``budget_s``
    seconds, then raise :class:`DiscordUnavailable`. An invalid token raises :class:`DiscordRejected` at once."""
    started = time.monotonic()
    attempt = 0
    while True:
        timeout = min(PROBE_TIMEOUT_S, max(1.0, budget_s - (time.monotonic() - started)))
        result = await check_token(token, timeout_s=timeout)
        if result.status == "ok":
            return
        if result.status == "invalid":
            raise DiscordRejected(result.detail)
        attempt += 1
        wait = START_BACKOFF.delay(attempt)
        elapsed = time.monotonic() - started
        if elapsed + wait >= budget_s:
            tries = "once" if attempt == 1 else f"{attempt} times"
            raise DiscordUnavailable(
                f"cannot reach Discord ({discord.http.Route.BASE}): {result.detail}; tried {tries} in "
                f"{elapsed:.0f} s (DISCORD_CONNECT_RETRY_SECONDS={budget_s:g}): check the network, DNS and firewall"
            )
        log.warning("cannot reach Discord (%s); trying again in %.0f s", result.detail, wait)
        await asyncio.sleep(wait)

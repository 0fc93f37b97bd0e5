"""The fake Discord as one server: :class:`FakeDiscord` serves the gateway, REST and the CDN on 127.0.0.1."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from types import TracebackType
from typing import Self

import yarl
from aiohttp import web
from discord.gateway import DiscordWebSocket
from discord.http import Route

from tests.fakes.discord.interactions import Interactions
from tests.fakes.discord.rest import API_PREFIX
from tests.fakes.discord.world import ATTACHMENT_SIZE_LIMIT
from tests.fakes.local_http import serve_locally


class FakeDiscord(Interactions):
    """Discord's gateway and REST API, enough for discord.py: see the package docstring."""

    def __init__(
        self,
        bot_name: str = "Hearth",
        *,
        shard_count: int = 1,
        heartbeat_interval_ms: int = 41_250,
        echo_bot_messages: bool = True,
    ) -> None:
        """``shard_count`` is what GET /gateway/bot recommends; ``echo_bot_messages`` sends the bot's own
        created, edited and deleted channel messages back over the gateway, as Discord does."""
        super().__init__(
            bot_name,
            shard_count=shard_count,
            heartbeat_interval_ms=heartbeat_interval_ms,
            echo_bot_messages=echo_bot_messages,
        )
        self._runner: web.AppRunner | None = None

    async def __aenter__(self) -> Self:
        # Uploads up to the attachment limit must reach the handlers (aiohttp refuses bodies over 1 MiB by default).
        app = web.Application(client_max_size=4 * ATTACHMENT_SIZE_LIMIT)
        app.router.add_get("/", self._gateway)
        for method, path, name, handler in self.routes():
            app.router.add_route(method, API_PREFIX + path, self._endpoint(name, handler))
        app.router.add_get("/attachments/{channel_id}/{attachment_id}/{filename}", self._attachment)
        app.router.add_route("*", "/{tail:.*}", self._endpoint("unknown", self._unknown))
        self._runner, self._port = await serve_locally(app)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for session in list(self._sessions):
            await session.ws.close(code=4000, message=b"fake Discord shutting down")
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @contextlib.contextmanager
    def patch_discord(self) -> Iterator[None]:
        """Point discord.py's REST base and default gateway at this fake, restoring both afterwards."""
        old_base, old_gateway = Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY
        Route.BASE = self.api_base
        DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(self.gateway_url)
        try:
            yield
        finally:
            Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY = old_base, old_gateway

"""The operations HTTP server (METRICS_PORT): ``GET /metrics`` and ``GET /healthz``, on the bot's own event loop.

aiohttp (which discord.py is built on) serves both from the running loop: no thread, no other process. Both
answers are cheap: counters rendered from memory, one ``SELECT 1`` and one ``COUNT`` on an indexed column.
"""

import asyncio
import json
import logging
import os

from aiohttp import web

from bot.errors import ConfigError
from bot.observability.health import Health
from bot.observability.metrics import CONTENT_TYPE, Metrics

log = logging.getLogger(__name__)


async def check_free(host: str, port: int) -> None:
    """Raise :class:`ConfigError` now if the server could not listen on ``host:port`` (another program holds the
    port, or the address is not this machine's), so a start says so before its slow work rather than after."""
    if port == 0:
        return
    try:
        probe = await asyncio.get_running_loop().create_server(asyncio.Protocol, host=host, port=port)
    except OSError as exc:
        raise _cannot_serve(host, port, exc) from None
    probe.close()
    await probe.wait_closed()


def _cannot_serve(host: str, port: int, exc: OSError) -> ConfigError:
    # The errno's own words ("address already in use"): asyncio's message repeats the address.
    reason = os.strerror(exc.errno).lower() if exc.errno and exc.errno > 0 else (exc.strerror or str(exc))
    return ConfigError(f"cannot serve metrics on {host}:{port} ({reason}): choose another METRICS_PORT or METRICS_HOST")


class OpsServer:
    def __init__(self, metrics: Metrics, health: Health, *, host: str, port: int) -> None:
        self.metrics = metrics
        self.health = health
        self.host = host
        self.port = port  # 0: any free port; the one bound once started
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        try:
            await web.TCPSite(runner, host=self.host, port=self.port).start()
        except OSError as exc:
            await runner.cleanup()
            raise _cannot_serve(self.host, self.port, exc) from None
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self.port = runner.addresses[0][1]
        log.info("serving /metrics and /healthz on http://%s:%d", self.host, self.port)

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def _metrics(self, _request: web.Request) -> web.Response:
        body = await self.metrics.exposition()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})

    async def _healthz(self, _request: web.Request) -> web.Response:
        report = await self.health.check()
        return web.Response(
            text=json.dumps(report.body()), status=200 if report.healthy else 503, content_type="application/json"
        )

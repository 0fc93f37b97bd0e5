"""The operations HTTP server (METRICS_PORT): ``GET /metrics`` and ``GET /healthz``, on the bot's own event loop.

aiohttp (which discord.py is built on) serves both from the running loop: no thread, no other process. Both
answers are cheap: counters rendered from memory, one ``SELECT 1`` and one ``COUNT`` on an indexed column.
"""

import json
import logging

from aiohttp import web

from bot.errors import ConfigError
from bot.observability.health import Health
from bot.observability.metrics import CONTENT_TYPE, Metrics

log = logging.getLogger(__name__)


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
            raise ConfigError(
                f"cannot serve metrics on {self.host}:{self.port} ({exc.strerror or exc}): "
                "choose another METRICS_PORT or METRICS_HOST"
            ) from None
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

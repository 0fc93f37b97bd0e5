"""What the fake servers share: an aiohttp app served on 127.0.0.1, on a port the system picks."""

from aiohttp import web


async def serve_locally(app: web.Application) -> tuple[web.AppRunner, int]:
    """Start ``app`` on a free local port; returns its runner (to ``cleanup()`` at the end) and the port."""
    runner = web.AppRunner(app, shutdown_timeout=1.0)
    await runner.setup()
    await web.TCPSite(runner, host="127.0.0.1", port=0).start()
    return runner, runner.addresses[0][1]

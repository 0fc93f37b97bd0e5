"""The health check behind ``GET /healthz``: connected to Discord's gateway, and the database answers."""

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bot.db.engine import Database

# A database slower than this to answer ``SELECT 1`` counts as down (Docker's healthcheck allows 5 s).
DATABASE_TIMEOUT_S = 2.0


@dataclass(frozen=True, slots=True)
class HealthReport:
    healthy: bool
    gateway: str  # "connected" | "disconnected"
    database: str  # "ok" | "timeout" | "unreachable"

    def body(self) -> dict[str, Any]:
        return {"status": "ok" if self.healthy else "unavailable", "gateway": self.gateway, "database": self.database}


class Health:
    """``gateway_connected`` comes from the Discord layer (this package does not import discord)."""

    def __init__(
        self, database: Database, gateway_connected: Callable[[], bool], *, timeout_s: float = DATABASE_TIMEOUT_S
    ) -> None:
        self.database = database
        self.gateway_connected = gateway_connected
        self.timeout_s = timeout_s

    async def check(self) -> HealthReport:
        gateway = "connected" if self.gateway_connected() else "disconnected"
        try:
            async with asyncio.timeout(self.timeout_s):
                await self.database.check()
            database = "ok"
        except TimeoutError:
            database = "timeout"
        except Exception:  # whatever it is, the database did not answer; its errors are counted in the metrics
            database = "unreachable"
        return HealthReport(gateway == "connected" and database == "ok", gateway, database)

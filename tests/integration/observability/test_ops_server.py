"""The operations server on its own: a database that does not answer makes /healthz say 503."""

import math
import socket

import pytest

from bot.db.engine import Database
from bot.errors import ConfigError
from bot.observability.health import Health
from bot.observability.metrics import Metrics
from bot.observability.server import OpsServer
from bot.services.embedding_worker import EmbeddingWorker
from tests.support.embedding import shared_embedder
from tests.support.observability import healthz, sample, scrape
from tests.support.postgres import OwnPostgres


def closed_port() -> int:
    """A local port nothing listens on (connecting is refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_healthz_is_503_when_the_database_refuses_and_the_error_is_counted() -> None:
    database = Database(f"postgresql+asyncpg://hearth:secret@127.0.0.1:{closed_port()}/hearth")
    metrics = Metrics()
    database.on_error(metrics.database_error)
    server = OpsServer(metrics, Health(database, lambda: True), host="127.0.0.1", port=0)
    await server.start()
    try:
        status, body = await healthz(server.port)
        assert (status, body) == (503, {"status": "unavailable", "gateway": "connected", "database": "unreachable"})
        samples = await scrape(server.port)
        assert sample(samples, "hearth_database_errors_total", kind="connection") == 1

        taken = OpsServer(metrics, Health(database, lambda: True), host="127.0.0.1", port=server.port)
        with pytest.raises(ConfigError, match="METRICS_PORT"):
            await taken.start()
    finally:
        await server.stop()
        await database.dispose()


async def test_healthz_is_200_at_the_first_check_after_the_database_restarted(
    own_server: OwnPostgres, own_db: Database
) -> None:
    """The pooled connections died with the restart: the check connects afresh rather than failing once."""
    metrics = Metrics()
    own_db.on_error(metrics.database_error)
    server = OpsServer(metrics, Health(own_db, lambda: True), host="127.0.0.1", port=0)
    await server.start()
    try:
        assert (await healthz(server.port))[0] == 200  # a connection is pooled now
        await own_server.restart()

        status, body = await healthz(server.port)

        assert (status, body) == (200, {"status": "ok", "gateway": "connected", "database": "ok"})
        assert not sample(await scrape(server.port), "hearth_database_errors_total", kind="connection")
    finally:
        await server.stop()


async def test_the_embedding_backlog_is_read_at_the_first_scrape_after_the_database_restarted(
    own_server: OwnPostgres, own_db: Database
) -> None:
    """The scrape's pooled connection died with the restart: the backlog is read again on a fresh one, rather
    than reported unknown (NaN), and the try that met the dead connection is no database error (an alert on the
    counter would go off after every restart); a read that fails to the end is one."""
    metrics = Metrics()
    own_db.on_error(metrics.database_error)
    metrics.watch_embedding_backlog(EmbeddingWorker(own_db, await shared_embedder()).backlog)
    server = OpsServer(metrics, Health(own_db, lambda: True), host="127.0.0.1", port=0)
    await server.start()
    try:
        assert sample(await scrape(server.port), "hearth_memory_embedding_backlog") == 0  # a connection is pooled now
        await own_server.restart()

        samples = await scrape(server.port)
        assert sample(samples, "hearth_memory_embedding_backlog") == 0
        assert not sample(samples, "hearth_database_errors_total", kind="connection")

        async with own_server.unreachable(own_db.url.database or ""):
            samples = await scrape(server.port)
        assert math.isnan(sample(samples, "hearth_memory_embedding_backlog") or 0.0)
        errors = [value for (name, _), value in samples.items() if name == "hearth_database_errors_total"]
        assert errors == [1]
    finally:
        await server.stop()

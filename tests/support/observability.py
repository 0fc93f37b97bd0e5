"""Reading Hearth's /metrics and /healthz over HTTP, and putting logging back as it was after a test."""

import asyncio
import contextlib
import json
import logging
from collections.abc import Iterator
from typing import Any

import aiohttp
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def get(port: int, path: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}{path}") as response:
        return response.status, await response.text()


async def scrape(port: int) -> Samples:
    """Every sample of ``GET /metrics``, by name and labels (the text format, parsed by Prometheus' parser)."""
    status, text = await get(port, "/metrics")
    assert status == 200, text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def sample(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


async def counted(registry: CollectorRegistry, name: str, expected: float, **labels: str) -> None:
    """Wait (briefly) until the sample ``name{labels}`` of ``registry`` is ``expected``."""
    found = None
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(5):
            while (found := registry.get_sample_value(name, labels)) != expected:  # noqa: ASYNC110 (polling)
                await asyncio.sleep(0.02)
    assert found == expected, f"{name}{labels}: {found}"


async def healthz(port: int) -> tuple[int, dict[str, Any]]:
    status, text = await get(port, "/healthz")
    return status, json.loads(text)


@contextlib.contextmanager
def restored_logging() -> Iterator[None]:
    """Let a test call ``setup_logging`` (which replaces the root logger's handlers), then undo it."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    others = {
        name: logging.getLogger(name).level for name in ("discord", "discord.client", "apscheduler", "httpx", "httpx2")
    }
    try:
        yield
    finally:
        for handler in root.handlers:
            if handler not in handlers:
                root.removeHandler(handler)
        for handler in handlers:
            if handler not in root.handlers:
                root.addHandler(handler)
        root.setLevel(level)
        for name, other in others.items():
            logging.getLogger(name).setLevel(other)

"""The environment of a bot started as its own process (``python -m tests.support.launcher run``), set up as a
deployment is: everything from environment variables, pointed at the fake Discord and the fake model."""

import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

from bot.db.engine import Database
from tests.fakes.discord import FakeDiscord
from tests.fakes.llm_server import FakeLLM

ROOT = Path(__file__).resolve().parents[2]


def bot_environment(
    discord: FakeDiscord, database: Database, llm: FakeLLM, *, token: str = "fake-token", api_key: str = "test"
) -> dict[str, str]:
    """What the bot's process needs, and nothing else of this one's environment; add settings to taste."""
    environment = {key: os.environ[key] for key in ("PATH", "HOME", "LANG") if key in os.environ}
    return environment | {
        "PYTHONPATH": str(ROOT),
        "FAKE_DISCORD_API": discord.api_base,
        "FAKE_DISCORD_GATEWAY": discord.gateway_url,
        "DISCORD_TOKEN": token,
        "DATABASE_URL": database.engine.url.render_as_string(hide_password=False),
        "OPENAI_BASE_URL": llm.base_url,
        "OPENAI_API_KEY": api_key,
        "LLM_MODEL": "fake-model",
        "EMBEDDING_PROVIDER": "openai",  # the fake LLM embeds: no local model to load in the bot's process
        "EMBEDDING_MODEL": "fake-embedding",
        "USER_COOLDOWN_SECONDS": "0",
    }


def shows(log: Path, needle: str) -> bool:
    """Whether the bot's log (its stderr, a small file) shows ``needle`` yet."""
    return needle in log.read_text(errors="replace")


async def logged(log: Path, needle: str, timeout_s: float = 60.0) -> None:
    """Wait until the bot's log shows ``needle``."""
    async with asyncio.timeout(timeout_s):
        while not shows(log, needle):  # noqa: ASYNC110 (another process writes it)
            await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def bot_process(
    environment: dict[str, str], log: Path, *options: str
) -> AsyncIterator[asyncio.subprocess.Process]:
    """``python -m tests.support.launcher run`` (with ``options``) in ``log``'s folder, its stderr written to ``log``;
    killed if it still runs when the block ends (a test that failed before it stopped)."""
    with log.open("wb") as stderr:
        bot = await asyncio.create_subprocess_exec(
            sys.executable,
            *("-m", "tests.support.launcher", "run", *options),
            cwd=log.parent,
            env=environment,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=stderr,
        )
    try:
        yield bot
    finally:
        if bot.returncode is None:
            bot.kill()
            await bot.wait()

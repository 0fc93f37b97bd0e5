"""Running the real HearthBot against the fake Discord, a real database and the fake LLM."""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any, cast

from bot.container import Container
from bot.db.engine import Database
from bot.discord.client import HearthBot
from bot.settings import Settings
from tests.fakes.discord import FakeDiscord
from tests.fakes.llm_server import FakeLLM
from tests.support.chat import chat_model
from tests.support.embedding import shared_embedder


def bot_settings(db: Database, llm: FakeLLM, **overrides: Any) -> Settings:
    """Settings as a deployment would have them, pointing at the test database and the fake LLM."""
    values: dict[str, Any] = {
        "discord_token": "fake-token",
        "database_url": db.engine.url.render_as_string(hide_password=False),
        "openai_base_url": llm.base_url,
        "openai_api_key": "test",
        "llm_model": "fake-model",
        "stream_edit_interval_seconds": 0.2,
        "user_cooldown_seconds": 0,  # tests send faster than people do; the cooldown's own test sets it
        **overrides,
    }
    return Settings(_env_file=None, **values)


@contextlib.asynccontextmanager
async def container_on(
    db: Database, llm: FakeLLM, *, started: bool = False, **overrides: Any
) -> AsyncIterator[Container]:
    """What one bot process holds (learning off unless ``overrides`` say), on the test database and the fake
    LLM, without Discord; ``started``: with its background work and jobs running. Closed afterwards."""
    container = await Container.create(
        bot_settings(db, llm, **({"learning_enabled": False} | overrides)),
        chat_model=chat_model(llm.base_url),
        embedder=await shared_embedder(),
    )
    try:
        if started:
            await container.start()
        yield container
    finally:
        await container.aclose()


@contextlib.asynccontextmanager
async def running_bot(
    discord: FakeDiscord,
    db: Database,
    llm: FakeLLM,
    *,
    budget_s: float = 5.0,
    ready: bool = True,
    sync_commands: bool = True,
    configured_embedder: bool = False,
    guild_ready_timeout: float = 0.05,
    model_timeout_s: float = 2.0,
    **overrides: Any,
) -> AsyncIterator[HearthBot]:
    """Start HearthBot as ``python -m bot run --sync-commands`` would (without ``sync_commands``: as ``python -m
    bot run``), connected and ready (unless ``ready`` is False: then as soon as it is set up); close it cleanly
    afterwards. The embedder is the tests' shared local one, unless ``configured_embedder``: then the one the
    settings name (e.g. ``embedding_provider="openai"``: the fake LLM's endpoint). ``guild_ready_timeout``: how long
    discord.py waits after the last server arrives before it calls the bot ready (2 s unless told: short here);
    ``model_timeout_s``: how long one model call may take."""
    container = await Container.create(
        bot_settings(db, llm, **overrides),
        chat_model=chat_model(llm.base_url, budget_s=budget_s, timeout_s=model_timeout_s),
        embedder=None if configured_embedder else await shared_embedder(),
    )
    with discord.patch_discord():
        bot = HearthBot(
            container.services(), container, sync_commands=sync_commands, guild_ready_timeout=guild_ready_timeout
        )
        task = asyncio.create_task(bot.start("fake-token"))
        try:
            if ready:
                await discord.wait_identified()
                async with asyncio.timeout(5):
                    await bot.wait_until_ready()
            else:
                await discord.wait_identify_sent()  # set up (setup_hook runs before IDENTIFY)
            yield bot
        except BaseException:
            # The test failed: its turns still under way are cut short now, as a stop asked twice cuts them, not
            # left to run on into the next test's log once their clients are closed.
            bot.stop()
            await bot.stop()
            raise
        finally:
            await bot.close()
            await task
            await container.aclose()
    assert discord.unexpected == [], f"routes the fake Discord does not know: {discord.unexpected}"


def container_of(bot: HearthBot) -> Container:
    """The Container a bot of :func:`running_bot` runs on, for what a test reaches beyond the bot's services."""
    return cast(Container, bot.runtime)

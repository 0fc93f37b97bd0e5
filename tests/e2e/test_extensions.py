"""Every extension loads at start-up, their commands do not clash, and no cog reaches past the services.

The bot is started for real (``setup_hook`` loads the extensions from ``bot.discord.exts``) against the fake
Discord; the import rules are read from the cog modules' source.
"""

import ast
import logging
import pkgutil
from collections import Counter
from pathlib import Path

import pytest
from discord import app_commands

import bot.discord.exts as exts
from bot.db.engine import Database
from bot.discord.client import HearthBot
from bot.discord.exts import EXTENSIONS
from tests.fakes.discord import FakeDiscord
from tests.fakes.llm_server import FakeLLM
from tests.support.bot import running_bot

EXTS = Path(exts.__file__).parent
# What a cog must not import: the composition root (services come from setup()), and the database layer.
FORBIDDEN = ("bot.container", "sqlalchemy", "bot.db")


def qualified_names(bot: HearthBot) -> list[str]:
    """Every runnable slash command the loaded cogs hold, by qualified name (``memory show``, ``stats``)."""
    names: list[str] = []
    for cog in bot.cogs.values():
        for command in cog.walk_app_commands():
            if isinstance(command, app_commands.Command):
                names.append(command.qualified_name)
    return names


def with_a_cog(bot: HearthBot) -> set[str]:
    """The extensions whose setup() added their cog (one that declined is loaded, but adds nothing)."""
    return {type(cog).__module__.rsplit(".", 1)[0] for cog in bot.cogs.values()}


def imported_modules(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


async def test_every_extension_loads_and_no_two_commands_share_a_name(db: Database, llm: FakeLLM) -> None:
    on_disk = {f"{exts.__name__}.{m.name}" for m in pkgutil.iter_modules([str(EXTS)]) if m.ispkg}
    assert on_disk == set(EXTENSIONS), "a package under bot/discord/exts/ is not in EXTENSIONS (or the reverse)"
    async with FakeDiscord() as discord, running_bot(discord, db, llm, ready=False) as bot:
        assert set(bot.extensions) == set(EXTENSIONS), "an extension failed to load (see the log)"
        assert with_a_cog(bot) == set(EXTENSIONS)
        names = qualified_names(bot)
        clashes = [name for name, count in Counter(names).items() if count > 1]
        assert clashes == [] and len(names) >= 40
        assert {c["name"] for c in discord.commands()} == {c.name for c in bot.tree.get_commands()}


async def test_an_extension_switched_off_declines_with_a_logged_reason(
    db: Database, llm: FakeLLM, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bot.discord")
    async with (
        FakeDiscord() as discord,
        running_bot(discord, db, llm, disabled_extensions="knowledge, chat, nonsense") as bot,
    ):
        assert set(EXTENSIONS) - with_a_cog(bot) == {"bot.discord.exts.knowledge", "bot.discord.exts.chat"}
        published = {c["name"] for c in discord.commands()}
        assert "knowledge" not in published and {"config", "memory", "owner"} <= published
        await bot.caught_up.wait()  # nothing to catch up on without conversation
    said = caplog.text
    assert "extension knowledge not loaded: switched off by DISABLED_EXTENSIONS" in said
    assert "extension chat not loaded: switched off by DISABLED_EXTENSIONS" in said
    assert "DISABLED_EXTENSIONS names 'nonsense'" in said


def test_no_cog_module_imports_the_container_or_the_database_layer() -> None:
    modules = sorted(EXTS.rglob("*.py"))
    assert len(modules) >= 2 * len(EXTENSIONS)
    for path in modules:
        bad = {m for m in imported_modules(path) if any(m == f or m.startswith(f + ".") for f in FORBIDDEN)}
        assert bad == set(), f"{path.relative_to(EXTS.parent)} imports {sorted(bad)}"

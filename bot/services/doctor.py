"""`python -m bot doctor`: is this installation ready to run?"""

import asyncio
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal, Protocol

import openai

from bot.db import migrations
from bot.db.engine import DATABASE_FAULTS, Database, damaged_sqlite, describe_sqlite_damage, sqlite_file_to_come
from bot.db.repositories.system import SystemRepository
from bot.db.urls import make_url
from bot.errors import DatabaseUnavailable, HearthError, describe_connection_error
from bot.llm.openai_client import build_openai_client, llm_configured
from bot.settings import Settings

Status = Literal["ok", "fail", "skip"]

LLM_PROBE_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    status: Status
    detail: str


class TokenCheck(Protocol):
    """What a token probe answers (``bot.discord.probe.TokenCheck``; services do not import discord)."""

    @property
    def status(self) -> Literal["ok", "invalid", "unreachable"]: ...

    @property
    def detail(self) -> str: ...


TokenProbe = Callable[[str], Awaitable[TokenCheck]]


async def _discord_token(settings: Settings, check_token: TokenProbe | None) -> Check:
    if settings.discord_token is None:
        return Check("discord token", "fail", "DISCORD_TOKEN is not set (put it in .env)")
    if check_token is None:
        return Check("discord token", "ok", "set (not checked with Discord)")
    result = await check_token(settings.discord_token.get_secret_value())
    if result.status == "ok":
        return Check("discord token", "ok", result.detail)
    if result.status == "invalid":
        return Check("discord token", "fail", result.detail)
    return Check("discord token", "fail", f"set, but Discord is unreachable: {result.detail}")


def _unusable(exc: HearthError, why: str = "database unreachable") -> list[Check]:
    skipped = [Check(name, "skip", why) for name in ("schema", "pgvector")]
    return [Check("database", "fail", str(exc)), *skipped]


def _sqlite_to_come(settings: Settings) -> list[Check] | None:
    """The checks of a SQLite file that is not there yet (None: it is, or the database is not SQLite), made without
    creating it or its folder: a check writes nothing, and the first start makes both where it may."""
    url = make_url(settings.database_url)
    path = sqlite_file_to_come(url)
    if path is None:
        return None
    folder = nearest = path.parent
    while not nearest.exists() and nearest != nearest.parent:
        nearest = nearest.parent
    detail = None
    if not nearest.is_dir():
        detail = f"cannot create the folder {folder} for the SQLite database (a file is in the way)"
    elif not os.access(nearest, os.W_OK | os.X_OK):
        made = f"the SQLite database {path}" if nearest == folder else f"the folder {folder} for the SQLite database"
        detail = f"cannot create {made} (this user may not write in the folder {nearest})"
    if detail is not None:
        advice = "create it where the bot may write, or set DATABASE_URL to a file in a folder it may write"
        return _unusable(DatabaseUnavailable(f"{detail}: {advice}"))
    where = url.render_as_string(hide_password=True)
    return [
        Check("database", "ok", f"{where} (no file yet: the first start makes {path})"),
        Check("schema", "ok", f"not created yet: the first start makes it ({migrations.head_revision()})"),
        Check("pgvector", "skip", "not needed on SQLite (vectors are searched in NumPy)"),
    ]


async def _database_checks(settings: Settings) -> list[Check]:
    to_come = await asyncio.to_thread(_sqlite_to_come, settings)
    if to_come is not None:
        return to_come
    try:
        database = Database(settings.database_url)
    except HearthError as exc:  # the SQLite file's folder cannot be made
        return _unusable(exc)
    try:
        try:
            await database.check()
        except HearthError as exc:
            return _unusable(exc)
        try:
            async with database.session() as session:
                damage = await SystemRepository(session).sqlite_damage()  # SELECT 1 reads none of the tables
                version = await SystemRepository(session).server_version()
                vector = await SystemRepository(session).extension_version("vector")
                available = await SystemRepository(session).extension_available("vector")
            current = await migrations.current_revision(database)
        except DATABASE_FAULTS as exc:
            damaged = damaged_sqlite(database.url, exc)
            if damaged is None:
                raise
            return _unusable(damaged, "database damaged")
        if damage is not None:
            return _unusable(DatabaseUnavailable(describe_sqlite_damage(database.url, damage)), "database damaged")
        checks = [Check("database", "ok", f"{database.url.render_as_string(hide_password=True)} ({version})")]

        head = migrations.head_revision()
        checks.append(await _schema(database, settings, current, head))

        if database.backend != "postgresql":
            checks.append(Check("pgvector", "skip", "not needed on SQLite (vectors are searched in NumPy)"))
        elif vector is not None:
            checks.append(Check("pgvector", "ok", f"vector {vector}"))
        elif current != head and available is not None:  # the migrations create it, as they make the schema
            version, may_create = available
            if may_create:
                checks.append(Check("pgvector", "ok", f"vector {version} available: the next start creates it"))
            else:
                detail = "this role may not create the vector extension the start needs: have a superuser run"
                checks.append(Check("pgvector", "fail", f"{detail} `CREATE EXTENSION vector;` in this database"))
        elif available is not None:
            checks.append(Check("pgvector", "fail", "the vector extension is not installed in this database"))
        else:
            detail = "the vector extension is not available on this server: install pgvector into PostgreSQL"
            checks.append(Check("pgvector", "fail", f"{detail} (the pgvector/pgvector image has it)"))
        return checks
    finally:
        await database.dispose()


async def _schema(database: Database, settings: Settings, current: str | None, head: str) -> Check:
    """Whether a start can use the schema: ``run`` and ``chat`` migrate a database without one, or behind, to
    ``head`` themselves; one newer than this Hearth, or of another vector size than EMBEDDING_DIMENSION, stops
    them."""
    if current is not None and not migrations.is_known(current):
        return Check("schema", "fail", f"at {current}, newer than this version of Hearth knows (its head is {head})")
    try:
        await migrations.require_embedding_dimension(database, settings.embedding_dimension)
    except HearthError as exc:
        return Check("schema", "fail", str(exc))
    if current == head:
        return Check("schema", "ok", f"at head ({head})")
    if current is None:
        return Check("schema", "ok", f"not created yet: the first start makes it ({head})")
    upgrade = "the next start upgrades it (or `python -m bot db upgrade`)"
    return Check("schema", "ok", f"at {current}, head is {head}: {upgrade}")


async def _llm(settings: Settings) -> Check:
    if not llm_configured(settings):
        return Check("llm endpoint", "fail", "not configured: set OPENAI_API_KEY or OPENAI_BASE_URL in .env")
    client = build_openai_client(settings, timeout=LLM_PROBE_TIMEOUT_S)
    where = settings.openai_base_url or "api.openai.com"
    try:
        models = [model.id async for model in client.models.list()]
    except openai.APIStatusError as exc:
        return Check("llm endpoint", "fail", f"{where} answered {exc.status_code}: {exc.message}")
    except openai.APIError as exc:
        return Check("llm endpoint", "fail", f"{where} unreachable: {describe_connection_error(exc)}")
    finally:
        await client.close()
    listed = "listed" if settings.llm_model in models else "not listed (may still work)"
    return Check("llm endpoint", "ok", f"{where}: {len(models)} models; LLM_MODEL {settings.llm_model} {listed}")


async def run_checks(settings: Settings, *, check_token: TokenProbe | None = None) -> list[Check]:
    """Every check, in the order a person would fix them; the slow probes run side by side.

    ``check_token`` asks Discord about the token (the CLI passes ``bot.discord.probe.check_token``)."""
    token_check, database_checks, llm_check = await asyncio.gather(
        _discord_token(settings, check_token), _database_checks(settings), _llm(settings)
    )
    return [Check("settings", "ok", "valid"), token_check, *database_checks, llm_check]


def render_table(checks: list[Check]) -> str:
    width = max(len(check.name) for check in checks)
    marks = {"ok": "OK  ", "fail": "FAIL", "skip": "--  "}
    return "\n".join(f"{marks[c.status]}  {c.name.ljust(width)}  {c.detail}" for c in checks)

"""Alembic environment, async form.

Three ways in:
* Hearth's own code (``bot.db.migrations``) hands over an open connection in
  ``config.attributes["connection"]``: migrations run on it.
* ``alembic upgrade head`` from the shell: the URL comes from Hearth's settings (env / .env).
* ``alembic upgrade head --sql`` (offline): DDL is printed for the URL's dialect; ``schema.sql`` is made so.
"""

import asyncio
from typing import Any

from alembic import context
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import async_engine_from_config
from sqlalchemy.pool import NullPool

from bot.db.migrations import migrating
from bot.db.models import Base

config = context.config
target_metadata = Base.metadata


def _options(dialect_name: str) -> dict[str, Any]:
    return {
        "target_metadata": target_metadata,
        "render_as_batch": dialect_name == "sqlite",  # SQLite alters tables by copying them
        "compare_type": True,
    }


def _url() -> str:
    url = config.attributes.get("url") or config.get_main_option("sqlalchemy.url")
    if url:
        return str(url)
    from bot.settings import load_settings

    settings = load_settings()
    config.attributes.setdefault("embedding_dimension", settings.embedding_dimension)
    return settings.database_url


def run_migrations_offline() -> None:
    url = _url()
    context.configure(url=url, literal_binds=True, **_options(url.split(":", 1)[0].split("+", 1)[0]))
    with context.begin_transaction():
        context.run_migrations()


def _run_on(connection: Connection) -> None:
    context.configure(connection=connection, **_options(connection.dialect.name))
    with context.begin_transaction():
        context.run_migrations()


async def _run_online() -> None:
    section = config.get_section(config.config_ini_section, {})
    section["sqlalchemy.url"] = _url()
    engine = async_engine_from_config(section, prefix="sqlalchemy.", poolclass=NullPool)
    async with migrating(engine) as connection:  # all of it or none, as from Hearth itself
        await connection.run_sync(_run_on)
    await engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
elif (connection := config.attributes.get("connection")) is not None:
    _run_on(connection)
else:
    asyncio.run(_run_online())

"""The schema: migrations are the source of truth, schema.sql and the models must agree with them."""

import uuid
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.engine import URL, Connection

from bot.db import migrations
from bot.db.engine import Database
from bot.db.models import Base
from tests.conftest import EMBEDDING_DIMENSION
from tests.support.postgres import create_database

SCHEMA_SQL = Path(__file__).resolve().parents[3] / "schema.sql"

# What "the same schema" means: every table, column (type, nullability, default, storage), index and constraint.
CATALOGUE_QUERIES = {
    "columns": """
        SELECT table_name, column_name, ordinal_position, data_type, udt_name, character_maximum_length,
               is_nullable, column_default
        FROM information_schema.columns WHERE table_schema = 'public'
        ORDER BY table_name, ordinal_position""",
    "column_types_and_storage": """
        SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attstorage
        FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public' AND a.attnum > 0 AND NOT a.attisdropped
        ORDER BY 1, 2""",
    "indexes": """
        SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1, 2""",
    "constraints": """
        SELECT cl.relname, co.conname, co.contype, pg_get_constraintdef(co.oid)
        FROM pg_constraint co JOIN pg_class cl ON cl.oid = co.conrelid
        JOIN pg_namespace n ON n.oid = cl.relnamespace WHERE n.nspname = 'public' ORDER BY 1, 2""",
    "extensions": "SELECT extname FROM pg_extension ORDER BY 1",
    "triggers": """
        SELECT event_object_table, trigger_name, event_manipulation, action_timing, action_statement
        FROM information_schema.triggers WHERE trigger_schema = 'public' ORDER BY 1, 2, 3""",
    "functions": """
        SELECT p.proname, pg_get_functiondef(p.oid) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE n.nspname = 'public' AND p.prokind = 'f' ORDER BY 1""",
    "alembic_version": "SELECT version_num FROM alembic_version",
}


async def _catalogue(url: URL) -> dict[str, list[tuple[Any, ...]]]:
    connection = await asyncpg.connect(
        user=url.username,
        password=url.password,
        host=url.query.get("host") or url.host,
        port=url.port,
        database=url.database,
    )
    try:
        return {name: [tuple(row) for row in await connection.fetch(sql)] for name, sql in CATALOGUE_QUERIES.items()}
    finally:
        await connection.close()


async def _fresh(server: URL) -> URL:
    return await create_database(server, f"hearth_schema_{uuid.uuid4().hex[:8]}")


async def test_schema_sql_is_what_the_migrations_build(postgres_server_url: URL) -> None:
    from_file, from_migrations = await _fresh(postgres_server_url), await _fresh(postgres_server_url)

    database = Database(from_file)
    async with database.engine.connect() as connection:
        raw = await connection.get_raw_connection()
        await raw.driver_connection.execute(SCHEMA_SQL.read_text())  # type: ignore[union-attr]
    await database.dispose()

    database = Database(from_migrations)
    await migrations.upgrade(database, embedding_dimension=EMBEDDING_DIMENSION)
    await database.dispose()

    expected, actual = await _catalogue(from_migrations), await _catalogue(from_file)
    for name in CATALOGUE_QUERIES:
        assert actual[name] == expected[name], f"schema.sql drifted from the migrations in {name}"
    assert len(expected["columns"]) > 200 and ("vector",) in expected["extensions"]


def test_schema_sql_is_regenerated_from_the_migrations() -> None:
    """Cheap guard with a clear fix: the file is exactly what `python -m bot db schema` prints."""
    generated = migrations.offline_sql(embedding_dimension=EMBEDDING_DIMENSION)
    assert SCHEMA_SQL.read_text() == generated, "run: python -m bot db schema > schema.sql"


def _made_by_migration_only(diff: Any) -> bool:
    """The vector's dimension, its HNSW index, and PostgreSQL's word search (the stored tsvector, its index and
    the word counts) depend on backend and settings: the migrations own them."""
    if isinstance(diff, list) and diff and diff[0][0] == "modify_type" and diff[0][3] == "embedding":
        return True
    if isinstance(diff, tuple) and diff[0] == "remove_column":
        return bool(diff[2] == "memories" and diff[3].name == "search_vector")
    if isinstance(diff, tuple) and diff[0] == "remove_table":
        return bool(diff[1].name in ("memory_words", "memory_word_changes"))
    return (
        isinstance(diff, tuple)
        and diff[0] == "remove_index"
        and diff[1].name
        in ("ix_memories_embedding_hnsw", "ix_memories_guild_id_search_vector", "ix_memory_word_changes_scope_lexeme")
    )


async def test_models_match_the_migrated_schema(postgres_database: Database) -> None:
    def differences(connection: Connection) -> list[Any]:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return [diff for diff in compare_metadata(context, Base.metadata) if not _made_by_migration_only(diff)]

    async with postgres_database.engine.connect() as connection:
        assert await connection.run_sync(differences) == []


async def test_downgrade_to_base_and_upgrade_again(db: Database) -> None:
    expected = {table.name for table in Base.metadata.sorted_tables} | {"alembic_version"}
    if db.backend == "sqlite":  # the full-text index over memories: an FTS5 table and its shadow tables
        expected |= {"memories_fts", *(f"memories_fts_{part}" for part in ("data", "idx", "docsize", "config"))}
    else:  # how many memories hold each word, for ranking word matches
        expected |= {"memory_words", "memory_word_changes"}

    def tables(connection: Connection) -> set[str]:
        return set(inspect(connection).get_table_names())

    # The shared PostgreSQL database stays at head for other tests: use a fresh one here.
    if db.backend == "postgresql":
        db = Database(await create_database(db.url.set(database="postgres"), f"hearth_down_{uuid.uuid4().hex[:8]}"))
        await migrations.upgrade(db, embedding_dimension=EMBEDDING_DIMENSION)
    try:
        async with db.engine.connect() as connection:
            assert await connection.run_sync(tables) == expected
        await migrations.downgrade(db, revision="base")
        async with db.engine.connect() as connection:
            assert await connection.run_sync(tables) <= {"alembic_version"}
        assert await migrations.current_revision(db) is None
        await migrations.upgrade(db, embedding_dimension=EMBEDDING_DIMENSION)
        assert await migrations.current_revision(db) == migrations.head_revision()
        async with db.engine.connect() as connection:
            assert await connection.run_sync(tables) == expected
    finally:
        if db.backend == "postgresql":
            await db.dispose()


@pytest.mark.parametrize("dimension", [8, 1536])
async def test_the_vector_column_takes_its_dimension_from_the_setting(postgres_server_url: URL, dimension: int) -> None:
    database = Database(await _fresh(postgres_server_url))
    try:
        await migrations.upgrade(database, embedding_dimension=dimension)
        async with database.engine.connect() as connection:
            column_type = await connection.scalar(
                text(
                    "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
                    "WHERE attrelid = 'memories'::regclass AND attname = 'embedding'"
                )
            )
        assert column_type == f"vector({dimension})"
    finally:
        await database.dispose()

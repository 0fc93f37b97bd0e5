"""`python -m bot doctor` against a real PostgreSQL with pgvector and the fake LLM endpoint."""

import socket
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import URL

from bot.db.engine import Database
from bot.services.doctor import Check, run_checks
from bot.settings import Settings
from tests.fakes.llm_server import FakeLLM
from tests.support.postgres import create_database


@pytest.fixture
async def llm() -> AsyncIterator[FakeLLM]:
    async with FakeLLM(model="fake-model") as server:
        yield server


def settings_for(database_url: str, **values: Any) -> Settings:
    return Settings(_env_file=None, database_url=database_url, **values)


def by_name(checks: list[Check]) -> dict[str, tuple[str, str]]:
    return {check.name: (check.status, check.detail) for check in checks}


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_a_ready_postgresql_installation_passes_every_check(pg: Database, llm: FakeLLM) -> None:
    settings = settings_for(
        pg.engine.url.render_as_string(hide_password=False),
        discord_token="token",
        openai_base_url=llm.base_url,
        llm_model="fake-model",
    )
    checks = by_name(await run_checks(settings))

    assert {name: status for name, (status, _) in checks.items()} == {
        "settings": "ok",
        "discord token": "ok",
        "database": "ok",
        "schema": "ok",
        "pgvector": "ok",
        "llm endpoint": "ok",
    }
    assert "(18." in checks["database"][1] and checks["pgvector"][1].startswith("vector 0.8")
    assert "LLM_MODEL fake-model listed" in checks["llm endpoint"][1]
    assert [request.path for request in llm.requests] == ["/v1/models"]


async def test_what_is_wrong_is_named_and_the_cli_exits_non_zero(
    tmp_path: Path, postgres_server_url: URL, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = await create_database(postgres_server_url, f"hearth_doctor_{uuid.uuid4().hex[:8]}")
    url = empty.render_as_string(hide_password=False)
    unreachable_llm = f"http://127.0.0.1:{closed_port()}/v1"
    checks = by_name(await run_checks(settings_for(url, openai_base_url=unreachable_llm)))

    assert checks["discord token"][0] == "fail" and "DISCORD_TOKEN" in checks["discord token"][1]
    assert checks["database"][0] == "ok"
    assert checks["schema"][0] == "ok" and "the first start makes it" in checks["schema"][1], "start migrates it"
    assert checks["pgvector"][0] == "ok", "a database nobody migrated has no vector extension yet: start creates it"
    assert checks["llm endpoint"] == ("fail", f"{unreachable_llm} unreachable: connection refused")

    from bot import cli

    for name in ("DATABASE_URL", "OPENAI_BASE_URL", "OPENAI_API_KEY", "DISCORD_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("OPENAI_BASE_URL", unreachable_llm)
    monkeypatch.chdir(tmp_path)  # no .env there
    assert await cli._doctor(None) == 1
    table = capsys.readouterr().out
    assert "FAIL  llm endpoint" in table and "OK    database" in table


async def test_a_role_that_may_not_create_pgvector_fails_the_check_saying_who_must(postgres_server_url: URL) -> None:
    """A fresh database owned by a role that is not a superuser, as hosted PostgreSQL gives one: the first start
    could not create the vector extension, so a fresh schema is no reason to pass."""
    role = f"hearth_doctor_plain_{uuid.uuid4().hex[:8]}"
    database = await create_database(postgres_server_url, role)
    admin = Database(postgres_server_url)
    try:
        async with admin.engine.connect() as connection:
            autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
            await autocommit.execute(text(f'CREATE ROLE "{role}" LOGIN'))
            await autocommit.execute(text(f'ALTER DATABASE "{role}" OWNER TO "{role}"'))
    finally:
        await admin.dispose()
    url = database.set(username=role).render_as_string(hide_password=False)
    checks = by_name(await run_checks(settings_for(url, openai_base_url=f"http://127.0.0.1:{closed_port()}/v1")))

    assert checks["database"][0] == "ok"
    assert checks["pgvector"][0] == "fail"
    assert "have a superuser run `CREATE EXTENSION vector;` in this database" in checks["pgvector"][1]

"""`python -m bot` as a person runs it: a real process, a real SQLite file or PostgreSQL."""

import asyncio
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from sqlalchemy import inspect
from sqlalchemy.engine import URL

from bot.container import Container
from bot.db import migrations
from bot.db.engine import Database
from bot.settings import load_settings
from tests.fakes.discord import FakeDiscord
from tests.fakes.llm_server import FakeLLM
from tests.support.postgres import create_database

ROOT = Path(__file__).resolve().parents[2]


def cli_environment(folder: Path | None = None, /, *, site: str | None = None, **env: str) -> dict[str, str]:
    """An environment holding only PATH, HOME and LANG of this one, Hearth on PYTHONPATH, and ``env``. With
    ``site``: code run as the interpreter starts, written as ``folder``'s sitecustomize.py, put first on PYTHONPATH."""
    environment = {key: os.environ[key] for key in ("PATH", "HOME", "LANG") if key in os.environ}
    environment["PYTHONPATH"] = str(ROOT)
    if site is not None:
        assert folder is not None
        (folder / "sitecustomize.py").write_text(site)
        environment["PYTHONPATH"] = f"{folder}{os.pathsep}{ROOT}"
    return environment | env


def hearth(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Run the CLI in ``cwd`` with only the given settings in its environment."""
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        cwd=cwd,
        env=cli_environment(**env),
        capture_output=True,
        text=True,
        timeout=120,
    )


def interrupted(*args: str, cwd: Path, site: str, once: str) -> tuple[int, str, str]:
    """Run the CLI in ``cwd`` with ``site`` run as the interpreter starts (see :func:`cli_environment`), press
    Ctrl-C once it prints the line ``once``: its exit status, what it wrote on stderr, and on stdout after that line."""
    process = subprocess.Popen(
        [sys.executable, "-m", "bot", *args],
        cwd=cwd,
        env=cli_environment(cwd, site=site),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None and process.stdout.readline() == f"{once}\n"
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=120)
    return process.returncode, err, out


def assert_one_line_error(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0]


def test_run_without_a_token_says_what_to_set_and_where(tmp_path: Path) -> None:
    result = hearth("run", cwd=tmp_path)
    assert_one_line_error(result, "DISCORD_TOKEN", ".env")


@pytest.mark.parametrize("command", ["run", "chat"])
def test_no_language_model_says_what_to_set(tmp_path: Path, command: str) -> None:
    result = hearth(command, cwd=tmp_path, DISCORD_TOKEN="x")
    assert_one_line_error(result, "OPENAI_API_KEY", "OPENAI_BASE_URL", ".env")


@pytest.mark.parametrize(
    ("arguments", "what"),
    [
        (["bogus"], "invalid choice: 'bogus'"),
        (["--verbose", "run"], "unrecognized arguments: --verbose"),
        (["db"], "db: the following arguments are required: COMMAND (see `hearth db --help`)"),
        (["memory", "reembed", "--batch-size", "0"], "--batch-size: must be at least 1, not 0"),
    ],
)
def test_a_wrong_command_line_is_one_line_pointing_at_help(tmp_path: Path, arguments: list[str], what: str) -> None:
    result = hearth(*arguments, cwd=tmp_path)
    assert_one_line_error(result, what, "--help`)")
    assert result.stderr.startswith("hearth: ")


def test_a_malformed_database_url_is_one_line(tmp_path: Path) -> None:
    result = hearth("db", "current", cwd=tmp_path, DATABASE_URL="postgresql+asyncpg//oops")
    assert_one_line_error(result, "DATABASE_URL", "not a database URL")


# On PYTHONPATH as sitecustomize: importing bot.settings (pydantic, SQLAlchemy: the slow part of loading the
# command line) says so on stdout, then takes a while, as on a small machine.
SLOW_SETTINGS_IMPORT = """
import sys, time

class SlowSettings:
    def find_spec(self, name, path=None, target=None):
        if name == "bot.settings":
            sys.meta_path.remove(self)
            print("loading", flush=True)
            for _ in range(30):
                time.sleep(0.1)
        return None

sys.meta_path.insert(0, SlowSettings())
"""


@pytest.mark.parametrize("command", [("db", "current"), ("run",)])
def test_ctrl_c_while_the_command_line_loads_is_a_quiet_stop(tmp_path: Path, command: tuple[str, ...]) -> None:
    assert interrupted(*command, cwd=tmp_path, site=SLOW_SETTINGS_IMPORT, once="loading") == (130, "", "")
    assert not (tmp_path / "data").exists(), "stopped before it touched the database"


# On PYTHONPATH as sitecustomize: when a migration rebuilds a SQLite table (alembic's batch mode copies its rows into a
# new one), say so on stdout and take a while over the copy, as over a large table.
SLOW_TABLE_REBUILD = """
import time
from sqlalchemy import event
from sqlalchemy.engine import Engine

copied = []

@event.listens_for(Engine, "before_cursor_execute")
def slow_copy(conn, cursor, statement, parameters, context, executemany):
    if statement.startswith("INSERT INTO _alembic_tmp_") and not copied:
        copied.append(statement)
        print("copying", flush=True)
        time.sleep(2)
"""


def test_ctrl_c_while_a_migration_rebuilds_a_table_is_a_quiet_stop(tmp_path: Path) -> None:
    """The migration's own clean-up after the interruption fails on the connection cut short: that is the stop the
    person asked for, not a database fault."""
    assert interrupted("db", "upgrade", cwd=tmp_path, site=SLOW_TABLE_REBUILD, once="copying") == (130, "", "")


def test_db_upgrade_and_current_on_the_default_sqlite_file(tmp_path: Path) -> None:
    before = hearth("db", "current", cwd=tmp_path)
    assert before.returncode == 1 and "no database yet: the first start makes it" in before.stdout

    upgraded = hearth("db", "upgrade", cwd=tmp_path)
    assert upgraded.returncode == 0, upgraded.stderr
    assert (tmp_path / "data" / "hearth.db").exists(), "the data folder is created for the default file"
    current = hearth("db", "current", cwd=tmp_path)
    assert current.returncode == 0 and "up to date" in current.stdout
    assert migrations.head_revision() in current.stdout


def test_db_current_on_a_fresh_install_writes_nothing(tmp_path: Path) -> None:
    """A read-only command: neither the default file and its folder, nor the folder of a mistyped DATABASE_URL, is
    made; it says that the first start makes the database."""
    fresh = hearth("db", "current", cwd=tmp_path)
    typo = hearth("db", "current", cwd=tmp_path, DATABASE_URL="sqlite+aiosqlite:///./dtaa/hearth.db")

    head = migrations.head_revision()
    assert (fresh.returncode, fresh.stderr) == (1, ""), fresh.stderr
    to_come = "no database yet: the first start makes it (data/hearth.db)"
    assert fresh.stdout == f"current: none\nhead:    {head}\n{to_come}\n"
    assert (typo.returncode, typo.stderr) == (1, ""), typo.stderr
    assert "no database yet: the first start makes it (dtaa/hearth.db)" in typo.stdout
    assert list(tmp_path.iterdir()) == [], "no folder, no file"


def test_reembed_and_downgrade_on_a_fresh_install_write_nothing(tmp_path: Path) -> None:
    """Nothing to re-embed and nothing to go back from: like `db current` and `memory status`, neither command makes
    the folder, the database file or its lock, and each says why in one line; a downgrade to a revision the (absent)
    database has not reached is refused as on an empty one, and an unknown revision still names those there are."""
    reembed = hearth("memory", "reembed", cwd=tmp_path)
    assert (reembed.returncode, reembed.stderr) == (0, ""), reembed.stderr
    assert reembed.stdout == "no memories yet: the first start makes the schema\n"

    to_base = hearth("db", "downgrade", "base", cwd=tmp_path)
    assert (to_base.returncode, to_base.stderr) == (0, ""), to_base.stderr
    assert to_base.stdout == "no database yet: nothing to downgrade (the first start makes data/hearth.db)\n"

    to_revision = hearth("db", "downgrade", "0001", cwd=tmp_path)
    assert to_revision.returncode == 3, to_revision.stderr
    assert to_revision.stderr == (
        "hearth: the database is at base (empty), before 0001: `db downgrade` only moves back; "
        "to go forward, run `python -m bot db upgrade 0001`\n"
    )
    unknown = hearth("db", "downgrade", "bogus", cwd=tmp_path)
    assert unknown.returncode == 2 and unknown.stderr.startswith("hearth: there is no revision 'bogus'"), unknown.stderr
    assert list(tmp_path.iterdir()) == [], "no folder, no file, no lock"


def test_an_installed_hearth_migrates_from_any_folder(tmp_path: Path) -> None:
    """Installed from its wheel (not run from a checkout), Hearth still finds its migrations."""
    source, wheels, site, elsewhere = (tmp_path / name for name in ("source", "wheels", "site", "elsewhere"))
    for part in ("bot", "pyproject.toml", "README.md"):
        copy = shutil.copytree if (ROOT / part).is_dir() else shutil.copy
        copy(ROOT / part, source / part if part != "bot" else source / "bot")
    elsewhere.mkdir()
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet"]
    subprocess.run([*pip, "wheel", "--no-deps", "-w", wheels, source], check=True, timeout=300)
    subprocess.run([*pip, "install", "--no-deps", "--no-index", "--target", site, *wheels.glob("*.whl")], check=True)

    upgraded = hearth("db", "upgrade", cwd=elsewhere, PYTHONPATH=str(site))
    assert upgraded.returncode == 0, upgraded.stderr
    current = hearth("db", "current", cwd=elsewhere, PYTHONPATH=str(site))
    assert current.returncode == 0 and migrations.head_revision() in current.stdout, current.stdout


def test_a_settings_file_saved_with_a_byte_order_mark_is_read_whole(tmp_path: Path) -> None:
    """Windows editors (Notepad, PowerShell's ``Set-Content -Encoding UTF8``) may begin a UTF-8 file with a byte
    order mark: the setting on the first line counts like any other, not as a name that is no setting."""
    (tmp_path / ".env").write_text("DATABASE_URL=sqlite+aiosqlite:///./elsewhere/hearth.db\r\n", encoding="utf-8-sig")
    upgraded = hearth("db", "upgrade", cwd=tmp_path)
    assert upgraded.returncode == 0, upgraded.stderr
    assert (tmp_path / "elsewhere" / "hearth.db").is_file()
    assert not (tmp_path / "data").exists(), "not the default database"


def test_a_sqlite_path_from_the_home_folder_is_there(tmp_path: Path) -> None:
    home, elsewhere = tmp_path / "home", tmp_path / "elsewhere"
    home.mkdir()
    elsewhere.mkdir()
    upgraded = hearth("db", "upgrade", cwd=elsewhere, HOME=str(home), DATABASE_URL="sqlite:///~/hearth/hearth.db")
    assert upgraded.returncode == 0, upgraded.stderr
    assert (home / "hearth" / "hearth.db").is_file()
    assert list(elsewhere.iterdir()) == [], "no folder named ~ in the working folder"


async def test_db_upgrade_and_downgrade_on_postgresql(tmp_path: Path, postgres_server_url: URL) -> None:
    fresh = await create_database(postgres_server_url, "hearth_cli")
    url = fresh.render_as_string(hide_password=False)
    assert hearth("db", "current", cwd=tmp_path, DATABASE_URL=url).returncode == 1
    assert hearth("db", "upgrade", cwd=tmp_path, DATABASE_URL=url).returncode == 0
    assert "up to date" in hearth("db", "current", cwd=tmp_path, DATABASE_URL=url).stdout
    downgraded = hearth("db", "downgrade", "base", cwd=tmp_path, DATABASE_URL=url)
    assert downgraded.returncode == 0 and "base (empty)" in downgraded.stdout


async def test_a_libpq_connection_string_works_or_names_the_option_to_remove(
    tmp_path: Path, postgres_server_url: URL
) -> None:
    """Hosted PostgreSQL hands out libpq URLs: ``?sslmode=require`` means asyncpg's ``ssl``; an option asyncpg
    cannot honour is one line naming it (the server here is on a Unix socket, where TLS does not apply)."""
    database = await create_database(postgres_server_url, "hearth_libpq")
    with_sslmode = database.update_query_dict({"sslmode": "require"}).render_as_string(hide_password=False)
    current = hearth("db", "current", cwd=tmp_path, DATABASE_URL=with_sslmode)
    assert current.returncode == 1 and "behind" in current.stdout, current.stderr

    channel_binding = f"{with_sslmode}&channel_binding=require"
    result = hearth("db", "current", cwd=tmp_path, DATABASE_URL=channel_binding)
    assert_one_line_error(result, "DATABASE_URL", "channel_binding", "remove it")


def test_db_schema_prints_schema_sql(tmp_path: Path) -> None:
    result = hearth("db", "schema", cwd=tmp_path)
    assert result.returncode == 0
    assert result.stdout == (ROOT / "schema.sql").read_text()


async def test_start_up_creates_the_sqlite_file_and_migrates_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    container = await Container.create(load_settings(env_file=None, openai_base_url="http://127.0.0.1:9/v1"))
    try:
        assert (tmp_path / "data" / "hearth.db").is_file()
        assert await migrations.current_revision(container.database) == migrations.head_revision()
    finally:
        await container.aclose()


def test_import_card_makes_it_the_default_persona_and_a_bad_card_is_one_line(tmp_path: Path) -> None:
    card = {"spec": "chara_card_v2", "spec_version": "2.0", "data": {"name": "Mira", "description": "A fox spirit."}}
    (tmp_path / "mira.json").write_text(json.dumps(card))
    imported = hearth("import-card", "mira.json", cwd=tmp_path)
    assert imported.returncode == 0, imported.stderr
    assert imported.stdout.startswith("Mira is now the default persona")
    with sqlite3.connect(tmp_path / "data" / "hearth.db") as connection:
        rows = connection.execute("SELECT name, personality_prompt FROM personas WHERE is_default").fetchall()
    assert rows == [("Mira", "Description: A fox spirit.")]

    (tmp_path / "broken.json").write_text('{"spec": "chara_card_v2", "data": 7}')
    assert_one_line_error(hearth("import-card", "broken.json", cwd=tmp_path), "broken.json")
    assert_one_line_error(hearth("import-card", "missing.png", cwd=tmp_path), "cannot read missing.png")


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
async def test_a_stop_while_run_migrates_is_a_clean_stop(tmp_path: Path, llm: FakeLLM, stop: signal.Signals) -> None:
    """``docker stop`` (or Ctrl-C) while the start migrates the database: stopped there, with a line saying so and
    status 0, as a stop at any other moment of the start, whatever the migration's clean-up meets afterwards."""
    environment = cli_environment(tmp_path, site=SLOW_TABLE_REBUILD)
    async with FakeDiscord() as discord:
        environment |= {
            "FAKE_DISCORD_API": discord.api_base,
            "FAKE_DISCORD_GATEWAY": discord.gateway_url,
            "DISCORD_TOKEN": "token",
            "OPENAI_BASE_URL": llm.base_url,
            "LLM_MODEL": llm.models[0],
            "EMBEDDING_PROVIDER": "openai",
            "EMBEDDING_MODEL": "fake-embedding",
        }
        process = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "tests.support.launcher", "run"),
            cwd=tmp_path,
            env=environment,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            assert process.stdout is not None
            async with asyncio.timeout(60):
                assert await process.stdout.readline() == b"copying\n"
            process.send_signal(stop)
            _, err = await asyncio.wait_for(process.communicate(), timeout=60)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
    assert process.returncode == 0, err.decode()
    assert "Traceback" not in err.decode() and "hearth:" not in err.decode(), err.decode()
    assert f"{stop.name} received while starting: stopped" in err.decode()


# On PYTHONPATH as sitecustomize: at the statement that begins with CUT_SHORT_AT, a migration either pauses, saying
# so on stdout, for a signal to stop it, or meets a statement the database refuses, as a full disk would.
MIGRATION_CUT_SHORT = """
import os, time
from sqlalchemy import event
from sqlalchemy.engine import Engine

@event.listens_for(Engine, "before_cursor_execute", retval=True)
def cut_short(conn, cursor, statement, parameters, context, executemany):
    if statement.lstrip().startswith(os.environ["CUT_SHORT_AT"]):
        if os.environ["CUT_SHORT_BY"] == "fault":
            return "INSERT INTO no_such_table VALUES (1)", parameters
        print("migrating", flush=True)
        time.sleep(2)
    return statement, parameters
"""


async def _database_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if backend == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'hearth.db'}"
    server: URL = request.getfixturevalue("postgres_server_url")
    return (await create_database(server, f"hearth_cut_{uuid.uuid4().hex[:8]}")).render_as_string(hide_password=False)


async def _revision_and_tables(url: str) -> tuple[str | None, set[str]]:
    database = Database(url)
    try:
        async with database.engine.connect() as connection:
            tables = await connection.run_sync(lambda sync: set(inspect(sync).get_table_names()))
        return await migrations.current_revision(database), tables
    finally:
        await database.dispose()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
@pytest.mark.parametrize(
    ("start", "at", "by"),
    [
        # A new database: the first migration's tables, half of them made.
        (None, "CREATE INDEX ix_personas_guild_id", "SIGINT"),
        (None, "CREATE INDEX ix_personas_guild_id", "fault"),
        # An update: 0009 has added its column to messages and is about to index it.
        ("0008", "CREATE INDEX ix_messages_awaiting_reply", "SIGTERM"),
        ("0008", "CREATE INDEX ix_messages_awaiting_reply", "fault"),
    ],
)
async def test_a_migration_cut_short_leaves_the_database_as_it_was_and_the_next_upgrade_works(
    tmp_path: Path, request: pytest.FixtureRequest, backend: str, start: str | None, at: str, by: str
) -> None:
    """A migration stopped (Ctrl-C, ``docker stop``) or failing half-way changes nothing, on SQLite as on
    PostgreSQL: not tables or columns that no later upgrade could make again, at a revision that does not have them."""
    url = await _database_url(backend, tmp_path, request)
    if start is not None:
        assert hearth("db", "upgrade", start, cwd=tmp_path, DATABASE_URL=url).returncode == 0
    before = await _revision_and_tables(url)
    assert before[0] == start

    environment = cli_environment(
        tmp_path, site=MIGRATION_CUT_SHORT, DATABASE_URL=url, CUT_SHORT_AT=at, CUT_SHORT_BY=by
    )
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "bot", "db", "upgrade"),
        cwd=tmp_path,
        env=environment,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        if by != "fault":
            assert process.stdout is not None
            async with asyncio.timeout(60):
                assert await process.stdout.readline() == b"migrating\n"
            process.send_signal(signal.Signals[by])
        _, err = await asyncio.wait_for(process.communicate(), timeout=120)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode != 0 and b"Traceback" not in err, err.decode()
    (tmp_path / "sitecustomize.py").unlink()

    assert await _revision_and_tables(url) == before
    upgraded = hearth("db", "upgrade", cwd=tmp_path, DATABASE_URL=url)
    assert upgraded.returncode == 0, upgraded.stderr
    assert "up to date" in hearth("db", "current", cwd=tmp_path, DATABASE_URL=url).stdout


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_memory_status_on_a_fresh_install_says_there_are_none_yet(
    tmp_path: Path, request: pytest.FixtureRequest, backend: str
) -> None:
    """Nothing run yet (SQLite: no file; PostgreSQL: a new database): no memories, nothing to fix, and nothing
    written; a schema behind head is the next start's to upgrade, as doctor says."""
    settings = {}
    if backend == "postgresql":
        server: URL = request.getfixturevalue("postgres_server_url")
        fresh_database = await create_database(server, f"hearth_status_{uuid.uuid4().hex[:8]}")
        settings["DATABASE_URL"] = fresh_database.render_as_string(hide_password=False)

    fresh = hearth("memory", "status", cwd=tmp_path, **settings)
    assert (fresh.returncode, fresh.stderr) == (0, ""), fresh.stderr
    assert fresh.stdout == "no memories yet: the first start makes the schema\n"
    assert os.listdir(tmp_path) == [], "neither ./data nor its database file made"

    assert hearth("db", "upgrade", "0020", cwd=tmp_path, **settings).returncode == 0
    behind = hearth("memory", "status", cwd=tmp_path, **settings)
    head = migrations.head_revision()
    assert behind.returncode == 3 and "Traceback" not in behind.stderr, behind.stderr
    assert behind.stderr.startswith(
        f"hearth: the database is at 0020, head is {head}: the next start upgrades it (or `python -m bot db upgrade`)"
    ), behind.stderr


DAMAGED_ADVICE = (
    "save what can still be read with `sqlite3 data/hearth.db .recover | sqlite3 data/recovered.db`, then move it "
    "away (with data/hearth.db-wal and data/hearth.db-shm, if there) and put the recovered file, or the latest backup "
    "(`/owner backup` writes them into BACKUP_DIR), in its place"
)


def damage_sqlite_file(folder: Path, damage: str) -> None:
    """Where ``folder``'s default SQLite file goes: a text file (``not a database``), or a database whose schema
    page is overwritten past the header (``malformed``)."""
    path = folder / "data" / "hearth.db"
    if damage == "not a database":
        path.parent.mkdir()
        path.write_text("DATABASE_URL=sqlite+aiosqlite:///./data/hearth.db\n")
        return
    assert hearth("db", "upgrade", cwd=folder).returncode == 0
    with path.open("r+b") as file:
        file.seek(110)
        file.write(b"\xff" * 500)


@pytest.mark.parametrize("damage", ["not a database", "malformed"])
async def test_a_sqlite_file_that_is_no_database_or_damaged_says_what_to_do(
    tmp_path: Path, llm: FakeLLM, damage: str
) -> None:
    """A text file, or a backup copied half-way, where the SQLite file should be; or a SQLite file whose first page
    was overwritten: the start and each command name the file and say to move it away, with its journal, and put a
    backup in its place."""
    damage_sqlite_file(tmp_path, damage)
    what = {
        "not a database": "file is not a database (data/hearth.db is not a SQLite database): move it away (with "
        "data/hearth.db-wal and data/hearth.db-shm, if there), then put a backup in its place or let the next start "
        "make a new one",
        "malformed": f"database disk image is malformed (data/hearth.db is damaged): {DAMAGED_ADVICE}",
    }[damage]
    line = f"hearth: cannot use the database at sqlite+aiosqlite:///./data/hearth.db: {what}\n"
    for command in (("db", "current"), ("db", "upgrade"), ("memory", "status")):
        result = hearth(*command, cwd=tmp_path)
        assert (result.returncode, result.stderr) == (3, line), result.stderr
    doctor = hearth("doctor", cwd=tmp_path)
    assert f"FAIL  database       {line.removeprefix('hearth: ')}" in doctor.stdout, doctor.stdout

    status, err = await run_against_fake_discord(tmp_path, llm)
    assert status == 3, err
    assert err.splitlines()[-1] == line.rstrip(), err


async def run_against_fake_discord(folder: Path, llm: FakeLLM) -> tuple[int, str]:
    """`run` in ``folder`` against a fake Discord and ``llm``, nothing typed, until it exits: its status and stderr."""
    environment = cli_environment()
    async with FakeDiscord() as discord:
        environment |= {
            "FAKE_DISCORD_API": discord.api_base,
            "FAKE_DISCORD_GATEWAY": discord.gateway_url,
            "DISCORD_TOKEN": "token",
            "OPENAI_BASE_URL": llm.base_url,
            "LLM_MODEL": llm.models[0],
        }
        process = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "tests.support.launcher", "run"),
            cwd=folder,
            env=environment,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        _, err = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode is not None
    return process.returncode, err.decode(errors="replace")


def damage_sqlite_pages(folder: Path, *tables: str) -> None:
    """``folder``'s default SQLite file, migrated, with the first page of each of ``tables`` overwritten with garbage
    (a disk or a copy gone wrong): the file opens, its header and schema read, but a query of those tables fails
    with "database disk image is malformed"."""
    assert hearth("db", "upgrade", cwd=folder).returncode == 0
    path = folder / "data" / "hearth.db"
    with sqlite3.connect(path) as connection:
        page_size = connection.execute("PRAGMA page_size").fetchone()[0]
        marks = ", ".join("?" * len(tables))
        pages = [
            row[0] for row in connection.execute(f"SELECT rootpage FROM sqlite_master WHERE name IN ({marks})", tables)
        ]
    connection.close()
    assert len(pages) == len(tables)
    with path.open("r+b") as file:
        for page in pages:
            file.seek((page - 1) * page_size)
            file.write(b"\xa5" * page_size)


async def test_a_sqlite_file_damaged_past_its_first_page_names_it_and_what_to_do(tmp_path: Path, llm: FakeLLM) -> None:
    """Pages in the middle of the file overwritten: SQLite opens it and `SELECT 1` works, but reading the schema's
    revision or the personas fails. The start and each command say so in one line that names the file and how to
    get the data back, not SQLite's bare error."""
    damage_sqlite_pages(tmp_path, "alembic_version", "personas")
    line = (
        "hearth: cannot use the database at sqlite+aiosqlite:///./data/hearth.db: database disk image is malformed "
        f"(data/hearth.db is damaged): {DAMAGED_ADVICE}\n"
    )
    for command in (("db", "current"), ("db", "upgrade"), ("memory", "status")):
        result = hearth(*command, cwd=tmp_path)
        assert (result.returncode, result.stderr) == (3, line), (command, result.stderr)

    status, err = await run_against_fake_discord(tmp_path, llm)
    assert status == 3, err
    assert err.splitlines()[-1] == line.rstrip(), err
    assert "Traceback" not in err, err


@pytest.mark.parametrize("tables", [("personas", "memories"), ("alembic_version",)])
def test_doctor_finds_a_sqlite_file_damaged_past_its_first_page(tmp_path: Path, tables: tuple[str, ...]) -> None:
    """`SELECT 1` reads none of the damaged pages: doctor has SQLite read them all (quick_check), and says which file
    is damaged and what to do, as the start would once it read them, rather than that all is well (or, where its
    own look at the schema's revision failed, a bare error without its table)."""
    damage_sqlite_pages(tmp_path, *tables)
    doctor = hearth("doctor", cwd=tmp_path)
    assert doctor.returncode == 1 and doctor.stderr == "", doctor.stderr
    rows = doctor.stdout.splitlines()
    database = next(row for row in rows if " database " in row)
    prefix = "FAIL  database       cannot use the database at sqlite+aiosqlite:///./data/hearth.db: "
    assert database.startswith(prefix), doctor.stdout
    found = "quick_check found Page " if tables != ("alembic_version",) else "database disk image is malformed"
    assert found in database, database
    assert database.endswith(f"(data/hearth.db is damaged): {DAMAGED_ADVICE}"), database
    assert "--    schema         database damaged" in rows, doctor.stdout

"""Several Hearth processes migrating one database at once (a `docker compose up --scale`, shards started together
after an upgrade): the first migrates, the others wait for it and then find nothing left to do."""

import asyncio
import os
import signal
import sys
import uuid
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import URL

from bot.db import migrations
from bot.db.engine import Database
from tests.fakes.discord import FakeDiscord
from tests.fakes.llm_server import FakeLLM
from tests.support.postgres import create_database
from tests.support.process import bot_environment, bot_process, logged

ROOT = Path(__file__).resolve().parents[3]

# On PYTHONPATH as sitecustomize: once the migration has made its first step (it writes the revision reached), say
# so on stdout and go on only when the file PAUSE_UNTIL exists, as a slow migration would, its transaction open.
PAUSE_AFTER_FIRST_STEP = """
import os, time
from sqlalchemy import event
from sqlalchemy.engine import Engine

paused = []

@event.listens_for(Engine, "before_cursor_execute")
def pause(conn, cursor, statement, parameters, context, executemany):
    if os.environ.get("PAUSE_UNTIL") and not paused and statement.lstrip().startswith(
        ("INSERT INTO alembic_version", "UPDATE alembic_version")
    ):
        paused.append(statement)
        print("migrating", flush=True)
        while not os.path.exists(os.environ["PAUSE_UNTIL"]):
            time.sleep(0.05)
"""


async def _start_upgrade(
    tmp_path: Path, url: str, *, command: tuple[str, ...] = ("db", "upgrade"), **env: str
) -> asyncio.subprocess.Process:
    environment = {key: os.environ[key] for key in ("PATH", "HOME", "LANG") if key in os.environ}
    environment |= {"PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}", "DATABASE_URL": url, **env}
    return await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "bot", *command),
        cwd=tmp_path,
        env=environment,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def _waits_on_a_lock(server_url: URL, name: str) -> None:
    """Until a connection to the database ``name`` waits on a lock another one holds."""
    admin = Database(server_url)
    try:
        while True:
            async with admin.engine.connect() as connection:
                waiting = await connection.scalar(
                    text("SELECT count(*) FROM pg_stat_activity WHERE datname = :name AND wait_event_type = 'Lock'"),
                    {"name": name},
                )
            if waiting:
                return
            await asyncio.sleep(0.05)
    finally:
        await admin.dispose()


async def _both_at_head(url: str, results: list[tuple[int | None, bytes, bytes]]) -> None:
    head = migrations.head_revision()
    for returncode, out, err in results:
        assert returncode == 0, err.decode()
        assert f"database at {head}" in out.decode()
    database = Database(url)
    try:
        assert await migrations.current_revision(database) == head
    finally:
        await database.dispose()


async def _at(url: str, start: str | None) -> None:
    if start is None:
        return
    database = Database(url)
    try:
        await migrations.upgrade(database, embedding_dimension=384, revision=start)
    finally:
        await database.dispose()


async def _finish(*processes: asyncio.subprocess.Process) -> list[tuple[int | None, bytes, bytes]]:
    outputs = await asyncio.wait_for(asyncio.gather(*(each.communicate() for each in processes)), timeout=300)
    return [(each.returncode, out, err) for each, (out, err) in zip(processes, outputs, strict=True)]


@pytest.mark.parametrize("start", [None, "0020"], ids=["new", "behind"])
async def test_a_second_upgrade_on_postgresql_waits_for_the_first_then_has_nothing_to_do(
    tmp_path: Path, postgres_server_url: URL, start: str | None
) -> None:
    """The second process starts while the first is half-way through its migration, its transaction open."""
    name = f"hearth_race_{uuid.uuid4().hex[:8]}"
    url = (await create_database(postgres_server_url, name)).render_as_string(hide_password=False)
    await _at(url, start)
    (tmp_path / "sitecustomize.py").write_text(PAUSE_AFTER_FIRST_STEP)
    go = tmp_path / "go"

    first = await _start_upgrade(tmp_path, url, PAUSE_UNTIL=str(go))
    second: asyncio.subprocess.Process | None = None
    try:
        assert first.stdout is not None
        async with asyncio.timeout(120):
            assert await first.stdout.readline() == b"migrating\n"
        second = await _start_upgrade(tmp_path, url)
        async with asyncio.timeout(120):
            await _waits_on_a_lock(postgres_server_url, name)
        go.touch()
        results = await _finish(first, second)
    finally:
        for process in (first, second):
            if process is not None and process.returncode is None:
                process.kill()
                await process.wait()
    await _both_at_head(url, results)


async def test_a_start_waiting_for_another_process_migrating_says_so_and_stops_cleanly(
    tmp_path: Path, postgres_server_url: URL, llm: FakeLLM
) -> None:
    """A migration may take minutes on a large database: a bot started meanwhile says in its log why it waits,
    rather than seeming stuck, and ``docker stop`` still stops it there."""
    name = f"hearth_race_{uuid.uuid4().hex[:8]}"
    url = await create_database(postgres_server_url, name)
    (tmp_path / "sitecustomize.py").write_text(PAUSE_AFTER_FIRST_STEP)
    go = tmp_path / "go"
    first = await _start_upgrade(tmp_path, url.render_as_string(hide_password=False), PAUSE_UNTIL=str(go))
    database = Database(url)
    try:
        assert first.stdout is not None
        async with asyncio.timeout(120):
            assert await first.stdout.readline() == b"migrating\n"
        log = tmp_path / "bot.log"
        async with FakeDiscord() as discord:
            environment = bot_environment(discord, database, llm)
            environment["PYTHONPATH"] = f"{tmp_path}{os.pathsep}{ROOT}"
            async with bot_process(environment, log) as bot:
                await logged(log, "another process is migrating the database: waiting for it to finish")
                bot.send_signal(signal.SIGTERM)
                async with asyncio.timeout(60):
                    assert await bot.wait() == 0, log.read_text()
        assert "SIGTERM received while starting: stopped" in log.read_text()
        go.touch()
        _, err = await asyncio.wait_for(first.communicate(), timeout=300)
        assert first.returncode == 0, err.decode()
    finally:
        go.touch()
        if first.returncode is None:
            first.kill()
            await first.wait()
        await database.dispose()


@pytest.mark.parametrize("start", [None, "0020"], ids=["new", "behind"])
async def test_two_upgrades_at_once_on_sqlite_take_turns(tmp_path: Path, start: str | None) -> None:
    """BEGIN IMMEDIATE: the second waits for the first's write lock (``busy_timeout``), then has nothing to do."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'hearth.db'}"
    await _at(url, start)
    processes = [await _start_upgrade(tmp_path, url) for _ in range(2)]
    try:
        results = await _finish(*processes)
    finally:
        for process in processes:
            if process.returncode is None:
                process.kill()
                await process.wait()
    await _both_at_head(url, results)


async def test_beside_an_upgrade_on_sqlite_a_start_is_refused_naming_it_and_a_downgrade_waits_its_turn(
    tmp_path: Path, llm: FakeLLM
) -> None:
    """While `db upgrade` migrates a SQLite file, a bot started on it is refused with the line naming that command
    (not SQLite's "database is locked" once it gave up waiting), and a second migrating command says it waits, then
    does its own work once the first is done."""
    path = tmp_path / "hearth.db"
    url = f"sqlite+aiosqlite:///{path}"
    (tmp_path / "sitecustomize.py").write_text(PAUSE_AFTER_FIRST_STEP)
    go = tmp_path / "go"
    first = await _start_upgrade(tmp_path, url, PAUSE_UNTIL=str(go))
    second: asyncio.subprocess.Process | None = None
    database = Database(url)
    try:
        assert first.stdout is not None
        async with asyncio.timeout(120):
            assert await first.stdout.readline() == b"migrating\n"
        second = await _start_upgrade(tmp_path, url, command=("db", "downgrade", "base"))
        assert second.stderr is not None
        async with asyncio.timeout(120):
            waiting = (await second.stderr.readline()).decode()
        assert f"(process {first.pid}, `db upgrade`) is migrating {path}: waiting for it to finish" in waiting

        log = tmp_path / "bot.log"
        async with FakeDiscord() as discord:
            environment = bot_environment(discord, database, llm)
            environment["PYTHONPATH"] = f"{tmp_path}{os.pathsep}{ROOT}"
            async with bot_process(environment, log) as bot:
                async with asyncio.timeout(120):
                    status = await bot.wait()
        refusal = log.read_text(errors="replace")
        lines = [line for line in refusal.splitlines() if line.startswith("hearth:")]
        assert status == 3 and len(lines) == 1, refusal
        assert f"(process {first.pid}, `db upgrade`) is migrating the SQLite database {path}" in lines[0], lines[0]
        assert "locked" not in refusal and "Traceback" not in refusal, refusal

        go.touch()
        (upgraded, upgrade_out, upgrade_err), (downgraded, downgrade_out, downgrade_err) = await _finish(first, second)
    finally:
        go.touch()
        for process in (first, second):
            if process is not None and process.returncode is None:
                process.kill()
                await process.wait()
        await database.dispose()
    assert upgraded == 0 and f"database at {migrations.head_revision()}" in upgrade_out.decode(), upgrade_err.decode()
    assert downgraded == 0 and "database at base (empty)" in downgrade_out.decode(), downgrade_err.decode()

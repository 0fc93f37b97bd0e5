"""CPU time the bot and its database spend, to compare runs on a shared, noisy machine.

Wall-clock figures move with whatever else the machine runs; the CPU seconds a run consumes move much less.
The bot's is this process's (every thread: the event loop, the embedding model); PostgreSQL's is its server's
(the postmaster, its live backends and the ones that ended, which the postmaster reaped). SQLite runs inside
the bot, so its share is in the bot's.
"""

import os
import time
from pathlib import Path

from sqlalchemy import text

from bot.db.engine import Database

_TICKS = os.sysconf("SC_CLK_TCK")


def _own_and_reaped_s(pid: int) -> tuple[float, float]:
    """(this process's CPU seconds, its reaped children's) from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    utime, stime, cutime, cstime = (int(value) for value in fields[11:15])
    return (utime + stime) / _TICKS, (cutime + cstime) / _TICKS


def _children_of(pid: int) -> list[int]:
    children = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            children.append(int(entry.name))
    return children


class CpuMeter:
    """``seconds()`` gives (bot, database) CPU seconds used so far."""

    def __init__(self, postmaster: int | None) -> None:
        self.postmaster = postmaster

    @classmethod
    async def of(cls, database: Database) -> "CpuMeter":
        if database.backend != "postgresql":
            return cls(None)
        async with database.reading() as session:
            folder = await session.scalar(text("SHOW data_directory"))
        first_line = (Path(str(folder)) / "postmaster.pid").read_text().splitlines()[0]
        return cls(int(first_line))

    def seconds(self) -> tuple[float, float]:
        bot = time.process_time()
        if self.postmaster is None:
            return bot, 0.0
        own, reaped = _own_and_reaped_s(self.postmaster)
        total = own + reaped
        for child in _children_of(self.postmaster):
            try:
                total += sum(_own_and_reaped_s(child))
            except OSError:  # ended meanwhile: now in the postmaster's reaped time (a tick may be lost)
                continue
        return bot, total

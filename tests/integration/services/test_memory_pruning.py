"""Pruning a big backlog of expired memories (both backends): it goes in short transactions of its own, so the
writes of replies get the database between them, and a prune cut short keeps what it did and loses nothing else."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from bot.db.engine import Database
from bot.db.models import Memory
from bot.db.repositories.memories import MemoryRepository, NewMemory
from bot.services.maintenance import Maintenance, MaintenanceConfig
from bot.services.memory import MemoryService
from bot.services.personas import PersonaService
from bot.services.summaries import ConversationSummaries, SummaryConfig
from tests.fakes.llm_server import FakeLLM
from tests.support.chat import chat_model
from tests.support.database_faults import failing_when
from tests.support.embedding import shared_embedder

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
DUE = 2_500  # memories past retention, never recalled: a big database after MEMORY_RETENTION_DAYS was lowered
KEPT = ["recalled lately", "a summary", "vital", "recent"]


async def maintenance(db: Database, llm: FakeLLM) -> Maintenance:
    personas = PersonaService(db)
    summaries = ConversationSummaries(
        db, chat_model(llm.base_url), MemoryService(db, await shared_embedder()), personas, SummaryConfig("fake-model")
    )
    config = MaintenanceConfig(memory_retention=timedelta(days=30))
    return Maintenance(db, personas, summaries, config, clock=lambda: NOW)


async def store_backlog(db: Database) -> None:
    """``DUE`` expired memories, and one of each kind that stays: recalled since, a summary, important, recent."""
    old = NOW - timedelta(days=90)
    async with db.session() as session:
        repo = MemoryRepository(session)
        due = [NewMemory(kind="message", content=f"said {n}", scope="dm", created_at=old) for n in range(DUE)]
        await repo.add_many(due, None, None)
        ids = await repo.add_many(
            [
                NewMemory(kind="message", content="recalled lately", scope="dm", created_at=old),
                NewMemory(kind="summary", content="a summary", scope="dm", created_at=old),
                NewMemory(kind="message", content="vital", scope="dm", created_at=old, importance=0.9),
                NewMemory(kind="message", content="recent", scope="dm", created_at=NOW),
            ],
            None,
            None,
        )
        await repo.touch([ids[0]], now=NOW - timedelta(days=2))


async def remembered(db: Database) -> list[str]:
    async with db.session() as session:
        return list((await session.scalars(select(Memory.content))).all())


def is_prune(statement: str) -> bool:
    return statement.lstrip().upper().startswith("DELETE FROM MEMORIES")


async def test_a_big_backlog_is_pruned_whole_and_nothing_else(db: Database, llm: FakeLLM) -> None:
    await store_backlog(db)
    deletes: list[str] = []

    def counting(statement: str, _parameters: Any) -> bool:
        if is_prune(statement):
            deletes.append(statement)
        return False

    with failing_when(db, counting):
        assert await (await maintenance(db, llm)).prune_memories() == DUE

    assert sorted(await remembered(db)) == sorted(KEPT)
    assert len(deletes) > 1, "a backlog this big is pruned in several short transactions, not one long one"


async def test_a_prune_cut_short_between_batches_keeps_what_it_did_and_the_next_run_finishes_it(
    db: Database, llm: FakeLLM
) -> None:
    await store_backlog(db)
    jobs = await maintenance(db, llm)
    deletes: list[str] = []

    def second_batch_fails(statement: str, _parameters: Any) -> bool:
        if is_prune(statement):
            deletes.append(statement)
            return len(deletes) == 2  # the connection drops as the second batch starts
        return False

    with failing_when(db, second_batch_fails), pytest.raises(Exception):  # noqa: B017 (the driver's own error)
        await jobs.prune_memories()

    left = await remembered(db)
    due_left = [content for content in left if content.startswith("said ")]
    assert 0 < len(due_left) < DUE, "the first batch stays pruned; the rest waits for the next run"
    assert set(KEPT) <= set(left), "nothing that should stay was pruned"

    assert await jobs.prune_memories() == len(due_left)
    assert sorted(await remembered(db)) == sorted(KEPT)

"""The owner's view of the running bot, and the switches and jobs they run by hand.

``/owner status`` reads one :class:`StatusSnapshot` from here instead of asking the database, the learner, the
embedding worker, the coordination and the scheduler itself; ``/owner maintenance``, ``/owner memory reembed``
and ``/owner memory prune`` call the methods below. The Discord layer only renders.
"""

from dataclasses import dataclass
from datetime import datetime

from bot.db.engine import Database
from bot.db.repositories.system import SystemRepository
from bot.llm.embeddings import Embedder
from bot.scheduler import Scheduler
from bot.services.coordination import Coordination
from bot.services.embedding_worker import EmbeddingWorker
from bot.services.learning import Learner
from bot.services.maintenance import Maintenance
from bot.services.reembed import Progress, reembed


@dataclass(frozen=True, slots=True)
class StatusSnapshot:
    backend: str  # "postgresql" or "sqlite"
    database_bytes: int  # PostgreSQL: the whole database; SQLite: the main file
    learner_backlog: int  # conversations this process's learner holds, not yet read
    embedding_backlog: int  # memories waiting for their vector, every process's (read from the database)
    maintenance: bool  # resting: messages are stored, not answered
    jobs: dict[str, datetime | None]  # each scheduled job's next run (None: stopped)


class StatusService:
    def __init__(
        self,
        database: Database,
        *,
        learner: Learner,
        worker: EmbeddingWorker,
        coordination: Coordination,
        scheduler: Scheduler,
        maintenance: Maintenance,
        embedder: Embedder,
    ) -> None:
        self.database = database
        self.learner = learner
        self.worker = worker
        self.coordination = coordination
        self.scheduler = scheduler
        self.maintenance = maintenance
        self.embedder = embedder

    async def snapshot(self) -> StatusSnapshot:
        async with self.database.reading() as session:
            size = await SystemRepository(session).database_size()
        return StatusSnapshot(
            backend=self.database.backend,
            database_bytes=size,
            learner_backlog=self.learner.backlog,
            embedding_backlog=await self.worker.backlog(),
            maintenance=self.coordination.maintenance,
            jobs=self.scheduler.next_runs(),
        )

    async def set_maintenance(self, on: bool) -> None:
        """Rest (or chat again) in every process on the database, and after a restart."""
        await self.coordination.set_maintenance(on)

    async def reembed(self, progress: Progress | None = None) -> int:
        """Re-embed the memories another embedding model made; returns how many (see :func:`reembed`)."""
        return await reembed(self.database, self.embedder, progress=progress)

    async def prune_memories(self) -> int:
        """Delete message memories past MEMORY_RETENTION_DAYS that were never recalled; returns how many."""
        return await self.maintenance.prune_memories()

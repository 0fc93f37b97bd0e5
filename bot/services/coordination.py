"""What several bot processes on one database agree on: maintenance mode, guild settings, personas, and what
was forgotten.

Maintenance mode is a row (``runtime_flags``), so it holds in every process and survives a restart; each
process reads it at start and applies it to its :class:`ConversationService`. Guild settings, personas, people
and the recent turns of conversations are cached per process; a change made in one process is announced in its
transaction (PostgreSQL ``NOTIFY``) and the others drop what they cached when they hear it, well within a
second: a message deleted or edited on Discord, or a person erased, must not live on in another process's
prompts. Whenever the listening connection is (re)opened, every such cache is dropped and the flag re-read,
since notifications sent while it was down are lost. SQLite serves one process: nothing to listen for, the
flag is still kept.
"""

import asyncio
import contextlib
import logging

from bot.db.changes import Change, ChangeListener
from bot.db.engine import Database
from bot.db.repositories.runtime import MAINTENANCE, RuntimeRepository
from bot.services.conversation import ConversationService
from bot.services.directory import Directory
from bot.services.personas import PersonaService

log = logging.getLogger(__name__)


class Coordination:
    def __init__(
        self,
        database: Database,
        conversation: ConversationService,
        directory: Directory,
        personas: PersonaService,
    ) -> None:
        self.database = database
        self.conversation = conversation
        self.directory = directory
        self.personas = personas
        self.listener: ChangeListener | None = None
        if database.backend == "postgresql":
            self.listener = ChangeListener(database, self._changed, self._caught_up)

    @property
    def maintenance(self) -> bool:
        return self.conversation.resting

    async def load(self) -> None:
        """Apply the stored maintenance flag (at start, and after reconnecting to hear changes)."""
        async with self.database.session() as session:
            self._apply_maintenance(await RuntimeRepository(session).flag(MAINTENANCE))

    async def set_maintenance(self, on: bool) -> None:
        """The owner's switch, for every process on the database (and after a restart)."""
        async with self.database.session() as session:
            repo = RuntimeRepository(session)
            await repo.set_flag(MAINTENANCE, on)
            await repo.announce(Change("maintenance", int(on)))
        self._apply_maintenance(on)

    async def start(self) -> None:
        """Start hearing other processes' changes (PostgreSQL); waits (briefly) until the listener is connected,
        and keeps trying in the background if it cannot connect yet."""
        if self.listener is not None:
            self.listener.start()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(10):
                    await self.listener.wait_connected()

    async def stop(self) -> None:
        if self.listener is not None:
            await self.listener.stop()

    def _apply_maintenance(self, on: bool) -> None:
        if on != self.conversation.resting:  # rest() tells everyone again: only on a real switch
            self.conversation.rest(on)
            log.info("maintenance mode %s", "on" if on else "off")

    def _changed(self, change: Change) -> None:
        if change.kind == "maintenance":
            self._apply_maintenance(bool(change.key))
        elif change.kind == "guild_settings":
            if change.key is not None:
                self.directory.forget_guild(change.key)
        elif change.kind == "persona":
            self.personas.forget(change.key)
        elif change.kind == "erased":
            if change.key is not None:
                self.directory.forget_user(change.key)
            self.conversation.forget_cached(people=True)
        else:  # turns
            self.conversation.forget_cached()

    async def _caught_up(self) -> None:
        self.directory.forget()
        self.personas.forget_all()
        self.conversation.forget_cached(people=True)
        await self.load()

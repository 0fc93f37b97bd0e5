"""Composition root: builds every long-lived dependency once, from the settings, and hands it out."""

import logging
from dataclasses import dataclass, field
from datetime import timedelta

from bot.db import migrations
from bot.db.engine import Database
from bot.db.sole_process import SqliteFileLock, hold_sqlite_file
from bot.llm.chat import ChatModel, OpenAIChatModel
from bot.llm.embeddings import Embedder, build_embedder
from bot.llm.fallback import FallbackChatModel
from bot.llm.metered import MeteredChatModel
from bot.llm.openai_client import build_fallback_client, build_openai_client
from bot.llm.tokens import counter_for, tokenizer_name
from bot.llm.vision import Vision, VisionGate
from bot.observability.metrics import Metrics
from bot.scheduler import IntervalJob, Scheduler
from bot.services.activity import ReplyActivity
from bot.services.bundle import Services
from bot.services.companion import CompanionContext
from bot.services.conversation import ConversationConfig, ConversationService
from bot.services.conversation import build as build_conversation
from bot.services.coordination import Coordination
from bot.services.directory import Directory
from bot.services.embedding_worker import EmbeddingWorker
from bot.services.events import EventsConfig, EventService, Notifier
from bot.services.guild_config import GuildConfigService
from bot.services.image_describer import ImageDescriber
from bot.services.knowledge import RECOVERY_INTERVAL, KnowledgeService
from bot.services.learning import Learner, LearningConfig
from bot.services.limits import CommandCooldown, Cooldowns, TokenQuota
from bot.services.maintenance import Maintenance, MaintenanceConfig
from bot.services.memory import MemoryService
from bot.services.operations import Operations
from bot.services.personas import PersonaService
from bot.services.privacy import PrivacyService
from bot.services.reembed import embedding_model_mismatch
from bot.services.reminders import ReminderService
from bot.services.stats import StatsService
from bot.services.status import StatusService
from bot.services.summaries import ConversationSummaries, SummaryConfig
from bot.settings import Settings

log = logging.getLogger(__name__)


def conversation_config(settings: Settings) -> ConversationConfig:
    return ConversationConfig(
        model=settings.llm_model,
        temperature=settings.llm_temperature,
        max_tokens=settings.llm_max_tokens,
        context_tokens=settings.llm_context_tokens,
        extra_headers=settings.llm_extra_headers,
        extra_body=settings.llm_extra_body,
        idle=timedelta(minutes=settings.conversation_idle_minutes),
        history_turns=settings.history_turns,
        edit_interval_s=settings.stream_edit_interval_seconds,
        cooldown_s=settings.user_cooldown_seconds,
    )


def shards_of(settings: Settings) -> tuple[tuple[int, ...], int] | None:
    """With SHARD_COUNT and SHARD_IDS, this process's shards (ids, count): it hears only the guilds on them (DMs:
    shard 0). Otherwise (None) one process runs every shard."""
    if settings.shard_count is not None and settings.shard_ids:
        return (tuple(settings.shard_ids), settings.shard_count)
    return None


def learning_config(settings: Settings) -> LearningConfig:
    return LearningConfig(
        model=settings.learning_model or settings.llm_model,
        enabled=settings.learning_enabled,
        batch_messages=settings.learning_batch_messages,
        idle=timedelta(seconds=settings.learning_idle_seconds),
        workers=settings.learning_workers,
        response_format=settings.learning_response_format,
        max_tokens_when_cut=settings.llm_max_tokens,  # a reasoning model's thinking may take twice the usual room
        extra_body=settings.llm_extra_body,
        shards=shards_of(settings),  # the start-up catch-up leaves the other processes' conversations to them
    )


def events_config(settings: Settings) -> EventsConfig:
    return EventsConfig(
        model=settings.llm_model,
        grace=timedelta(minutes=settings.events_grace_minutes),
        daily_cap=settings.proactive_daily_cap,
        max_tokens_when_no_room=settings.llm_max_tokens,  # a reasoning model's thinking may take a message's room
        shards=shards_of(settings),  # a process claims only the events of guilds on its shards
    )


def with_fallbacks(chat_model: ChatModel, settings: Settings, vision: Vision | None = None) -> ChatModel:
    """``chat_model`` followed by the ``LLM_FALLBACK_MODELS``, if any (on their own endpoint, if one is set); no image
    is sent to a model ``vision`` knows to be text-only."""
    if not settings.llm_fallback_models:
        return chat_model
    client = build_fallback_client(settings, timeout=settings.llm_timeout_seconds)
    fallback = None
    if client is not None:
        fallback = OpenAIChatModel(client, budget_s=settings.llm_retry_budget_seconds)
        log.info("fallback models %s on %s", ", ".join(settings.llm_fallback_models), client.base_url)
    return FallbackChatModel(chat_model, settings.llm_fallback_models, fallback=fallback, vision=vision)


@dataclass(slots=True)
class Container:
    settings: Settings
    database: Database
    chat_model: ChatModel
    embedder: Embedder
    directory: Directory
    personas: PersonaService
    memory: MemoryService
    embedding_worker: EmbeddingWorker
    summaries: ConversationSummaries
    maintenance: Maintenance
    learner: Learner
    conversation: ConversationService
    scheduler: Scheduler
    # What the slash commands call.
    privacy: PrivacyService
    guild_config: GuildConfigService
    reminders: ReminderService
    stats: StatsService
    knowledge: KnowledgeService
    operations: Operations
    status: StatusService
    cooldowns: Cooldowns
    coordination: Coordination
    owns_embedder: bool = True
    metrics: Metrics = field(default_factory=Metrics)  # this bot's own registry: several bots, several registries
    started: bool = field(default=False)
    events: EventService | None = None  # proactive messages: built by start() when given a notifier
    image_describer: ImageDescriber | None = None  # None while LLM_VISION is off
    sqlite_lock: SqliteFileLock | None = None  # held by `run` on a SQLite file: no second bot on it

    @classmethod
    async def create(
        cls,
        settings: Settings,
        *,
        migrate: bool = True,
        chat_model: ChatModel | None = None,
        embedder: Embedder | None = None,
        sole: bool = False,
    ) -> "Container":
        """Connect to the database (a clear error if unreachable), bring its schema to head, wire the services.

        With ``sole`` (``run`` and ``chat``), a SQLite file is held for this process until :meth:`aclose`: a second
        bot on it is refused with a clear error, since the two would not hear each other's changes.

        Without ``chat_model``, one is built for the configured endpoint (a clear error if there is none);
        without ``embedder``, the configured one is built and loaded (the caller keeps a given one).
        """
        if chat_model is None:
            client = build_openai_client(settings, timeout=settings.llm_timeout_seconds)
            chat_model = OpenAIChatModel(client, budget_s=settings.llm_retry_budget_seconds)
        vision = Vision(enabled=settings.llm_vision)  # shared by the fallback chain, the replies and the describer
        chat_model = with_fallbacks(chat_model, settings, vision)
        owns_embedder = embedder is None
        embedder = embedder or build_embedder(settings)
        database = Database(settings.database_url, echo=settings.database_echo, pool_size=settings.database_pool_size)
        sqlite_lock: SqliteFileLock | None = None
        try:
            # First: another bot migrating the file holds its write lock for as long as that takes, and the check
            # would wait for it, then fail as "database is locked", rather than naming that bot.
            if sole:
                sqlite_lock = hold_sqlite_file(settings.database_url)
            await database.check(writable=True)  # a file or folder Hearth may not write is said as such
            # Before migrating: a new PostgreSQL schema fixes its vector size, which must be the model's.
            load = getattr(embedder, "load", None)
            if load is not None:
                await load()
            if migrate:
                await migrations.upgrade(database, embedding_dimension=settings.embedding_dimension)
            await migrations.require_embedding_dimension(database, settings.embedding_dimension)
            personas = PersonaService(database)
            await personas.ensure_default()
            mismatch = await embedding_model_mismatch(database, embedder.model_name)
            if mismatch:
                log.warning("%s", mismatch)
        except BaseException:
            await database.dispose()
            if owns_embedder:
                await embedder.aclose()
            if sqlite_lock is not None:
                sqlite_lock.release()
            raise
        metrics = Metrics()
        database.on_error(metrics.database_error)
        directory = Directory(database)
        memory = MemoryService(database, embedder)
        activity = ReplyActivity()
        worker = EmbeddingWorker(database, embedder, activity=activity)
        metrics.watch_embedding_backlog(worker.backlog)
        summaries = ConversationSummaries(
            database,
            MeteredChatModel(chat_model, metrics, "summary"),
            memory,
            personas,
            SummaryConfig(
                model=settings.llm_model,
                idle=timedelta(minutes=settings.conversation_idle_minutes),
                max_tokens_when_cut=settings.llm_max_tokens,
            ),
        )
        quota = TokenQuota(database)  # one count per guild, shared by replies, learning and proactive messages
        learner = Learner(
            database,
            MeteredChatModel(chat_model, metrics, "learning"),
            embedder,
            personas,
            learning_config(settings),
            activity=activity,
            quota=quota,
        )
        metrics.watch_learner_backlog(lambda: learner.backlog)
        cooldowns = Cooldowns()
        describer = (
            ImageDescriber(
                database,
                MeteredChatModel(chat_model, metrics, "describe"),
                vision,
                model=settings.llm_model,
                rewritten=worker.wake,
                activity=activity,
                max_tokens_when_no_room=settings.llm_max_tokens,  # a reasoning model's thinking may take its room
            )
            if settings.llm_vision
            else None
        )
        conversation = build_conversation(
            database,
            MeteredChatModel(VisionGate(chat_model, vision), metrics, "reply"),
            directory,
            personas,
            conversation_config(settings),
            memory=memory,
            worker=worker,
            companion=CompanionContext(database),
            learner=learner,
            describer=describer,
            activity=activity,
            cooldowns=cooldowns,
            quota=quota,
            token_counter=counter_for,
        )
        log.info("prompt tokens of %s are counted with %s", settings.llm_model, tokenizer_name(settings.llm_model))

        def erased(discord_id: int) -> None:
            directory.forget_user(discord_id)
            conversation.forget_cached(people=True)  # the recent turns that give a new memory its context, the names

        privacy = PrivacyService(
            database, embedder, worker=worker, on_erased=erased, on_turns_changed=conversation.forget_cached
        )
        coordination = Coordination(database, conversation, directory, personas)
        try:
            await coordination.load()  # maintenance mode, as the owner left it
        except BaseException:
            await database.dispose()
            if owns_embedder:
                await embedder.aclose()
            if sqlite_lock is not None:
                sqlite_lock.release()
            raise
        retention = timedelta(days=settings.memory_retention_days) if settings.memory_retention_days else None
        maintenance = Maintenance(database, personas, summaries, MaintenanceConfig(memory_retention=retention))
        hourly, daily = timedelta(hours=1), timedelta(days=1)
        knowledge = KnowledgeService(database, memory)
        scheduler = Scheduler(
            [
                IntervalJob(
                    "close-idle-conversations",
                    maintenance.close_idle_conversations,
                    timedelta(minutes=settings.memory_sweep_minutes),
                ),
                IntervalJob("mood-decay", maintenance.decay_moods, hourly),
                IntervalJob("fact-expiry", maintenance.expire_facts, hourly),
                IntervalJob("memory-pruning", maintenance.prune_memories, daily, first_after=timedelta(minutes=10)),
                IntervalJob("token-roll-up", maintenance.roll_up_tokens, daily, first_after=timedelta(minutes=5)),
                # Also run at start (see start()).
                IntervalJob("knowledge-recovery", knowledge.recover, RECOVERY_INTERVAL, first_after=RECOVERY_INTERVAL),
            ]
        )
        return cls(
            settings,
            database,
            chat_model,
            embedder,
            directory,
            personas,
            memory,
            worker,
            summaries,
            maintenance,
            learner,
            conversation,
            scheduler,
            privacy=privacy,
            guild_config=GuildConfigService(directory),
            reminders=ReminderService(database, daily_cap=settings.proactive_daily_cap),
            stats=StatsService(database),
            knowledge=knowledge,
            operations=Operations(database, backup_dir=settings.backup_dir, pg_dump=settings.pg_dump_path),
            status=StatusService(
                database,
                learner=learner,
                worker=worker,
                coordination=coordination,
                scheduler=scheduler,
                maintenance=maintenance,
                embedder=embedder,
            ),
            cooldowns=cooldowns,
            coordination=coordination,
            owns_embedder=owns_embedder,
            metrics=metrics,
            image_describer=describer,
            sqlite_lock=sqlite_lock,
        )

    def services(self) -> Services:
        """What the front ends call (the Discord extensions take theirs from it)."""
        return Services(
            settings=self.settings,
            conversation=self.conversation,
            directory=self.directory,
            personas=self.personas,
            privacy=self.privacy,
            guild_config=self.guild_config,
            reminders=self.reminders,
            stats=self.stats,
            knowledge=self.knowledge,
            operations=self.operations,
            status=self.status,
            command_cooldown=CommandCooldown(self.directory, self.cooldowns, self.settings.user_cooldown_seconds),
            metrics=self.metrics,
        )

    async def start(self, notifier: Notifier | None = None) -> None:
        """Start the background work: hearing other processes' changes (PostgreSQL), the embedding worker
        (continuing with the memories still without a vector), the learner (catching up on what it missed) and
        the scheduler. Call it before messages flow (the catch-up must not race new messages).

        With a ``notifier`` (the Discord client's), proactive messages are sent too: :attr:`events` polls the
        scheduled events every EVENTS_POLL_SECONDS. Without one (no Discord connection), they wait."""
        if self.started:
            return
        self.started = True
        if notifier is not None:
            events = self.events = EventService(
                self.database,
                MeteredChatModel(self.chat_model, self.metrics, "proactive"),
                self.personas,
                notifier,
                events_config(self.settings),
                quota=self.conversation.holds.quota,
            )

            async def tick() -> None:
                self.metrics.events_handled((await events.tick(unsolicited=False)).items())

            async def tick_unsolicited() -> None:
                self.metrics.events_handled((await events.tick(unsolicited=True)).items())

            # Apart: while the model writes a birthday greeting or a follow-up (or is retried while it is down),
            # the reminders falling due meanwhile go out on time.
            poll = timedelta(seconds=self.settings.events_poll_seconds)
            self.scheduler.add(IntervalJob("scheduled-events", tick, poll, first_after=poll))
            self.scheduler.add(IntervalJob("proactive-messages", tick_unsolicited, poll, first_after=poll))
        await self.coordination.start()
        await self.knowledge.recover()
        self.embedding_worker.start()
        if self.image_describer is not None:
            self.image_describer.start()
        await self.learner.catch_up()
        self.learner.start()
        self.scheduler.start()

    async def stop_jobs(self) -> None:
        """Stop the scheduled jobs (a proactive message being sent goes out first), when the bot begins to stop."""
        await self.scheduler.stop()

    async def aclose(self) -> None:
        await self.coordination.stop()
        await self.scheduler.stop()
        await self.learner.stop()
        if self.image_describer is not None:
            await self.image_describer.stop()
        await self.embedding_worker.stop()
        if self.owns_embedder:
            await self.embedder.aclose()
        if isinstance(self.chat_model, FallbackChatModel):
            await self.chat_model.aclose()
        elif isinstance(self.chat_model, OpenAIChatModel):
            await self.chat_model.client.close()
        await self.database.dispose()
        if self.sqlite_lock is not None:
            self.sqlite_lock.release()

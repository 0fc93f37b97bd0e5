"""Composition root: builds every long-lived dependency once, from the settings, and hands it out."""

from dataclasses import dataclass
from datetime import timedelta

from bot.db import migrations
from bot.db.engine import Database
from bot.llm.chat import ChatModel, OpenAIChatModel
from bot.llm.openai_client import build_openai_client
from bot.services.conversation import ConversationConfig, ConversationService
from bot.services.directory import Directory
from bot.services.personas import PersonaService
from bot.settings import Settings


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
    )


@dataclass(slots=True)
class Container:
    settings: Settings
    database: Database
    chat_model: ChatModel
    directory: Directory
    personas: PersonaService
    conversation: ConversationService

    @classmethod
    async def create(
        cls, settings: Settings, *, migrate: bool = True, chat_model: ChatModel | None = None
    ) -> "Container":
        """Connect to the database (a clear error if unreachable), bring its schema to head, wire the services.

        Without ``chat_model``, one is built for the configured endpoint (a clear error if there is none).
        """
        if chat_model is None:
            client = build_openai_client(settings, timeout=settings.llm_timeout_seconds)
            chat_model = OpenAIChatModel(client, budget_s=settings.llm_retry_budget_seconds)
        database = Database(settings.database_url, echo=settings.database_echo, pool_size=settings.database_pool_size)
        try:
            await database.check()
            if migrate:
                await migrations.upgrade(database, embedding_dimension=settings.embedding_dimension)
            personas = PersonaService(database)
            await personas.ensure_default()
        except BaseException:
            await database.dispose()
            raise
        directory = Directory(database)
        conversation = ConversationService(database, chat_model, directory, personas, conversation_config(settings))
        return cls(settings, database, chat_model, directory, personas, conversation)

    async def aclose(self) -> None:
        if isinstance(self.chat_model, OpenAIChatModel):
            await self.chat_model.client.close()
        await self.database.dispose()

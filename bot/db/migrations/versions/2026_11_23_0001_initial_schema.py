"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-23 06:56:45.641658
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import context, op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# Tables in creation order (parents first).
_TABLES = (
    "guilds",
    "users",
    "bot_opinions",
    "bot_states",
    "conversations",
    "guild_daily_token_usage",
    "guild_members",
    "knowledge_documents",
    "mood_history",
    "personas",
    "scheduled_events",
    "user_communication_styles",
    "user_daily_token_usage",
    "user_facts",
    "user_preferences",
    "user_relationships",
    "fact_associations",
    "messages",
    "memories",
)

# JSONB on PostgreSQL, JSON elsewhere (the models' PortableJSON).
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _embedding() -> sa.types.TypeEngine[Any]:
    """pgvector ``vector(EMBEDDING_DIMENSION)`` on PostgreSQL, a float32 blob on SQLite."""
    if op.get_context().dialect.name != "postgresql":
        return sa.LargeBinary()
    from pgvector.sqlalchemy import Vector

    dimension = int(context.config.attributes.get("embedding_dimension") or 384)
    return Vector(dimension)


def upgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute("CREATE EXTENSION IF NOT EXISTS vector")

    op.create_table(
        "guilds",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("discord_id", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("joined_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("is_active", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("settings", JSON, server_default="{}", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_guilds")),
        sa.UniqueConstraint("discord_id", name=op.f("uq_guilds_discord_id")),
    )
    op.create_table(
        "users",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("discord_id", sa.BigInteger(), nullable=False),
        sa.Column("discord_username", sa.String(length=255), nullable=False),
        sa.Column("discord_display_name", sa.String(length=255), nullable=True),
        sa.Column("custom_name", sa.String(length=255), nullable=True),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("is_active", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("discord_id", name=op.f("uq_users_discord_id")),
    )
    op.create_index(op.f("ix_users_last_seen_at"), "users", ["last_seen_at"], unique=False)

    op.create_table(
        "bot_opinions",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("guild_id", sa.BigInteger(), nullable=True),
        sa.Column("topic", sa.String(length=255), nullable=False),
        sa.Column("sentiment", sa.Float(), server_default=sa.text("0.0"), nullable=False),
        sa.Column("interest_level", sa.Float(), server_default=sa.text("0.5"), nullable=False),
        sa.Column("discussion_count", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("reasoning", sa.Text(), nullable=True),
        sa.Column("formed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_reinforced_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.CheckConstraint("interest_level BETWEEN 0 AND 1", name=op.f("ck_bot_opinions_interest_range")),
        sa.CheckConstraint("sentiment BETWEEN -1 AND 1", name=op.f("ck_bot_opinions_sentiment_range")),
        sa.ForeignKeyConstraint(
            ["guild_id"], ["guilds.id"], name=op.f("fk_bot_opinions_guild_id_guilds"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bot_opinions")),
    )
    op.create_index(op.f("ix_bot_opinions_guild_id"), "bot_opinions", ["guild_id"], unique=False)
    op.create_index(op.f("ix_bot_opinions_topic"), "bot_opinions", ["topic"], unique=False)

    op.create_table(
        "bot_states",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("guild_id", sa.BigInteger(), nullable=True),
        sa.Column("mood_valence", sa.Float(), server_default=sa.text("0.0"), nullable=False),
        sa.Column("mood_arousal", sa.Float(), server_default=sa.text("0.0"), nullable=False),
        sa.Column("mood_updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("total_messages_sent", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("total_facts_learned", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("total_users_known", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("first_activated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("preferences", JSON, server_default="{}", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.CheckConstraint(
            "mood_valence BETWEEN -1 AND 1 AND mood_arousal BETWEEN -1 AND 1",
            name=op.f("ck_bot_states_mood_range"),
        ),
        sa.ForeignKeyConstraint(
            ["guild_id"], ["guilds.id"], name=op.f("fk_bot_states_guild_id_guilds"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bot_states")),
    )
    op.create_table(
        "conversations",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=True),
        sa.Column("guild_id", sa.BigInteger(), nullable=True),
        sa.Column("channel_id", sa.BigInteger(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_message_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("message_count", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("is_active", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.ForeignKeyConstraint(
            ["guild_id"], ["guilds.id"], name=op.f("fk_conversations_guild_id_guilds"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_conversations_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_conversations")),
    )
    op.create_index(op.f("ix_conversations_channel_id"), "conversations", ["channel_id"], unique=False)
    op.create_index(op.f("ix_conversations_guild_id"), "conversations", ["guild_id"], unique=False)
    op.create_index(op.f("ix_conversations_is_active"), "conversations", ["is_active"], unique=False)
    op.create_index(op.f("ix_conversations_last_message_at"), "conversations", ["last_message_at"], unique=False)
    op.create_index(op.f("ix_conversations_user_id"), "conversations", ["user_id"], unique=False)

    op.create_table(
        "guild_daily_token_usage",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("guild_id", sa.BigInteger(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("model", sa.String(length=255), nullable=False),
        sa.Column("requests", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("prompt_tokens", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("completion_tokens", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.ForeignKeyConstraint(
            ["guild_id"],
            ["guilds.id"],
            name=op.f("fk_guild_daily_token_usage_guild_id_guilds"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_guild_daily_token_usage")),
        sa.UniqueConstraint("day", "guild_id", "model", name=op.f("uq_guild_daily_token_usage_day_guild_id_model")),
    )
    op.create_index(op.f("ix_guild_daily_token_usage_guild_id"), "guild_daily_token_usage", ["guild_id"], unique=False)

    op.create_table(
        "guild_members",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("guild_id", sa.BigInteger(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("guild_nickname", sa.String(length=255), nullable=True),
        sa.Column("roles", JSON, server_default="[]", nullable=False),
        sa.Column("joined_guild_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.ForeignKeyConstraint(
            ["guild_id"], ["guilds.id"], name=op.f("fk_guild_members_guild_id_guilds"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_guild_members_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_guild_members")),
        sa.UniqueConstraint("guild_id", "user_id", name=op.f("uq_guild_members_guild_id_user_id")),
    )
    op.create_index(op.f("ix_guild_members_guild_id"), "guild_members", ["guild_id"], unique=False)
    op.create_index(op.f("ix_guild_members_user_id"), "guild_members", ["user_id"], unique=False)

    op.create_table(
        "knowledge_documents",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("guild_id", sa.BigInteger(), nullable=False),
        sa.Column("uploaded_by_user_id", sa.BigInteger(), nullable=True),
        sa.Column("source_name", sa.String(length=255), nullable=False),
        sa.Column("mime_type", sa.String(length=100), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=20), server_default="pending", nullable=False),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("chunk_count", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.CheckConstraint(
            "status IN ('pending', 'processing', 'completed', 'failed')",
            name=op.f("ck_knowledge_documents_status_valid"),
        ),
        sa.ForeignKeyConstraint(
            ["guild_id"],
            ["guilds.id"],
            name=op.f("fk_knowledge_documents_guild_id_guilds"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["uploaded_by_user_id"],
            ["users.id"],
            name=op.f("fk_knowledge_documents_uploaded_by_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_knowledge_documents")),
    )
    op.create_index(op.f("ix_knowledge_documents_guild_id"), "knowledge_documents", ["guild_id"], unique=False)
    op.create_index(
        op.f("ix_knowledge_documents_uploaded_by_user_id"),
        "knowledge_documents",
        ["uploaded_by_user_id"],
        unique=False,
    )

    op.create_table(
        "mood_history",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("guild_id", sa.BigInteger(), nullable=True),
        sa.Column("valence", sa.Float(), nullable=False),
        sa.Column("arousal", sa.Float(), nullable=False),
        sa.Column("trigger_type", sa.String(length=50), nullable=False),
        sa.Column("trigger_user_id", sa.BigInteger(), nullable=True),
        sa.Column("trigger_description", sa.Text(), nullable=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.ForeignKeyConstraint(
            ["guild_id"], ["guilds.id"], name=op.f("fk_mood_history_guild_id_guilds"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["trigger_user_id"],
            ["users.id"],
            name=op.f("fk_mood_history_trigger_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mood_history")),
    )
    op.create_index(op.f("ix_mood_history_guild_id"), "mood_history", ["guild_id"], unique=False)
    op.create_index(op.f("ix_mood_history_recorded_at"), "mood_history", ["recorded_at"], unique=False)
    op.create_index(op.f("ix_mood_history_trigger_user_id"), "mood_history", ["trigger_user_id"], unique=False)

    op.create_table(
        "personas",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("avatar_url", sa.String(length=2048), nullable=True),
        sa.Column("personality_prompt", sa.Text(), nullable=False),
        sa.Column("backstory", sa.Text(), nullable=True),
        sa.Column("greeting", sa.Text(), nullable=True),
        sa.Column("example_dialogue", sa.Text(), nullable=True),
        sa.Column("attributes", JSON, server_default="{}", nullable=False),
        sa.Column("config", JSON, server_default="{}", nullable=False),
        sa.Column("guild_id", sa.BigInteger(), nullable=True),
        sa.Column("is_default", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.ForeignKeyConstraint(
            ["guild_id"], ["guilds.id"], name=op.f("fk_personas_guild_id_guilds"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_personas")),
    )
    op.create_index(op.f("ix_personas_guild_id"), "personas", ["guild_id"], unique=False)

    op.create_table(
        "scheduled_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("guild_id", sa.BigInteger(), nullable=True),
        sa.Column("channel_id", sa.BigInteger(), nullable=True),
        sa.Column("event_type", sa.String(length=50), nullable=False),
        sa.Column("trigger_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("title", sa.String(length=255), nullable=False),
        sa.Column("context", JSON, server_default="{}", nullable=False),
        sa.Column("is_recurring", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("recurrence_rule", sa.String(length=100), nullable=True),
        sa.Column("status", sa.String(length=20), server_default="pending", nullable=False),
        sa.Column("triggered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.CheckConstraint(
            "status IN ('pending', 'triggered', 'sent', 'cancelled', 'missed', 'failed')",
            name=op.f("ck_scheduled_events_status_valid"),
        ),
        sa.ForeignKeyConstraint(
            ["guild_id"], ["guilds.id"], name=op.f("fk_scheduled_events_guild_id_guilds"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_scheduled_events_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scheduled_events")),
    )
    op.create_index(op.f("ix_scheduled_events_guild_id"), "scheduled_events", ["guild_id"], unique=False)
    op.create_index(op.f("ix_scheduled_events_status"), "scheduled_events", ["status"], unique=False)
    op.create_index("ix_scheduled_events_status_trigger_at", "scheduled_events", ["status", "trigger_at"], unique=False)
    op.create_index(op.f("ix_scheduled_events_trigger_at"), "scheduled_events", ["trigger_at"], unique=False)
    op.create_index(op.f("ix_scheduled_events_user_id"), "scheduled_events", ["user_id"], unique=False)

    op.create_table(
        "user_communication_styles",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("preferred_length", sa.String(length=20), server_default="medium", nullable=False),
        sa.Column("preferred_formality", sa.Float(), server_default=sa.text("0.5"), nullable=False),
        sa.Column("emoji_affinity", sa.Float(), server_default=sa.text("0.5"), nullable=False),
        sa.Column("humor_affinity", sa.Float(), server_default=sa.text("0.5"), nullable=False),
        sa.Column("detail_preference", sa.Float(), server_default=sa.text("0.5"), nullable=False),
        sa.Column("engagement_signals", JSON, server_default="{}", nullable=False),
        sa.Column("samples_collected", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("confidence", sa.Float(), server_default=sa.text("0.0"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.CheckConstraint(
            "preferred_length IN ('short', 'medium', 'long')",
            name=op.f("ck_user_communication_styles_length_valid"),
        ),
        sa.CheckConstraint("confidence BETWEEN 0 AND 1", name=op.f("ck_user_communication_styles_confidence_range")),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_user_communication_styles_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_user_communication_styles")),
        sa.UniqueConstraint("user_id", name=op.f("uq_user_communication_styles_user_id")),
    )
    op.create_table(
        "user_daily_token_usage",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("model", sa.String(length=255), nullable=False),
        sa.Column("requests", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("prompt_tokens", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("completion_tokens", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_user_daily_token_usage_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_user_daily_token_usage")),
        sa.UniqueConstraint("day", "user_id", "model", name=op.f("uq_user_daily_token_usage_day_user_id_model")),
    )
    op.create_index(op.f("ix_user_daily_token_usage_user_id"), "user_daily_token_usage", ["user_id"], unique=False)

    op.create_table(
        "user_facts",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("fact_type", sa.String(length=50), nullable=False),
        sa.Column("fact_content", sa.Text(), nullable=False),
        sa.Column("confidence", sa.Float(), server_default=sa.text("0.8"), nullable=False),
        sa.Column("source", sa.String(length=50), server_default="conversation", nullable=False),
        sa.Column("is_active", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("learned_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_referenced_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("category", sa.String(length=50), nullable=True),
        sa.Column("importance", sa.Float(), server_default=sa.text("0.5"), nullable=False),
        sa.Column("temporal_relevance", sa.String(length=20), nullable=True),
        sa.Column("expiry_date", sa.DateTime(timezone=True), nullable=True),
        sa.Column("extracted_from_message_id", sa.BigInteger(), nullable=True),
        sa.Column("extraction_context", sa.Text(), nullable=True),
        sa.Column("scope", sa.String(length=10), nullable=False),
        sa.Column("guild_id", sa.BigInteger(), nullable=True),
        sa.Column("valid_to", sa.DateTime(timezone=True), nullable=True),
        sa.Column("superseded_by", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.CheckConstraint(
            "scope IN ('dm', 'guild', 'global') AND ((scope = 'guild') = (guild_id IS NOT NULL))",
            name=op.f("ck_user_facts_scope_valid"),
        ),
        sa.CheckConstraint("confidence BETWEEN 0 AND 1", name=op.f("ck_user_facts_confidence_range")),
        sa.CheckConstraint("importance BETWEEN 0 AND 1", name=op.f("ck_user_facts_importance_range")),
        sa.ForeignKeyConstraint(
            ["guild_id"], ["guilds.id"], name=op.f("fk_user_facts_guild_id_guilds"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["superseded_by"],
            ["user_facts.id"],
            name=op.f("fk_user_facts_superseded_by_user_facts"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_user_facts_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_user_facts")),
    )
    op.create_index(op.f("ix_user_facts_fact_type"), "user_facts", ["fact_type"], unique=False)
    op.create_index(op.f("ix_user_facts_is_active"), "user_facts", ["is_active"], unique=False)
    op.create_index(op.f("ix_user_facts_user_id"), "user_facts", ["user_id"], unique=False)
    op.create_index("ix_user_facts_user_id_scope", "user_facts", ["user_id", "scope", "guild_id"], unique=False)

    op.create_table(
        "user_preferences",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("timezone", sa.String(length=64), server_default="UTC", nullable=False),
        sa.Column("language", sa.String(length=16), nullable=True),
        sa.Column("learning_opt_out", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("proactive_opt_out", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("quiet_hours_start", sa.Time(), nullable=True),
        sa.Column("quiet_hours_end", sa.Time(), nullable=True),
        sa.Column("birthday_month", sa.SmallInteger(), nullable=True),
        sa.Column("birthday_day", sa.SmallInteger(), nullable=True),
        sa.Column("birth_year", sa.SmallInteger(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.CheckConstraint(
            "(birthday_month IS NULL) = (birthday_day IS NULL) AND (birthday_month IS NULL OR birthday_month BETWEEN 1 AND 12) AND (birthday_day IS NULL OR birthday_day BETWEEN 1 AND 31)",
            name=op.f("ck_user_preferences_birthday_valid"),
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_user_preferences_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_user_preferences")),
        sa.UniqueConstraint("user_id", name=op.f("uq_user_preferences_user_id")),
    )
    op.create_table(
        "user_relationships",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("guild_id", sa.BigInteger(), nullable=True),
        sa.Column("relationship_score", sa.Float(), server_default=sa.text("0.0"), nullable=False),
        sa.Column("total_interactions", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("positive_interactions", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("negative_interactions", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("avg_message_length", sa.Float(), server_default=sa.text("0.0"), nullable=False),
        sa.Column("conversation_depth_avg", sa.Float(), server_default=sa.text("0.0"), nullable=False),
        sa.Column("shared_references", JSON, server_default="{}", nullable=False),
        sa.Column("first_interaction_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_interaction_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.CheckConstraint("relationship_score BETWEEN 0 AND 100", name=op.f("ck_user_relationships_score_range")),
        sa.ForeignKeyConstraint(
            ["guild_id"],
            ["guilds.id"],
            name=op.f("fk_user_relationships_guild_id_guilds"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_user_relationships_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_user_relationships")),
    )
    op.create_index(op.f("ix_user_relationships_guild_id"), "user_relationships", ["guild_id"], unique=False)
    op.create_index(op.f("ix_user_relationships_user_id"), "user_relationships", ["user_id"], unique=False)

    op.create_table(
        "fact_associations",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("fact_id_1", sa.BigInteger(), nullable=False),
        sa.Column("fact_id_2", sa.BigInteger(), nullable=False),
        sa.Column("association_type", sa.String(length=50), nullable=False),
        sa.Column("strength", sa.Float(), server_default=sa.text("0.5"), nullable=False),
        sa.Column("discovered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.CheckConstraint("fact_id_1 < fact_id_2", name=op.f("ck_fact_associations_ordered_pair")),
        sa.CheckConstraint("strength BETWEEN 0 AND 1", name=op.f("ck_fact_associations_strength_range")),
        sa.ForeignKeyConstraint(
            ["fact_id_1"],
            ["user_facts.id"],
            name=op.f("fk_fact_associations_fact_id_1_user_facts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["fact_id_2"],
            ["user_facts.id"],
            name=op.f("fk_fact_associations_fact_id_2_user_facts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fact_associations")),
        sa.UniqueConstraint("fact_id_1", "fact_id_2", name=op.f("uq_fact_associations_fact_id_1_fact_id_2")),
    )
    op.create_index(op.f("ix_fact_associations_fact_id_1"), "fact_associations", ["fact_id_1"], unique=False)
    op.create_index(op.f("ix_fact_associations_fact_id_2"), "fact_associations", ["fact_id_2"], unique=False)

    op.create_table(
        "messages",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("conversation_id", sa.BigInteger(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=True),
        sa.Column("discord_message_id", sa.BigInteger(), nullable=True),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("has_images", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("image_urls", JSON, server_default="[]", nullable=False),
        sa.Column("token_count", sa.Integer(), nullable=True),
        sa.Column("prompt_tokens", sa.Integer(), nullable=True),
        sa.Column("completion_tokens", sa.Integer(), nullable=True),
        sa.Column("model", sa.String(length=255), nullable=True),
        sa.Column("latency_ms", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.CheckConstraint("role IN ('user', 'assistant', 'system')", name=op.f("ck_messages_role_valid")),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_messages_conversation_id_conversations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_messages_user_id_users"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_messages")),
    )
    op.create_index(
        "ix_messages_conversation_id_created_at", "messages", ["conversation_id", "created_at"], unique=False
    )
    op.create_index("ix_messages_created_at", "messages", ["created_at"], unique=False)
    op.create_index(op.f("ix_messages_discord_message_id"), "messages", ["discord_message_id"], unique=False)
    op.create_index(op.f("ix_messages_user_id"), "messages", ["user_id"], unique=False)

    op.create_table(
        "memories",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=True),
        sa.Column("guild_id", sa.BigInteger(), nullable=True),
        sa.Column("channel_id", sa.BigInteger(), nullable=True),
        sa.Column("conversation_id", sa.BigInteger(), nullable=True),
        sa.Column("message_id", sa.BigInteger(), nullable=True),
        sa.Column("fact_id", sa.BigInteger(), nullable=True),
        sa.Column("document_id", sa.BigInteger(), nullable=True),
        sa.Column("speaker_name", sa.String(length=255), nullable=True),
        sa.Column("scope", sa.String(length=10), nullable=False),
        sa.Column("importance", sa.Float(), server_default=sa.text("0.5"), nullable=False),
        sa.Column("emotional_weight", sa.Float(), server_default=sa.text("0.0"), nullable=False),
        sa.Column("embedding", _embedding(), nullable=True),
        sa.Column("embedding_model", sa.String(length=255), nullable=True),
        sa.Column("last_accessed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.CheckConstraint("kind IN ('message', 'summary', 'fact', 'knowledge')", name=op.f("ck_memories_kind_valid")),
        sa.CheckConstraint(
            "scope IN ('dm', 'guild', 'global') AND ((scope = 'guild') = (guild_id IS NOT NULL))",
            name=op.f("ck_memories_scope_valid"),
        ),
        sa.CheckConstraint("emotional_weight BETWEEN -1 AND 1", name=op.f("ck_memories_emotional_weight_range")),
        sa.CheckConstraint("importance BETWEEN 0 AND 1", name=op.f("ck_memories_importance_range")),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_memories_conversation_id_conversations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["document_id"],
            ["knowledge_documents.id"],
            name=op.f("fk_memories_document_id_knowledge_documents"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["fact_id"], ["user_facts.id"], name=op.f("fk_memories_fact_id_user_facts"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["guild_id"], ["guilds.id"], name=op.f("fk_memories_guild_id_guilds"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["message_id"], ["messages.id"], name=op.f("fk_memories_message_id_messages"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_memories_user_id_users"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_memories")),
    )
    op.create_index(op.f("ix_memories_conversation_id"), "memories", ["conversation_id"], unique=False)
    op.create_index("ix_memories_created_at", "memories", ["created_at"], unique=False)
    op.create_index(op.f("ix_memories_document_id"), "memories", ["document_id"], unique=False)
    op.create_index(op.f("ix_memories_fact_id"), "memories", ["fact_id"], unique=False)
    op.create_index("ix_memories_guild_id_kind", "memories", ["guild_id", "kind"], unique=False)
    op.create_index(op.f("ix_memories_message_id"), "memories", ["message_id"], unique=False)
    op.create_index("ix_memories_user_id_scope", "memories", ["user_id", "scope"], unique=False)

    # Expression indexes: one row per guild where NULL (DMs) counts as a value of its own.
    op.create_index("uq_bot_states_guild_id", "bot_states", [sa.text("coalesce(guild_id, 0)")], unique=True)
    op.create_index(
        "uq_bot_opinions_guild_id_topic",
        "bot_opinions",
        [sa.text("coalesce(guild_id, 0)"), "topic"],
        unique=True,
    )
    op.create_index(
        "uq_user_relationships_user_id_guild_id",
        "user_relationships",
        ["user_id", sa.text("coalesce(guild_id, 0)")],
        unique=True,
    )
    op.create_index(
        "uq_personas_default_per_guild",
        "personas",
        [sa.text("coalesce(guild_id, 0)")],
        unique=True,
        postgresql_where=sa.text("is_default"),
        sqlite_where=sa.text("is_default"),
    )
    if op.get_context().dialect.name == "postgresql":
        # Approximate nearest neighbours by cosine distance; SQLite searches exactly in NumPy instead.
        op.create_index(
            "ix_memories_embedding_hnsw",
            "memories",
            ["embedding"],
            postgresql_using="hnsw",
            postgresql_ops={"embedding": "vector_cosine_ops"},
        )


def downgrade() -> None:
    # Dropping a table drops its indexes and constraints; children go before parents.
    for table in reversed(_TABLES):
        op.drop_table(table)

"""memory pipeline: every stored turn has its memory row, and a small index finds the ones not yet embedded

A turn's memory row is now written in the transaction that stores the message, without a vector; an
embedding worker fills the vectors from the database, oldest first (``bot/services/embedding_worker.py``).
``ix_memories_unembedded`` is a partial index over the rows still without a vector: what the worker claims
from and what the backlog counts, small whatever the table's size (PostgreSQL's HNSW index leaves NULL
vectors out anyway).

Before this revision a turn reached the ``memories`` table only through an in-memory queue, and turns still
queued (or dropped from a full queue) when the bot stopped were caught up at the next start, capped. This
revision writes the memory row of every stored user or Hearth message that has none yet, without a vector
and without a context (the turn before it), as that catch-up did; the worker embeds them after start.
The downgrade drops the index; the rows written stay (they are memories like any other).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06 03:00:00
"""

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BATCH = 1000

# Stored turns without a memory, oldest first, with the name their speaker is shown by (as the bot shows it:
# the chosen name, else the guild nickname, else the display name, else the username); Hearth's own turns
# have no speaker.
_MISSING = sa.text(
    """
    SELECT m.id, m.role, m.content, m.created_at, m.user_id, m.conversation_id, c.guild_id, c.channel_id,
           COALESCE(u.custom_name, gm.guild_nickname, u.discord_display_name, u.discord_username) AS speaker
    FROM messages m
    JOIN conversations c ON c.id = m.conversation_id
    LEFT JOIN users u ON u.id = m.user_id
    LEFT JOIN guild_members gm ON gm.user_id = m.user_id AND gm.guild_id = c.guild_id
    WHERE m.role IN ('user', 'assistant') AND m.id > :after
      AND NOT EXISTS (SELECT 1 FROM memories WHERE memories.message_id = m.id)
    ORDER BY m.id
    LIMIT :limit
    """
)

_INSERT = sa.text(
    """
    INSERT INTO memories (kind, content, scope, user_id, guild_id, channel_id, conversation_id, message_id,
                          speaker_name, search_text, importance, emotional_weight, created_at, updated_at,
                          last_accessed_at)
    VALUES ('message', :content, :scope, :user_id, :guild_id, :channel_id, :conversation_id, :message_id,
            :speaker_name, :search_text, 0.5, 0.0, :created_at, :created_at, :created_at)
    """
)


def _utc(value: Any) -> datetime:
    at: datetime = datetime.fromisoformat(value) if isinstance(value, str) else value  # SQLite hands back text
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def _search_text(speaker: str | None, content: str, at: datetime) -> str:
    """As ``bot.domain.memory_text.search_text`` wrote it at this revision (copied: a migration stays as it was)."""
    said = f"{speaker}: {content}" if speaker else content
    return f"{said} ({at.day} {at:%B %Y})"


def upgrade() -> None:
    op.create_index(
        "ix_memories_unembedded",
        "memories",
        ["id"],
        postgresql_where=sa.text("embedding IS NULL"),
        sqlite_where=sa.text("embedding IS NULL"),
    )
    if op.get_context().as_sql:  # the DDL for a new database (schema.sql): no rows to write
        return
    connection = op.get_bind()
    after = 0
    while True:
        rows = connection.execute(_MISSING, {"after": after, "limit": _BATCH}).all()
        if not rows:
            return
        after = rows[-1].id
        memories = []
        for row in rows:
            if not str(row.content).strip():
                continue
            at = _utc(row.created_at)
            speaker = row.speaker if row.role == "user" else None
            memories.append(
                {
                    "content": row.content,
                    "scope": "dm" if row.guild_id is None else "guild",
                    "user_id": row.user_id,
                    "guild_id": row.guild_id,
                    "channel_id": row.channel_id,
                    "conversation_id": row.conversation_id,
                    "message_id": row.id,
                    "speaker_name": speaker,
                    "search_text": _search_text(speaker, row.content, at),
                    "created_at": row.created_at,
                }
            )
        if memories:
            connection.execute(_INSERT, memories)


def downgrade() -> None:
    op.drop_index("ix_memories_unembedded", table_name="memories")

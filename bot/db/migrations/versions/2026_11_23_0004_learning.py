"""learning: fact embeddings, a per-conversation learning marker, and an index for a guild's facts

* ``user_facts.embedding`` / ``embedding_model``: a new fact is reconciled with the user's current ones by
  similarity (a restatement refreshes, a contradiction supersedes). Same type and dimension as
  ``memories.embedding``; a user has few facts, so they are compared in full and need no vector index.
* ``conversations.learned_message_id``: the last message of the conversation the learner has handled, so
  that after a restart it resumes where it stopped. Existing conversations are marked as learned up to
  their last message: the learner starts with what is said from now on, not with the whole history.
* ``ix_user_facts_guild_id_fact_type``: the facts of a guild's members (shared interests) are looked up by
  guild and type, and deleting a guild cascades to its facts; neither had an index. Lookups by user are
  served by ``ix_user_facts_user_id_scope``.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 18:00:00
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import context, op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _embedding() -> sa.types.TypeEngine[Any]:
    """pgvector ``vector(EMBEDDING_DIMENSION)`` on PostgreSQL, a float32 blob on SQLite (as in 0001)."""
    if op.get_context().dialect.name != "postgresql":
        return sa.LargeBinary()
    from pgvector.sqlalchemy import Vector

    dimension = int(context.config.attributes.get("embedding_dimension") or 384)
    return Vector(dimension)


def upgrade() -> None:
    with op.batch_alter_table("user_facts") as batch:
        batch.add_column(sa.Column("embedding", _embedding(), nullable=True))
        batch.add_column(sa.Column("embedding_model", sa.String(length=255), nullable=True))
    op.create_index("ix_user_facts_guild_id_fact_type", "user_facts", ["guild_id", "fact_type"], unique=False)
    with op.batch_alter_table("conversations") as batch:
        batch.add_column(sa.Column("learned_message_id", sa.BigInteger(), nullable=True))
    op.execute(
        "UPDATE conversations SET learned_message_id = "
        "(SELECT max(messages.id) FROM messages WHERE messages.conversation_id = conversations.id)"
    )


def downgrade() -> None:
    # Not batch mode: on SQLite that copies and drops the table, and dropping conversations or user_facts would
    # cascade to their messages, memories and associations. SQLite (3.35+) drops a plain column in place.
    op.drop_column("conversations", "learned_message_id")
    op.drop_index("ix_user_facts_guild_id_fact_type", table_name="user_facts")
    op.drop_column("user_facts", "embedding_model")
    op.drop_column("user_facts", "embedding")

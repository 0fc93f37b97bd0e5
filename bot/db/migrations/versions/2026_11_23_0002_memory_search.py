"""memory search: full-text indexes over memories, the channel's name and the preceding turn on each memory

``search_text`` is what the word search sees (speaker, text and date, see ``bot/domain/memory_text.py``).
PostgreSQL keeps it as a stored ``tsvector`` (``search_vector``, GIN-indexed; its length feeds BM25 scoring);
SQLite keeps an FTS5 table over it (external content, so the text is stored once), kept in step by triggers.
``context`` is the turn a message answered, embedded with it. The retriever fuses word matches with vector
similarity.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 11:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_SQLITE_UP = (
    "CREATE VIRTUAL TABLE memories_fts USING fts5("
    "search_text, content='memories', content_rowid='id', tokenize='porter unicode61')",
    "CREATE TRIGGER memories_fts_insert AFTER INSERT ON memories BEGIN "
    "INSERT INTO memories_fts (rowid, search_text) VALUES (new.id, new.search_text); END",
    "CREATE TRIGGER memories_fts_delete AFTER DELETE ON memories BEGIN "
    "INSERT INTO memories_fts (memories_fts, rowid, search_text) VALUES ('delete', old.id, old.search_text); END",
    "CREATE TRIGGER memories_fts_update AFTER UPDATE OF search_text ON memories BEGIN "
    "INSERT INTO memories_fts (memories_fts, rowid, search_text) VALUES ('delete', old.id, old.search_text); "
    "INSERT INTO memories_fts (rowid, search_text) VALUES (new.id, new.search_text); END",
    "INSERT INTO memories_fts (memories_fts) VALUES ('rebuild')",
)
_SQLITE_DOWN = (
    "DROP TRIGGER IF EXISTS memories_fts_update",
    "DROP TRIGGER IF EXISTS memories_fts_delete",
    "DROP TRIGGER IF EXISTS memories_fts_insert",
    "DROP TABLE IF EXISTS memories_fts",
)


def upgrade() -> None:
    # Memories are recalled with where they were said ("in #general"); the name is kept as it was then.
    with op.batch_alter_table("memories") as batch:
        batch.add_column(sa.Column("channel_name", sa.String(length=100), nullable=True))
        batch.add_column(sa.Column("context", sa.Text(), nullable=True))
        batch.add_column(sa.Column("search_text", sa.Text(), server_default="", nullable=False))
    op.execute("UPDATE memories SET search_text = content")
    if op.get_context().dialect.name == "postgresql":
        op.execute(
            "ALTER TABLE memories ADD COLUMN search_vector tsvector "
            "GENERATED ALWAYS AS (to_tsvector('english'::regconfig, search_text)) STORED"
        )
        op.execute("CREATE INDEX ix_memories_search_vector ON memories USING gin (search_vector)")
        return
    for statement in _SQLITE_UP:
        op.execute(statement)


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_memories_search_vector")
        op.execute("ALTER TABLE memories DROP COLUMN IF EXISTS search_vector")
    else:
        for statement in _SQLITE_DOWN:
            op.execute(statement)
    with op.batch_alter_table("memories") as batch:
        batch.drop_column("search_text")
        batch.drop_column("context")
        batch.drop_column("channel_name")

"""memory search: full-text indexes over memories, and the channel's name on each memory

PostgreSQL searches ``to_tsvector('english', content)`` through a GIN expression index; SQLite keeps an
FTS5 table over ``memories.content`` (external content, so the text is stored once), kept in step by
triggers. The retriever fuses these lexical matches with vector similarity.

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
    "content, content='memories', content_rowid='id', tokenize='porter unicode61')",
    "CREATE TRIGGER memories_fts_insert AFTER INSERT ON memories BEGIN "
    "INSERT INTO memories_fts (rowid, content) VALUES (new.id, new.content); END",
    "CREATE TRIGGER memories_fts_delete AFTER DELETE ON memories BEGIN "
    "INSERT INTO memories_fts (memories_fts, rowid, content) VALUES ('delete', old.id, old.content); END",
    "CREATE TRIGGER memories_fts_update AFTER UPDATE OF content ON memories BEGIN "
    "INSERT INTO memories_fts (memories_fts, rowid, content) VALUES ('delete', old.id, old.content); "
    "INSERT INTO memories_fts (rowid, content) VALUES (new.id, new.content); END",
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
    if op.get_context().dialect.name == "postgresql":
        op.execute(
            "CREATE INDEX ix_memories_content_fts ON memories USING gin (to_tsvector('english'::regconfig, content))"
        )
        return
    for statement in _SQLITE_UP:
        op.execute(statement)


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_memories_content_fts")
    else:
        for statement in _SQLITE_DOWN:
            op.execute(statement)
    with op.batch_alter_table("memories") as batch:
        batch.drop_column("channel_name")

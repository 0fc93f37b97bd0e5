"""inline vectors: embeddings are stored in the row, not in the TOAST table (PostgreSQL)

pgvector's ``vector`` type is stored EXTERNAL by default: once a row passes PostgreSQL's 2 kB TOAST
threshold, the vector moves out of line. A memory row (a 384-dimensional vector is 1.5 kB, plus its text and
word index) sits right at that threshold, so most vectors lived in the TOAST table: an exact scan fetched
three pages per row (4.4 ms for 2,000 memories), and the planner, which does not count TOAST fetches, kept
choosing that scan over the HNSW index (0.45 ms). With STORAGE MAIN the vector stays in the row, and moves out
only if the row could not otherwise fit a page; the other columns still compress and move out first.

Rows written before this migration keep their out-of-line vectors until they are rewritten (``VACUUM FULL
memories``, or re-embedding after a change of model); rows written after it are inline. Facts' vectors, compared in
full for each reply, get the same storage.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 09:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_VECTOR_COLUMNS = (("memories", "embedding"), ("user_facts", "embedding"))


def _set_storage(storage: str) -> None:
    if op.get_context().dialect.name != "postgresql":
        return  # SQLite stores a blob in the row whatever its size
    for table, column in _VECTOR_COLUMNS:
        op.execute(f"ALTER TABLE {table} ALTER COLUMN {column} SET STORAGE {storage}")


def upgrade() -> None:
    _set_storage("MAIN")


def downgrade() -> None:
    _set_storage("EXTERNAL")  # pgvector's default for the vector type

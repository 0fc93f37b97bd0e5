"""inline words: a memory's word index stays in its row once the vector is there (PostgreSQL)

Since revision 0005 the vector stays in the row (1.5 kB). A memory row with its vector then passes PostgreSQL's
2 kB TOAST threshold (about 2.1 kB in all), and what moved out of line instead was its tsvector, the largest
of the other columns: the word search reads the tsvector of every memory it finds (up to
``WORD_SEARCH_BUDGET`` of them), and each read went through the TOAST index and table, seven page reads per
memory instead of one. Raising the table's ``toast_tuple_target`` to its most (a page) keeps a row whole
unless it cannot otherwise fit a page: on a run of bench/pipeline.py the word search took 2.2 to 2.4 ms instead
of 2.9 to 3.0, and PostgreSQL's CPU per message fell 4 to 10%. Nothing is stored twice: what went to the TOAST
table stays in the row, so the table's pages hold a little fewer rows and its TOAST table less.

Rows written before this revision keep their out-of-line word index until they are rewritten (``VACUUM FULL
memories``); rows written or embedded after it keep it inline.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-06 16:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The largest target PostgreSQL accepts (TOAST_TUPLE_TARGET_MAIN for 8 kB pages).
_WHOLE_PAGE = 8160


def upgrade() -> None:
    if op.get_context().dialect.name == "postgresql":  # SQLite keeps a row's columns together whatever its size
        op.execute(f"ALTER TABLE memories SET (toast_tuple_target = {_WHOLE_PAGE})")


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute("ALTER TABLE memories RESET (toast_tuple_target)")

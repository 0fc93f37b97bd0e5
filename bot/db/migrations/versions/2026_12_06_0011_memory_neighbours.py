"""memory neighbours: the memories index their conversation in order, so recall finds a turn's neighbours

Recall brings the turns next to a strong match along with it (``bot/services/memory.py``): the few memories
just before and just after one in its conversation. ``ix_memories_conversation_id_id`` finds them by reading a
few index entries, in a conversation of any length; it replaces ``ix_memories_conversation_id``, whose work
(the conversation's rows, when it is deleted) it does as well. The downgrade puts the old index back.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06 05:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_memories_conversation_id_id", "memories", ["conversation_id", "id"])
    op.drop_index("ix_memories_conversation_id", table_name="memories")


def downgrade() -> None:
    op.create_index("ix_memories_conversation_id", "memories", ["conversation_id"])
    op.drop_index("ix_memories_conversation_id_id", table_name="memories")

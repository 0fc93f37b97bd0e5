"""answered messages: the people's messages each reply answered

🔄 asks the model again for the messages a reply answered, and those were worked out afterwards from the order of
the rows: the person's messages after the reply before it. A reply is stored once it is out, so a message that came
while it was being written (someone else's, or the same person's next one, answered by a reply of its own) is
stored before it: that message's own reply then seemed to answer nothing, and a message apologised for seemed
answered by the next reply. ``messages.answered_ids`` holds the ids of the messages (``messages.id``) a reply
answered, in order, as it is stored (empty for people's messages, and for every earlier reply, whose messages are
still worked out as before).

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-07 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0023"
down_revision: str | None = "0022"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


# A plain ADD/DROP COLUMN on both databases (SQLite 3.35+): no copy of the messages table, the largest one.
def upgrade() -> None:
    op.add_column("messages", sa.Column("answered_ids", JSON, server_default="[]", nullable=False))


def downgrade() -> None:
    op.execute("ALTER TABLE messages DROP COLUMN answered_ids")

"""reply parts: every Discord message that shows a reply longer than one message

An answer longer than Discord's 2,000 characters goes out in several messages, and only the last one's id was
kept (``messages.discord_message_id``, where the buttons are). 🔄 and ◀ ▶ then changed that last message alone:
the earlier ones went on showing the start of the answer before, a mix of two answers. ``messages.discord_part_ids``
holds the ids of all of a reply's messages, in order, when it took more than one (empty for the others, and for
every earlier reply, which is shown again in its last message alone, as before).

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-07 04:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0022"
down_revision: str | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


# A plain ADD/DROP COLUMN on both databases (SQLite 3.35+): no copy of the messages table, the largest one.
def upgrade() -> None:
    op.add_column("messages", sa.Column("discord_part_ids", JSON, server_default="[]", nullable=False))


def downgrade() -> None:
    op.execute("ALTER TABLE messages DROP COLUMN discord_part_ids")

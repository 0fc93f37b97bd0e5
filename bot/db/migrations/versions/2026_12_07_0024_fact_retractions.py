"""fact retractions: the message that took a fact back

A fact someone takes back ("I quit smoking") is set aside, not deleted, and nothing recorded which message took it
back: deleting or editing that message on Discord left the fact set aside, although a change ("I moved to Lyon")
deleted the same way brings the fact it replaced back. ``user_facts.retracted_by_message_id`` is that message (a
``messages.id``, no foreign key, as ``extracted_from_message_id``), indexed as that one is: every deletion looks
it up. A fact taken back before the upgrade has none, and stays set aside.

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-07 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0024"
down_revision: str | None = "0023"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# A plain ADD/DROP COLUMN on both databases (SQLite 3.35+): no copy of the user_facts table.
def upgrade() -> None:
    op.add_column("user_facts", sa.Column("retracted_by_message_id", sa.BigInteger(), nullable=True))
    op.create_index("ix_user_facts_retracted_by_message_id", "user_facts", ["retracted_by_message_id"])


def downgrade() -> None:
    op.drop_index("ix_user_facts_retracted_by_message_id", table_name="user_facts")
    op.execute("ALTER TABLE user_facts DROP COLUMN retracted_by_message_id")

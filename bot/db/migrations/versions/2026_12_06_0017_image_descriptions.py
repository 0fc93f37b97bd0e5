"""image descriptions: a user's message whose images are still to be described for its memory

A message with images is stored with ``images_pending`` true when Hearth means to remember what they show. The
image describer (bot/services/image_describer.py) claims such a message by clearing the flag in the database
first, so across processes and restarts each message's images are described at most once (one model call),
then writes the description into the turn's memory. A small partial index finds them.

Every message stored before this revision counts as done (false): the links of older images have expired.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-06 07:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# A plain ADD/DROP COLUMN on both databases (SQLite 3.35+): no copy of the messages table, the largest one.


def upgrade() -> None:
    op.add_column("messages", sa.Column("images_pending", sa.Boolean(), server_default=sa.false(), nullable=False))
    op.create_index(
        "ix_messages_images_pending",
        "messages",
        ["id"],
        postgresql_where=sa.text("images_pending"),
        sqlite_where=sa.text("images_pending = 1"),
    )


def downgrade() -> None:
    op.drop_index("ix_messages_images_pending", table_name="messages")
    op.execute("ALTER TABLE messages DROP COLUMN images_pending")

"""awaiting reply: a user's message that Hearth means to answer and has not yet

A message is stored before it is answered; if the bot stops in between (a crash, a deploy, a restart), the
message was kept but nobody replies. ``messages.awaiting_reply`` is true from storing a message Hearth will
answer until its turn is over (answered, apologised for, or held back by a limit). At start-up, Hearth answers
the recent ones still awaiting (``CATCH_UP_MINUTES``), claiming each by clearing the flag in the database first,
so it is answered once across restarts and processes. A small partial index finds them.

Every message stored before this revision counts as handled (false): only what arrives after it is caught up.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 02:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Not batch mode: on SQLite that copies messages and drops the old table, which (foreign keys on) deletes the
    # memories of every message, or fails with "database table is locked". A constant default needs no copy.
    op.add_column("messages", sa.Column("awaiting_reply", sa.Boolean(), server_default=sa.false(), nullable=False))
    op.create_index(
        "ix_messages_awaiting_reply",
        "messages",
        ["created_at"],
        postgresql_where=sa.text("awaiting_reply"),
        sqlite_where=sa.text("awaiting_reply = 1"),
    )


def downgrade() -> None:
    op.drop_index("ix_messages_awaiting_reply", table_name="messages")
    # Not batch mode either (see upgrade): SQLite (3.35+) drops a column no index uses in place.
    op.drop_column("messages", "awaiting_reply")

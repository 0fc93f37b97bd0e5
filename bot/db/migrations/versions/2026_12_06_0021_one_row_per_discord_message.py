"""one row per Discord message: a user's message Discord delivers twice is kept once

Discord may deliver a message again (the gateway replays events after a resume; with several processes, each
may receive it). Each delivery was stored as a user turn of its own and answered, so the person got two answers
and the conversation held their words twice. A unique index on ``messages.discord_message_id`` for user turns
lets the insert that stores a message do nothing when it is there already (Hearth's replies are left out: each
records the Discord message that shows it, which its alternatives share; NULLs, from the terminal, never clash).

Copies stored before this revision are deleted first, with their memories: the first row of each message stays.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-06 23:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COPIES = """
    SELECT id FROM (
        SELECT id, row_number() OVER (PARTITION BY discord_message_id ORDER BY id) AS copy
        FROM messages WHERE role = 'user' AND discord_message_id IS NOT NULL
    ) AS numbered WHERE copy > 1
"""


def upgrade() -> None:
    op.execute(f"DELETE FROM memories WHERE message_id IN ({_COPIES})")
    op.execute(f"DELETE FROM messages WHERE id IN ({_COPIES})")
    op.create_index(
        "uq_messages_user_discord_message_id",
        "messages",
        ["discord_message_id"],
        unique=True,
        postgresql_where=sa.text("role = 'user'"),
        sqlite_where=sa.text("role = 'user'"),
    )


def downgrade() -> None:
    op.drop_index("uq_messages_user_discord_message_id", table_name="messages")

"""replies after away: the replies the catch-up gave, after a start, to messages that came while Hearth was stopped

Such a reply is asked for with the prompt saying Hearth was away and has just come back. 🔄 asks the model again for
the same turn, and nothing recorded that the turn was a catch-up's: another answer to it was asked for as if the
messages had just been said, and lost the "sorry, I was away" the first had. ``messages.was_away`` is true for a
reply the catch-up gave (false for every other message, and for every reply stored before the upgrade).

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-07 18:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0025"
down_revision: str | None = "0024"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# A plain ADD/DROP COLUMN on both databases (SQLite 3.35+): no copy of the messages table, the largest one.
def upgrade() -> None:
    op.add_column("messages", sa.Column("was_away", sa.Boolean(), server_default=sa.false(), nullable=False))


def downgrade() -> None:
    op.execute("ALTER TABLE messages DROP COLUMN was_away")

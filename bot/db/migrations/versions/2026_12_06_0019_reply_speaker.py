"""reply speaker: which cast character said a reply

In a channel with a cast (``/persona cast``), replies come from several characters; stored without the
speaking character's name, every one of them read back as the replying character's own line, so one
character took another's words for its own. ``messages.speaker_name`` holds the character's name on the
replies a cast character wrote (NULL on the others, and on every earlier reply).

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-06 18:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# A plain ADD/DROP COLUMN on both databases (SQLite 3.35+): no copy of the messages table, the largest one.
def upgrade() -> None:
    op.add_column("messages", sa.Column("speaker_name", sa.String(length=100), nullable=True))


def downgrade() -> None:
    op.execute("ALTER TABLE messages DROP COLUMN speaker_name")

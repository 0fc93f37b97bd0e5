"""proactive spend: the model's tokens for a birthday greeting or a follow-up it wrote

A greeting or follow-up the model writes is stored nowhere but in its scheduled event, so its tokens counted in
neither /stats, the owner's usage report, the daily token quota nor the daily roll-up. ``scheduled_events`` now
keeps the model that wrote the message and its prompt and completion tokens (every attempt's, when a failed send
was tried again); NULL for an event the model wrote nothing for (a reminder, the plain wording) and for those sent
before the upgrade.

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-07 21:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0026"
down_revision: str | None = "0025"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# Plain ADD/DROP COLUMNs on both databases (SQLite 3.35+), all nullable: no copy of the table.
def upgrade() -> None:
    op.add_column("scheduled_events", sa.Column("model", sa.String(255), nullable=True))
    op.add_column("scheduled_events", sa.Column("prompt_tokens", sa.Integer(), nullable=True))
    op.add_column("scheduled_events", sa.Column("completion_tokens", sa.Integer(), nullable=True))


def downgrade() -> None:
    for column in ("completion_tokens", "prompt_tokens", "model"):
        op.execute(f"ALTER TABLE scheduled_events DROP COLUMN {column}")

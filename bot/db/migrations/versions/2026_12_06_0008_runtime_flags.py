"""runtime flags: switches every bot process obeys, such as maintenance mode

``/owner maintenance`` used to set a flag in the memory of the one process that ran the command: with several
processes on one PostgreSQL database (shards) the others kept chatting, and a restart forgot the switch. The
flag is now a row that every process reads at start and re-reads when told of a change (PostgreSQL
``LISTEN/NOTIFY``, see ``bot/db/changes.py``). There is nothing to carry over: the old flag lived in memory
only, so every database starts with maintenance off.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06 02:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "runtime_flags",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("enabled", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_runtime_flags")),
    )


def downgrade() -> None:
    op.drop_table("runtime_flags")

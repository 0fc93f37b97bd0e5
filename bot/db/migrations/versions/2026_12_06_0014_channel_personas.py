"""channel personas: a channel may play another of its guild's personas than the guild's own

``/persona channel`` records the choice; deleting the persona or the guild deletes it. Nothing to carry over.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06 08:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "channel_personas",
        sa.Column("channel_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("guild_id", sa.BigInteger(), nullable=False),
        sa.Column("persona_id", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.ForeignKeyConstraint(
            ["guild_id"], ["guilds.id"], name=op.f("fk_channel_personas_guild_id_guilds"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["persona_id"], ["personas.id"], name=op.f("fk_channel_personas_persona_id_personas"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("channel_id", name=op.f("pk_channel_personas")),
    )
    op.create_index(op.f("ix_channel_personas_guild_id"), "channel_personas", ["guild_id"], unique=False)
    op.create_index(op.f("ix_channel_personas_persona_id"), "channel_personas", ["persona_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_channel_personas_persona_id"), table_name="channel_personas")
    op.drop_index(op.f("ix_channel_personas_guild_id"), table_name="channel_personas")
    op.drop_table("channel_personas")

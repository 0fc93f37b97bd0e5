"""channel casts: characters that answer in a channel through its webhook when named or replied to

``/persona cast add`` records them; deleting the persona or the guild deletes the entry. Nothing to carry over.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-06 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "channel_casts",
        sa.Column("channel_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("persona_id", sa.BigInteger(), nullable=False),
        sa.Column("guild_id", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.ForeignKeyConstraint(
            ["guild_id"], ["guilds.id"], name=op.f("fk_channel_casts_guild_id_guilds"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["persona_id"], ["personas.id"], name=op.f("fk_channel_casts_persona_id_personas"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("channel_id", "persona_id", name=op.f("pk_channel_casts")),
    )
    op.create_index(op.f("ix_channel_casts_guild_id"), "channel_casts", ["guild_id"], unique=False)
    op.create_index(op.f("ix_channel_casts_persona_id"), "channel_casts", ["persona_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_channel_casts_persona_id"), table_name="channel_casts")
    op.drop_index(op.f("ix_channel_casts_guild_id"), table_name="channel_casts")
    op.drop_table("channel_casts")

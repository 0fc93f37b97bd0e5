"""reply alternatives: the answers a regenerated turn got, kept as branches of it

🔄 asks the model again for the same turn; ◀ ▶ move between the answers. The turn's ``messages`` row holds
the answer shown last; every answer (the first included) is a row here. Nothing to carry over.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06 08:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "reply_alternatives",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("message_id", sa.BigInteger(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("model", sa.String(length=255), nullable=True),
        sa.Column("prompt_tokens", sa.Integer(), nullable=True),
        sa.Column("completion_tokens", sa.Integer(), nullable=True),
        sa.Column("is_shown", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.ForeignKeyConstraint(
            ["message_id"], ["messages.id"], name=op.f("fk_reply_alternatives_message_id_messages"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reply_alternatives")),
        sa.UniqueConstraint("message_id", "position", name=op.f("uq_reply_alternatives_message_id_position")),
    )
    op.create_index(op.f("ix_reply_alternatives_message_id"), "reply_alternatives", ["message_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_reply_alternatives_message_id"), table_name="reply_alternatives")
    op.drop_table("reply_alternatives")

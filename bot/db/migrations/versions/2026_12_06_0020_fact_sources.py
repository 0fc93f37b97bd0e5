"""fact sources: find the facts learned from a message

A message deleted on Discord (or edited) takes back the facts Hearth learned from it; they are found by
``user_facts.extracted_from_message_id``, which had no index: every deletion would read the whole table.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-06 20:30:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_user_facts_extracted_from_message_id", "user_facts", ["extracted_from_message_id"])


def downgrade() -> None:
    op.drop_index("ix_user_facts_extracted_from_message_id", table_name="user_facts")

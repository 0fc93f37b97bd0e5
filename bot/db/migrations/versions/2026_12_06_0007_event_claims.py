"""event claims: a claim token per claimed event, and the ``sending`` and ``unknown`` states

A proactive message is sent at most once, across faults and restarts:

* ``scheduled_events.claim_token``: a random token written when a process claims an event. Every later change
  of that claim (about to send, sent, failed, postponed, ...) names the token, so a process changes only rows
  it still holds: once another process has put a stale claim back, the first one can no longer send it.
* ``status = 'sending'``: set, and committed, just before the event's own send. An event left ``sending`` by
  a process that stopped may have been delivered: it is never sent again, but becomes
* ``status = 'unknown'``: delivery is uncertain (``last_error`` says why). An event still ``triggered`` never
  started sending and is claimed again.

Data: events ``triggered`` before this revision were claimed by a version that recorded a send only after a
whole batch, so any of them may have been delivered: they become ``unknown``. On downgrade, ``sending`` and
``unknown`` events become ``failed`` (the older version would send a ``triggered`` one again).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06 02:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_CHECK = "ck_scheduled_events_status_valid"
_OLD_STATUSES = ("pending", "triggered", "sent", "cancelled", "missed", "failed")
_NEW_STATUSES = ("pending", "triggered", "sending", "sent", "unknown", "cancelled", "missed", "failed")
_UNCERTAIN_ON_UPGRADE = "delivery uncertain: claimed before the upgrade to claim tokens (it may have been sent)"


def _status_check(statuses: Sequence[str]) -> str:
    return "status IN ({})".format(", ".join(f"'{status}'" for status in statuses))


def _replace_check(statuses: Sequence[str]) -> None:
    # On SQLite (batch mode) the table is copied with the new constraint; nothing references scheduled_events,
    # so the copy cascades to nothing.
    with op.batch_alter_table("scheduled_events") as batch:
        batch.drop_constraint(op.f(_CHECK), type_="check")
        batch.create_check_constraint(op.f(_CHECK), _status_check(statuses))


def upgrade() -> None:
    with op.batch_alter_table("scheduled_events") as batch:
        batch.add_column(sa.Column("claim_token", sa.String(length=32), nullable=True))
    _replace_check(_NEW_STATUSES)
    op.execute(
        sa.text(
            "UPDATE scheduled_events SET status = 'unknown', last_error = :why WHERE status = 'triggered'"
        ).bindparams(why=_UNCERTAIN_ON_UPGRADE)
    )


def downgrade() -> None:
    op.execute(
        "UPDATE scheduled_events SET status = 'failed', "
        "last_error = coalesce(last_error, 'delivery uncertain: it may have been sent') "
        "WHERE status IN ('sending', 'unknown')"
    )
    _replace_check(_OLD_STATUSES)
    with op.batch_alter_table("scheduled_events") as batch:
        batch.drop_column("claim_token")

"""dm scope: each user's DM is a place of its own for Hearth's mood and opinions; erasure leaves no words

* ``bot_states``, ``bot_opinions``, ``mood_history``: a ``dm_user_id`` (users.id, cascade) names the DM a row
  belongs to; exactly one of ``guild_id`` and ``dm_user_id`` is set (``ck_*_one_place``), and the unique
  indexes spell the place as ``coalesce(guild_id, 0), coalesce(dm_user_id, 0)``. Before, every DM shared one
  mood row and one set of opinions (``guild_id`` NULL), so what Ana said in private coloured Ben's DM.
* The shared DM rows cannot be given to one user: the DM mood and the DM opinions are deleted (each DM starts
  from the persona's baseline mood, and forms its own opinions). Keeping them anywhere would keep serving
  topics taken from some users' DMs to others — and from users already erased. A DM ``mood_history`` row is
  given to the user who triggered it (``trigger_user_id``); one without a trigger is deleted.
* ``bot_opinion_sources``: who spoke in the talks a guild opinion was formed or reinforced from (its topic
  may be their words), so erasing a person erases those opinions. Opinions formed before this revision have
  no sources: erasure also drops the guild opinions whose topic appears in the person's messages there.
* PostgreSQL ``memory_words``: a lexeme whose count drops to zero is deleted (it kept erased words, at 0).

Downgrade: the per-DM moods and opinions cannot be merged into one shared row without leaking again, so they
are deleted; DM ``mood_history`` rows stay, as the shared DM history they were before.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06 02:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from alembic.operations import BatchOperations

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ONE_PLACE = "(guild_id IS NULL) <> (dm_user_id IS NULL)"

_APPLY_KEEPING_ZEROS = """CREATE OR REPLACE FUNCTION memory_words_apply(lexemes TEXT[], changes BIGINT[])
RETURNS void LANGUAGE sql AS $$
    INSERT INTO memory_words AS words (lexeme, documents)
    SELECT lexeme, change FROM unnest(lexemes, changes) AS c(lexeme, change) WHERE change <> 0 ORDER BY lexeme
    ON CONFLICT (lexeme) DO UPDATE SET documents = words.documents + excluded.documents
$$"""
# The same, then the lexemes it brought to zero go: no row keeps a word no memory holds (an erased person's).
# Only a decrease can bring a count to zero, so an insert's trigger looks nothing up.
_APPLY_DROPPING_ZEROS = """CREATE OR REPLACE FUNCTION memory_words_apply(lexemes TEXT[], changes BIGINT[])
RETURNS void LANGUAGE sql AS $$
    INSERT INTO memory_words AS words (lexeme, documents)
    SELECT lexeme, change FROM unnest(lexemes, changes) AS c(lexeme, change) WHERE change <> 0 ORDER BY lexeme
    ON CONFLICT (lexeme) DO UPDATE SET documents = words.documents + excluded.documents;
    DELETE FROM memory_words WHERE documents <= 0 AND lexeme IN (
        SELECT lexeme FROM unnest(lexemes, changes) AS c(lexeme, change) WHERE change < 0
    )
$$"""


def _dm_user_id() -> sa.Column[int]:
    return sa.Column("dm_user_id", sa.BigInteger(), nullable=True)


def _add_place(table: str, batch: BatchOperations) -> None:
    batch.add_column(_dm_user_id())
    batch.create_foreign_key(op.f(f"fk_{table}_dm_user_id_users"), "users", ["dm_user_id"], ["id"], ondelete="CASCADE")
    batch.create_index(op.f(f"ix_{table}_dm_user_id"), ["dm_user_id"], unique=False)


def upgrade() -> None:
    postgresql = op.get_context().dialect.name == "postgresql"
    # The shared DM state: nobody's alone, so nobody's to keep (see the docstring).
    op.execute("DELETE FROM bot_states WHERE guild_id IS NULL")
    op.execute("DELETE FROM bot_opinions WHERE guild_id IS NULL")
    op.drop_index("uq_bot_states_guild_id", table_name="bot_states")
    op.drop_index("uq_bot_opinions_guild_id_topic", table_name="bot_opinions")
    for table in ("bot_states", "bot_opinions", "mood_history"):
        with op.batch_alter_table(table) as batch:
            _add_place(table, batch)
    op.execute("UPDATE mood_history SET dm_user_id = trigger_user_id WHERE guild_id IS NULL")
    op.execute("DELETE FROM mood_history WHERE guild_id IS NULL AND dm_user_id IS NULL")
    for table in ("bot_states", "bot_opinions", "mood_history"):
        with op.batch_alter_table(table) as batch:
            batch.create_check_constraint(op.f(f"ck_{table}_one_place"), _ONE_PLACE)
    op.create_index(
        "uq_bot_states_place",
        "bot_states",
        [sa.text("coalesce(guild_id, 0)"), sa.text("coalesce(dm_user_id, 0)")],
        unique=True,
    )
    op.create_index(
        "uq_bot_opinions_place_topic",
        "bot_opinions",
        [sa.text("coalesce(guild_id, 0)"), sa.text("coalesce(dm_user_id, 0)"), "topic"],
        unique=True,
    )
    op.create_table(
        "bot_opinion_sources",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("opinion_id", sa.BigInteger(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.ForeignKeyConstraint(
            ["opinion_id"],
            ["bot_opinions.id"],
            name=op.f("fk_bot_opinion_sources_opinion_id_bot_opinions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_bot_opinion_sources_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bot_opinion_sources")),
        sa.UniqueConstraint("opinion_id", "user_id", name=op.f("uq_bot_opinion_sources_opinion_id_user_id")),
    )
    op.create_index(op.f("ix_bot_opinion_sources_user_id"), "bot_opinion_sources", ["user_id"], unique=False)
    if postgresql:
        op.execute(_APPLY_DROPPING_ZEROS)
        op.execute("DELETE FROM memory_words WHERE documents <= 0")


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute(_APPLY_KEEPING_ZEROS)
    op.drop_index("ix_bot_opinion_sources_user_id", table_name="bot_opinion_sources")
    op.drop_table("bot_opinion_sources")
    op.drop_index("uq_bot_opinions_place_topic", table_name="bot_opinions")
    op.drop_index("uq_bot_states_place", table_name="bot_states")
    # One user's DM mood and opinions cannot become everyone's (see the docstring); the DM history can.
    op.execute("DELETE FROM bot_states WHERE dm_user_id IS NOT NULL")
    op.execute("DELETE FROM bot_opinions WHERE dm_user_id IS NOT NULL")
    for table in ("bot_states", "bot_opinions", "mood_history"):
        with op.batch_alter_table(table) as batch:
            batch.drop_constraint(op.f(f"ck_{table}_one_place"), type_="check")
            batch.drop_index(op.f(f"ix_{table}_dm_user_id"))
            batch.drop_constraint(op.f(f"fk_{table}_dm_user_id_users"), type_="foreignkey")
            batch.drop_column("dm_user_id")
    op.create_index("uq_bot_states_guild_id", "bot_states", [sa.text("coalesce(guild_id, 0)")], unique=True)
    op.create_index(
        "uq_bot_opinions_guild_id_topic", "bot_opinions", [sa.text("coalesce(guild_id, 0)"), "topic"], unique=True
    )

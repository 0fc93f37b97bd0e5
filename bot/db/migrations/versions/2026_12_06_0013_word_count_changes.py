"""word count changes: storing a memory appends its word counts' changes; they are folded in afterwards (PostgreSQL)

Until now the statement triggers on ``memories`` updated ``memory_words`` in the writer's transaction. Every
memory of a guild changes the same rows (the memory count, and common words), so concurrent writers in a guild
queued on those row locks until each other's commit: measured at 20 messages/s, the trigger's statement took
30 ms on average, on the path a reply waits for.

Now the triggers only append the changes to ``memory_word_changes`` (plain inserts: no row is shared, nothing
waits), and ``memory_words_fold()`` moves them into ``memory_words`` in one short transaction, in key order, off
the reply path (the embedding worker calls it; an erasure calls it before it commits, so no erased word stays
behind in either table). ``memory_word_counts`` adds the two, so a search counts a memory stored a moment ago
exactly as before.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06 05:20:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The scope a memory row is recalled in, as revision 0012 counts it.
_SCOPE_OF = "SELECT coalesce({r}.guild_id, 0), CASE WHEN {r}.guild_id IS NULL THEN coalesce({r}.user_id, 0) ELSE 0 END"
_CHANGES = (
    "SELECT scope_guild, scope_user, lexeme, {sign} * count(*) AS change FROM {rows} AS r "
    f"CROSS JOIN LATERAL ({_SCOPE_OF.format(r='r')}) AS s(scope_guild, scope_user) "
    "CROSS JOIN LATERAL unnest(tsvector_to_array(r.search_vector) || ''::text) AS lexeme "
    "GROUP BY scope_guild, scope_user, lexeme"
)
_UPDATED_CHANGES = f"""
        SELECT scope_guild, scope_user, lexeme, sum(change)::bigint AS change
        FROM old_rows AS o JOIN new_rows AS n ON n.id = o.id,
        LATERAL (
            SELECT s.*, lexeme, 1 FROM ({_SCOPE_OF.format(r="n")}) AS s,
                unnest(tsvector_to_array(n.search_vector) || ''::text) AS lexeme
            UNION ALL
            SELECT s.*, lexeme, -1 FROM ({_SCOPE_OF.format(r="o")}) AS s,
                unnest(tsvector_to_array(o.search_vector) || ''::text) AS lexeme
        ) AS c(scope_guild, scope_user, lexeme, change)
        WHERE n.search_vector IS DISTINCT FROM o.search_vector
           OR n.guild_id IS DISTINCT FROM o.guild_id OR n.user_id IS DISTINCT FROM o.user_id
        GROUP BY scope_guild, scope_user, lexeme"""


def _trigger_body(changes: str, action: str) -> str:
    if action == "append":
        return (
            "INSERT INTO memory_word_changes (guild_id, user_id, lexeme, change) "
            f"SELECT * FROM ({changes}) AS c WHERE c.change <> 0;"
        )
    return (
        "PERFORM memory_words_apply(array_agg(scope_guild), array_agg(scope_user), array_agg(lexeme), "
        f"array_agg(change)) FROM ({changes}) AS c;"
    )


def _triggers(action: str) -> tuple[str, ...]:
    return tuple(
        f"""CREATE OR REPLACE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    {_trigger_body(changes, action)}
    RETURN NULL;
END $$"""
        for name, changes in (
            ("memory_words_inserted", _CHANGES.format(sign=1, rows="new_rows")),
            ("memory_words_deleted", _CHANGES.format(sign=-1, rows="old_rows")),
            ("memory_words_updated", _UPDATED_CHANGES),
        )
    )


_UP = (
    # No primary key and no foreign key: rows are only ever appended, looked up by scope and word, and taken.
    "CREATE TABLE memory_word_changes (guild_id BIGINT NOT NULL, user_id BIGINT NOT NULL, lexeme TEXT NOT NULL, "
    "change BIGINT NOT NULL)",
    "CREATE INDEX ix_memory_word_changes_scope_lexeme ON memory_word_changes (guild_id, user_id, lexeme)",
    *_triggers("append"),
    """CREATE OR REPLACE FUNCTION memory_words_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    TRUNCATE memory_words, memory_word_changes;
    RETURN NULL;
END $$""",
    # Takes every change committed so far (a change another fold is taking is waited for, then skipped: each is
    # applied once) and applies their sums in key order, so two folds never deadlock. Returns how many counts
    # it changed.
    """CREATE FUNCTION memory_words_fold() RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    guild_ids BIGINT[];
    user_ids BIGINT[];
    lexemes TEXT[];
    changes BIGINT[];
BEGIN
    WITH taken AS (DELETE FROM memory_word_changes RETURNING guild_id, user_id, lexeme, change)
    SELECT array_agg(guild_id), array_agg(user_id), array_agg(lexeme), array_agg(change)
    INTO guild_ids, user_ids, lexemes, changes
    FROM (SELECT guild_id, user_id, lexeme, sum(change)::bigint AS change FROM taken GROUP BY 1, 2, 3) AS summed;
    IF lexemes IS NULL THEN
        RETURN 0;
    END IF;
    PERFORM memory_words_apply(guild_ids, user_ids, lexemes, changes);
    RETURN cardinality(lexemes);
END $$""",
    "CREATE VIEW memory_word_counts AS SELECT guild_id, user_id, lexeme, sum(documents)::bigint AS documents "
    "FROM (SELECT guild_id, user_id, lexeme, documents FROM memory_words "
    "UNION ALL SELECT guild_id, user_id, lexeme, change FROM memory_word_changes) AS counted "
    "GROUP BY guild_id, user_id, lexeme",
    "SELECT memory_words_fold()",
)
_DOWN = (
    "SELECT memory_words_fold()",
    "DROP VIEW memory_word_counts",
    "DROP FUNCTION memory_words_fold()",
    *_triggers("apply"),
    """CREATE OR REPLACE FUNCTION memory_words_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    TRUNCATE memory_words;
    RETURN NULL;
END $$""",
    "DROP TABLE memory_word_changes",
)


def upgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        for statement in _UP:
            op.execute(statement)


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        for statement in _DOWN:
            op.execute(statement)

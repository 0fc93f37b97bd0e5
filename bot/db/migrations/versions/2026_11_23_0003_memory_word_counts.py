"""memory word counts: how many memories hold each word, and a word index per guild (PostgreSQL)

Ranking word matches as BM25 does needs to know how rare each word is. SQLite's FTS5 keeps those counts
itself; on PostgreSQL they had to be counted at every recall, which grew with the table. ``memory_words``
keeps them instead: one row per lexeme with the number of memories whose ``search_vector`` holds it (the
empty lexeme: the number of memories), exact at all times through statement triggers on ``memories``
(insert, update, delete, truncate). Lexemes are added in sorted order, so two writers lock the rows in one
order and cannot deadlock.

The word index now leads with ``guild_id`` (``btree_gin``), so a guild's word search reads that guild's
postings only; a DM search uses the same index on ``search_vector`` alone.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 15:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The lexemes of each row in ``rows``, and '' once per row; ``sign`` +1 or -1: what the insert and delete
# triggers apply, and the counts the table starts from.
_CHANGES = (
    "SELECT lexeme, {sign} * count(*) AS change FROM {rows}, "
    "unnest(tsvector_to_array(search_vector) || ''::text) AS lexeme GROUP BY lexeme"
)

_UP = (
    "CREATE EXTENSION IF NOT EXISTS btree_gin",
    "DROP INDEX ix_memories_search_vector",
    "CREATE INDEX ix_memories_guild_id_search_vector ON memories USING gin (guild_id, search_vector)",
    "CREATE TABLE memory_words (lexeme TEXT NOT NULL, documents BIGINT NOT NULL, "
    "CONSTRAINT pk_memory_words PRIMARY KEY (lexeme))",
    """CREATE FUNCTION memory_words_apply(lexemes TEXT[], changes BIGINT[]) RETURNS void LANGUAGE sql AS $$
    INSERT INTO memory_words AS words (lexeme, documents)
    SELECT lexeme, change FROM unnest(lexemes, changes) AS c(lexeme, change) WHERE change <> 0 ORDER BY lexeme
    ON CONFLICT (lexeme) DO UPDATE SET documents = words.documents + excluded.documents
$$""",
    f"""CREATE FUNCTION memory_words_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM memory_words_apply(array_agg(lexeme), array_agg(change))
    FROM ({_CHANGES.format(sign=1, rows="new_rows")}) AS c;
    RETURN NULL;
END $$""",
    f"""CREATE FUNCTION memory_words_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM memory_words_apply(array_agg(lexeme), array_agg(change))
    FROM ({_CHANGES.format(sign=-1, rows="old_rows")}) AS c;
    RETURN NULL;
END $$""",
    """CREATE FUNCTION memory_words_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM memory_words_apply(array_agg(lexeme), array_agg(change))
    FROM (
        SELECT lexeme, sum(change)::bigint AS change
        FROM old_rows AS o JOIN new_rows AS n ON n.id = o.id,
        LATERAL (
            SELECT unnest(tsvector_to_array(n.search_vector)), 1
            UNION ALL SELECT unnest(tsvector_to_array(o.search_vector)), -1
        ) AS c(lexeme, change)
        WHERE n.search_vector IS DISTINCT FROM o.search_vector
        GROUP BY lexeme
    ) AS c;
    RETURN NULL;
END $$""",
    """CREATE FUNCTION memory_words_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    TRUNCATE memory_words;
    RETURN NULL;
END $$""",
    "CREATE TRIGGER memories_words_inserted AFTER INSERT ON memories REFERENCING NEW TABLE AS new_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION memory_words_inserted()",
    "CREATE TRIGGER memories_words_deleted AFTER DELETE ON memories REFERENCING OLD TABLE AS old_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION memory_words_deleted()",
    "CREATE TRIGGER memories_words_updated AFTER UPDATE ON memories "
    "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION memory_words_updated()",
    "CREATE TRIGGER memories_words_truncated AFTER TRUNCATE ON memories "
    "FOR EACH STATEMENT EXECUTE FUNCTION memory_words_truncated()",
    "INSERT INTO memory_words (lexeme, documents) " + _CHANGES.format(sign=1, rows="memories"),
)

_DOWN = (
    "DROP TRIGGER IF EXISTS memories_words_truncated ON memories",
    "DROP TRIGGER IF EXISTS memories_words_updated ON memories",
    "DROP TRIGGER IF EXISTS memories_words_deleted ON memories",
    "DROP TRIGGER IF EXISTS memories_words_inserted ON memories",
    "DROP FUNCTION IF EXISTS memory_words_truncated()",
    "DROP FUNCTION IF EXISTS memory_words_updated()",
    "DROP FUNCTION IF EXISTS memory_words_deleted()",
    "DROP FUNCTION IF EXISTS memory_words_inserted()",
    "DROP FUNCTION IF EXISTS memory_words_apply(TEXT[], BIGINT[])",
    "DROP TABLE IF EXISTS memory_words",
    "DROP INDEX IF EXISTS ix_memories_guild_id_search_vector",
    "CREATE INDEX ix_memories_search_vector ON memories USING gin (search_vector)",
)


def upgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        for statement in _UP:
            op.execute(statement)


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        for statement in _DOWN:
            op.execute(statement)

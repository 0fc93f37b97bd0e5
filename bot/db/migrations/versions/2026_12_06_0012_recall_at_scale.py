"""recall at scale: word counts per scope, and a vector index that finds more of the nearest (PostgreSQL)

``memory_words`` counted how many memories hold each lexeme across the whole database, so how rare a word
was in one guild, and so how that guild's word search ranked its own memories, moved whenever another guild
(or anyone's DMs) talked. The counts are now kept per scope, the one recall filters by: a guild's memories
(``guild_id``, ``user_id`` 0), or one user's DM and global memories (``guild_id`` 0, ``user_id``). The empty
lexeme is still the number of memories, now per scope. The statement triggers on ``memories`` keep them exact
as before, and apply one statement's changes in key order (scope, then lexeme), so two writers lock rows in
one order and cannot deadlock; a memory that moves to another scope (never done today) moves its counts too.
Writers in different guilds no longer update the same rows (the memory count was one row for all).

The table is rebuilt from the memories it counts. Downgrade: the database-wide counts, rebuilt the same way.

``ix_memories_embedding_hnsw`` is rebuilt with ``ef_construction = 200`` (pgvector's default: 64), a better
connected graph: a guild holding a quarter of 200k memories found 0.89 of its exact 50 nearest at the default
``hnsw.ef_search`` instead of 0.77, and 0.96 instead of 0.89 at the ``hnsw.ef_search`` of 400 every connection
now sets (``bot/db/engine.py``; ``bench/retrieval_scale.py``). Each new vector costs the embedding worker more to
insert. The rebuild reads every vector once and blocks writes to ``memories`` while it runs (about two minutes
for 200k memories on two cores); downgrade rebuilds it with the default.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06 05:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The scope a memory row ``r`` is recalled in (see RecallScope and scope_filter in bot/db/repositories):
# its guild, or else its user's DMs. A memory with neither (none today) is counted under (0, 0), never read.
_SCOPE_OF = "SELECT coalesce({r}.guild_id, 0), CASE WHEN {r}.guild_id IS NULL THEN coalesce({r}.user_id, 0) ELSE 0 END"
# Each row of ``rows``'s lexemes, and '' once per row, counted per scope; ``sign`` +1 or -1.
_CHANGES = (
    "SELECT scope_guild, scope_user, lexeme, {sign} * count(*) AS change FROM {rows} AS r "
    f"CROSS JOIN LATERAL ({_SCOPE_OF.format(r='r')}) AS s(scope_guild, scope_user) "
    "CROSS JOIN LATERAL unnest(tsvector_to_array(r.search_vector) || ''::text) AS lexeme "
    "GROUP BY scope_guild, scope_user, lexeme"
)

_UP = (
    "DROP TRIGGER memories_words_truncated ON memories",
    "DROP TRIGGER memories_words_updated ON memories",
    "DROP TRIGGER memories_words_deleted ON memories",
    "DROP TRIGGER memories_words_inserted ON memories",
    "DROP FUNCTION memory_words_updated()",
    "DROP FUNCTION memory_words_deleted()",
    "DROP FUNCTION memory_words_inserted()",
    "DROP FUNCTION memory_words_apply(TEXT[], BIGINT[])",
    "DROP TABLE memory_words",
    "CREATE TABLE memory_words (guild_id BIGINT NOT NULL, user_id BIGINT NOT NULL, lexeme TEXT NOT NULL, "
    "documents BIGINT NOT NULL, CONSTRAINT pk_memory_words PRIMARY KEY (guild_id, user_id, lexeme))",
    # Then the keys it brought to zero go: no row keeps a word no memory holds (an erased person's). Only a
    # decrease can bring a count to zero, so an insert's trigger looks nothing up.
    """CREATE FUNCTION memory_words_apply(guild_ids BIGINT[], user_ids BIGINT[], lexemes TEXT[], changes BIGINT[])
RETURNS void LANGUAGE sql AS $$
    INSERT INTO memory_words AS words (guild_id, user_id, lexeme, documents)
    SELECT guild_id, user_id, lexeme, change
    FROM unnest(guild_ids, user_ids, lexemes, changes) AS c(guild_id, user_id, lexeme, change)
    WHERE change <> 0 ORDER BY guild_id, user_id, lexeme
    ON CONFLICT (guild_id, user_id, lexeme) DO UPDATE SET documents = words.documents + excluded.documents;
    DELETE FROM memory_words AS words
    USING unnest(guild_ids, user_ids, lexemes, changes) AS c(guild_id, user_id, lexeme, change)
    WHERE c.change < 0 AND words.documents <= 0
      AND (words.guild_id, words.user_id, words.lexeme) = (c.guild_id, c.user_id, c.lexeme)
$$""",
    f"""CREATE FUNCTION memory_words_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM memory_words_apply(array_agg(scope_guild), array_agg(scope_user), array_agg(lexeme), array_agg(change))
    FROM ({_CHANGES.format(sign=1, rows="new_rows")}) AS c;
    RETURN NULL;
END $$""",
    f"""CREATE FUNCTION memory_words_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM memory_words_apply(array_agg(scope_guild), array_agg(scope_user), array_agg(lexeme), array_agg(change))
    FROM ({_CHANGES.format(sign=-1, rows="old_rows")}) AS c;
    RETURN NULL;
END $$""",
    # Only rows whose words or scope changed (most updates set a vector or a recall mark); '' moves with them.
    f"""CREATE FUNCTION memory_words_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM memory_words_apply(array_agg(scope_guild), array_agg(scope_user), array_agg(lexeme), array_agg(change))
    FROM (
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
        GROUP BY scope_guild, scope_user, lexeme
    ) AS c;
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
    "INSERT INTO memory_words (guild_id, user_id, lexeme, documents) " + _CHANGES.format(sign=1, rows="memories"),
    "ALTER INDEX ix_memories_embedding_hnsw SET (ef_construction = 200)",
    "REINDEX INDEX ix_memories_embedding_hnsw",
)

# As revisions 0003 and 0006 left them: one count per lexeme for the whole database.
_GLOBAL_CHANGES = (
    "SELECT lexeme, {sign} * count(*) AS change FROM {rows}, "
    "unnest(tsvector_to_array(search_vector) || ''::text) AS lexeme GROUP BY lexeme"
)
_DOWN = (
    "DROP TRIGGER memories_words_truncated ON memories",
    "DROP TRIGGER memories_words_updated ON memories",
    "DROP TRIGGER memories_words_deleted ON memories",
    "DROP TRIGGER memories_words_inserted ON memories",
    "DROP FUNCTION memory_words_updated()",
    "DROP FUNCTION memory_words_deleted()",
    "DROP FUNCTION memory_words_inserted()",
    "DROP FUNCTION memory_words_apply(BIGINT[], BIGINT[], TEXT[], BIGINT[])",
    "DROP TABLE memory_words",
    "CREATE TABLE memory_words (lexeme TEXT NOT NULL, documents BIGINT NOT NULL, "
    "CONSTRAINT pk_memory_words PRIMARY KEY (lexeme))",
    """CREATE FUNCTION memory_words_apply(lexemes TEXT[], changes BIGINT[])
RETURNS void LANGUAGE sql AS $$
    INSERT INTO memory_words AS words (lexeme, documents)
    SELECT lexeme, change FROM unnest(lexemes, changes) AS c(lexeme, change) WHERE change <> 0 ORDER BY lexeme
    ON CONFLICT (lexeme) DO UPDATE SET documents = words.documents + excluded.documents;
    DELETE FROM memory_words WHERE documents <= 0 AND lexeme IN (
        SELECT lexeme FROM unnest(lexemes, changes) AS c(lexeme, change) WHERE change < 0
    )
$$""",
    f"""CREATE FUNCTION memory_words_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM memory_words_apply(array_agg(lexeme), array_agg(change))
    FROM ({_GLOBAL_CHANGES.format(sign=1, rows="new_rows")}) AS c;
    RETURN NULL;
END $$""",
    f"""CREATE FUNCTION memory_words_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM memory_words_apply(array_agg(lexeme), array_agg(change))
    FROM ({_GLOBAL_CHANGES.format(sign=-1, rows="old_rows")}) AS c;
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
    "CREATE TRIGGER memories_words_inserted AFTER INSERT ON memories REFERENCING NEW TABLE AS new_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION memory_words_inserted()",
    "CREATE TRIGGER memories_words_deleted AFTER DELETE ON memories REFERENCING OLD TABLE AS old_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION memory_words_deleted()",
    "CREATE TRIGGER memories_words_updated AFTER UPDATE ON memories "
    "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION memory_words_updated()",
    "CREATE TRIGGER memories_words_truncated AFTER TRUNCATE ON memories "
    "FOR EACH STATEMENT EXECUTE FUNCTION memory_words_truncated()",
    "INSERT INTO memory_words (lexeme, documents) " + _GLOBAL_CHANGES.format(sign=1, rows="memories"),
    "ALTER INDEX ix_memories_embedding_hnsw RESET (ef_construction)",
    "REINDEX INDEX ix_memories_embedding_hnsw",
)


def upgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        for statement in _UP:
            op.execute(statement)


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        for statement in _DOWN:
            op.execute(statement)

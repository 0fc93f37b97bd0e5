"""Changing the embedding model: noticing memories embedded by another model, and re-embedding them.

Recall compares a question's vector only with vectors from the same model, so memories embedded by an earlier
model are invisible to the vector search until they are re-embedded. Memories not embedded at all are the
embedding worker's backlog (bot/services/embedding_worker.py), not a mismatch: it embeds them while the bot runs.
"""

from collections.abc import Callable

from bot.db.engine import Database
from bot.db.repositories.memories import MemoryRepository
from bot.domain.memory_text import embedding_text
from bot.llm.embeddings import Embedder

REEMBED_COMMAND = "python -m bot memory reembed"

Progress = Callable[[int, int], None]


def _memories(count: int) -> str:
    return f"{count:,} {'memory' if count == 1 else 'memories'}"


# Beside a bot on its SQLite file the command is refused (bot/db/sole_process.py): the bot re-embeds from Discord.
_BESIDE_A_SQLITE_BOT = f"`/owner memory reembed` in Discord (or, with Hearth stopped, `{REEMBED_COMMAND}`)"


def describe_mismatch(
    counts: dict[str | None, int], model_name: str, *, how: str = f"`{REEMBED_COMMAND}`"
) -> str | None:
    """One sentence for an operator about the memories another model embedded, ending in ``how`` to re-embed them;
    None when there are none (those without a vector yet wait for the embedding worker)."""
    others = sorted(
        ((model, count) for model, count in counts.items() if model not in (model_name, None) and count > 0),
        key=lambda pair: (-pair[1], pair[0] or ""),
    )
    if not others:
        return None
    total = sum(count for _, count in others)
    them = "it" if total == 1 else "them"
    advice = f"recall ignores {them} until you run {how}."
    if len(others) == 1:
        model, count = others[0]
        verb = "was" if count == 1 else "were"
        return f"{_memories(count)} {verb} embedded with {model!r} (not the configured {model_name!r}): {advice}"
    parts = [f"{count:,} embedded with {model!r}" for model, count in others]
    verb = "has" if total == 1 else "have"
    return f"{_memories(total)} {verb} no vector from the configured {model_name!r} ({', '.join(parts)}): {advice}"


async def embedding_model_mismatch(database: Database, model_name: str) -> str | None:
    """The start-up warning when some memories were not embedded by ``model_name``; None when all were."""
    async with database.session() as session:
        counts = await MemoryRepository(session).models_in_use()
    if database.backend == "sqlite":
        return describe_mismatch(counts, model_name, how=_BESIDE_A_SQLITE_BOT)
    return describe_mismatch(counts, model_name)


async def reembed(
    database: Database, embedder: Embedder, *, batch_size: int = 64, progress: Progress | None = None
) -> int:
    """Re-embed every memory without a vector from ``embedder``'s model, in id order; returns how many.

    The text embedded is the one the memory service embeds when it stores a memory (speaker and context
    included, see ``bot/domain/memory_text.py``).

    Each batch is read, embedded with no transaction open, and written in its own unit of work, so an
    interruption loses at most one batch. A rerun picks up where this one stopped: memories already done no
    longer need embedding, so the selection itself is the resume point. ``progress(done, total)`` is called
    after each batch. A memory changed while its batch was embedded (an edit or an erasure while the bot runs)
    keeps no vector of its old text: it is left to the embedding worker, which embeds it as it now is.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, not {batch_size}")
    model = embedder.model_name
    async with database.session() as session:
        total = await MemoryRepository(session).count_needing_embedding(model)
    done = 0
    after_id = 0
    while True:
        async with database.session() as session:
            rows = await MemoryRepository(session).needing_embedding_texts(model, after_id=after_id, limit=batch_size)
        if not rows:
            return done
        vectors = await embedder.embed([embedding_text(row.speaker_name, row.content, row.context) for row in rows])
        async with database.session() as session:
            await MemoryRepository(session).replace_embeddings(rows, vectors, model)
        done += len(rows)
        after_id = rows[-1].id
        if progress is not None:
            progress(done, max(total, done))  # memories stored meanwhile without a vector may join the run

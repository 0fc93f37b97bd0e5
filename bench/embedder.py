"""Benchmark the local embedder: one query's latency on an idle process, a batch of 32, and memory.

The real ``LocalEmbedder`` (ONNX Runtime, the bot's settings: one thread on a 2-core host) embeds the same
17-word text ``--calls`` times with ``embed_one`` (through the micro-batcher, as a reply does), then a batch of
32 different texts ``--batches`` times with ``embed``. ``--torch`` measures the sentence-transformers/torch
embedder the same way instead (it needs the ``torch`` extra). ``rss_mb`` is the process's resident memory
after all that, with the bot's own modules imported (``bot.container``, ``bot.discord.client``).

    python bench/embedder.py [--calls 300] [--batches 30] [--precision int8|fp32] [--torch] [--json]
"""

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import bot.container  # noqa: E402  (what the bot imports, counted in rss_mb)
import bot.discord.client  # noqa: E402, F401
from bot.llm.embeddings import LocalEmbedder, SentenceTransformersEmbedder  # noqa: E402

MODEL = "sentence-transformers/all-MiniLM-L6-v2"
QUERY = "Yesterday my sister and I finally tried the new climbing gym downtown and we loved every minute"


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def rss_mb() -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


async def run(calls: int, batches: int, torch: bool, precision: str) -> dict[str, Any]:
    embedder = SentenceTransformersEmbedder(MODEL, 384) if torch else LocalEmbedder(MODEL, 384, precision=precision)
    started = time.perf_counter()
    await embedder.load()
    load_s = time.perf_counter() - started
    try:
        for _ in range(20):  # warm-up
            await embedder.embed_one(QUERY)
        single: list[float] = []
        for _ in range(calls):
            started = time.perf_counter()
            await embedder.embed_one(QUERY)
            single.append((time.perf_counter() - started) * 1000)
        batch: list[float] = []
        for round_number in range(batches):
            texts = [f"{QUERY} (message {round_number}-{i})" for i in range(32)]
            started = time.perf_counter()
            await embedder.embed(texts)
            batch.append((time.perf_counter() - started) * 1000)
        await asyncio.sleep(0.5)
        memory = rss_mb()
    finally:
        await embedder.aclose()
    return {
        "backend": "sentence-transformers/torch" if torch else f"onnxruntime {precision}",
        "threads": embedder.threads,
        "load_s": round(load_s, 2),
        "single_p50_ms": round(statistics.median(single), 2),
        "single_p95_ms": round(percentile(single, 0.95), 2),
        "batch32_p50_ms": round(statistics.median(batch), 1),
        "batch32_p95_ms": round(percentile(batch, 0.95), 1),
        "rss_mb": memory,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--batches", type=int, default=30)
    parser.add_argument("--torch", action="store_true", help="measure sentence-transformers/torch instead")
    parser.add_argument(
        "--precision", choices=("int8", "fp32"), default="int8", help="the local model's (EMBEDDING_PRECISION)"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = asyncio.run(run(args.calls, args.batches, args.torch, args.precision))
    if args.json:
        print(json.dumps(result))
        return
    print(f"{result['backend']}, {result['threads']} thread(s), loaded in {result['load_s']} s")
    print(f"one {len(QUERY.split())}-word text: p50 {result['single_p50_ms']} ms, p95 {result['single_p95_ms']} ms")
    print(f"a batch of 32: p50 {result['batch32_p50_ms']} ms, p95 {result['batch32_p95_ms']} ms")
    print(f"resident memory: {result['rss_mb']} MB")


if __name__ == "__main__":
    main()

"""Evidence recall of Hearth's memory on LoCoMo-format conversations.

Every turn is stored as a message memory through the real memory service on a real database (each
conversation a guild channel, each speaker a user, each session's date as the timestamp, image captions as
text); every question is asked through the real retriever in that conversation's scope. Recall@k is the share
of a question's evidence turns found in the top k, averaged over questions.

    python bench/locomo.py PATH [--backend postgresql|sqlite] [--json]

LoCoMo (snap-research) is CC BY-NC 4.0; it is not shipped with Hearth.
"""

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.databases import bench_database  # noqa: E402
from bot.db.repositories.guilds import GuildRepository  # noqa: E402
from bot.db.repositories.memories import NewMemory  # noqa: E402
from bot.db.repositories.users import UserRepository  # noqa: E402
from bot.domain.memory_text import context_line  # noqa: E402
from bot.domain.recall import RecallScope  # noqa: E402
from bot.llm.embeddings import LocalEmbedder  # noqa: E402
from bot.services.memory import MemoryService  # noqa: E402

KS = (5, 10, 25)


def session_time(text: str) -> datetime:
    """LoCoMo's '1:56 pm on 8 May, 2023'."""
    return datetime.strptime(text.strip(), "%I:%M %p on %d %B, %Y").replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Turn:
    dia_id: str
    speaker: str
    text: str
    at: datetime
    previous: str | None  # the turn before, in the same session, as the bot keeps it for context


def turns_of(conversation: dict[str, Any]) -> list[Turn]:
    """Every turn, in order; turns a minute apart within a session."""
    turns: list[Turn] = []
    number = 1
    while f"session_{number}" in conversation:
        start = session_time(conversation[f"session_{number}_date_time"])
        previous = None
        for index, turn in enumerate(conversation[f"session_{number}"]):
            text = turn.get("text", "")
            if turn.get("blip_caption"):
                text = f"{text} [shares a photo: {turn['blip_caption']}]"
            turns.append(Turn(turn["dia_id"], turn["speaker"], text, start + timedelta(minutes=index), previous))
            previous = context_line(turn["speaker"], text)
        number += 1
    return turns


async def run(path: Path, backend: str) -> dict[str, Any]:
    samples = json.loads(await asyncio.to_thread(path.read_text))
    embedder = LocalEmbedder("sentence-transformers/all-MiniLM-L6-v2", 384)
    await embedder.load()
    hits: dict[int, list[dict[int, float]]] = defaultdict(list)
    latencies: list[float] = []
    async with bench_database(backend, name="locomo") as db:
        memory = MemoryService(db, embedder)
        for number, sample in enumerate(samples, start=1):
            guild, channel = 1000 + number, 2000 + number
            turns = turns_of(sample["conversation"])
            async with db.session() as session:
                guild_id = (await GuildRepository(session).upsert(discord_id=guild, name=f"LoCoMo {number}")).id
                speakers = {
                    name: (
                        await UserRepository(session).upsert(
                            discord_id=100 * number + i, username=name.lower(), display_name=name, seen_at=turns[0].at
                        )
                    ).id
                    for i, name in enumerate(sorted({t.speaker for t in turns}))
                }
            dia_of: dict[int, str] = {}
            for start in range(0, len(turns), 64):
                batch = turns[start : start + 64]
                ids = await memory.remember(
                    [
                        NewMemory(
                            kind="message",
                            content=turn.text,
                            scope="guild",
                            created_at=turn.at,
                            guild_id=guild_id,
                            user_id=speakers[turn.speaker],
                            channel_id=channel,
                            channel_name=f"locomo-{number}",
                            speaker_name=turn.speaker,
                            context=turn.previous,
                        )
                        for turn in batch
                    ]
                )
                dia_of.update({memory_id: turn.dia_id for memory_id, turn in zip(ids, batch, strict=True)})
            now = turns[-1].at + timedelta(days=1)
            scope = RecallScope(user_id=0, guild_id=guild_id)
            for qa in sample["qa"]:
                evidence = {e.strip() for e in qa.get("evidence", []) for e in e.split(";") if e.strip()}
                if not evidence or "question" not in qa:
                    continue
                started = time.perf_counter()
                recalled = await memory.recall(qa["question"], scope, now=now, limit=max(KS))
                latencies.append((time.perf_counter() - started) * 1000)
                found = [dia_of.get(r.memory.id) for r in recalled]
                hits[int(qa["category"])].append({k: len(evidence & set(found[:k])) / len(evidence) for k in KS})
    await embedder.aclose()

    def mean_recall(categories: Sequence[int]) -> dict[str, float]:
        rows = [row for c in categories for row in hits.get(c, [])]
        return {str(k): round(100 * statistics.fmean(r[k] for r in rows), 1) if rows else 0.0 for k in KS}

    ordered = sorted(latencies)
    return {
        "backend": backend,
        "questions": sum(len(v) for v in hits.values()),
        "recall": mean_recall([1, 2, 3, 4, 5]),
        "recall_1_4": mean_recall([1, 2, 3, 4]),
        "per_category": {str(c): {"questions": len(hits[c]), **mean_recall([c])} for c in sorted(hits)},
        "latency_ms": {
            "p50": round(statistics.median(ordered), 2),
            "p95": round(statistics.quantiles(ordered, n=100)[94], 2),
        },
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("path", type=Path)
    parser.add_argument("--backend", choices=("postgresql", "sqlite"), default="postgresql")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    result = asyncio.run(run(args.path, args.backend))
    if args.json:
        print(json.dumps(result))
        return
    print(f"LoCoMo evidence recall, {result['questions']} questions ({args.backend})")
    print("  categories 1-5: " + "  ".join(f"R@{k} {v}" for k, v in result["recall"].items()))
    print("  categories 1-4: " + "  ".join(f"R@{k} {v}" for k, v in result["recall_1_4"].items()))
    for category, row in result["per_category"].items():
        print(f"  category {category} ({row['questions']}): " + "  ".join(f"R@{k} {row[str(k)]}" for k in KS))
    print(f"  retrieval latency: p50 {result['latency_ms']['p50']} ms, p95 {result['latency_ms']['p95']} ms")


if __name__ == "__main__":
    main()

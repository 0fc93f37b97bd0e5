"""Evidence recall of Hearth's memory on LoCoMo-format conversations.

Every turn is stored as the bot stores it: a message memory written without a vector (each conversation a
guild channel, each session a conversation in it, each speaker a user, each session's date as the timestamp,
image captions as text, the turn before as context), then embedded by the real embedding worker before any
question is asked. Every question is asked through the real memory service in that conversation's scope.

Recall@k is the share of a question's evidence turns found in the top k, averaged over questions.
``recall_at_budget`` is the same share among the memories that actually enter the prompt: the memory section
the bot builds for that question within its real token budget (default settings), put through the bot's
prompt builder. ``memory_tokens`` is that section's size in the prompt. ``latency_ms`` times the bot's recall
for a prompt (``MemoryService.prompt_section``).

    python bench/locomo.py PATH [--backend postgresql|sqlite] [--json] [--conversation N ...] [--loo]

Figures are given pooled over all questions and per conversation (``per_conversation``): a method tuned on
some conversations is judged on the others (leave one conversation out). ``--conversation`` (1-based, may be
repeated) runs only those.

``--loo`` checks recall's constants that way: every setting of ``LOO_GRID`` (the fusion's ``rrf_k``, the
neighbours' share and reach, the two searches' weights, the say of what a named person said; Hearth's
defaults among them) answers every question; for each conversation, the setting with the best R@10 on the other
conversations' questions is chosen and measured on the held-out one (``held_out``), next to the defaults' figure
there. ``chosen_on_all`` is what all conversations together would choose. A default that is not chosen held out
was fitted to the data.

LoCoMo (snap-research) is CC BY-NC 4.0; it is not shipped with Hearth.
"""

import argparse
import asyncio
import json
import re
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.databases import bench_database  # noqa: E402
from bot.db.engine import Database  # noqa: E402
from bot.db.repositories.conversations import ConversationRepository  # noqa: E402
from bot.db.repositories.guilds import GuildRepository  # noqa: E402
from bot.db.repositories.memories import MemoryRepository, NewMemory  # noqa: E402
from bot.db.repositories.users import UserRepository  # noqa: E402
from bot.domain.budget import estimate_tokens  # noqa: E402
from bot.domain.memory_text import context_line  # noqa: E402
from bot.domain.prompt import SECTION_TITLES, Budget, PersonaCard, PromptRequest, Turn, build_prompt  # noqa: E402
from bot.domain.recall import RecallScope, Weights  # noqa: E402
from bot.llm.embeddings import LocalEmbedder  # noqa: E402
from bot.services.embedding_worker import EmbeddingWorker  # noqa: E402
from bot.services.memory import MemoryService  # noqa: E402
from bot.settings import Settings  # noqa: E402

KS = (5, 10, 25)
CATEGORIES = {1: "multi-hop", 2: "temporal", 3: "open-domain", 4: "single-hop", 5: "adversarial"}
_DIA_ID = re.compile(r"D(\d+):(\d+)")


def session_time(text: str) -> datetime:
    """LoCoMo's '1:56 pm on 8 May, 2023'."""
    return datetime.strptime(text.strip(), "%I:%M %p on %d %B, %Y").replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Spoken:
    dia_id: str
    session: int
    speaker: str
    text: str
    at: datetime
    previous: str | None  # the turn before, in the same session, as the bot keeps it for context


def turns_of(conversation: dict[str, Any]) -> list[Spoken]:
    """Every turn, in order; turns a minute apart within a session."""
    turns: list[Spoken] = []
    number = 1
    while f"session_{number}" in conversation:
        start = session_time(conversation[f"session_{number}_date_time"])
        previous = None
        for index, turn in enumerate(conversation[f"session_{number}"]):
            text = turn.get("text", "")
            if turn.get("blip_caption"):
                text = f"{text} [shares a photo: {turn['blip_caption']}]"
            dia_id = "D{}:{}".format(*_DIA_ID.match(turn["dia_id"]).groups())  # type: ignore[union-attr]
            turns.append(Spoken(dia_id, number, turn["speaker"], text, start + timedelta(minutes=index), previous))
            previous = context_line(turn["speaker"], text)
        number += 1
    return turns


def evidence_of(qa: dict[str, Any]) -> set[str]:
    """The evidence turns' ids, normalised ("D30:05" is "D30:5"; "D8:6; D9:17" is two)."""
    return {f"D{int(s)}:{int(t)}" for entry in qa.get("evidence", []) for s, t in _DIA_ID.findall(entry)}


@dataclass
class Scores:
    """Per question: category, recall at each k, recall of the prompt's memory section, its tokens."""

    rows: list[tuple[int, dict[int, float], float, int]] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)

    def recall(self, categories: Sequence[int]) -> dict[str, float]:
        rows = [row for row in self.rows if row[0] in categories]
        return {str(k): _mean([r[1][k] for r in rows]) for k in KS}

    def summary(self) -> dict[str, Any]:
        tokens = sorted(row[3] for row in self.rows)
        return {
            "questions": len(self.rows),
            "recall": self.recall([1, 2, 3, 4, 5]),
            "recall_1_4": self.recall([1, 2, 3, 4]),
            "recall_at_budget": _mean([row[2] for row in self.rows]),
            "recall_at_budget_1_4": _mean([row[2] for row in self.rows if row[0] != 5]),
            "per_category": {
                str(c): {
                    "name": CATEGORIES.get(c, "?"),
                    "questions": sum(1 for row in self.rows if row[0] == c),
                    **self.recall([c]),
                    "at_budget": _mean([row[2] for row in self.rows if row[0] == c]),
                }
                for c in sorted({row[0] for row in self.rows})
            },
            "memory_tokens": {"mean": round(statistics.fmean(tokens), 1), "p95": _p95(tokens)},
        }


def _mean(values: Sequence[float]) -> float:
    return round(100 * statistics.fmean(values), 1) if values else 0.0


def _p95(values: Sequence[float]) -> float:
    ordered = sorted(values)
    return round(statistics.quantiles(ordered, n=100)[94], 2) if len(ordered) > 1 else float(ordered[0])


# The bot's prompt budget with the default settings (LLM_CONTEXT_TOKENS, LLM_MAX_TOKENS).
BUDGET = Budget(
    context_tokens=Settings.model_fields["llm_context_tokens"].default,
    reply_tokens=Settings.model_fields["llm_max_tokens"].default,
)
PERSONA = PersonaCard(name="Hearth", personality="A warm companion.")


def shown_in_prompt(section_text: str, lines: dict[int, str]) -> tuple[list[int], int]:
    """Which memories the bot's prompt builder keeps whole in the prompt, and the section's size there."""
    request = PromptRequest(
        persona=PERSONA,
        speaker="someone",
        place="#locomo",
        current=[Turn("user", "?")],
        sections={"memories": section_text},
        is_group=True,
    )
    system = build_prompt(request, BUDGET)[0].content
    heading = "## " + SECTION_TITLES["memories"]
    start = system.find(heading)
    if start < 0:
        return [], 0
    block = system[start:].split("\n\n## ", 1)[0]
    shown = [memory_id for memory_id, line in lines.items() if line in block.split("\n")]
    return shown, estimate_tokens(block)


async def store(db: Database, embedder: LocalEmbedder, number: int, turns: list[Spoken]) -> dict[int, str]:
    """Write the turns' memories as the bot does (no vector), let the embedding worker embed them; returns the
    dia_id of each memory."""
    guild, channel = 1000 + number, 2000 + number
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
    for session_number in sorted({t.session for t in turns}):
        in_session = [t for t in turns if t.session == session_number]
        async with db.session() as session:
            conversation = await ConversationRepository(session).open(
                channel_id=channel, guild_id=guild_id, user_id=None, at=in_session[0].at
            )
            ids = await MemoryRepository(session).add_many(
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
                        conversation_id=conversation.id,
                        speaker_name=turn.speaker,
                        context=turn.previous,
                    )
                    for turn in in_session
                ],
                None,
                None,
            )
        dia_of.update({memory_id: turn.dia_id for memory_id, turn in zip(ids, in_session, strict=True)})
    await EmbeddingWorker(db, embedder).flush()  # not started: embeds every row without a vector, here
    return dia_of


async def ask(
    memory: MemoryService, scores: Scores, sample: dict[str, Any], dia_of: dict[int, str], guild_id: int, now: datetime
) -> None:
    scope = RecallScope(user_id=0, guild_id=guild_id)
    tokens = BUDGET.section_budget("memories")
    for qa in sample["qa"]:
        evidence = evidence_of(qa)
        if not evidence or "question" not in qa:
            continue
        recalled = await memory.recall(qa["question"], scope, now=now, limit=max(KS))
        found = [dia_of.get(r.memory.id) for r in recalled]
        started = time.perf_counter()
        section = await memory.prompt_section(qa["question"], scope, now=now, tokens=tokens)
        scores.latencies.append((time.perf_counter() - started) * 1000)
        lines = dict(zip(section.memory_ids, section.text.split("\n"), strict=False))
        shown, size = shown_in_prompt(section.text, lines)
        at_budget = len(evidence & {dia_of.get(i) for i in shown}) / len(evidence)
        scores.rows.append(
            (int(qa["category"]), {k: len(evidence & set(found[:k])) / len(evidence) for k in KS}, at_budget, size)
        )


@dataclass(frozen=True, slots=True)
class Stored:
    """A conversation as the bench stored it: its name, sample, each memory's dia_id, its guild, when it is
    asked about."""

    name: str
    sample: dict[str, Any]
    dia_of: dict[int, str]
    guild_id: int
    now: datetime


async def stored(db: Database, embedder: LocalEmbedder, number: int, sample: dict[str, Any]) -> Stored:
    """The ``number``-th conversation stored and embedded (see :func:`store`), asked about a day after it ends."""
    turns = turns_of(sample["conversation"])
    dia_of = await store(db, embedder, number, turns)
    async with db.reading() as session:
        guild_id = (await GuildRepository(session).upsert(discord_id=1000 + number, name="")).id
    return Stored(str(sample.get("sample_id", number)), sample, dia_of, guild_id, turns[-1].at + timedelta(days=1))


async def asked(memory: MemoryService, conversation: Stored) -> Scores:
    scores = Scores()
    await ask(memory, scores, conversation.sample, conversation.dia_of, conversation.guild_id, conversation.now)
    return scores


async def run(path: Path, backend: str, conversations: Sequence[int] = ()) -> dict[str, Any]:
    samples = json.loads(await asyncio.to_thread(path.read_text))
    chosen = [(n, s) for n, s in enumerate(samples, start=1) if not conversations or n in conversations]
    embedder = LocalEmbedder("sentence-transformers/all-MiniLM-L6-v2", 384)
    await embedder.load()
    pooled = Scores()
    per_conversation: dict[str, Any] = {}
    async with bench_database(backend, name="locomo") as db:
        memory = MemoryService(db, embedder)
        for number, sample in chosen:
            conversation = await stored(db, embedder, number, sample)
            scores = await asked(memory, conversation)
            pooled.rows += scores.rows
            pooled.latencies += scores.latencies
            summary = scores.summary()
            per_conversation[conversation.name] = {
                "questions": summary["questions"],
                "recall": summary["recall"],
                "recall_at_budget": summary["recall_at_budget"],
                "multi_hop": summary["per_category"].get("1", {}),
            }
    await embedder.aclose()
    return {
        "backend": backend,
        **pooled.summary(),
        "per_conversation": per_conversation,
        "memory_budget_tokens": BUDGET.section_budget("memories"),
        "latency_ms": {"p50": round(statistics.median(pooled.latencies), 2), "p95": _p95(pooled.latencies)},
    }


# Recall's constants and their neighbours: Hearth's defaults first.
LOO_GRID: dict[str, Weights] = {
    "defaults": Weights(),
    "rrf_k=1": replace(Weights(), rrf_k=1),
    "rrf_k=5": replace(Weights(), rrf_k=5),
    "rrf_k=10": replace(Weights(), rrf_k=10),
    "neighbour_share=0.35": replace(Weights(), neighbour_share=0.35),
    "neighbour_share=0.7": replace(Weights(), neighbour_share=0.7),
    "neighbour_turns=1": replace(Weights(), neighbour_turns=1),
    "neighbour_turns=3": replace(Weights(), neighbour_turns=3),
    "vectors x1.5": replace(Weights(), search=(1.5, 1.0)),
    "words x1.5": replace(Weights(), search=(1.0, 1.5)),
    "named off": replace(Weights(), named=0.0),
    "named x0.5": replace(Weights(), named=0.5),
}


async def leave_one_out(path: Path, backend: str) -> dict[str, Any]:
    """Every ``LOO_GRID`` setting on every conversation; each conversation judged by what the others choose."""
    samples = json.loads(await asyncio.to_thread(path.read_text))
    embedder = LocalEmbedder("sentence-transformers/all-MiniLM-L6-v2", 384)
    await embedder.load()
    results: dict[str, dict[str, Scores]] = {setting: {} for setting in LOO_GRID}
    async with bench_database(backend, name="locomo") as db:
        conversations = [await stored(db, embedder, n, sample) for n, sample in enumerate(samples, start=1)]
        for setting, weights in LOO_GRID.items():
            memory = MemoryService(db, embedder, weights=weights)
            for conversation in conversations:
                results[setting][conversation.name] = await asked(memory, conversation)
    await embedder.aclose()
    names = [conversation.name for conversation in conversations]

    def r10(setting: str, among: Sequence[str]) -> float:
        return _mean([row[1][10] for name in among for row in results[setting][name].rows])

    def figures(setting: str, name: str) -> dict[str, float]:
        summary = results[setting][name].summary()
        return {
            "R@5": summary["recall"]["5"],
            "R@10": summary["recall"]["10"],
            "multi_hop_R@10": summary["per_category"].get("1", {}).get("10", 0.0),
            "recall_at_budget": summary["recall_at_budget"],
        }

    def choose(among: Sequence[str]) -> str:
        return max(LOO_GRID, key=lambda setting: (r10(setting, among), setting == "defaults"))

    chosen = {name: choose([other for other in names if other != name]) for name in names}
    held_out = {
        name: {"chosen": chosen[name], **figures(chosen[name], name), "defaults": figures("defaults", name)}
        for name in names
    }
    return {
        "backend": backend,
        "held_out": held_out,
        "held_out_R@10_pooled": _mean([row[1][10] for name in names for row in results[chosen[name]][name].rows]),
        "defaults_R@10_pooled": r10("defaults", names),
        "chosen_on_all": choose(names),
        "R@10_by_setting": {setting: r10(setting, names) for setting in LOO_GRID},
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("path", type=Path)
    parser.add_argument("--backend", choices=("postgresql", "sqlite"), default="postgresql")
    parser.add_argument("--conversation", type=int, action="append", default=[], help="1-based; repeatable")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--loo", action="store_true", help="choose recall's constants leaving one conversation out")
    args = parser.parse_args(argv)
    if args.loo:
        loo = asyncio.run(leave_one_out(args.path, args.backend))
        if args.json:
            print(json.dumps(loo))
            return
        print(f"Leave one conversation out ({args.backend}): R@10 by setting, all conversations")
        for setting, value in loo["R@10_by_setting"].items():
            print(f"  {setting}: {value}")
        for name, row in loo["held_out"].items():
            print(
                f"  {name} held out: chose {row['chosen']}, R@5 {row['R@5']} R@10 {row['R@10']}"
                f" multi-hop {row['multi_hop_R@10']} (defaults: R@10 {row['defaults']['R@10']})"
            )
        print(f"  held-out R@10 pooled {loo['held_out_R@10_pooled']} (defaults {loo['defaults_R@10_pooled']})")
        return
    result = asyncio.run(run(args.path, args.backend, args.conversation))
    if args.json:
        print(json.dumps(result))
        return
    print(f"LoCoMo evidence recall, {result['questions']} questions ({args.backend})")
    print("  categories 1-5: " + "  ".join(f"R@{k} {v}" for k, v in result["recall"].items()))
    print("  categories 1-4: " + "  ".join(f"R@{k} {v}" for k, v in result["recall_1_4"].items()))
    for category, row in result["per_category"].items():
        print(
            f"  category {category} {row['name']} ({row['questions']}): "
            + "  ".join(f"R@{k} {row[str(k)]}" for k in KS)
            + f"  at budget {row['at_budget']}"
        )
    tokens = result["memory_tokens"]
    print(
        f"  in the prompt ({result['memory_budget_tokens']}-token budget): recall {result['recall_at_budget']},"
        f" memory tokens mean {tokens['mean']}, p95 {tokens['p95']}"
    )
    for name, row in result["per_conversation"].items():
        recall = row["recall"]
        print(
            f"  {name} ({row['questions']}): R@5 {recall['5']}  R@10 {recall['10']}  R@25 {recall['25']}"
            f"  at budget {row['recall_at_budget']}  multi-hop R@10 {row['multi_hop'].get('10', 0.0)}"
        )
    print(f"  recall latency: p50 {result['latency_ms']['p50']} ms, p95 {result['latency_ms']['p95']} ms")


if __name__ == "__main__":
    main()

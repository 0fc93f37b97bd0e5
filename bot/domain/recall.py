"""Recalling memories: who may see what, how two rankings become one, and how a memory reads in a prompt.

Pure rules; the memory service brings the rows.
"""

import itertools
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

_WORD = re.compile(r"\w+", re.UNICODE)

# Words that say nothing about what is being recalled. PostgreSQL's english configuration drops them anyway;
# SQLite's FTS5 does not, so the query leaves them out on both.
_STOPWORDS_TEXT = """
    a about above after again against all am an and any are as at be been before being below between both
    but by can could did do does doing don down during each few for from further had has have having he her
    here hers herself him himself his how i if in into is it its itself just me more most my myself no nor
    not now of off on once only or other our ours ourselves out over own same she should so some such than
    that the their theirs them themselves then there these they this those through to too under until up
    very was we were what when where which while who whom why will with would you your yours yourself
    yourselves
"""
STOPWORDS = frozenset(_STOPWORDS_TEXT.split())


@dataclass(frozen=True, slots=True)
class RecallScope:
    """Where a reply is being written. In a guild: that guild's memories only. In a DM: the user's DM memories
    and what they made global; never anyone else's DMs."""

    user_id: int
    guild_id: int | None  # None: a DM

    @property
    def is_dm(self) -> bool:
        return self.guild_id is None

    @property
    def memories(self) -> tuple[str, int]:
        """Whose memories it may recall, as a key: a guild's (the same for everyone there) or one person's DMs."""
        return ("dm", self.user_id) if self.guild_id is None else ("guild", self.guild_id)


@dataclass(frozen=True, slots=True)
class Candidate:
    """A memory that one of the searches found, with what the final ranking needs to know about it."""

    memory_id: int
    created_at: datetime
    importance: float


@dataclass(frozen=True, slots=True)
class Weights:
    """How the searches' rankings are fused, how much a memory's neighbours share in its score, and how much
    recency and importance then move a memory up, relative to its score (1.0 = double)."""

    # Reciprocal-rank fusion constant. Much below the customary 60: the candidate lists are short, and a
    # memory both searches put near the top should clearly beat one that only one search ranks first.
    # Chosen leave-one-conversation-out on LoCoMo's dev split among 2, 5 and 10 (2 won every split).
    rrf_k: int = 2

    # A turn next to a strong match often holds the answer ("Sure, tomorrow!" after the question it answers)
    # while sharing no word with the query: it gets this share of the match's score per turn of distance (half
    # one turn away, a quarter two turns away), up to ``neighbour_turns`` turns on each side. See spread().
    neighbour_share: float = 0.5
    neighbour_turns: int = 2

    # Small: fused scores of neighbouring ranks differ by a few percent, and relevance must lead.
    recency: float = 0.02
    recency_half_life: timedelta = timedelta(days=30)
    importance: float = 0.04
    # Per search (vectors, words): equal say.
    search: tuple[float, ...] = (1.0, 1.0)
    # A question that names someone is most often answered by what that person said ("Where has Ana camped?"
    # is answered by Ana, not by a friend's "what's your best camping memory?"): the memories they said form one
    # more ranking, fused as the searches' are, with the same say. See favour_named().
    named: float = 1.0


@dataclass(frozen=True, slots=True)
class Neighbour:
    """``memory_id`` is ``distance`` turns before or after ``of`` in the same conversation."""

    of: int
    memory_id: int
    distance: int


def search_terms(text: str, *, limit: int = 32) -> list[str]:
    """The distinct words of a query that carry meaning, lower-cased, in order (for the lexical search)."""
    seen: dict[str, None] = {}
    for word in _WORD.findall(text.lower()):
        if (len(word) > 1 or word.isdigit()) and word not in STOPWORDS:
            seen.setdefault(word, None)
    return list(seen)[:limit]


def name_key(name: str) -> str:
    """A name as it is looked up: its words, lower-cased, one space apart ("Ana  Lopez!" is "ana lopez")."""
    return " ".join(_WORD.findall(name.lower()))


@dataclass(frozen=True, slots=True)
class Names:
    """The names of those whose words are remembered, ready to be looked up in a text (lower-cased, as runs of
    words): ``keys`` all of them, ``people`` those that people go by (not only Hearth's own voices)."""

    keys: frozenset[str]
    longest: int  # words in the longest name
    people: frozenset[str] = frozenset()

    @classmethod
    def of(cls, names: Iterable[str], *, voices: Iterable[str] = ()) -> "Names":
        """Names of one to four words; names that are common little words ("Will") are left out. ``voices``:
        names only Hearth speaks under (its persona and cast), which are not people's."""
        keys = frozenset(
            key for name in names if len(key := name_key(name)) > 1 and key not in STOPWORDS and key.count(" ") < 4
        )
        spoken_by_hearth = {name_key(voice) for voice in voices}
        return cls(keys, max((key.count(" ") + 1 for key in keys), default=0), keys - spoken_by_hearth)

    def people_in(self, text: str) -> frozenset[str]:
        """The people ``text`` names (their keys): "Where has Ana camped?" names "ana"."""
        return frozenset(key for _, _, key in _mentions(text, self) if key in self.people)


def without_names(text: str, names: Names) -> str:
    """``text`` with every mention of ``names`` left out ("What did Ana paint?" becomes "What did paint?"), for
    the query's embedding only: a name means little to a sentence model, while every remembered turn carries
    names (its speaker's, and whoever it addresses), so a name in the question pulls in turns that merely
    mention that person. Who said what is still matched, by the word search (which indexes the speaker's name).
    Whole words, any case, with a possessive "'s"; the text unchanged when nothing meaningful would remain."""
    cut = _mentions(text, names)
    if not cut:
        return text
    kept, start = [], 0
    for begin, end, _ in cut:
        kept.append(text[start:begin])
        start = end
    kept.append(text[start:])
    stripped = " ".join(" ".join(kept).split())
    return stripped if search_terms(stripped) else text


_POSSESSIVE = re.compile(r"['’]s\b", re.IGNORECASE)


def _mentions(text: str, names: Names) -> list[tuple[int, int, str]]:
    """Where ``text`` mentions one of ``names``: (start, end, key) of each, a possessive "'s" included, longest
    name first where names overlap. Each run of words is looked up, so a place with thousands of names costs no
    more than one with two."""
    if not names.keys:
        return []
    words = list(_WORD.finditer(text))
    found: list[tuple[int, int, str]] = []
    i = 0
    while i < len(words):
        for size in range(min(names.longest, len(words) - i), 0, -1):
            run = words[i : i + size]
            key = " ".join(w.group().lower() for w in run)
            if key in names.keys and _adjacent(text, run):
                end = run[-1].end()
                possessive = _POSSESSIVE.match(text, end)
                found.append((run[0].start(), possessive.end() if possessive else end, key))
                i += size
                break
        else:
            i += 1
    return found


def _adjacent(text: str, run: Sequence[re.Match[str]]) -> bool:
    """Whether the words of ``run`` are separated by spaces only (a name, not words across punctuation)."""
    return all(not text[a.end() : b.start()].strip() for a, b in itertools.pairwise(run))


def words_to_search(documents: Mapping[str, int], budget: int) -> list[str]:
    """The query words a word search looks up: rarest first, for as long as the memories holding them add up
    to ``budget`` at most. A rare word tells memories apart and is cheap to look up; a common one is neither
    (it still counts when the memories found are scored). ``documents``: how many memories hold each word."""
    chosen: list[str] = []
    spent = 0
    for word, count in sorted(documents.items(), key=lambda item: (item[1], item[0])):
        if count <= 0:
            continue
        if spent + count > budget:
            break
        chosen.append(word)
        spent += count
    return chosen


def inverse_document_frequency(documents: int, total: int) -> float:
    """BM25's weight for a word held by ``documents`` of ``total`` memories (as SQLite's FTS5 computes it):
    high for rare words, near zero for a word most memories hold."""
    return math.log(1 + (total - documents + 0.5) / (documents + 0.5))


def fused_scores(rankings: Sequence[Sequence[int]], *, weights: Weights = Weights()) -> dict[int, float]:
    """Reciprocal-rank fusion: each search adds ``weight / (rrf_k + rank)`` to the memories it found."""
    fused: dict[int, float] = {}
    for index, ranking in enumerate(rankings):
        weight = weights.search[index] if index < len(weights.search) else 1.0
        for rank, memory_id in enumerate(ranking):
            fused[memory_id] = fused.get(memory_id, 0.0) + weight / (weights.rrf_k + rank + 1)
    return fused


def spread(
    scores: Mapping[int, float], neighbours: Iterable[Neighbour], *, weights: Weights = Weights()
) -> dict[int, float]:
    """Scores after each memory's neighbours share in it: a memory ``d`` turns from a found one gains
    ``neighbour_share ** d`` of that one's score (from the found memory that gives most), on top of its own.

    The searches' evidence is smoothed along the conversation, as a reply is about what it answers: a turn
    between two matches rises most, a lone match's neighbours rank below it, and a found memory's own score
    never drops. Neighbours farther than ``neighbour_turns`` are ignored."""
    gained: dict[int, float] = {}
    for neighbour in neighbours:
        source = scores.get(neighbour.of)
        if source is None or not 0 < neighbour.distance <= weights.neighbour_turns:
            continue
        share = source * weights.neighbour_share**neighbour.distance
        if share > gained.get(neighbour.memory_id, 0.0):
            gained[neighbour.memory_id] = share
    result = dict(scores)
    for memory_id, share in gained.items():
        result[memory_id] = result.get(memory_id, 0.0) + share
    return result


def favour_named(
    scores: Mapping[int, float],
    speakers: Mapping[int, str | None],
    named: frozenset[str],
    *,
    weights: Weights = Weights(),
) -> dict[int, float]:
    """Scores after the memories said by someone the question names (``named``, name keys; ``speakers``: who
    said each memory) gain as one more ranking would in the fusion: ``named / (rrf_k + rank)``, ranked among
    themselves by score. What the person said about the question's subject rises above what others said to
    them about it; nothing is found that the searches did not find, and without a name nothing changes."""
    result = dict(scores)
    if not named or weights.named <= 0:
        return result
    said = sorted(
        (i for i in scores if (speaker := speakers.get(i)) is not None and name_key(speaker) in named),
        key=lambda i: (-scores[i], i),
    )
    for rank, memory_id in enumerate(said):
        result[memory_id] += weights.named / (weights.rrf_k + rank + 1)
    return result


def order(
    scores: Mapping[int, float], candidates: Mapping[int, Candidate], *, now: datetime, weights: Weights = Weights()
) -> list[int]:
    """Memories best first by score, nudged by recency and importance. Ids missing from ``candidates`` are
    dropped (deleted meanwhile, or out of scope)."""
    scored = []
    for memory_id, score in scores.items():
        candidate = candidates.get(memory_id)
        if candidate is None:
            continue
        age_days = max((now - candidate.created_at).total_seconds(), 0.0) / 86400
        recency = math.exp(-math.log(2) * age_days / (weights.recency_half_life.total_seconds() / 86400))
        boost = 1.0 + weights.recency * recency + weights.importance * (candidate.importance - 0.5)
        scored.append((score * boost, memory_id))
    scored.sort(key=lambda pair: (-pair[0], pair[1]))
    return [memory_id for _, memory_id in scored]


def fuse(
    rankings: Sequence[Sequence[int]],
    candidates: Mapping[int, Candidate],
    *,
    now: datetime,
    weights: Weights = Weights(),
) -> list[int]:
    """One order from several rankings (best first): reciprocal-rank fusion, then nudged by recency and
    importance. Ids missing from ``candidates`` are dropped (deleted meanwhile)."""
    return order(fused_scores(rankings, weights=weights), candidates, now=now, weights=weights)


def ago(then: datetime, now: datetime) -> str:
    """ "just now", "5 minutes ago", "yesterday", "3 weeks ago", "2 years ago"."""
    seconds = (now - then).total_seconds()
    if seconds < 90:
        return "just now"
    minutes, hours, days = seconds / 60, seconds / 3600, seconds / 86400
    if minutes < 60:
        return f"{round(minutes)} minutes ago"
    if hours < 24:
        return "an hour ago" if round(hours) == 1 else f"{round(hours)} hours ago"
    if days < 2:
        return "yesterday"
    for size, unit in ((365, "year"), (30, "month"), (7, "week")):
        if days >= size * (2 if unit == "week" else 1):
            count = int(days // size)
            return f"{count} {unit}{'s' if count > 1 else ''} ago"
    return f"{int(days)} days ago"


def describe(
    content: str,
    *,
    speaker: str | None,
    kind: str,
    created_at: datetime,
    channel_name: str | None,
    is_dm: bool,
    now: datetime,
) -> str:
    """One memory as the prompt shows it: '3 weeks ago in #general, Ana said: "…"'."""
    where = "in your DMs" if is_dm else (f"in #{channel_name}" if channel_name else "here")
    when = ago(created_at, now)
    if kind == "summary":
        return f"{when.capitalize()} {where}, you talked about: {content}"
    if kind == "knowledge":
        return f"From this server's notes: {content}"
    who = speaker or "you"
    return f'{when.capitalize()} {where}, {who} said: "{content}"'

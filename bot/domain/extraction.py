"""What the learner asks the model after a few messages, and how its JSON answer is read.

One call per batch returns everything learned: facts about the human speakers (compared with the known facts
shown to it, by id), the tone of the exchange, its topics, things to ask about later and nicknames or inside
jokes. The answer is read leniently where a slip costs nothing (a confidence of 1.2 becomes 1, an unknown fact
type becomes "general", extra keys and extra list items are dropped) and strictly where guessing would store
something wrong (a missing field, a wrong type, an unusable date or text). An entry of a list that is wrong so is
dropped alone, with why (:attr:`Extraction.dropped`), and the rest of the answer kept; only an answer that is not
an Extraction at all (not JSON, not an object, a top-level field of the wrong type) is refused.
"""

import calendar
import datetime
import functools
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    field_validator,
    model_validator,
)

from bot.domain.prompt import ChatMessage
from bot.domain.text import one_line

# Same values as the user_facts table's copy in bot.db.models.user_fact.
FACT_TYPES = ("hobby", "work", "family", "preference", "location", "event", "relationship", "general")
FALLBACK_TYPE = "general"

MAX_FACT_CHARS = 300
MAX_TOPIC_CHARS = 60
MAX_FOLLOW_UP_TOPIC_CHARS = 80
MAX_QUESTION_CHARS = 300
MAX_REFERENCE_CHARS = 120  # as bot.domain.relationship keeps them
MAX_TOPICS = 5
MAX_FOLLOW_UPS = 3
MAX_REFERENCES = 3
# Longer than this is as good as permanent, and keeps expiry dates far from datetime's limits.
MAX_EXPIRES_IN_DAYS = 3650
# A follow-up is asked on the evening of its day in its person's time zone (UTC when they set none: "my exam is
# tomorrow": tomorrow evening), and only about something upcoming: at most this far ahead. Later is no longer
# upcoming (plans that far change, and come up again), and is most often a wrong year ("on Friday" a year late): one
# pending per topic, it would keep the right date out until then.
FOLLOW_UP_HOUR = datetime.time(18, 0)
FOLLOW_UP_HORIZON = datetime.timedelta(days=182)
# A birthday's year, when given, lies in these (as /birthday takes it); one outside is no year at all.
MIN_BIRTH_YEAR, MAX_BIRTH_YEAR = 1900, 2100
# Discord's youngest users are 13: a later year is the year of a birthday itself ("my birthday is in May" read as
# May this year or next), not the year its person was born.
MIN_AGE = 13
# A transcript line longer than this is cut: facts come from what people say about themselves, not from pastes.
MAX_LINE_CHARS = 1000

Action = Literal["new", "same", "changed", "retracted"]
Temporal = Literal["permanent", "long_term", "short_term"]
ReferenceKind = Literal["nickname", "inside_joke"]

# What a message forwards comes last, after a line "[forwarded]", and so does the message a reply is to, after a
# line "[in reply to Ben]" (see bot/discord/people.py): someone else's words.
_FORWARDED = re.compile(r"(?:^|\n)\[forwarded\]\n.*", re.DOTALL)
_FORWARDED_MARK = "[forwarded a message]"
_REPLIED = re.compile(r"(?:^|\n)(\[in reply to [^\]\n]*\])\n.*", re.DOTALL)

_FENCE = re.compile(r"\A```(?:json)?[ \t]*\n?(.*?)\n?[ \t]*```\Z", re.S | re.I)


class ExtractionError(ValueError):
    """The model's answer could not be used; the message says why, briefly."""


def _clamped(value: Any, low: float, high: float) -> Any:
    """A number (or numeric string) brought into [low, high]; anything else is left for pydantic to refuse."""
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return value
    if isinstance(value, int | float) and not isinstance(value, bool) and not math.isnan(value):
        return min(max(value, low), high)
    return value


def _line_number(value: Any) -> int | None:
    """A chat line's number as the answer gives it ("4" reads as 4); anything else as no line at all."""
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


# A known fact's id as the request shows it ("[12] Ana (...)"), or as "#12": either names fact 12.
_SHOWN_ID = re.compile(r"\[(\d+)\]|#(\d+)")


def _fact_id(value: Any) -> Any:
    """A known fact's id written "[12]" or "#12" reads as 12; anything else is left for pydantic to read or refuse."""
    if isinstance(value, str) and (shown := _SHOWN_ID.fullmatch(value.strip())):
        return int(shown.group(1) or shown.group(2))
    return value


# The number of the chat line that says something, as the transcript shows them. One the answer got wrong costs only
# the link to it (for a fact, the learner falls back to the speaker's last line).
Line = Annotated[int | None, BeforeValidator(_line_number)]


def _word(value: Any) -> Any:
    """ "Long-term " and "long term" read as "long_term"; the Literal check still refuses unknown words."""
    if isinstance(value, str):
        return "_".join(value.strip().lower().replace("-", " ").split())
    return value


def _short(error: ValidationError, where: Sequence[str | int] = (), *, skip: int = 0) -> str:
    """The first thing wrong, as "where: why", with how many more there are; ``where`` stands for the first
    ``skip`` parts of where pydantic says it is."""
    first = error.errors()[0]
    path = ".".join(str(part) for part in (*where, *first["loc"][skip:])) or "answer"
    more = f" (and {error.error_count() - 1} more)" if error.error_count() > 1 else ""
    return f"{path}: {first['msg']}{more}"


def _entries(limit: int | None = None) -> WrapValidator:
    """A list read entry by entry, keeping the first ``limit`` usable ones: an entry that cannot be used is dropped
    alone (noted, with why, in the validation context's ``dropped`` list when there is one), so it costs only
    itself. A value that is not a list at all is refused as before. The JSON schema is the plain list's."""

    def read(value: Any, handler: ValidatorFunctionWrapHandler, info: ValidationInfo) -> Any:
        if not isinstance(value, list):
            return handler(value)
        dropped = info.context.get("dropped") if isinstance(info.context, dict) else None
        kept: list[Any] = []
        for index, entry in enumerate(value):
            if limit is not None and len(kept) >= limit:
                break
            try:
                kept.extend(handler([entry]))
            except ValidationError as exc:
                if isinstance(dropped, list):  # where pydantic says [0], the entry is this list's [index]
                    dropped.append(_short(exc, (str(info.field_name), index), skip=1))
        return kept

    return WrapValidator(read)


class _Answer(BaseModel):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)


class ExtractedFact(_Answer):
    speaker: str  # the name as it appears in the transcript
    action: Action = "new"
    existing_id: Annotated[int | None, BeforeValidator(_fact_id)] = None  # same/changed/retracted: the known fact
    type: str = Field(json_schema_extra={"enum": list(FACT_TYPES)})
    content: str = Field(min_length=1, max_length=MAX_FACT_CHARS)  # third person, e.g. "works as a nurse"
    confidence: float = Field(default=0.8, ge=0.0, le=1.0)
    importance: float = Field(default=0.5, ge=0.0, le=1.0)
    temporal: Temporal = "long_term"
    expires_in_days: int | None = Field(default=None, ge=1, le=MAX_EXPIRES_IN_DAYS)
    line: Line = None  # the number of the chat line that states it, as the transcript shows them

    @field_validator("action", "temporal", mode="before")
    @classmethod
    def _normalize_word(cls, value: Any) -> Any:
        return _word(value)

    @field_validator("type", mode="before")
    @classmethod
    def _known_type(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        word = _word(value)
        return word if word in FACT_TYPES else FALLBACK_TYPE

    @field_validator("confidence", "importance", mode="before")
    @classmethod
    def _clamp_unit(cls, value: Any) -> Any:
        return _clamped(value, 0.0, 1.0)

    @field_validator("expires_in_days", mode="before")
    @classmethod
    def _clamp_days(cls, value: Any) -> Any:
        value = _clamped(value, 1, MAX_EXPIRES_IN_DAYS)
        if isinstance(value, float) and math.isfinite(value):
            return math.ceil(value)  # "1.5 days" is still going on tomorrow
        return value


class ExtractedTopic(_Answer):
    name: str = Field(min_length=1, max_length=MAX_TOPIC_CHARS)
    sentiment: float = Field(default=0.0, ge=-1.0, le=1.0)

    @field_validator("sentiment", mode="before")
    @classmethod
    def _clamp_sentiment(cls, value: Any) -> Any:
        return _clamped(value, -1.0, 1.0)


class ExtractedFollowUp(_Answer):
    speaker: str
    topic: str = Field(min_length=1, max_length=MAX_FOLLOW_UP_TOPIC_CHARS)
    date: datetime.date  # when Hearth will ask, "YYYY-MM-DD"
    question: str = Field(min_length=1, max_length=MAX_QUESTION_CHARS)  # e.g. "How did the interview go?"
    line: Line = None  # the chat line that says it, as for a fact

    def due(self, now: datetime.datetime, zone: datetime.tzinfo = datetime.UTC) -> datetime.datetime | None:
        """When to ask, in UTC: the evening of its date in ``zone`` (its person's time zone), if that is still ahead
        of ``now`` and its date at most :data:`FOLLOW_UP_HORIZON` after ``now``'s date there; None for a date past or
        beyond, which cannot be the one meant."""
        due = datetime.datetime.combine(self.date, FOLLOW_UP_HOUR, tzinfo=zone).astimezone(datetime.UTC)
        if due <= now or self.date - now.astimezone(zone).date() > FOLLOW_UP_HORIZON:
            return None
        return due


class ExtractedBirthday(_Answer):
    """A speaker's own birthday, as they said it ("my birthday is on 3 March"); the year only if they gave it."""

    speaker: str
    month: int = Field(ge=1, le=12)
    day: int = Field(ge=1, le=31)
    year: int | None = Field(default=None, ge=MIN_BIRTH_YEAR, le=MAX_BIRTH_YEAR)
    line: Line = None  # the chat line that says it, as for a fact

    @field_validator("year", mode="before")
    @classmethod
    def _usable_year(cls, value: Any) -> Any:
        """A year that is not a whole number in range (0 or 1 for "unknown", "", "unknown") reads as none given: the
        month and day are still the birthday."""
        if isinstance(value, str):
            value = value.strip()
            value = int(value) if value.isdigit() else None
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool):
            return None
        return value if MIN_BIRTH_YEAR <= value <= MAX_BIRTH_YEAR else None

    @model_validator(mode="after")
    def _real_day(self) -> "ExtractedBirthday":
        if self.day > calendar.monthrange(2000, self.month)[1]:  # 2000: a leap year, so 29 February counts
            raise ValueError(f"there is no day {self.day} in month {self.month}")
        return self

    def birth_year(self, today: datetime.date) -> int | None:
        """The year, when it can be the one its person was born in: one that has this day, and leaves them at least
        :data:`MIN_AGE` years old ``today``. Otherwise the year is the slip and the month and day still stand."""
        year = self.year
        if year is None or self.day > calendar.monthrange(year, self.month)[1]:
            return None
        age = today.year - year - ((today.month, today.day) < (self.month, self.day))
        return year if age >= MIN_AGE else None


class ExtractedReference(_Answer):
    speaker: str
    kind: ReferenceKind
    text: str = Field(min_length=1, max_length=MAX_REFERENCE_CHARS)
    line: Line = None  # the chat line that says it, as for a fact

    @field_validator("kind", mode="before")
    @classmethod
    def _normalize_kind(cls, value: Any) -> Any:
        return _word(value)


class Extraction(_Answer):
    facts: Annotated[list[ExtractedFact], _entries()] = Field(default_factory=list)
    sentiment: float = Field(default=0.0, ge=-1.0, le=1.0)  # the exchange's overall tone towards Hearth
    intensity: float = Field(default=0.3, ge=0.0, le=1.0)
    # Extra entries are dropped, and so is a broken one, so a broken sixth topic cannot cost the first five.
    topics: Annotated[list[ExtractedTopic], _entries(MAX_TOPICS)] = Field(
        default_factory=list, json_schema_extra={"maxItems": MAX_TOPICS}
    )
    follow_ups: Annotated[list[ExtractedFollowUp], _entries(MAX_FOLLOW_UPS)] = Field(
        default_factory=list, json_schema_extra={"maxItems": MAX_FOLLOW_UPS}
    )
    references: Annotated[list[ExtractedReference], _entries(MAX_REFERENCES)] = Field(
        default_factory=list, json_schema_extra={"maxItems": MAX_REFERENCES}
    )
    birthdays: Annotated[list[ExtractedBirthday], _entries(MAX_REFERENCES)] = Field(
        default_factory=list, json_schema_extra={"maxItems": MAX_REFERENCES}
    )
    _dropped: tuple[str, ...] = PrivateAttr(default=())

    @property
    def dropped(self) -> tuple[str, ...]:
        """The entries of the answer left out as unusable, each as "where: why" (e.g. "birthdays.0: …")."""
        return self._dropped

    @field_validator("sentiment", mode="before")
    @classmethod
    def _clamp_sentiment(cls, value: Any) -> Any:
        return _clamped(value, -1.0, 1.0)

    @field_validator("intensity", mode="before")
    @classmethod
    def _clamp_intensity(cls, value: Any) -> Any:
        return _clamped(value, 0.0, 1.0)

    @model_validator(mode="after")
    def _note_dropped(self, info: ValidationInfo) -> "Extraction":
        dropped = info.context.get("dropped") if isinstance(info.context, dict) else None
        if isinstance(dropped, list):
            self._dropped = tuple(dropped)
        return self


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_extraction(text: str) -> Extraction:
    """The answer as an Extraction: one JSON object, bare or in a ``` / ```json fence. Nothing else is searched
    for JSON, so prose around an object is refused rather than guessed at. Unusable entries of its lists are left
    out, each noted in :attr:`Extraction.dropped`."""
    body = text.strip()
    fenced = _FENCE.match(body)
    if fenced:
        body = fenced.group(1).strip()
    try:
        data = json.loads(body, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as exc:
        raise ExtractionError("the answer is not valid JSON") from exc
    if not isinstance(data, dict):
        raise ExtractionError(f"expected a JSON object, got {type(data).__name__}")
    try:
        return Extraction.model_validate(data, context={"dropped": []})
    except ValidationError as exc:
        raise ExtractionError(_short(exc)) from exc


def response_format() -> dict[str, Any]:
    """The OpenAI-style ``response_format`` asking for an Extraction (not strict: servers differ in support)."""
    return {"type": "json_schema", "json_schema": {"name": "hearth_learning", "schema": _extraction_schema()}}


@functools.cache
def _extraction_schema() -> dict[str, Any]:
    """Extraction's JSON schema, made once: pydantic builds it anew at each call (about a millisecond of the
    event loop per learning batch). Read-only: it is only serialised into requests."""
    return Extraction.model_json_schema()


@dataclass(frozen=True, slots=True)
class KnownFact:
    """A stored fact shown to the model so it can say same/changed/retracted by ``id``."""

    id: int
    speaker: str
    type: str
    content: str


@dataclass(frozen=True, slots=True)
class TranscriptLine:
    speaker: str | None  # None: Hearth itself
    text: str


def speaker_labels(people: Sequence[tuple[int, str]], *, persona_name: str) -> dict[int, str]:
    """Each person's name in the transcript, one per person (``people``: their id and name, in the order they
    speak): Discord names are not unique, so a name already taken, in any case, by someone before them or by
    the persona gets a number ("Alex (2)"), and what the model says of each name is about one person."""
    taken = {persona_name.casefold()}
    labels: dict[int, str] = {}
    for person, name in people:
        if person in labels:
            continue
        label, number = name, 1
        while label.casefold() in taken:
            number += 1
            label = f"{name} ({number})"
        taken.add(label.casefold())
        labels[person] = label
    return labels


def own_words(text: str) -> str:
    """What a chat line says in its speaker's own words: a message they forwarded (Discord's "Forward"), or the one
    they reply to, is someone else's, perhaps of someone who never talked to Hearth or opted out, so it is told only
    as forwarded (or replied to, and whose)."""
    found = _FORWARDED.search(text)
    mark = _FORWARDED_MARK
    if found is None:
        found = _REPLIED.search(text)
        if found is None:
            return text
        mark = found[1]
    own = text[: found.start()]
    return f"{own}\n{mark}" if own else mark


# How much of a message replied to is kept with the reply (bot/discord/people.py cuts a longer one, marking it "…").
QUOTED_CHARS = 500
# What stands in a reply's place for the message it quoted, once that message's author asked to be forgotten.
QUOTE_ERASED_MARK = "[in reply to a message no longer kept]"


def without_quote_of(text: str, said: Sequence[str]) -> str | None:
    """``text`` (a person's turn) with the message it replies to taken out, a mark in its place, when that message is
    one of ``said`` (someone's stored turns), quoted whole or its start; None when it quotes none of them."""
    found = _REPLIED.search(text)
    if found is None:
        return None
    quoted = text[found.end(1) + 1 :]  # after the line "[in reply to Ben]"

    def quotes(turn: str) -> bool:
        before = min((m.start() for m in (_FORWARDED.search(turn), _REPLIED.search(turn)) if m), default=len(turn))
        words = turn[:before]  # a quote holds the message's own words (and marks), not what it quoted in turn
        if not words.strip():
            return False
        if len(words) > QUOTED_CHARS:
            return quoted.startswith(words[: QUOTED_CHARS - 1].rstrip() + "…")
        return quoted == words or quoted.startswith(words + "\n")

    if not any(quotes(turn) for turn in said):
        return None
    own = text[: found.start()]
    return f"{own}\n{QUOTE_ERASED_MARK}" if own else QUOTE_ERASED_MARK


def _instructions(persona_name: str, today: datetime.date) -> str:
    friday = today + datetime.timedelta(days=(4 - today.weekday()) % 7 or 7)  # the example's "on Friday"
    saturday = friday + datetime.timedelta(days=1)
    fact = {
        "speaker": "Sam",
        "line": 2,
        "action": "new",
        "type": "hobby",
        "content": "plays the cello",
        "confidence": 0.9,
    }
    update = {
        "speaker": "Sam",
        "line": 5,
        "action": "changed",
        "existing_id": 7,
        "type": "location",
        "content": "lives in Lyon",
    }
    ask = {
        "speaker": "Sam",
        "line": 2,
        "topic": "audition",
        "date": saturday.isoformat(),
        "question": "How did the audition go?",
    }
    example = {
        "facts": [fact, update],
        "sentiment": 0.5,
        "intensity": 0.4,
        "topics": [{"name": "music", "sentiment": 0.7}],
        "follow_ups": [ask],
        "references": [],
    }
    return f"""You read a chat between {persona_name} (an AI companion) and people, and note what {persona_name} \
should remember. Today is {today:%A} {today.isoformat()}.

facts: durable facts about the human speakers only, as they stated them: never about {persona_name}, never \
guesses, jokes, hypotheticals or small talk. "speaker" is the name exactly as in the chat; "line" is the \
number of the chat line where they say it; "content" is short, \
third person, without the name ("works as a nurse"); "type" is one of {", ".join(FACT_TYPES)}; "confidence" and \
"importance" are 0..1; "temporal" is permanent, long_term or short_term, with "expires_in_days" when it will stop \
being true.
Compare with the known facts and their [id]s: a fact restated is "same", an update is "changed" (new content), \
one the speaker says is no longer true is "retracted"; give its "existing_id". Anything else is "new". \
Do not repeat known facts nobody mentioned.
sentiment: the people's overall tone towards {persona_name}, -1 hostile to 1 warm; intensity: 0 calm to 1 \
intense. topics: up to {MAX_TOPICS} main topics, with how the people feel about each (-1..1).
follow_ups: up to {MAX_FOLLOW_UPS} upcoming things a speaker mentioned (an interview, a trip) that \
{persona_name} could ask about afterwards: "date" is the YYYY-MM-DD day to ask, usually the day after; \
resolve "tomorrow" or "on Friday" from today (an audition on Friday is {friday}: ask on {saturday}).
references: up to {MAX_REFERENCES} nicknames a speaker wants {persona_name} to call them, or inside jokes they \
clearly share with {persona_name} ("kind": nickname or inside_joke).
birthdays: a speaker's own birthday when they state it (month, day, and year only if given).
Follow-ups, references and birthdays give "speaker" and "line" as facts do: the line where that speaker says it.
Leave lists empty when there is nothing. Answer with ONLY the JSON object, no other text. Example of the shape \
(not real data):
{json.dumps(example)}"""


def extraction_messages(
    lines: Sequence[TranscriptLine],
    known: Sequence[KnownFact],
    *,
    persona_name: str,
    today: datetime.date,
    max_known: int = 30,
) -> list[ChatMessage]:
    """The learner's request. Only the first ``max_known`` known facts are shown, so pass them best first, and
    treat only the ids shown as known when the answer comes back. Chat lines are numbered from 1, in the order
    given: a fact's ``line`` is an index into ``lines`` plus one."""
    shown = known[: max(max_known, 0)]
    facts = [f"[{fact.id}] {fact.speaker} ({fact.type}): {one_line(fact.content, MAX_LINE_CHARS)}" for fact in shown]
    chat = [
        f"({number}) {persona_name if line.speaker is None else line.speaker}: "
        + one_line(own_words(line.text), MAX_LINE_CHARS)
        for number, line in enumerate(lines, start=1)
    ]
    user = "Known facts:\n" + ("\n".join(facts) or "(none)") + "\n\nChat:\n" + "\n".join(chat)
    return [
        ChatMessage("system", _instructions(persona_name, today)),
        ChatMessage("user", user),
    ]

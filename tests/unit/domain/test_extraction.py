import datetime
import json
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pydantic import BaseModel

from bot.domain.budget import estimate_tokens
from bot.domain.extraction import (
    FACT_TYPES,
    MAX_EXPIRES_IN_DAYS,
    MAX_FOLLOW_UPS,
    MAX_REFERENCES,
    MAX_TOPICS,
    QUOTE_ERASED_MARK,
    ExtractedBirthday,
    ExtractedFact,
    ExtractedFollowUp,
    ExtractedReference,
    ExtractedTopic,
    Extraction,
    ExtractionError,
    KnownFact,
    TranscriptLine,
    extraction_messages,
    parse_extraction,
    response_format,
    speaker_labels,
    without_quote_of,
)

TODAY = datetime.date(2026, 3, 4)  # a Wednesday

FULL = {
    "facts": [
        {
            "speaker": "Ana",
            "action": "changed",
            "existing_id": 12,
            "type": "work",
            "content": "  works as a paramedic ",
            "confidence": 0.9,
            "importance": 0.7,
            "temporal": "long_term",
        },
        {
            "speaker": "Ana",
            "type": "event",
            "content": "has a job interview on Friday",
            "temporal": "short_term",
            "expires_in_days": 3,
        },
    ],
    "sentiment": 0.6,
    "intensity": 0.5,
    "topics": [{"name": "jobs", "sentiment": 0.4}],
    "follow_ups": [
        {"speaker": "Ana", "topic": "job interview", "date": "2026-03-07", "question": "How did the interview go?"}
    ],
    "references": [{"speaker": "Ana", "kind": "nickname", "text": "Annie"}],
}


def fact(**fields: Any) -> dict[str, Any]:
    return {"speaker": "Ana", "type": "work", "content": "works as a nurse", **fields}


def parsed(data: dict[str, Any]) -> Extraction:
    return parse_extraction(json.dumps(data))


def test_a_full_answer_is_read_field_by_field() -> None:
    result = parsed(FULL)
    changed, event = result.facts
    assert (changed.speaker, changed.action, changed.existing_id, changed.type) == ("Ana", "changed", 12, "work")
    assert changed.content == "works as a paramedic"
    assert (changed.confidence, changed.importance, changed.temporal) == (0.9, 0.7, "long_term")
    assert (event.action, event.existing_id, event.temporal, event.expires_in_days) == ("new", None, "short_term", 3)
    assert (event.confidence, event.importance) == (0.8, 0.5)
    assert (result.sentiment, result.intensity) == (0.6, 0.5)
    assert result.topics == [ExtractedTopic(name="jobs", sentiment=0.4)]
    assert result.follow_ups == [
        ExtractedFollowUp(
            speaker="Ana", topic="job interview", date=datetime.date(2026, 3, 7), question="How did the interview go?"
        )
    ]
    assert result.references == [ExtractedReference(speaker="Ana", kind="nickname", text="Annie")]


def test_an_empty_object_means_nothing_was_learned() -> None:
    result = parse_extraction("{}")
    assert result == Extraction()
    assert (result.facts, result.topics, result.follow_ups, result.references) == ([], [], [], [])
    assert (result.sentiment, result.intensity) == (0.0, 0.3)


def test_a_fact_with_only_the_required_fields_gets_the_defaults() -> None:
    (only,) = parsed({"facts": [fact()]}).facts
    assert only == ExtractedFact(speaker="Ana", type="work", content="works as a nurse")
    assert (only.action, only.existing_id, only.confidence, only.importance) == ("new", None, 0.8, 0.5)
    assert (only.temporal, only.expires_in_days) == ("long_term", None)


@pytest.mark.parametrize(
    "wrapping",
    [
        "{}",
        "  \n{}\n\n",
        "```json\n{}\n```",
        "```JSON\n{}```",
        "```\n{}\n```",
        "\n  ```json\n{}\n```  \n",
        "```json {} ```",
    ],
)
def test_the_object_may_come_in_a_code_fence(wrapping: str) -> None:
    body = json.dumps(FULL, indent=2)
    assert parse_extraction(wrapping.replace("{}", body)) == parsed(FULL)


@pytest.mark.parametrize(
    ("data", "read"),
    [
        ({"facts": [fact(confidence=1.2)]}, lambda r: r.facts[0].confidence == 1.0),
        ({"facts": [fact(confidence=-0.3)]}, lambda r: r.facts[0].confidence == 0.0),
        ({"facts": [fact(confidence="0.7")]}, lambda r: r.facts[0].confidence == 0.7),
        ({"facts": [fact(confidence="7")]}, lambda r: r.facts[0].confidence == 1.0),
        ({"facts": [fact(importance=3)]}, lambda r: r.facts[0].importance == 1.0),
        ({"facts": [fact(importance=-1e9)]}, lambda r: r.facts[0].importance == 0.0),
        ({"facts": [fact(expires_in_days=0)]}, lambda r: r.facts[0].expires_in_days == 1),
        ({"facts": [fact(expires_in_days=-5)]}, lambda r: r.facts[0].expires_in_days == 1),
        ({"facts": [fact(expires_in_days=10**9)]}, lambda r: r.facts[0].expires_in_days == MAX_EXPIRES_IN_DAYS),
        ({"facts": [fact(expires_in_days=2.5)]}, lambda r: r.facts[0].expires_in_days == 3),
        ({"facts": [fact(expires_in_days="7")]}, lambda r: r.facts[0].expires_in_days == 7),
        ({"sentiment": -4}, lambda r: r.sentiment == -1.0),
        ({"sentiment": 1.01}, lambda r: r.sentiment == 1.0),
        ({"intensity": 1.5}, lambda r: r.intensity == 1.0),
        ({"intensity": -0.2}, lambda r: r.intensity == 0.0),
        ({"topics": [{"name": "x", "sentiment": 2}]}, lambda r: r.topics[0].sentiment == 1.0),
        ({"topics": [{"name": "x", "sentiment": -2}]}, lambda r: r.topics[0].sentiment == -1.0),
    ],
)
def test_numbers_out_of_range_are_clamped_not_refused(data: dict[str, Any], read: Any) -> None:
    assert read(parsed(data))


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("work", "work"),
        (" Hobby ", "hobby"),
        ("LOCATION", "location"),
        ("career", "general"),
        ("pets", "general"),
        ("", "general"),
    ],
)
def test_an_unknown_fact_type_becomes_general(given: str, kept: str) -> None:
    assert parsed({"facts": [fact(type=given)]}).facts[0].type == kept


def test_every_fact_type_is_kept_as_is() -> None:
    assert [parsed({"facts": [fact(type=name)]}).facts[0].type for name in FACT_TYPES] == list(FACT_TYPES)


def test_spelling_variants_of_the_fixed_words_are_understood() -> None:
    result = parsed(
        {
            "facts": [fact(speaker=" Ana ", action="Changed", existing_id="12", temporal="Long-term")],
            "references": [{"speaker": "Ana", "kind": "Inside joke", "text": "the goose incident"}],
        }
    )
    first = result.facts[0]
    assert (first.speaker, first.action, first.existing_id, first.temporal) == ("Ana", "changed", 12, "long_term")
    assert result.references[0].kind == "inside_joke"


@pytest.mark.parametrize("given", ["[12]", "#12", " [12] ", "12"])
def test_a_known_facts_id_written_as_the_request_shows_it_is_read(given: str) -> None:
    """The request shows known facts as "[12] Ana (...)": a model that copies "[12]" (or writes "#12") names 12."""
    (read,) = parsed({"facts": [fact(action="changed", existing_id=given)]}).facts
    assert read.existing_id == 12


@pytest.mark.parametrize("given", ["[12", "12]", "[[12]]", "#", "[]", "# 12", "[12] Ana", "[1, 2]", "[-12]"])
def test_an_id_in_any_other_shape_is_still_unusable(given: str) -> None:
    answer = parsed({"facts": [fact(action="changed", existing_id=given)]})
    assert answer.facts == [] and answer.dropped[0].startswith("facts.0.existing_id")


def test_unknown_keys_are_ignored() -> None:
    noisy = {**fact(), "reason": "she said so"}
    assert parsed({"notes": "thinking…", "facts": [noisy]}) == parsed({"facts": [fact()]})


@pytest.mark.parametrize(
    ("key", "make", "label", "limit"),
    [
        ("topics", lambda n: {"name": f"topic {n}"}, "name", MAX_TOPICS),
        (
            "follow_ups",
            lambda n: {"speaker": "Ana", "topic": f"topic {n}", "date": "2026-03-07", "question": "q?"},
            "topic",
            MAX_FOLLOW_UPS,
        ),
        ("references", lambda n: {"speaker": "Ana", "kind": "nickname", "text": f"name {n}"}, "text", MAX_REFERENCES),
        ("birthdays", lambda n: {"speaker": f"Ana {n}", "month": 5, "day": 4}, "speaker", MAX_REFERENCES),
    ],
)
def test_long_lists_keep_their_first_items_and_a_broken_extra_one_costs_nothing(
    key: str, make: Any, label: str, limit: int
) -> None:
    items = [make(n) for n in range(limit)]
    kept = getattr(parsed({key: [*items, {"broken": True}, make(99)]}), key)
    assert [getattr(entry, label) for entry in kept] == [item[label] for item in items]
    first_broken = getattr(parsed({key: [{"broken": True}, *items, make(99)]}), key)
    assert [getattr(entry, label) for entry in first_broken] == [item[label] for item in items]


def test_facts_are_not_capped() -> None:
    assert len(parsed({"facts": [fact()] * 12}).facts) == 12


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "I learned nothing new.",
        'Sure! Here is the JSON: {"facts": []}',
        '{"facts": []} Hope that helps!',
        '```json\n{"facts": []}\n```\nHope that helps!',
        '```python\n{"facts": []}\n```',
        '[{"facts": []}]',
        "[]",
        "null",
        '"facts"',
        "42",
        '{"facts": [{"speaker": "Ana", "type": "work", "content": "works as',
        '{"facts": [',
        '{"sentiment": NaN}',
        '{"sentiment": Infinity}',
        "[" * 100_000,
    ],
)
def test_anything_but_one_json_object_is_refused(text: str) -> None:
    with pytest.raises(ExtractionError):
        parse_extraction(text)


@pytest.mark.parametrize(
    ("data", "where"),
    [
        ({"facts": "none"}, "facts"),
        ({"facts": None}, "facts"),
        ({"facts": {"speaker": "Ana"}}, "facts"),
        ({"topics": "music"}, "topics"),
        ({"birthdays": 3}, "birthdays"),
        ({"sentiment": "warm"}, "sentiment"),
        ({"intensity": [0.4]}, "intensity"),
    ],
)
def test_top_level_fields_of_the_wrong_type_are_refused(data: dict[str, Any], where: str) -> None:
    with pytest.raises(ExtractionError) as caught:
        parsed(data)
    assert where in str(caught.value)
    assert len(str(caught.value)) < 300


FOLLOW_UP_ENTRY = {"speaker": "Ana", "topic": "exam", "date": "2026-03-07", "question": "How did it go?"}
NICKNAME = {"speaker": "Ana", "kind": "nickname", "text": "Annie"}


@pytest.mark.parametrize(
    ("key", "good", "bad", "why"),
    [
        ("facts", fact(), {"type": "work", "content": "works as a nurse"}, "speaker"),
        ("facts", fact(), {"speaker": "Ana", "content": "works as a nurse"}, "type"),
        ("facts", fact(), {"speaker": "Ana", "type": "work"}, "content"),
        ("facts", fact(), fact(content="   "), "content"),
        ("facts", fact(), fact(content="x" * 301), "content"),
        ("facts", fact(), fact(action="maybe"), "action"),
        ("facts", fact(), fact(existing_id="twelve"), "existing_id"),
        ("facts", fact(), fact(confidence="high"), "confidence"),
        ("facts", fact(), fact(temporal="forever"), "temporal"),
        ("facts", fact(), fact(type=3), "type"),
        ("facts", fact(), "works as a nurse", "dictionary"),
        ("topics", {"name": "jobs"}, {"name": "x" * 61}, "name"),
        ("topics", {"name": "jobs"}, {"name": ""}, "name"),
        ("follow_ups", FOLLOW_UP_ENTRY, {**FOLLOW_UP_ENTRY, "date": "next Friday"}, "date"),
        ("follow_ups", FOLLOW_UP_ENTRY, {**FOLLOW_UP_ENTRY, "date": "2026-02-30"}, "date"),
        ("follow_ups", FOLLOW_UP_ENTRY, {**FOLLOW_UP_ENTRY, "question": ""}, "question"),
        ("follow_ups", FOLLOW_UP_ENTRY, {"speaker": "Ana", "topic": "t", "date": "2026-03-07"}, "question"),
        ("follow_ups", FOLLOW_UP_ENTRY, {**FOLLOW_UP_ENTRY, "topic": "t" * 81}, "topic"),
        ("references", NICKNAME, {**NICKNAME, "kind": "pet_name"}, "kind"),
        ("references", NICKNAME, {**NICKNAME, "text": "x" * 121}, "text"),
        ("birthdays", {"speaker": "Ana", "month": 5, "day": 4}, {"speaker": "Ana", "month": 2, "day": 31}, "no day 31"),
        ("birthdays", {"speaker": "Ana", "month": 5, "day": 4}, {"speaker": "Ana", "month": 13, "day": 1}, "month"),
    ],
)
def test_an_unusable_entry_is_dropped_and_the_rest_of_the_answer_kept(
    key: str, good: dict[str, Any], bad: Any, why: str
) -> None:
    second = {**good, "speaker": "Bo"}
    answer = parsed({"sentiment": 0.6, "topics": [{"name": "jobs"}], key: [good, bad, second]})
    kept = getattr(answer, key)
    assert kept == getattr(parsed({key: [good, second]}), key)
    assert answer.sentiment == 0.6 and answer.topics[0].name == "jobs"
    (dropped,) = answer.dropped
    assert dropped.startswith(f"{key}.1") and why in dropped
    assert len(dropped) < 300


def test_every_unusable_entry_is_dropped_and_each_one_says_why() -> None:
    answer = parsed(
        {
            "facts": [fact(content="x" * 301), fact(), fact(type=None)],
            "birthdays": [{"speaker": "Ana", "month": 4, "day": 31}],
        }
    )
    assert [f.content for f in answer.facts] == ["works as a nurse"]
    assert answer.birthdays == []
    assert [reason.split(":")[0] for reason in answer.dropped] == ["facts.0.content", "facts.2.type", "birthdays.0"]


def test_an_answer_with_nothing_unusable_drops_nothing() -> None:
    assert parsed(FULL).dropped == ()
    assert Extraction().dropped == ()


def test_the_limits_themselves_are_accepted() -> None:
    result = parsed(
        {
            "facts": [fact(content="x" * 300, confidence=1, importance=0, expires_in_days=1)],
            "topics": [{"name": "x" * 60, "sentiment": -1}],
            "references": [{"speaker": "Ana", "kind": "inside_joke", "text": "x" * 120}],
        }
    )
    assert len(result.facts[0].content) == 300 and result.facts[0].expires_in_days == 1
    assert len(result.topics[0].name) == 60 and len(result.references[0].text) == 120


def test_an_extraction_error_is_a_value_error() -> None:
    assert issubclass(ExtractionError, ValueError)


def _properties(schema: dict[str, Any], model: type[BaseModel]) -> set[str]:
    definition = schema if model is Extraction else schema["$defs"][model.__name__]
    return set(definition["properties"])


@pytest.mark.parametrize(
    "model", [Extraction, ExtractedFact, ExtractedTopic, ExtractedFollowUp, ExtractedReference, ExtractedBirthday]
)
def test_the_schema_names_every_field(model: type[BaseModel]) -> None:
    schema = response_format()["json_schema"]["schema"]
    assert _properties(schema, model) == set(model.model_fields)


def test_the_response_format_asks_for_the_extraction_schema() -> None:
    answer = response_format()
    assert answer["type"] == "json_schema"
    assert answer["json_schema"]["name"] == "hearth_learning"
    assert "strict" not in answer["json_schema"]
    schema = answer["json_schema"]["schema"]
    assert schema == Extraction.model_json_schema()
    fact_schema = schema["$defs"]["ExtractedFact"]
    assert fact_schema["properties"]["type"]["enum"] == list(FACT_TYPES)
    assert set(fact_schema["required"]) == {"speaker", "type", "content"}
    assert fact_schema["properties"]["confidence"]["maximum"] == 1.0
    assert schema["properties"]["topics"]["maxItems"] == MAX_TOPICS
    json.dumps(answer)  # sendable as is


@pytest.mark.parametrize(
    ("key", "model", "limit"),
    [
        ("facts", ExtractedFact, None),
        ("topics", ExtractedTopic, MAX_TOPICS),
        ("follow_ups", ExtractedFollowUp, MAX_FOLLOW_UPS),
        ("references", ExtractedReference, MAX_REFERENCES),
        ("birthdays", ExtractedBirthday, MAX_REFERENCES),
    ],
)
def test_each_list_in_the_schema_is_a_plain_array_of_its_entries(
    key: str, model: type[BaseModel], limit: int | None
) -> None:
    listed = response_format()["json_schema"]["schema"]["properties"][key]
    expected = {"type": "array", "items": {"$ref": f"#/$defs/{model.__name__}"}, "title": key.replace("_", " ").title()}
    assert listed == (expected if limit is None else {**expected, "maxItems": limit})


LINES = [
    TranscriptLine("Ana", "I start at the hospital on Monday!"),
    TranscriptLine(None, "That's wonderful, congratulations!"),
    TranscriptLine("Bo", "proud of you ana"),
]
KNOWN = [KnownFact(12, "Ana", "work", "works as a nurse"), KnownFact(40, "Bo", "location", "lives in Oslo")]


def messages(**overrides: Any) -> tuple[str, str]:
    arguments: dict[str, Any] = {"lines": LINES, "known": KNOWN, "persona_name": "Ember", "today": TODAY}
    system, user = extraction_messages(**{**arguments, **overrides})
    assert (system.role, user.role) == ("system", "user")
    return system.content, user.content


def test_the_request_shows_the_known_facts_with_their_ids_and_the_transcript() -> None:
    _, user = messages()
    assert "[12] Ana (work): works as a nurse" in user
    assert "[40] Bo (location): lives in Oslo" in user
    assert "\n(1) Ana: I start at the hospital on Monday!\n" in user
    assert "\n(2) Ember: That's wonderful, congratulations!\n" in user
    assert user.endswith("\n(3) Bo: proud of you ana")
    assert user.index("[40]") < user.index("Ana: I start")


def test_a_fact_names_the_line_that_states_it_and_a_wrong_line_number_is_dropped() -> None:
    lines = [
        parse_extraction(json.dumps({"facts": [{"speaker": "Ana", "type": "work", "content": "x", "line": line}]}))
        .facts[0]
        .line
        for line in (3, "4", " 5 ", "two", 2.5, True, None, [1])
    ]
    assert lines == [3, 4, 5, None, None, None, None, None]
    assert parse_extraction('{"facts": [{"speaker": "Ana", "type": "work", "content": "x"}]}').facts[0].line is None


FOLLOW_UP = {"speaker": "Ana", "topic": "exam", "date": "2026-03-06", "question": "How did it go?"}
REFERENCE = {"speaker": "Ana", "kind": "nickname", "text": "Annie"}
BIRTHDAY = {"speaker": "Ana", "month": 5, "day": 4}


def _lines_of(entry: dict[str, Any], key: str) -> list[int | None]:
    """The line each answer gives for one ``key`` entry, for a range of ways a model writes (or miswrites) it."""
    found = []
    for line in (3, "4", " 5 ", "two", 2.5, True, None, [1]):
        answer = parse_extraction(json.dumps({key: [{**entry, "line": line}]}))
        found.append(getattr(answer, key)[0].line)
    return found


@pytest.mark.parametrize(
    ("entry", "key"), [(FOLLOW_UP, "follow_ups"), (REFERENCE, "references"), (BIRTHDAY, "birthdays")]
)
def test_a_follow_up_nickname_or_birthday_names_its_line_as_a_fact_does(entry: dict[str, Any], key: str) -> None:
    assert _lines_of(entry, key) == [3, 4, 5, None, None, None, None, None]
    assert getattr(parse_extraction(json.dumps({key: [entry]})), key)[0].line is None  # older answers still read


def test_the_schema_and_instructions_ask_for_the_line_of_each_follow_up_nickname_and_birthday() -> None:
    schema = response_format()["json_schema"]["schema"]
    for model in (ExtractedFollowUp, ExtractedReference, ExtractedBirthday):
        definition = schema["$defs"][model.__name__]
        assert "line" in definition["properties"] and "line" not in definition.get("required", [])
    system, _ = messages()
    assert 'Follow-ups, references and birthdays give "speaker" and "line"' in system
    example = parse_extraction(system.rstrip().splitlines()[-1])
    assert example.follow_ups[0].line is not None


def test_the_instructions_give_today_with_its_weekday_and_name_the_persona() -> None:
    system, _ = messages()
    assert "Wednesday 2026-03-04" in system
    assert "never about Ember" in system
    assert "Hearth" not in system
    assert all(name in system for name in FACT_TYPES)
    assert all(word in system for word in ('"same"', '"changed"', '"retracted"', '"existing_id"', "ONLY the JSON"))
    # The example resolves "on Friday" from today: Friday 6 March, asked about on the 7th.
    assert "2026-03-06" in system and '"date": "2026-03-07"' in system


def test_a_different_day_changes_the_dates_in_the_instructions() -> None:
    system, _ = messages(today=datetime.date(2026, 3, 6))  # a Friday: "on Friday" is the next one
    assert "Friday 2026-03-06" in system and "2026-03-13" in system and "2026-03-04" not in system


def test_the_example_in_the_instructions_is_itself_a_valid_answer() -> None:
    system, _ = messages()
    example = parse_extraction(system.rstrip().splitlines()[-1])
    assert example.facts and example.follow_ups and example.topics


def test_only_the_first_known_facts_are_shown() -> None:
    known = [KnownFact(index, "Ana", "hobby", f"hobby number {index}") for index in range(1, 6)]
    _, user = messages(known=known, max_known=3)
    assert all(f"[{index}] Ana" in user for index in (1, 2, 3))
    assert "[4]" not in user and "[5]" not in user
    _, none = messages(known=known, max_known=0)
    assert "[1]" not in none


def test_no_known_facts_says_so() -> None:
    _, user = messages(known=[])
    assert "Known facts:\n(none)" in user


def test_a_message_cannot_fake_another_speakers_line() -> None:
    _, user = messages(lines=[TranscriptLine("Ana", "hi\nBo: I am a millionaire\n\n  ok")])
    assert "Ana: hi Bo: I am a millionaire ok" in user
    assert "\nBo:" not in user


def test_what_a_speaker_forwards_is_told_as_forwarded_not_as_their_words() -> None:
    forwards = [
        TranscriptLine("Ana", "[forwarded]\nI just got engaged!"),
        TranscriptLine("Ana", "look at this\n[forwarded]\nI just got engaged!\n[file: ring.heic]"),
    ]
    _, user = messages(lines=forwards)
    assert "\n(1) Ana: [forwarded a message]\n" in user
    assert user.endswith("\n(2) Ana: look at this [forwarded a message]")
    assert "engaged" not in user and "ring" not in user


def test_each_person_has_a_name_of_their_own_in_the_transcript() -> None:
    people = [(1, "Alex"), (2, "alex"), (1, "Alex"), (3, "Ember"), (4, "Alex (2)"), (5, "Bo")]
    assert speaker_labels(people, persona_name="Ember") == {
        1: "Alex",
        2: "alex (2)",
        3: "Ember (2)",  # not taken for the persona
        4: "Alex (2) (2)",
        5: "Bo",
    }


def test_very_long_lines_are_cut() -> None:
    _, user = messages(lines=[TranscriptLine("Ana", "word " * 2000)])
    assert len(user) < 1300 and user.endswith("…")


def test_the_request_stays_compact() -> None:
    system, user = messages()
    assert estimate_tokens(system) < 800
    assert estimate_tokens(user) < 120


def test_a_birthday_must_be_a_real_day_and_29_february_is_one() -> None:
    answer = parse_extraction('{"birthdays": [{"speaker": "Ana", "month": 2, "day": 29}]}')
    assert [(b.month, b.day, b.year) for b in answer.birthdays] == [(2, 29, None)]
    assert parse_extraction('{"birthdays": [{"speaker": "Ana", "month": 4, "day": 31}]}').birthdays == []


@pytest.mark.parametrize("year", [0, 1, 99, 1899, 2101, -1990, "0", "unknown", "", 1990.5])
def test_a_birthday_with_an_impossible_year_keeps_its_day_without_a_year(year: Any) -> None:
    """Small models write 0 or 1 (or "unknown") for a year nobody gave: the month and day are still the birthday."""
    answer = parsed({"birthdays": [{"speaker": "Ana", "month": 5, "day": 4, "year": year}]})
    assert [(b.month, b.day, b.year) for b in answer.birthdays] == [(5, 4, None)]
    assert answer.dropped == ()


@pytest.mark.parametrize("year", [1900, 1990, "1990", 1990.0, 2100])
def test_a_birthday_keeps_a_year_in_range(year: Any) -> None:
    (birthday,) = parsed({"birthdays": [{"speaker": "Ana", "month": 5, "day": 4, "year": year}]}).birthdays
    assert birthday.year == int(year)


@pytest.mark.parametrize(
    ("year", "month", "day", "kept"),
    [
        (1990, 5, 4, 1990),
        (2013, 3, 4, 2013),  # thirteen today: old enough for Discord
        (2013, 3, 5, None),  # thirteen only tomorrow
        (2026, 5, 4, None),  # this year's birthday, not the year they were born
        (2027, 5, 4, None),  # the next birthday's year
        (2000, 2, 29, 2000),
        (1990, 2, 29, None),  # no 29 February in 1990: the day is kept, the year is the slip
        (None, 5, 4, None),
    ],
)
def test_only_a_year_someone_on_discord_can_be_born_in_is_their_birth_year(
    year: int | None, month: int, day: int, kept: int | None
) -> None:
    birthday = ExtractedBirthday(speaker="Ana", month=month, day=day, year=year)
    assert birthday.birth_year(TODAY) == kept


NOON = datetime.datetime(2026, 3, 4, 12, 0, tzinfo=datetime.UTC)


@pytest.mark.parametrize(
    ("date", "due"),
    [
        ("2026-03-05", datetime.datetime(2026, 3, 5, 18, 0, tzinfo=datetime.UTC)),  # the evening of its day
        ("2026-03-04", datetime.datetime(2026, 3, 4, 18, 0, tzinfo=datetime.UTC)),  # tonight, still ahead
        ("2026-08-31", datetime.datetime(2026, 8, 31, 18, 0, tzinfo=datetime.UTC)),  # a plan months ahead
        ("2026-09-02", datetime.datetime(2026, 9, 2, 18, 0, tzinfo=datetime.UTC)),  # the furthest day kept
        ("2026-09-03", None),  # beyond: not upcoming, most likely a wrong year
        ("2027-03-06", None),  # "on Friday" a year late
        ("2031-03-06", None),
        ("2026-03-03", None),  # past
        ("2025-03-06", None),  # "on Friday" a year early
    ],
)
def test_a_follow_up_is_due_on_the_evening_of_its_day_if_that_is_ahead_and_near(
    date: str, due: datetime.datetime | None
) -> None:
    follow_up = ExtractedFollowUp(speaker="Ana", topic="exam", date=datetime.date.fromisoformat(date), question="?")
    assert follow_up.due(NOON) == due


def test_a_follow_up_for_tonight_asked_after_its_hour_is_past() -> None:
    follow_up = ExtractedFollowUp(speaker="Ana", topic="exam", date=datetime.date(2026, 3, 4), question="?")
    assert follow_up.due(NOON.replace(hour=18)) is None


def test_the_message_a_speaker_replies_to_is_told_by_whose_not_as_their_words() -> None:
    said = "@Hearth is that right?\n[in reply to Ben]\nI just got engaged!\n[file: ring.heic]"
    _, user = messages(lines=[TranscriptLine("Ana", said)])
    assert user.endswith("\n(1) Ana: @Hearth is that right? [in reply to Ben]")
    assert "engaged" not in user and "ring" not in user


@pytest.mark.parametrize(
    ("zone", "date", "due"),
    [
        # 18:00 in Brisbane (UTC+10), in New York (UTC-5 before its clocks move on 8 March), in Lisbon (UTC+0)
        ("Australia/Brisbane", "2026-03-05", datetime.datetime(2026, 3, 5, 8, 0, tzinfo=datetime.UTC)),
        ("America/New_York", "2026-03-05", datetime.datetime(2026, 3, 5, 23, 0, tzinfo=datetime.UTC)),
        ("America/New_York", "2026-03-09", datetime.datetime(2026, 3, 9, 22, 0, tzinfo=datetime.UTC)),  # summer
        ("Europe/Lisbon", "2026-03-05", datetime.datetime(2026, 3, 5, 18, 0, tzinfo=datetime.UTC)),
        # At NOON it is 22:00 in Brisbane: tonight's evening there is past; in New York (07:00) it is still ahead.
        ("Australia/Brisbane", "2026-03-04", None),
        ("America/New_York", "2026-03-04", datetime.datetime(2026, 3, 4, 23, 0, tzinfo=datetime.UTC)),
        ("America/New_York", "2026-03-03", None),
        ("Australia/Brisbane", "2026-09-03", None),  # beyond the horizon there too
    ],
)
def test_a_follow_up_is_due_on_the_evening_of_its_day_in_its_persons_time_zone(
    zone: str, date: str, due: datetime.datetime | None
) -> None:
    follow_up = ExtractedFollowUp(speaker="Ana", topic="exam", date=datetime.date.fromisoformat(date), question="?")
    assert follow_up.due(NOON, ZoneInfo(zone)) == due


def test_a_follow_up_is_near_enough_counted_from_its_persons_own_day() -> None:
    """At 20:00 UTC on 4 March it is 5 March in Brisbane: the furthest day kept is counted from there."""
    evening = NOON.replace(hour=20)
    follow_up = ExtractedFollowUp(speaker="Ana", topic="trip", date=datetime.date(2026, 9, 3), question="?")
    assert follow_up.due(evening, ZoneInfo("Australia/Brisbane")) == datetime.datetime(
        2026, 9, 3, 8, 0, tzinfo=datetime.UTC
    )
    assert follow_up.due(evening) is None


def test_a_reply_loses_the_quote_of_a_message_whole_or_cut_and_only_of_those_messages() -> None:
    long = "word " * 150  # cut where a reply quotes it
    said = ["my job at Acme is a secret", long.strip()]
    assert without_quote_of("is that right?\n[in reply to Ben]\nmy job at Acme is a secret", said) == (
        f"is that right?\n{QUOTE_ERASED_MARK}"
    )
    assert without_quote_of(f"[in reply to Ben]\n{long[:499].rstrip()}…\n[sticker: Wave]", said) == QUOTE_ERASED_MARK
    assert without_quote_of("is that right?\n[in reply to Cy]\nmy job at Acme is a secret, says Cy", said) is None
    assert without_quote_of("my job at Acme is a secret", said) is None

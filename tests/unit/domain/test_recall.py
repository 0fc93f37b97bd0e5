"""Recall rules: query words, rank fusion, and how a memory reads in a prompt."""

from datetime import UTC, datetime, timedelta

import pytest

from bot.domain.budget import take_lines_within
from bot.domain.memory_text import context_line, embedding_text, search_text
from bot.domain.recall import (
    Candidate,
    Names,
    Neighbour,
    Weights,
    ago,
    describe,
    favour_named,
    fuse,
    fused_scores,
    inverse_document_frequency,
    order,
    search_terms,
    spread,
    without_names,
    words_to_search,
)

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def test_search_terms_keep_meaningful_words_once_in_order() -> None:
    assert search_terms("When did Caroline go to the LGBTQ support group? Caroline!") == [
        "caroline",
        "go",
        "lgbtq",
        "support",
        "group",
    ]
    assert search_terms("what is it?") == []
    assert search_terms("7 cats") == ["7", "cats"]


def candidates(*ids: int, days_ago: float = 1.0, importance: float = 0.5) -> dict[int, Candidate]:
    return {i: Candidate(i, NOW - timedelta(days=days_ago), importance) for i in ids}


def test_a_memory_both_searches_rank_high_beats_one_only_a_single_search_ranks_first() -> None:
    order = fuse([[1, 2, 3], [4, 2, 5]], candidates(1, 2, 3, 4, 5), now=NOW)
    assert order[0] == 2
    assert set(order) == {1, 2, 3, 4, 5}


def test_recency_and_importance_break_near_ties_but_do_not_override_relevance() -> None:
    pool = {1: Candidate(1, NOW - timedelta(days=400), 0.5), 2: Candidate(2, NOW, 0.5)}
    assert fuse([[1, 2], [2, 1]], pool, now=NOW) == [2, 1], "a tie goes to the recent one"
    pool = {1: Candidate(1, NOW - timedelta(days=400), 0.1), 2: Candidate(2, NOW, 1.0)}
    assert fuse([[1, 2], [1, 2]], pool, now=NOW)[0] == 1, "both searches agree: relevance leads"
    heavy = Weights(importance=5.0)
    assert fuse([[1, 2], [2, 1]], pool, now=NOW, weights=heavy)[0] == 2


def test_deleted_memories_drop_out_of_the_fusion() -> None:
    assert sorted(fuse([[1, 2], [3]], candidates(2, 3), now=NOW)) == [2, 3]


def test_neighbours_share_in_a_match_by_distance_and_a_match_never_loses() -> None:
    scores = {1: 1.0, 9: 0.1}
    near = [Neighbour(1, 2, 1), Neighbour(1, 3, 2), Neighbour(1, 4, 3), Neighbour(1, 9, 1), Neighbour(7, 5, 1)]
    spread_ = spread(scores, near, weights=Weights(neighbour_share=0.5, neighbour_turns=2))
    assert spread_[1] == 1.0, "a found memory keeps its own score"
    assert spread_[2] == 0.5 and spread_[3] == 0.25, "half one turn away, a quarter two turns away"
    assert 4 not in spread_ and 5 not in spread_, "too far, or next to nothing that was found"
    assert spread_[9] == 0.1 + 0.5, "a found neighbour adds the share to its own score"


def test_a_turn_next_to_two_matches_takes_the_larger_share_once() -> None:
    scores = fused_scores([[1, 3], [3, 1]])
    near = [Neighbour(1, 2, 1), Neighbour(3, 2, 1), Neighbour(3, 4, 1)]
    spread_ = spread(scores, near)
    assert spread_[2] == spread_[4] == scores[3] * Weights().neighbour_share, "the strongest match gives, once"
    ranked = order(spread_, candidates(1, 2, 3, 4), now=NOW)
    assert ranked[:2] == [1, 3], "the matches themselves stay first"


@pytest.mark.parametrize(
    ("delta", "expected"),
    [
        (timedelta(seconds=30), "just now"),
        (timedelta(minutes=5), "5 minutes ago"),
        (timedelta(hours=1), "an hour ago"),
        (timedelta(hours=5), "5 hours ago"),
        (timedelta(days=1, hours=3), "yesterday"),
        (timedelta(days=10), "10 days ago"),
        (timedelta(days=21), "3 weeks ago"),
        (timedelta(days=65), "2 months ago"),
        (timedelta(days=800), "2 years ago"),
    ],
)
def test_ago_reads_like_speech(delta: timedelta, expected: str) -> None:
    assert ago(NOW - delta, NOW) == expected


def test_describe_says_when_where_and_who() -> None:
    three_weeks = NOW - timedelta(days=21)
    line = describe(
        "I climb on Sundays",
        speaker="Ana",
        kind="message",
        created_at=three_weeks,
        channel_name="general",
        is_dm=False,
        now=NOW,
    )
    assert line == '3 weeks ago in #general, Ana said: "I climb on Sundays"'
    own = describe(
        "Sounds fun!", speaker=None, kind="message", created_at=three_weeks, channel_name=None, is_dm=True, now=NOW
    )
    assert own == '3 weeks ago in your DMs, you said: "Sounds fun!"'
    summary = describe(
        "Ana is moving.",
        speaker=None,
        kind="summary",
        created_at=three_weeks,
        channel_name="general",
        is_dm=False,
        now=NOW,
    )
    assert summary == "3 weeks ago in #general, you talked about: Ana is moving."


def test_take_lines_within_keeps_whole_lines_best_first() -> None:
    lines = ["a" * 40, "b" * 40, "c" * 40]
    assert take_lines_within(lines, 23) == lines[:2]
    assert take_lines_within(lines, 5) == []


def test_memory_texts() -> None:
    assert embedding_text("Ana", "yes, every Sunday!", "you: do you still climb?") == (
        "you: do you still climb?\nAna: yes, every Sunday!"
    )
    assert embedding_text(None, "a note") == "a note"
    assert (
        search_text("Ana", "see you in June", datetime(2023, 5, 8, tzinfo=UTC)) == "Ana: see you in June (8 May 2023)"
    )
    long = "word " * 200
    assert context_line("Ben", long).endswith(" …") and len(context_line("Ben", long)) <= 510


def test_words_are_searched_rarest_first_within_the_budget() -> None:
    documents = {"pizza": 900, "zebra": 3, "said": 5000, "otter": 40, "ghost": 0}
    assert words_to_search(documents, 1000) == ["zebra", "otter", "pizza"]
    assert words_to_search(documents, 100) == ["zebra", "otter"]
    assert words_to_search(documents, 2) == []
    assert words_to_search({"b": 5, "a": 5}, 5) == ["a"]  # ties: in word order, so the choice is stable


def test_rarer_words_weigh_more_and_no_weight_goes_negative() -> None:
    weights = [inverse_document_frequency(documents, 1000) for documents in (1, 10, 100, 500, 1000)]
    assert weights == sorted(weights, reverse=True)
    assert weights[-1] > 0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("What did Melanie paint?", "What did paint?"),
        ("what are melanie's pets called", "what are pets called"),
        ("Did Ana Lopez and Ana go?", "Did and go?"),  # the longer name first
        ("Anastasia is not Ana", "Anastasia is not"),  # whole words only
        ("Will Will come?", "Will Will come?"),  # a name that is a little word is kept
        ("Melanie?", "Melanie?"),  # nothing would be left to search by
        ("Ana, Lopez and I", ", Lopez and I"),  # a name is words in a row, not across punctuation
    ],
)
def test_names_are_left_out_of_what_a_query_means(text: str, expected: str) -> None:
    assert without_names(text, Names.of(["Melanie", "Ana", "Ana Lopez", "Will", "X"])) == expected


def test_what_the_person_a_question_names_said_rises_and_nothing_else_changes() -> None:
    names = Names.of(["Ana", "Ben Stone", "Hearth"], voices=["Hearth"])
    assert names.people_in("Where has ANA camped, and Ben Stone's kids?") == {"ana", "ben stone"}
    assert names.people_in("Hearth, where did I camp?") == frozenset(), "Hearth's own name is not a person's"

    scores = {1: 0.5, 2: 0.4, 3: 0.3, 4: 0.2}
    speakers = {1: "Ben Stone", 2: "Ana", 3: "Hearth", 4: "ana"}
    favoured = favour_named(scores, speakers, names.people_in("Where has Ana camped?"), weights=Weights(rrf_k=2))
    assert favoured == {1: 0.5, 2: 0.4 + 1 / 3, 3: 0.3, 4: 0.2 + 1 / 4}, "Ana's, ranked among themselves"
    assert order(favoured, candidates(1, 2, 3, 4), now=NOW)[:2] == [2, 1]
    assert favour_named(scores, speakers, frozenset()) == scores, "no name, no change"
    assert favour_named(scores, speakers, frozenset({"ana"}), weights=Weights(named=0.0)) == scores

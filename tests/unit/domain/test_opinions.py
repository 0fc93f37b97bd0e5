import math
import random
from datetime import UTC, datetime, timedelta

import pytest

from bot.domain.opinions import (
    INITIAL_INTEREST,
    Opinion,
    after_discussion,
    is_formed,
    normalize_topic,
    topics_in,
    topics_said,
    voice,
    weight_of_next,
)

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def discussed(topic: str, sentiments: list[float]) -> Opinion:
    opinion: Opinion | None = None
    for index, sentiment in enumerate(sentiments):
        opinion = after_discussion(opinion, topic=topic, sentiment=sentiment, at=T0 + timedelta(days=index))
    assert opinion is not None
    return opinion


def test_a_first_discussion_starts_an_unformed_opinion() -> None:
    opinion = after_discussion(None, topic="  Rock   Climbing ", sentiment=0.8, at=T0)
    assert opinion.topic == "rock climbing"
    assert opinion.sentiment == pytest.approx(0.8)
    assert opinion.discussion_count == 1
    assert INITIAL_INTEREST < opinion.interest < 1
    assert opinion.formed_at is None and opinion.last_discussed_at == T0
    assert not is_formed(opinion)
    assert voice(opinion) is None


def test_an_opinion_forms_on_the_third_discussion_and_keeps_that_date() -> None:
    opinion = discussed("bouldering", [0.9, 0.9])
    assert not is_formed(opinion) and opinion.formed_at is None
    opinion = after_discussion(opinion, topic="Bouldering", sentiment=0.9, at=T0 + timedelta(days=9))
    assert is_formed(opinion) and opinion.formed_at == T0 + timedelta(days=9)
    later = after_discussion(opinion, topic="bouldering", sentiment=0.9, at=T0 + timedelta(days=30))
    assert later.formed_at == T0 + timedelta(days=9)
    assert later.last_discussed_at == T0 + timedelta(days=30)
    assert is_formed(opinion, min_discussions=3) and not is_formed(opinion, min_discussions=4)


@pytest.mark.parametrize(
    ("count", "weight"),
    [(0, 1.0), (1, 1 / 3), (2, 1 / 4), (3, 1 / 5), (10, 1 / 12), (18, 0.05), (500, 0.05)],
)
def test_later_discussions_weigh_less(count: int, weight: float) -> None:
    assert weight_of_next(count) == pytest.approx(weight)


def test_earlier_discussions_outweigh_later_ones() -> None:
    assert discussed("crypto", [1.0, 1.0, 1.0, -1.0]).sentiment == pytest.approx(0.6)
    assert discussed("crypto", [-1.0, 1.0]).sentiment == pytest.approx(-1 / 3)
    assert discussed("crypto", [1.0, -1.0]).sentiment == pytest.approx(1 / 3)


def test_one_discussion_cannot_flip_a_formed_opinion() -> None:
    rng = random.Random(0)
    for _ in range(2000):
        count = rng.randint(3, 200)
        sign = rng.choice([-1.0, 1.0])
        opinion = Opinion("pineapple on pizza", sentiment=sign * rng.uniform(0.26, 1.0), discussion_count=count)
        after = after_discussion(opinion, topic=opinion.topic, sentiment=-sign, at=T0)
        assert after.sentiment * sign > 0


def test_an_opinion_can_still_change_over_many_discussions() -> None:
    opinion = discussed("tabs", [1.0] * 10)
    for _ in range(30):
        opinion = after_discussion(opinion, topic="tabs", sentiment=-1.0, at=T0)
    assert opinion.sentiment < 0


def test_sentiment_stays_between_the_extremes_it_has_heard() -> None:
    rng = random.Random(0)
    for _ in range(300):
        sentiments = [rng.uniform(-1, 1) for _ in range(rng.randint(1, 40))]
        opinion = discussed("topic", sentiments)
        assert min(sentiments) - 1e-12 <= opinion.sentiment <= max(sentiments) + 1e-12
        assert opinion.discussion_count == len(sentiments)


def test_interest_grows_with_each_discussion_and_stays_below_one() -> None:
    rng = random.Random(0)
    for _ in range(100):
        opinion: Opinion | None = None
        previous = INITIAL_INTEREST
        for _ in range(100):
            opinion = after_discussion(opinion, topic="chess", sentiment=rng.uniform(-1, 1), at=T0)
            assert previous < opinion.interest < 1.0
            previous = opinion.interest
    assert discussed("chess", [1.0] * 5).interest > discussed("chess", [0.0] * 5).interest


def test_out_of_range_sentiments_are_clamped() -> None:
    assert discussed("x", [7.0]).sentiment == 1.0
    assert discussed("x", [-7.0]).sentiment == -1.0
    assert discussed("x", [math.nan]).sentiment == 0.0


@pytest.mark.parametrize(
    ("sentiment", "interest", "line"),
    [
        (0.8, 0.5, "You love bouldering."),
        (0.6, 0.5, "You love bouldering."),
        (0.4, 0.5, "You like bouldering."),
        (0.25, 0.5, "You like bouldering."),
        (0.0, 0.7, "You find bouldering interesting, though you have mixed feelings about it."),
        (0.1, 0.3, None),
        (-0.4, 0.5, "You find bouldering tiresome."),
        (-0.25, 0.5, "You find bouldering tiresome."),
        (-0.6, 0.5, "You dislike bouldering."),
        (-1.0, 0.9, "You dislike bouldering."),
    ],
)
def test_voice_of_a_formed_opinion(sentiment: float, interest: float, line: str | None) -> None:
    opinion = Opinion("bouldering", sentiment=sentiment, interest=interest, discussion_count=3)
    assert voice(opinion) == line


def test_unformed_opinions_stay_quiet() -> None:
    for count in range(3):
        assert voice(Opinion("crypto", sentiment=-1.0, interest=1.0, discussion_count=count)) is None
    assert voice(discussed("crypto", [-0.5, -0.5, -0.5])) == "You find crypto tiresome."


def test_a_discussion_of_another_topic_is_refused() -> None:
    with pytest.raises(ValueError, match="cannot take"):
        after_discussion(discussed("chess", [0.5]), topic="go", sentiment=0.5, at=T0)
    with pytest.raises(ValueError, match="empty"):
        after_discussion(None, topic="   ", sentiment=0.5, at=T0)


def test_topics_are_normalised() -> None:
    assert normalize_topic("  Dark\tSouls  III ") == "dark souls iii"


@pytest.mark.parametrize(
    "changes",
    [{"sentiment": 1.5}, {"sentiment": -1.01}, {"interest": -0.1}, {"interest": 1.2}, {"discussion_count": -1}],
)
def test_invalid_opinions_are_refused(changes: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Opinion("x", **changes)  # type: ignore[arg-type]


def test_a_messages_topics_are_its_runs_of_up_to_three_words() -> None:
    assert topics_in("Rock climbing, again!") == [
        "again",
        "climbing",
        "climbing again",
        "rock",
        "rock climbing",
        "rock climbing again",
    ]


def test_topics_said_in_so_many_words_are_found_whatever_their_length_case_or_punctuation() -> None:
    texts = ["I went Rock-Climbing in the Alps last week", "my cat's name is Miso"]
    topics = ["rock climbing in the alps", "miso", "cats", "the alps", "gardening", "", "in"]
    assert topics_said(texts, topics) == {"rock climbing in the alps", "miso", "the alps", "in"}
    assert topics_said([], topics) == set() and topics_said(texts, []) == set()

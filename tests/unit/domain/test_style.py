import math
import random

import pytest

from bot.domain.style import (
    TYPICAL_WORDS,
    WORDS_CAP,
    CommunicationStyle,
    MessageStyle,
    confidence_for,
    guidance,
    length_of,
    signals_of,
    updated,
)

CASUAL = "hey!! 😂😂 u coming?"
FORMAL = "Dear Sir, I would be grateful if you could confirm the arrangements. Kind regards."


def test_signals_of_a_casual_message() -> None:
    signals = signals_of(CASUAL)
    assert signals == MessageStyle(
        chars=18,
        words=3,
        sentences=2,
        emoji=2,
        exclamation_rate=0.5,
        question_rate=0.5,
        caps_rate=0.0,
        lowercase_start_rate=1.0,
        formal_markers=0,
        slang_markers=2,
        contractions=0,
        laughter=2,
    )
    assert signals.emoji_rate == pytest.approx(0.4)
    assert signals.words_per_sentence == pytest.approx(1.5)
    assert (signals.formality, signals.emoji_usage, signals.humor) == (0.0, 1.0, 1.0)
    assert signals.detail < 0.1


def test_signals_of_a_formal_message() -> None:
    signals = signals_of(FORMAL)
    assert (signals.words, signals.sentences, signals.words_per_sentence) == (14, 2, 7.0)
    assert (signals.emoji, signals.laughter, signals.slang_markers, signals.contractions) == (0, 0, 0, 0)
    assert signals.formal_markers == 3
    assert signals.lowercase_start_rate == 0.0 and signals.exclamation_rate == signals.question_rate == 0.0
    assert (signals.formality, signals.emoji_usage, signals.humor) == (1.0, 0.0, 0.0)
    assert signals.detail > signals_of(CASUAL).detail


@pytest.mark.parametrize(
    ("text", "emoji", "words"),
    [
        ("nice <:pepe_hype:123456789012345678>", 1, 1),
        ("<a:party:123456789012345678><a:party:123456789012345678>", 2, 0),
        ("family 👨‍👩‍👧 trip 🇫🇷", 2, 2),
        ("👍🏽👍", 2, 0),
        ("ok ❤️ #1️⃣", 2, 1),
        ("<@123456789012345678> see https://example.com/a/b?c=d and <#123456789012345678>", 0, 2),
        ("no emoji at all, just words.", 0, 6),
        ("", 0, 0),
    ],
)
def test_emoji_and_words(text: str, emoji: int, words: int) -> None:
    signals = signals_of(text)
    assert (signals.emoji, signals.words) == (emoji, words)


@pytest.mark.parametrize(
    ("text", "laughter"),
    [
        ("hahaha that's great", 1),
        ("lol lmao", 2),
        ("XD hehe", 2),
        ("🤣🤣 ahah", 2),
        ("Happy birthday! Hope you have a lovely day.", 0),
        ("the lollipop was hard", 0),
    ],
)
def test_laughter_markers(text: str, laughter: int) -> None:
    assert signals_of(text).laughter == laughter


@pytest.mark.parametrize(
    ("text", "formal", "slang", "contractions"),
    [
        ("Thank you kindly, I shall look into it.", 3, 0, 0),
        ("I’m gonna be late, don't wait up btw", 0, 2, 2),
        ("idk tbh, it's kinda meh", 0, 3, 1),
        ("Good morning! Ana's cat is here.", 1, 0, 0),
    ],
)
def test_formality_markers(text: str, formal: int, slang: int, contractions: int) -> None:
    signals = signals_of(text)
    assert (signals.formal_markers, signals.slang_markers, signals.contractions) == (formal, slang, contractions)


def test_shouting_questions_and_sentence_starts() -> None:
    signals = signals_of("WHY IS THIS SO HARD?! i give up. Seriously? ok then")
    assert signals.sentences == 4
    assert signals.question_rate == pytest.approx(0.5)
    assert signals.exclamation_rate == pytest.approx(0.25)
    assert signals.caps_rate == pytest.approx(5 / 10)
    assert signals.lowercase_start_rate == pytest.approx(0.5)
    assert signals_of("I am fine. 3 cats. 東京へ行く").lowercase_start_rate == 0.0


@pytest.mark.parametrize(
    ("mean_words", "length"),
    [(0.0, "short"), (9.9, "short"), (10.0, "medium"), (34.9, "medium"), (35.0, "long"), (200.0, "long")],
)
def test_preferred_length(mean_words: float, length: str) -> None:
    assert length_of(mean_words) == length
    assert CommunicationStyle(mean_words=mean_words).preferred_length == length


def test_typical_words_fall_in_their_own_length() -> None:
    for label, words in TYPICAL_WORDS.items():
        assert length_of(words) == label


@pytest.mark.parametrize(("samples", "confidence"), [(0, 0.0), (5, 0.3935), (10, 0.6321), (20, 0.8647), (100, 1.0)])
def test_confidence_grows_with_diminishing_returns(samples: int, confidence: float) -> None:
    assert confidence_for(samples) == pytest.approx(confidence, abs=1e-4)
    assert CommunicationStyle(sample_count=samples).confidence == pytest.approx(confidence, abs=1e-4)


def random_message(rng: random.Random) -> str:
    pieces = [
        "hey", "u", "lol", "Dear", "regards", "I", "would", "like", "to", "know", "😂", "<:kek:123456789012345678>",
        "don't", "GREAT", "!", "?", ".", "haha", "the", "weather", "is", "lovely", "\n", "gonna", "👍🏽", "Thank you",
    ]  # fmt: skip
    return " ".join(rng.choice(pieces) for _ in range(rng.randint(0, 60)))


def test_style_stays_bounded_and_confidence_never_drops() -> None:
    rng = random.Random(0)
    for _ in range(50):
        style = CommunicationStyle()
        for _ in range(60):
            before = style
            style = updated(style, signals_of(random_message(rng)))
            for value in (style.formality, style.emoji_usage, style.humor, style.detail, style.confidence):
                assert 0.0 <= value <= 1.0
            assert 0.0 <= style.mean_words <= WORDS_CAP
            assert style.confidence >= before.confidence
            assert style.sample_count >= before.sample_count


def test_each_estimate_moves_toward_the_message() -> None:
    rng = random.Random(1)
    for _ in range(500):
        style = CommunicationStyle(
            mean_words=rng.uniform(0, 100),
            formality=rng.random(),
            emoji_usage=rng.random(),
            humor=rng.random(),
            detail=rng.random(),
            sample_count=rng.randint(0, 50),
        )
        signals = signals_of(random_message(rng))
        if signals.is_empty:
            continue
        after = updated(style, signals)
        for name in ("formality", "emoji_usage", "humor", "detail"):
            old, new, seen = getattr(style, name), getattr(after, name), getattr(signals, name)
            assert min(old, seen) - 1e-12 <= new <= max(old, seen) + 1e-12


def test_early_messages_count_more_than_later_ones() -> None:
    first = updated(CommunicationStyle(), signals_of(FORMAL))
    assert first.formality == pytest.approx(0.75)
    settled = updated(CommunicationStyle(formality=0.5, sample_count=100), signals_of(FORMAL))
    assert settled.formality == pytest.approx(0.55)


def test_empty_messages_teach_nothing() -> None:
    style = CommunicationStyle(sample_count=4)
    assert updated(style, signals_of("")) == style
    assert updated(style, signals_of("<@123456789012345678> https://example.com")) == style
    assert updated(style, signals_of("[sticker: Heart Eyes]\n[sticker: WAVE]")) == style, "a sticker sent alone"
    assert updated(style, signals_of("[file: Minutes of the AGM.pdf]")) == style, "a file sent alone"
    assert updated(style, signals_of("[forwarded]\nTHE FERRY LEAVES AT SIX!!")) == style, "someone else's words"
    assert signals_of("lol look\n[forwarded]\nThe ferry leaves at six.") == signals_of("lol look")
    assert signals_of("is that right?\n[in reply to Ben]\nTHE FERRY LEAVES AT SIX!!") == signals_of("is that right?")


def test_an_essay_does_not_make_a_long_writer() -> None:
    style = updated(CommunicationStyle(mean_words=5.0, sample_count=100), signals_of("word " * 5000))
    assert style.mean_words == pytest.approx(5.0 + 0.1 * (WORDS_CAP - 5.0))


def learned(text: str, times: int = 30) -> CommunicationStyle:
    style = CommunicationStyle()
    for _ in range(times):
        style = updated(style, signals_of(text))
    return style


def test_guidance_waits_for_six_messages() -> None:
    assert guidance(learned(CASUAL, 5)) is None
    assert guidance(learned(CASUAL, 6)) is not None
    assert guidance(learned(CASUAL, 2), min_confidence=0.1) is not None


@pytest.mark.parametrize(
    ("text", "line"),
    [
        (
            "hey 👋 u around?",
            "They write short, casual messages with emoji: answer briefly and casually; an emoji now and then is "
            "welcome.",
        ),
        (
            CASUAL,
            "They write short, casual messages with emoji and like to joke: answer briefly and casually; an emoji "
            "now and then is welcome; a joke now and then goes down well.",
        ),
        (
            FORMAL,
            "They write medium-length, formal messages: answer in a few sentences and politely, without slang; "
            "skip emoji.",
        ),
        (
            "I have been thinking about the new patch and the way the boss fight now scales with party size, which"
            " seems to punish smaller groups far more than intended, especially on the harder difficulty settings"
            " where healers are scarce. The developers said they would look at it, but nothing has changed since"
            " the spring update, and our group has mostly stopped playing as a result of it.",
            "They write long, detailed messages: answer fully, with details where they help; skip emoji.",
        ),
    ],
)
def test_guidance_for_learned_styles(text: str, line: str) -> None:
    assert guidance(learned(text)) == line


@pytest.mark.parametrize(
    "changes", [{"formality": 1.1}, {"emoji_usage": -0.1}, {"humor": math.nan}, {"sample_count": -1}]
)
def test_invalid_styles_are_refused(changes: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        CommunicationStyle(**changes)  # type: ignore[arg-type]

"""How someone writes, measured with plain text statistics (no model), so Hearth can answer in kind.

``signals_of`` reads one message; ``updated`` folds it into the user's ``CommunicationStyle`` with an
exponential moving average; ``guidance`` turns a style Hearth is confident about into one line for the
prompt. All affinities are 0–1.
"""

import math
import re
from dataclasses import dataclass, replace
from typing import Literal

Length = Literal["short", "medium", "long"]

# Preferred length from the average number of words a message has.
SHORT_BELOW_WORDS = 10.0
LONG_FROM_WORDS = 35.0
# A fair average for each length: the starting point when only the stored label is known.
TYPICAL_WORDS: dict[Length, float] = {"short": 6.0, "medium": 20.0, "long": 50.0}
# One pasted essay should not make someone a writer of essays.
WORDS_CAP = 200

# Averaging: the first messages count a lot (1/(n + 2), against a neutral prior), later ones 1/10,
# so the style follows roughly the last twenty messages.
MIN_ALPHA = 0.1
# Confidence is 1 - exp(-n / CONFIDENCE_SCALE): 0.39 after 5 messages, 0.63 after 10, 0.86 after 20.
CONFIDENCE_SCALE = 10.0
GUIDANCE_MIN_CONFIDENCE = 0.4  # six messages

# Per-message estimates: each emoji or laugh is this much evidence of a taste for them (two are plenty).
MARKER_EVIDENCE = 0.6
# Formality of one message: 0.5, up for formal phrases and capitalised sentences, down for slang,
# contractions, lower-case starts, emoji, shouting and exclamation marks.
FORMAL_STEP = 0.2
SLANG_STEP = 0.15
CONTRACTION_STEP = 0.05
CAPITALISATION_STEP = 0.1
EMOJI_FORMALITY_COST = 0.1
EXCLAMATION_FORMALITY_COST = 0.1
CAPS_FORMALITY_COST = 0.1
# Detail of one message: half from words per sentence (20 is full), half from length (80 words is full).
DETAILED_SENTENCE_WORDS = 20.0
DETAILED_MESSAGE_WORDS = 80.0

# Guidance thresholds.
CASUAL_BELOW = 0.35
FORMAL_FROM = 0.65
EMOJI_WELCOME_FROM = 0.4
EMOJI_AVOID_BELOW = 0.1
HUMOR_FROM = 0.4
DETAILED_FROM = 0.6

_CUSTOM_EMOJI = re.compile(r"<a?:\w{2,32}:\d{15,21}>")
# Mentions of users, roles and channels, links, and the stickers and files sent with a message, shown by name
# ("[sticker: Wave]", "[file: notes.pdf]"): not words anyone chose.
_MARKUP = re.compile(r"<(?:@[!&]?|#)\d+>|https?://\S+|\[(?:sticker|file): [^\]\n]*\]")
# What a message forwards comes last, after a line "[forwarded]", and so does the message a reply is to, after a
# line "[in reply to Ben]" (see bot/discord/people.py): someone else's words.
_FORWARDED = re.compile(r"(?:^|\n)\[(?:forwarded|in reply to [^\]\n]*)\]\n.*", re.DOTALL)
_PICTOGRAPH = "\U0001f000-\U0001faff\u2600-\u27bf\u2300-\u23ff\u2b00-\u2bff"
_SKIN_TONE = "\U0001f3fb-\U0001f3ff"
_ONE_EMOJI = f"[{_PICTOGRAPH}][{_SKIN_TONE}]?\ufe0f?"
_UNICODE_EMOJI = re.compile(
    "[\U0001f1e6-\U0001f1ff]{2}"  # a flag: two regional indicators
    "|[0-9#*]\ufe0f?\u20e3"  # a keycap
    f"|{_ONE_EMOJI}(?:\u200d{_ONE_EMOJI})*"  # a pictograph, with tone and joined sequences as one
)
_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)*")
_SENTENCE = re.compile(r"([^.!?…\n]+)([.!?…\n]*)")
_FORMAL = re.compile(
    r"\b(?:dear|regards|sincerely|faithfully|kindly|grateful|furthermore|moreover|therefore|nevertheless"
    r"|whom|shall|greetings|thank you|please find|would you be so kind|good (?:morning|afternoon|evening)"
    r"|apologi[sz]e)\b",
    re.IGNORECASE,
)
_SLANG = re.compile(
    r"\b(?:lol|lmao|rofl|omg|u|ur|ya|yea|yeah|yep|yup|nah|nope|gonna|wanna|gotta|kinda|sorta|dunno|idk|tbh"
    r"|imo|btw|brb|pls|plz|thx|ty|np|cuz|hey|heya|sup|dude|bro)\b",
    re.IGNORECASE,
)
# Possessives ("Ana's") are not contractions; only the common "it's", "that's" … forms of "'s" count.
_CONTRACTION = re.compile(
    r"\b(?:\w+n't|\w+'(?:re|ve|ll|d|m)|(?:it|that|what|there|here|he|she|who|let)'s)\b", re.IGNORECASE
)
_LAUGHTER = re.compile(r"\b(?:a?(?:ha){2,}h?|(?:he){2,}|(?:hi){2,}|lo+l|lmf?ao+|rofl|xd+)\b|[😂🤣😆😹]", re.IGNORECASE)


def _clamp(value: float, low: float = 0.0, high: float = 1.0) -> float:
    return min(max(0.0 if math.isnan(value) else value, low), high)


@dataclass(frozen=True, slots=True)
class MessageStyle:
    """What one message shows of its author's style. Rates are shares, 0–1."""

    chars: int = 0
    words: int = 0
    sentences: int = 0
    emoji: int = 0
    exclamation_rate: float = 0.0  # sentences ending in "!"
    question_rate: float = 0.0  # sentences ending in "?"
    caps_rate: float = 0.0  # words of two letters or more written in capitals
    lowercase_start_rate: float = 0.0  # sentences that start with a lower-case letter
    formal_markers: int = 0
    slang_markers: int = 0
    contractions: int = 0
    laughter: int = 0

    @property
    def is_empty(self) -> bool:
        """No words and no emoji (an attachment, a sticker): nothing to learn from."""
        return self.words == 0 and self.emoji == 0

    @property
    def emoji_rate(self) -> float:
        """Share of emoji among words and emoji together."""
        total = self.words + self.emoji
        return self.emoji / total if total else 0.0

    @property
    def words_per_sentence(self) -> float:
        return self.words / self.sentences if self.sentences else float(self.words)

    @property
    def formality(self) -> float:
        score = 0.5
        score += FORMAL_STEP * min(self.formal_markers, 3)
        score -= SLANG_STEP * min(self.slang_markers, 4)
        score -= CONTRACTION_STEP * min(self.contractions, 3)
        if self.sentences:
            score += CAPITALISATION_STEP * (1.0 - 2.0 * self.lowercase_start_rate)
        score -= EMOJI_FORMALITY_COST * (self.emoji > 0)
        score -= EXCLAMATION_FORMALITY_COST * self.exclamation_rate
        score -= CAPS_FORMALITY_COST * self.caps_rate
        return _clamp(score)

    @property
    def emoji_usage(self) -> float:
        return _clamp(MARKER_EVIDENCE * self.emoji)

    @property
    def humor(self) -> float:
        return _clamp(MARKER_EVIDENCE * self.laughter)

    @property
    def detail(self) -> float:
        per_sentence = min(self.words_per_sentence / DETAILED_SENTENCE_WORDS, 1.0)
        length = min(self.words / DETAILED_MESSAGE_WORDS, 1.0)
        return _clamp((per_sentence + length) / 2)


def _starts_lower(body: str) -> bool | None:
    """Whether a sentence starts with a lower-case letter; None for digits and scripts without case."""
    for char in body:
        if char.isalpha():
            if char.islower():
                return True
            return False if char.isupper() else None
        if char.isdigit():
            return None
    return None


def signals_of(text: str) -> MessageStyle:
    """The style signals of one message."""
    text = _FORWARDED.sub("", text.replace("’", "'")).strip()
    laughter = len(_LAUGHTER.findall(text))
    bare = _MARKUP.sub(" ", text)
    custom = len(_CUSTOM_EMOJI.findall(bare))
    bare = _CUSTOM_EMOJI.sub(" ", bare)
    unicode_emoji = len(_UNICODE_EMOJI.findall(bare))
    bare = _UNICODE_EMOJI.sub(" ", bare)

    words = _WORD.findall(bare)
    long_words = [word for word in words if sum(char.isalpha() for char in word) >= 2]
    caps = sum(word.isupper() for word in long_words)

    sentences = exclaimed = asked = cased = lower = 0
    for match in _SENTENCE.finditer(bare):
        body, ending = match.groups()
        if not _WORD.search(body):
            continue
        sentences += 1
        exclaimed += "!" in ending
        asked += "?" in ending
        starts_lower = _starts_lower(body)
        if starts_lower is not None:
            cased += 1
            lower += starts_lower

    return MessageStyle(
        chars=len(text),
        words=len(words),
        sentences=sentences,
        emoji=custom + unicode_emoji,
        exclamation_rate=exclaimed / sentences if sentences else 0.0,
        question_rate=asked / sentences if sentences else 0.0,
        caps_rate=caps / len(long_words) if long_words else 0.0,
        lowercase_start_rate=lower / cased if cased else 0.0,
        formal_markers=len(_FORMAL.findall(bare)),
        slang_markers=len(_SLANG.findall(bare)),
        contractions=len(_CONTRACTION.findall(bare)),
        laughter=laughter,
    )


def length_of(mean_words: float) -> Length:
    if mean_words < SHORT_BELOW_WORDS:
        return "short"
    if mean_words >= LONG_FROM_WORDS:
        return "long"
    return "medium"


def confidence_for(sample_count: int) -> float:
    return 1.0 - math.exp(-max(sample_count, 0) / CONFIDENCE_SCALE)


@dataclass(frozen=True, slots=True)
class CommunicationStyle:
    """How one user writes, learned from their messages.

    ``mean_words`` backs ``preferred_length``; when only the stored label is known, start from
    ``TYPICAL_WORDS[label]``. Confidence follows from the number of samples.
    """

    mean_words: float = TYPICAL_WORDS["medium"]
    formality: float = 0.5
    emoji_usage: float = 0.5
    humor: float = 0.5
    detail: float = 0.5
    sample_count: int = 0

    def __post_init__(self) -> None:
        for name in ("formality", "emoji_usage", "humor", "detail"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be within [0, 1], got {value!r}")
        if self.mean_words < 0 or self.sample_count < 0:
            raise ValueError("mean_words and sample_count cannot be negative")

    @property
    def preferred_length(self) -> Length:
        return length_of(self.mean_words)

    @property
    def confidence(self) -> float:
        return confidence_for(self.sample_count)


def updated(style: CommunicationStyle, signals: MessageStyle) -> CommunicationStyle:
    """``style`` with one more message folded in; an empty message changes nothing."""
    if signals.is_empty:
        return style
    alpha = max(1.0 / (style.sample_count + 2), MIN_ALPHA)

    def blend(old: float, new: float) -> float:
        return _clamp(old + alpha * (new - old))

    words = min(signals.words, WORDS_CAP)
    return replace(
        style,
        mean_words=_clamp(style.mean_words + alpha * (words - style.mean_words), 0.0, float(WORDS_CAP)),
        formality=blend(style.formality, signals.formality),
        emoji_usage=blend(style.emoji_usage, signals.emoji_usage),
        humor=blend(style.humor, signals.humor),
        detail=blend(style.detail, signals.detail),
        sample_count=style.sample_count + 1,
    )


_LENGTH_WORDS: dict[Length, str] = {"short": "short", "medium": "medium-length", "long": "long"}
_ANSWER: dict[Length, str] = {"short": "answer briefly", "medium": "answer in a few sentences", "long": "answer fully"}


def guidance(style: CommunicationStyle, *, min_confidence: float = GUIDANCE_MIN_CONFIDENCE) -> str | None:
    """One line for the prompt on how to answer this person, or None until Hearth has seen enough."""
    if style.confidence < min_confidence:
        return None
    length = style.preferred_length
    traits = [_LENGTH_WORDS[length]]
    answer = _ANSWER[length]
    if style.formality < CASUAL_BELOW:
        traits.append("casual")
        answer += " and casually"
    elif style.formality >= FORMAL_FROM:
        traits.append("formal")
        answer += " and politely, without slang"
    if style.detail >= DETAILED_FROM:
        traits.append("detailed")
        if length != "short":
            answer += ", with details where they help"

    described = ", ".join(traits) + " messages"
    advice = [answer]
    if style.emoji_usage >= EMOJI_WELCOME_FROM:
        described += " with emoji"
        advice.append("an emoji now and then is welcome")
    elif style.emoji_usage < EMOJI_AVOID_BELOW:
        advice.append("skip emoji")
    if style.humor >= HUMOR_FROM:
        described += " and like to joke"
        advice.append("a joke now and then goes down well")
    return f"They write {described}: {'; '.join(advice)}."

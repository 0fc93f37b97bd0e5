"""Assemble the chat prompt: a pure function of what the services gathered, within a token budget.

The system message holds the persona and one section per kind of context (facts, memories, relationship,
mood, opinions, style); each section is cut to its own budget. The conversation history fills what is left,
newest turns first, so the prompt never grows with the length of a conversation.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from bot.domain.budget import MESSAGE_OVERHEAD_TOKENS, TokenCounter, estimate_tokens, truncate_to_tokens

Role = Literal["system", "user", "assistant"]

# Sections of the system prompt, in the order they appear, with their headings.
SECTION_TITLES: dict[str, str] = {
    "facts": "What you know about {speaker}",
    "memories": "Things you remember",
    "relationship": "You and {speaker}",
    "mood": "Your mood",
    "opinions": "Your opinions on what is being discussed",
    "style": "How {speaker} writes",
    "knowledge": "Lore of this place",
}

DEFAULT_SECTION_BUDGETS: dict[str, int] = {
    "persona": 1200,
    "facts": 300,
    # About 20 recalled memories: what was said is what people expect a companion to remember, and the turn
    # that answers a question often ranks just below it (see bench/locomo.py's recall_at_budget).
    "memories": 1000,
    "relationship": 120,
    "mood": 80,
    "opinions": 150,
    "style": 100,
    "knowledge": 400,
}


# What one image is counted as in the prompt's budget: what OpenAI charges for a 1024×1024 image in detail.
IMAGE_TOKENS = 765


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """A message of the prompt. ``images``: links of images shown with a user message (sent as content parts
    after its text, see bot/llm/chat.py)."""

    role: Role
    content: str
    images: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PersonaCard:
    name: str
    personality: str
    backstory: str | None = None
    example_dialogue: str | None = None


@dataclass(frozen=True, slots=True)
class Turn:
    """A past or present turn. ``speaker`` is the display name of a user turn; of a reply, the cast character who
    said it (None: the channel's own persona)."""

    role: Literal["user", "assistant"]
    text: str
    speaker: str | None = None
    images: tuple[str, ...] = ()  # links of images sent with a user turn being answered


# The smallest window a reply's prompt is built for, when the model's refuses longer ones (LLM_CONTEXT_TOKENS may not
# be set lower either).
MIN_CONTEXT_TOKENS = 1024


@dataclass(frozen=True, slots=True)
class Budget:
    """Token limits. ``context_tokens`` is the model's window; ``reply_tokens`` is kept free for the answer."""

    context_tokens: int = 8192
    reply_tokens: int = 600
    sections: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_SECTION_BUDGETS))
    safety_margin: float = 0.05
    # The system prompt may take at most this share of the prompt; history and the message get the rest.
    system_share: float = 0.6
    # How text is counted: the model's tokenizer where one is known (bot/llm/tokens.py), else the estimate.
    count: TokenCounter = estimate_tokens

    @property
    def prompt_tokens(self) -> int:
        return int((self.context_tokens - self.reply_tokens) * (1 - self.safety_margin))

    def section_budget(self, name: str) -> int:
        """A section's budget, scaled down when all sections together would crowd out the conversation."""
        total = sum(self.sections.values())
        room = self.prompt_tokens * self.system_share
        scale = min(1.0, room / total) if total else 1.0
        return int(self.sections.get(name, 0) * scale)


@dataclass(frozen=True, slots=True)
class PromptRequest:
    persona: PersonaCard
    speaker: str
    place: str  # e.g. "a direct message with Ana" or "#general in Cosy Corner"
    current: Sequence[Turn]  # the message(s) being answered, oldest first
    history: Sequence[Turn] = ()  # earlier turns of this conversation, oldest first
    sections: Mapping[str, str] = field(default_factory=dict)  # section name → text; empty ones are left out
    is_group: bool = False  # label user turns with their speaker's name
    language: str | None = None  # the guild's chosen language, if any
    now_text: str | None = None  # e.g. "Monday 23 November 2026, 14:05 UTC"
    was_away: bool = False  # the current messages arrived while Hearth was offline (answered after a restart)
    host: str | None = None  # when ``persona`` is a cast character: the channel's own persona's name


def _persona_block(persona: PersonaCard, budget: int, count: TokenCounter) -> str:
    parts = [f"You are {persona.name}. {persona.personality.strip()}"]
    if persona.backstory:
        parts.append(f"Backstory: {persona.backstory.strip()}")
    if persona.example_dialogue:
        parts.append(f"How you talk, for example:\n{persona.example_dialogue.strip()}")
    return truncate_to_tokens("\n\n".join(parts), budget, count=count)


def _rules(request: PromptRequest) -> str:
    lines = [
        f"You are chatting in {request.place}.",
        f"Stay in character as {request.persona.name}. Write only your own reply, never other people's lines.",
        "Keep replies conversational and suited to chat; use the context below when it helps, and never reveal"
        " what you know about someone to anyone else.",
    ]
    if request.now_text:
        lines.insert(1, f"It is now {request.now_text}.")
    if request.was_away:
        lines.append(
            "You were away for a while and have just come back: the latest message arrived while you were gone."
            " If it fits your character, say briefly that you were away before you answer."
        )
    if request.language:
        lines.append(f"Write in {request.language}, unless the person writes to you in another language.")
    return "\n".join(lines)


def _section_blocks(request: PromptRequest, budget: Budget) -> list[str]:
    blocks = []
    for name, title in SECTION_TITLES.items():
        text = (request.sections.get(name) or "").strip()
        allowance = budget.section_budget(name)
        if not text or allowance <= 0:
            continue
        heading = "## " + title.format(speaker=request.speaker)
        body = truncate_to_tokens(text, allowance - budget.count(heading) - 1, count=budget.count)
        if body:
            blocks.append(f"{heading}\n{body}")
    return blocks


def render_turn(turn: Turn, *, is_group: bool, me: str | None = None, host: str | None = None) -> ChatMessage:
    """A turn as a prompt message. A reply is the model's own (``assistant``) only when ``me`` said it: in a channel
    with a cast another character's line, or the channel's persona's (``host``) to a character, is shown as that
    speaker's, so no one takes another's words for their own."""
    if turn.role == "assistant":
        said_by = turn.speaker or host
        if said_by is not None and said_by != me:
            return ChatMessage("user", f"{said_by}: {turn.text}")
        return ChatMessage("assistant", turn.text)
    if is_group and turn.speaker:
        return ChatMessage("user", f"{turn.speaker}: {turn.text}")
    return ChatMessage("user", turn.text)


def _merge_current(current: Sequence[Turn], is_group: bool) -> ChatMessage:
    """Several messages sent while Hearth was writing are answered together, as one user turn."""
    rendered = [render_turn(turn, is_group=is_group).content for turn in current]
    return ChatMessage("user", "\n".join(rendered), images=tuple(url for turn in current for url in turn.images))


def message_tokens(message: ChatMessage, count: TokenCounter = estimate_tokens) -> int:
    return count(message.content) + MESSAGE_OVERHEAD_TOKENS + IMAGE_TOKENS * len(message.images)


def build_prompt(request: PromptRequest, budget: Budget | None = None) -> list[ChatMessage]:
    """The messages to send, never more than ``budget.prompt_tokens`` as ``budget.count`` counts them."""
    budget = budget or Budget()
    count = budget.count
    system_text = "\n\n".join(
        [
            _persona_block(request.persona, budget.section_budget("persona"), count),
            _rules(request),
            *_section_blocks(request, budget),
        ]
    )
    system = ChatMessage("system", system_text)
    current = _merge_current(request.current, request.is_group)

    remaining = budget.prompt_tokens - message_tokens(system, count)
    if message_tokens(current, count) > remaining // 2:
        # A very long message keeps its start; the answer is about what it opens with.
        allowance = max(remaining // 2 - MESSAGE_OVERHEAD_TOKENS - IMAGE_TOKENS * len(current.images), 1)
        current = ChatMessage(
            "user", truncate_to_tokens(current.content, allowance, count=count), images=current.images
        )
    remaining -= message_tokens(current, count)

    history: list[ChatMessage] = []
    for turn in reversed(request.history):
        message = render_turn(turn, is_group=request.is_group, me=request.persona.name, host=request.host)
        cost = message_tokens(message, count)
        if cost > remaining:
            break
        history.append(message)
        remaining -= cost
    history.reverse()
    return [system, *history, current]


def prompt_tokens(messages: Sequence[ChatMessage], count: TokenCounter = estimate_tokens) -> int:
    return sum(message_tokens(message, count) for message in messages)

"""What a conversation is configured with, what a stored turn is, and what Hearth says when it cannot answer."""

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from bot.domain.prompt import PersonaCard
from bot.services.personas import DEFAULT_PERSONA, PersonaView

MEMORY_TROUBLE = (
    "I can't reach my memory right now, so I couldn't keep what you just said, and I'd rather not answer"
    " half-remembering. Could you tell me again in a little while?"
)
RESTING = (
    "I'm resting for a little while: my keeper is doing some maintenance. I've kept your message, and I'll be"
    " back soon."
)
OVER_QUOTA = (
    "I've talked so much today that I've reached this server's daily limit. I've kept what you said, and I'll be"
    " back tomorrow (00:00 UTC)."
)
# Who speaks when not even the persona can be read (the database down since start-up).
DEFAULT_VIEW = PersonaView(
    id=0,
    name=DEFAULT_PERSONA["name"],
    card=PersonaCard(
        name=DEFAULT_PERSONA["name"],
        personality=DEFAULT_PERSONA["personality_prompt"],
        backstory=DEFAULT_PERSONA["backstory"],
        example_dialogue=DEFAULT_PERSONA["example_dialogue"],
    ),
    config=dict(DEFAULT_PERSONA["config"]),
    greeting=DEFAULT_PERSONA["greeting"],
)


@dataclass(frozen=True, slots=True)
class ConversationConfig:
    model: str
    temperature: float = 0.8
    max_tokens: int = 600
    context_tokens: int = 8192
    extra_headers: dict[str, str] = field(default_factory=dict)
    extra_body: dict[str, Any] = field(default_factory=dict)
    idle: timedelta = timedelta(minutes=60)
    history_turns: int = 40
    edit_interval_s: float = 1.0
    cooldown_s: float = 2.0  # per user, between the starts of two replies; a guild may set its own
    store_budget_s: float = 30.0  # how long storing a message keeps retrying a failing database (a restart)


@dataclass(frozen=True, slots=True)
class StoredTurn:
    """A user message as stored, waiting for (or part of) a turn."""

    message_row_id: int
    conversation_id: int
    user_id: int
    guild_id: int | None
    speaker: str
    text: str
    images: tuple[str, ...] = ()  # links of the images the model is shown with it
    # How many changes to stored turns (edits, deletions) the store had heard of when it stored this one.
    changes_seen: int = 0
    discord_message_id: int | None = None  # the front end's id of the message (None: a terminal's, say)

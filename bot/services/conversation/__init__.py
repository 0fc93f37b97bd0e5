"""The conversation pipeline: a message in, an in-character reply out (see service.py for its stages)."""

from bot.services.conversation.config import (
    MEMORY_TROUBLE,
    OVER_QUOTA,
    RESTING,
    ConversationConfig,
    StoredTurn,
)
from bot.services.conversation.service import ConversationService, build

__all__ = [
    "MEMORY_TROUBLE",
    "OVER_QUOTA",
    "RESTING",
    "ConversationConfig",
    "ConversationService",
    "StoredTurn",
    "build",
]

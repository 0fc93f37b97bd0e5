"""Every table, one model per module; importing this package registers them all on ``Base.metadata``."""

from bot.db.base import Base
from bot.db.models.bot_opinion import BotOpinion
from bot.db.models.bot_opinion_source import BotOpinionSource
from bot.db.models.bot_state import BotState
from bot.db.models.channel_cast import ChannelCast
from bot.db.models.channel_persona import ChannelPersona
from bot.db.models.conversation import Conversation
from bot.db.models.fact_association import FactAssociation
from bot.db.models.guild import Guild
from bot.db.models.guild_member import GuildMember
from bot.db.models.knowledge_document import KnowledgeDocument
from bot.db.models.memory import Memory
from bot.db.models.message import Message
from bot.db.models.mood_history import MoodHistory
from bot.db.models.persona import Persona
from bot.db.models.reply_alternative import ReplyAlternative
from bot.db.models.runtime_flag import RuntimeFlag
from bot.db.models.scheduled_event import ScheduledEvent
from bot.db.models.token_usage import GuildDailyTokenUsage, UserDailyTokenUsage
from bot.db.models.user import User
from bot.db.models.user_communication_style import UserCommunicationStyle
from bot.db.models.user_fact import UserFact
from bot.db.models.user_preferences import UserPreferences
from bot.db.models.user_relationship import UserRelationship

__all__ = [
    "Base",
    "BotOpinion",
    "BotOpinionSource",
    "BotState",
    "ChannelCast",
    "ChannelPersona",
    "Conversation",
    "FactAssociation",
    "Guild",
    "GuildDailyTokenUsage",
    "GuildMember",
    "KnowledgeDocument",
    "Memory",
    "Message",
    "MoodHistory",
    "Persona",
    "ReplyAlternative",
    "RuntimeFlag",
    "ScheduledEvent",
    "User",
    "UserCommunicationStyle",
    "UserDailyTokenUsage",
    "UserFact",
    "UserPreferences",
    "UserRelationship",
]

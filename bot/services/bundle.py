"""The services a front end calls, in one typed object.

The composition root (``bot/container.py``) builds it once; the Discord bot carries it, and each extension's
``setup()`` takes what its cog uses from it. It holds use cases only (no database, model or scheduler), so a cog
cannot reach past a service into infrastructure.
"""

from dataclasses import dataclass

from bot.observability.metrics import Metrics
from bot.services.conversation import ConversationService
from bot.services.directory import Directory
from bot.services.guild_config import GuildConfigService
from bot.services.knowledge import KnowledgeService
from bot.services.limits import CommandCooldown
from bot.services.operations import Operations
from bot.services.personas import PersonaService
from bot.services.privacy import PrivacyService
from bot.services.reminders import ReminderService
from bot.services.stats import StatsService
from bot.services.status import StatusService
from bot.settings import Settings


@dataclass(frozen=True, slots=True)
class Services:
    settings: Settings
    conversation: ConversationService  # chat turns, and catching up after a restart
    directory: Directory  # who and where: row ids of the person and the server
    personas: PersonaService
    privacy: PrivacyService  # what Hearth knows about a person: show, add, export, erase, opt out
    guild_config: GuildConfigService
    reminders: ReminderService
    stats: StatsService
    knowledge: KnowledgeService
    operations: Operations  # backups
    status: StatusService  # the owner's status, maintenance mode and memory jobs
    command_cooldown: CommandCooldown
    metrics: Metrics

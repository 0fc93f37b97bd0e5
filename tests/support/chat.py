"""Building a real ConversationService against a database and the fake LLM, and a recording front end."""

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from openai import AsyncOpenAI

from bot.db.engine import Database
from bot.db.types import utcnow
from bot.domain.retry import Backoff
from bot.domain.triggers import MessageSignals
from bot.llm.chat import OpenAIChatModel
from bot.llm.openai_client import openai_client
from bot.services.activity import ReplyActivity
from bot.services.companion import CompanionContext
from bot.services.conversation import ConversationConfig, ConversationService, build
from bot.services.directory import Directory
from bot.services.embedding_worker import EmbeddingWorker
from bot.services.image_describer import ImageDescriber
from bot.services.incoming import Author, IncomingMessage, Place
from bot.services.learning import Learner
from bot.services.limits import TokenQuota
from bot.services.memory import MemoryService
from bot.services.personas import PersonaService
from tests.fakes.llm_server import FakeLLM

FAST_BACKOFF = Backoff(base_s=0.05, factor=2, cap_s=0.2, jitter=0.1)


_clients: list[AsyncOpenAI] = []


def chat_model(base_url: str, *, budget_s: float = 5.0, timeout_s: float = 2.0) -> OpenAIChatModel:
    """The production chat model with a quick backoff; its client is closed by :func:`close_clients`."""
    client = openai_client(api_key="test", base_url=base_url, timeout=timeout_s)
    _clients.append(client)
    return OpenAIChatModel(client, budget_s=budget_s, backoff=FAST_BACKOFF)


async def close_clients() -> None:
    """Close every client :func:`chat_model` made (their connection pools) — after each test."""
    while _clients:
        await _clients.pop().close()


def conversation_service(
    db: Database,
    llm: FakeLLM | str,
    *,
    budget_s: float = 5.0,
    timeout_s: float = 2.0,
    clock: Callable[[], datetime] = utcnow,
    memory: MemoryService | None = None,
    worker: EmbeddingWorker | None = None,
    companion: CompanionContext | None = None,
    learner: Learner | None = None,
    describer: ImageDescriber | None = None,
    activity: ReplyActivity | None = None,
    quota: TokenQuota | None = None,
    **config: object,
) -> ConversationService:
    # No per-user cooldown unless a test asks for one: tests (and the benchmark) send faster than people do.
    defaults = {"edit_interval_s": 0.2, "cooldown_s": 0.0}
    settings = ConversationConfig(model="fake-model", **{**defaults, **config})  # type: ignore[arg-type]
    return build(
        db,
        chat_model(llm if isinstance(llm, str) else llm.base_url, budget_s=budget_s, timeout_s=timeout_s),
        Directory(db),
        PersonaService(db),
        settings,
        memory=memory,
        worker=worker,
        companion=companion,
        learner=learner,
        describer=describer,
        activity=activity,
        quota=quota,
        clock=clock,
    )


@dataclass
class RecordingReply:
    """A front end that remembers what it was asked to show."""

    typing_entered: int = 0
    previews: list[str] = field(default_factory=list)
    sent: list[list[str]] = field(default_factory=list)
    speakers: list[str] = field(default_factory=list)  # cast characters it was asked to speak as
    _ids: "itertools.count[int]" = field(default_factory=lambda: itertools.count(1000))

    @contextlib.asynccontextmanager
    async def typing(self) -> AsyncIterator[None]:
        self.typing_entered += 1
        yield

    async def preview(self, text: str) -> None:
        self.previews.append(text)

    def speaking_as(self, name: str, avatar_url: str | None) -> "RecordingReply":
        self.speakers.append(name)
        return self

    def reply_to(self, message_id: int) -> None:
        """Nothing to record: no message is shown as answered here."""

    async def send(self, pieces: Sequence[str], *, regenerable: bool = False) -> list[int]:
        self.sent.append(list(pieces))
        return [next(self._ids) for _ in pieces]


_message_ids = itertools.count(1)


async def eventually(condition: Callable[[], object], timeout_s: float = 5.0) -> None:
    """Wait until ``condition()`` is true, failing the test after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        if condition():
            return
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


def message(
    text: str,
    *,
    user: int = 11,
    name: str = "ana",
    channel: int = 500,
    guild: int | None = None,
    at: datetime | None = None,
    mention: bool = False,
    role_ids: frozenset[int] = frozenset(),
) -> IncomingMessage:
    """An incoming message as the Discord layer would build it."""
    return IncomingMessage(
        author=Author(discord_id=user, username=name, display_name=name.title()),
        place=Place(channel_id=channel, channel_name="general", guild_id=guild, guild_name="Cosy Corner"),
        text=text,
        created_at=at or datetime.now(UTC),
        signals=MessageSignals(
            text=text,
            author_id=user,
            channel_id=channel,
            is_dm=guild is None,
            mentions_bot=mention,
            author_role_ids=role_ids,
        ),
        message_id=next(_message_ids),
    )

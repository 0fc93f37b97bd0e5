"""Describing the images people send into the memory of their turn, in the background, oldest first.

A message with images is stored with its memory (``look at this`` followed by ``[image]`` for each image) and
left pending in the database (``messages.images_pending``). This worker takes each such message, asks the model
once to describe all its images in a sentence each (bot/domain/images.py), and rewrites the memory's text with
them (``[image: a ginger cat asleep on a laptop]``), so "what was in the photo I sent last week?" finds it by
words at once, and by meaning once the embedding worker has made its vector again from the new text (the
rewrite clears it; a vector being made meanwhile from the old text is not stored, see
``MemoryRepository.fill_embeddings``).

Off the reply path: it waits while a reply is being prepared (see ``ReplyActivity``). At most one model call per
message (so at most one per image), or two when a reasoning model thinks through all the room of the first before a
word of it, whether or not a fallback model that cannot see then refuses the images (the second has a reply's room;
if that is thought away too, the message waits as while the model is down, and the worker asks again after a while,
longer each time in a row): a message is claimed by clearing its flag
before the call, so neither another process nor a restart describes it again, and a call the endpoint refuses (a
link expired, a model that cannot see) leaves the memory with its ``[image]`` marks. While the model is down (no
answer within the retry budget; a fallback model standing in for it meanwhile may refuse images it cannot see, which
says nothing of them), the message is given back, pending again, and the rest wait with it: they are
described once the model answers (at the next poll, or when another image comes). The description the model wrote is
then written through database faults, for up to ``WRITE_BUDGET_S``.
Nothing is asked of a model known to be text-only, or while ``LLM_VISION`` is off. What the model does with the
images tells :class:`Vision` as a reply's request does: an answer, that it sees them; a refusal of the images (not
of what they show), towards taking it for text-only (bot/llm/vision.py), so images sent where Hearth answers no one
stop costing a refused request each.
"""

import asyncio
import contextlib
import logging
from collections.abc import Callable

from bot.db.engine import DATABASE_FAULTS, Database
from bot.db.repositories.conversations import ConversationRepository
from bot.db.repositories.memories import MemoryRepository
from bot.domain.images import describe_request, parse_descriptions
from bot.domain.memory_text import with_images
from bot.domain.retry import Backoff
from bot.llm.chat import ChatModel, ChatOptions, ContentRefused, ImageRefused, LLMUnavailable, NoRoomToAnswer
from bot.llm.vision import Vision
from bot.services.activity import ReplyActivity
from bot.services.database_retry import through_database_faults

log = logging.getLogger(__name__)

# Room for a sentence per image in the answer.
TOKENS_PER_DESCRIPTION = 80
# How long the worker waits before asking again about images the model thought through all its room on, at most
# (from ``poll_s``, twice as long each time in a row): each time costs two requests full of thinking.
THOUGHT_AWAY_WAIT_CAP_S = 3600.0
# How long writing a description rides out database faults (a restart, dropped connections) before it is lost.
WRITE_BUDGET_S = 30.0


def _nothing() -> None:
    pass


class _ModelDown(Exception):
    """The model could not answer (down, not refusing): the message was given back to be described later."""


class _ThoughtAway(_ModelDown):
    """The model thought through all its room, twice, before a word of the descriptions: not refusing, and it may
    fit later (with LLM_MAX_TOKENS raised), so the message was given back as when the model is down."""


def _thought_away(exc: LLMUnavailable) -> bool:
    """Whether a model thought through all its room before a word (a reasoning model): the one asked (NoRoomToAnswer),
    or one before the fallback model that then refused the images (its fault ``no_room`` in the chain's)."""
    return isinstance(exc, NoRoomToAnswer) or (isinstance(exc, ImageRefused) and "no_room" in exc.faults)


class ImageDescriber:
    def __init__(
        self,
        database: Database,
        chat: ChatModel,
        vision: Vision,
        *,
        model: str,
        rewritten: Callable[[], None] = _nothing,
        activity: ReplyActivity | None = None,
        yield_s: float = 0.25,
        batch_size: int = 8,
        poll_s: float = 30.0,
        max_tokens_when_no_room: int = 600,
    ) -> None:
        self.database = database
        self.chat = chat
        self.vision = vision
        self.model = model
        self.rewritten = rewritten  # a memory's text changed: its vector is to be made again
        self.activity = activity
        self.yield_s = yield_s
        self.batch_size = batch_size
        self.poll_s = poll_s
        # The room a description is asked for again with when the model's thinking took all of the first (a reply's).
        self.max_tokens_when_no_room = max_tokens_when_no_room
        self._thought_away = 0  # times in a row the model thought away the oldest message's images
        self.calls = 0  # model calls made so far
        self.described = 0  # messages whose memory now holds a description
        self._wake = asyncio.Event()
        self._asked = 0
        self._answered = 0
        self._idle = asyncio.Condition()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._stopping = False
            self._task = asyncio.create_task(self._run(), name="image-describer")

    def wake(self) -> None:
        """A message with images to describe was stored."""
        self._asked += 1
        self._wake.set()

    async def flush(self) -> None:
        """Wait until every message stored before this call is described (tests, the bench); when the worker is
        not running, describe them here."""
        if self._task is None:
            while await self.describe_pending():
                pass
            return
        self.wake()
        target = self._asked
        async with self._idle:
            await self._idle.wait_for(lambda: self._answered >= target or self._task is None)

    async def stop(self, timeout_s: float = 10.0) -> None:
        """Finish the message under way (within ``timeout_s``), then stop; the rest waits for the next start."""
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping = True
        self._wake.set()
        try:
            async with asyncio.timeout(timeout_s):
                await asyncio.shield(task)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        async with self._idle:
            self._idle.notify_all()

    async def _run(self) -> None:
        backoff = Backoff(base_s=0.5, cap_s=30.0)
        failures = 0
        while not self._stopping:
            asked = self._asked
            try:
                done = await self.describe_pending()
            except DATABASE_FAULTS as exc:  # the messages wait in the database
                failures += 1
                log.warning("could not describe images (%s); retrying", exc)
                await self._sleep(backoff.delay(failures))
                continue
            except Exception:  # whatever else: the worker carries on (the message taken is left with "[image]")
                failures += 1
                log.exception("could not describe images; carrying on")
                await self._sleep(backoff.delay(failures))
                continue
            failures = 0
            if done:
                continue
            async with self._idle:
                self._answered = max(self._answered, asked)
                self._idle.notify_all()
            wait = Backoff(base_s=self.poll_s, cap_s=THOUGHT_AWAY_WAIT_CAP_S, jitter=0.0)
            await self._sleep(wait.delay(self._thought_away) if self._thought_away else self.poll_s)

    async def _sleep(self, seconds: float) -> None:
        if self._stopping:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._wake.wait()
        self._wake.clear()

    async def describe_pending(self) -> int:
        """Describe the oldest messages with images pending (one batch); returns how many were taken (none while
        the model is down: they wait for it)."""
        async with self.database.reading() as session:
            pending = await ConversationRepository(session).with_images_pending(limit=self.batch_size)
        for message_id in pending:
            if self._stopping:
                break
            try:
                await self.describe(message_id)
            except _ThoughtAway as away:
                self._thought_away += 1
                log.warning(
                    "could not describe images: the model wrote no description within %d tokens (%s); they wait to"
                    " be asked about again (a reasoning model's thinking counts in them: give it more with"
                    " LLM_MAX_TOKENS)",
                    self.max_tokens_when_no_room,
                    away,
                )
                return 0
            except _ModelDown as down:
                log.warning("could not describe images: the model is unavailable (%s); they wait for it", down)
                return 0
            self._thought_away = 0
        return len(pending)

    def _down(self, exc: LLMUnavailable) -> bool:
        """Whether the model asked for could not answer for being down (errors, timeouts), so that it may describe
        the images in a while: a fault that is no refusal, from any model tried, or the model asked for not asked
        at all (resting after it failed, behind the fallback model that refused; bot/llm/fallback.py). A fallback
        model refusing them says nothing of whether the model asked for can read them."""
        if not exc.faults or any(fault not in ("refused", "no_room") for fault in exc.faults):
            return True
        return bool(exc.models) and self.model not in exc.models

    def _refused(self, exc: LLMUnavailable, urls: list[str]) -> None:
        """Tell :class:`Vision` of a refusal of the images (not of what they show), by the model that refused."""
        if isinstance(exc, ImageRefused) and not isinstance(exc, ContentRefused):
            self.vision.refused(exc.models[-1] if exc.models else self.model, str(exc), urls)

    async def describe(self, message_id: int) -> None:
        """Claim one message's images, describe them with one model call (two when the first is thought away) and
        write that into its memory."""
        async with self.database.session() as session:
            claimed = await ConversationRepository(session).claim_images(message_id)
            memory = await MemoryRepository(session).of_message(message_id) if claimed is not None else None
        if claimed is None or memory is None:
            return
        text, urls = claimed
        if not urls or not self.vision.sees(self.model):
            return
        if self.activity is not None:
            await self.activity.until_quiet(self.yield_s)
        options = ChatOptions(model=self.model, temperature=0.2, max_tokens=TOKENS_PER_DESCRIPTION * len(urls))
        self.calls += 1
        try:
            try:
                completion = await self.chat.generate(describe_request(urls, text), options)
            except LLMUnavailable as exc:  # thought through all of them before a word: once more, with a reply's room
                if not _thought_away(exc) or self.max_tokens_when_no_room <= options.max_tokens:
                    raise
                self._refused(exc, urls)
                options = ChatOptions(model=self.model, temperature=0.2, max_tokens=self.max_tokens_when_no_room)
                self.calls += 1
                completion = await self.chat.generate(describe_request(urls, text), options)
        except LLMUnavailable as exc:
            self._refused(exc, urls)
            no_room = _thought_away(exc)
            if no_room or self._down(exc):  # not refusing: described once it answers, or fits
                async with self.database.session() as session:
                    await ConversationRepository(session).release_images(message_id)
                raise (_ThoughtAway if no_room else _ModelDown)(str(exc)) from exc
            # A link expired, a model that cannot see: asking again would be refused again; the memory keeps "[image]"
            log.warning("could not describe the images of message %s: %s", message_id, exc)
            return
        self.vision.saw(completion.model)
        descriptions = parse_descriptions(completion.text, len(urls))
        if not any(descriptions):
            return
        memory_id, speaker, created_at = memory
        content = with_images(text, descriptions)

        async def write(attempt: int) -> None:
            async with self.database.session() as session:
                await MemoryRepository(session).rewrite(memory_id, content, created_at=created_at, speaker_name=speaker)

        # The message is claimed already: a description not written now would never be asked for again.
        await through_database_faults(write, what=f"describing message {message_id}'s images", budget_s=WRITE_BUDGET_S)
        self.described += 1
        self.rewritten()

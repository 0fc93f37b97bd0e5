"""Fallback models: when the model asked for cannot answer, the next one in ``LLM_FALLBACK_MODELS`` does.

The model asked for (``LLM_MODEL``, or a guild's ``/config model``) is tried first, with its own retries within
the retry budget; an error no retry can fix (404 no such model, 400 prompt too long, …) ends its turn at once.
Then each fallback model is tried in order, on the same endpoint or on ``LLM_FALLBACK_BASE_URL``. The answer
says nothing about it; its :class:`Completion` names the model that wrote it, so usage is counted for that one.

A model that failed so is tried after the others for the next ``rest_s`` seconds (60 by default): while it is
down, a reply does not wait out its whole retry budget before the next model answers. A model that refused one
request for what it holds (a content filter, a prompt longer than its window), or that thought through all of one
answer's ``max_tokens`` before it began (a reasoning model), is not down: the next model answers that request, and
the next request goes to it first as before.

A model the vision tracker knows to be text-only (bot/llm/vision.py) is not sent images: a request with images that
reaches it ends as if it had refused them, without a request, so a reply is answered again without them
(``VisionGate``) and an image description waits for a model that sees.

Once a piece of the answer has been shown (a streaming preview), a failure is not handed to another model:
the person would see one model's start replaced by another's different answer. The reply ends as a failed
one does (the apology), as it did before there were fallbacks.
"""

import dataclasses
import logging
import time
from collections.abc import Callable, Sequence

from bot.domain.prompt import ChatMessage
from bot.llm.chat import (
    ChatModel,
    ChatOptions,
    Completion,
    ContentRefused,
    ImageRefused,
    LLMUnavailable,
    NoRoomToAnswer,
    OpenAIChatModel,
    PromptTooLong,
    TextCallback,
)
from bot.llm.vision import Vision

log = logging.getLogger(__name__)


class FallbackChatModel:
    """A `ChatModel` that tries the model asked for on ``primary``, then each of ``models`` on ``fallback``."""

    def __init__(
        self,
        primary: ChatModel,
        models: Sequence[str],
        *,
        fallback: ChatModel | None = None,
        rest_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        vision: Vision | None = None,
    ) -> None:
        self.primary = primary
        self.fallback = fallback or primary
        self.models = tuple(models)
        self.rest_s = rest_s
        self.clock = clock
        self.vision = vision  # which models are known to be text-only (None: none is)
        self._failed_at: dict[str, float] = {}  # model name → when it last failed

    def _resting(self, name: str) -> bool:
        failed_at = self._failed_at.get(name)
        return failed_at is not None and self.clock() - failed_at < self.rest_s

    async def generate(
        self, messages: Sequence[ChatMessage], options: ChatOptions, on_text: TextCallback | None = None
    ) -> Completion:
        chain: list[tuple[ChatModel, str]] = [(self.primary, options.model)]
        chain += [(self.fallback, name) for name in self.models if name != options.model]
        chain.sort(key=lambda link: self._resting(link[1]))  # stable: the order stays among the rested and the resting
        shown = False

        async def watch(text: str) -> None:
            nonlocal shown
            shown = shown or bool(text)
            if on_text is not None:
                await on_text(text)

        failed: list[str] = []
        faults: list[str] = []
        images = any(message.images for message in messages)
        for position, (model, name) in enumerate(chain):
            try:
                if images and self.vision is not None and not self.vision.sees(name):
                    log.info("model %s is known to be text-only: not sent the images", name)
                    raise ImageRefused(f"model {name} is known to be text-only", models=[name])
                completion = await model.generate(
                    messages, dataclasses.replace(options, model=name), watch if on_text is not None else None
                )
            except ImageRefused as exc:  # not down: answered without the images, by the caller (bot/llm/vision.py)
                if not failed:
                    raise
                # Standing in for models that failed: the caller hears of them too, this one last.
                raise type(exc)(str(exc), faults=[*faults, *exc.faults], models=[*failed, name]) from exc
            except LLMUnavailable as exc:
                # This request refused, or thought through all its room (a reasoning model): not the model down.
                if not isinstance(exc, ContentRefused | PromptTooLong | NoRoomToAnswer):
                    self._failed_at[name] = self.clock()
                failed.append(name)
                faults.extend(exc.faults)
                last = position == len(chain) - 1
                if last or shown:
                    if not last:
                        log.warning("model %s failed after part of its answer was shown: %s", name, exc)
                    raise type(exc)(str(exc), faults=faults, models=failed) from exc  # still saying why
                log.warning("model %s failed (%s); trying %s", name, exc, chain[position + 1][1])
                continue
            self._failed_at.pop(name, None)
            if failed:
                return dataclasses.replace(
                    completion, faults=(*faults, *completion.faults), fell_back_from=tuple(failed)
                )
            return completion
        raise AssertionError("unreachable: the chain is never empty")

    async def aclose(self) -> None:
        """Close the clients of the endpoints (once each, when the fallback endpoint is the same)."""
        for model in {id(m): m for m in (self.primary, self.fallback)}.values():
            if isinstance(model, OpenAIChatModel):
                await model.client.close()

"""Images in chat requests: whether they are sent, and to which models.

Images are sent while ``LLM_VISION`` is on, to every model not yet known to be text-only. A refused request
(HTTP 400) is answered again without its images. A model is known to be text-only, for the rest of this process,
once that happened twice in a row (no request with images answered in between): a request refused for another
reason (too long, say) teaches nothing, since it fails without images too, and neither does one image the
endpoint could not use (a link it failed to fetch), since the next image goes through. A refusal for what the
request holds (a content filter: 400 ``content_filter`` or ``content_policy_violation``) is answered without its
images too, and counts neither way: it says nothing of whether the model sees them. Hearth says so once in its
log (a warning naming the model); each reply is the one without images, and says what the refused request met
(its failed attempts, the models that failed before the one that refused), so the metrics count an outage behind
it. The image describer's requests count the same way (bot/services/image_describer.py), but a refusal of images
already refused since the last one answered counts once: a link the endpoint could not fetch fails the reply and
the description of its message alike.
"""

import logging
from collections.abc import Sequence
from dataclasses import replace

from bot.domain.memory_text import with_images
from bot.domain.prompt import ChatMessage
from bot.llm.chat import (
    ChatModel,
    ChatOptions,
    Completion,
    ContentRefused,
    ImageRefused,
    LLMUnavailable,
    TextCallback,
)

log = logging.getLogger(__name__)

# Refusals in a row (no request with images answered in between) that make a model text-only for the process.
REFUSALS_TO_TEXT_ONLY = 2


class Vision:
    """What this process knows of which models see images; shared by everything that sends them."""

    def __init__(self, *, enabled: bool = True) -> None:
        self.enabled = enabled
        self._text_only: set[str] = set()
        self._refused_in_a_row: dict[str, int] = {}
        self._refused_images: dict[str, set[str]] = {}  # the images of the refusals counted in a row, per model

    def sees(self, model: str) -> bool:
        """Whether images may be sent to ``model``."""
        return self.enabled and model not in self._text_only

    def saw(self, model: str) -> None:
        """``model`` answered a request with images: an earlier refusal was about those images, not the model."""
        self._refused_in_a_row.pop(model, None)
        self._refused_images.pop(model, None)

    def refused(self, model: str, reason: str, images: Sequence[str] = ()) -> None:
        """``model`` refused a request with ``images`` as images it cannot take (not for what they show); the second
        time in a row it is taken for text-only and sent no image again in this process (said once in the log). A
        refusal of only images refused already since the last request with images answered does not count again."""
        if model in self._text_only:
            return
        counted = self._refused_images.setdefault(model, set())
        if images and counted.issuperset(images):
            log.info("model %s refused images it had refused already (%s)", model, reason)
            return
        counted.update(images)
        refusals = self._refused_in_a_row.get(model, 0) + 1
        if refusals < REFUSALS_TO_TEXT_ONLY:
            self._refused_in_a_row[model] = refusals
            log.info("model %s refused a request with images (%s)", model, reason)
            return
        self._refused_in_a_row.pop(model, None)
        self._refused_images.pop(model, None)
        self._text_only.add(model)
        log.warning(
            "model %s refused requests with images %d times in a row: treating it as text-only from now on (%s)."
            " Set LLM_VISION=false to stop sending images at all.",
            model,
            refusals,
            reason,
        )


def without_images(messages: Sequence[ChatMessage]) -> list[ChatMessage]:
    """The messages with each image left as an ``[image]`` mark: the model knows something was sent that it
    cannot see (a message of only a photo would otherwise read as empty)."""
    return [
        replace(m, content=with_images(m.content, [None] * len(m.images)), images=()) if m.images else m
        for m in messages
    ]


class VisionGate:
    """A :class:`ChatModel` that sends images only where :class:`Vision` allows, and answers a request whose
    images were refused without them (see the module's docstring)."""

    def __init__(self, inner: ChatModel, vision: Vision) -> None:
        self.inner = inner
        self.vision = vision

    async def generate(
        self, messages: Sequence[ChatMessage], options: ChatOptions, on_text: TextCallback | None = None
    ) -> Completion:
        if not any(m.images for m in messages):
            return await self.inner.generate(messages, options, on_text)
        if not self.vision.sees(options.model):
            return await self.inner.generate(without_images(messages), options, on_text)
        try:
            completion = await self.inner.generate(messages, options, on_text)
        except ImageRefused as refused:
            completion = await self._again_without_images(messages, options, on_text, refused)
            if isinstance(refused, ContentRefused):  # what the images show, not whether the model sees them
                log.info("model %s refused a request with images for its content; answered without them", options.model)
                return completion
            # The model that refused: the one asked for, or a fallback model standing in for it (bot/llm/fallback.py).
            images = [url for message in messages for url in message.images]
            self.vision.refused(refused.models[-1] if refused.models else options.model, str(refused), images)
            return completion
        self.vision.saw(completion.model)
        return completion

    async def _again_without_images(
        self, messages: Sequence[ChatMessage], options: ChatOptions, on_text: TextCallback | None, refused: ImageRefused
    ) -> Completion:
        """The request answered again without its images, saying what the refused one met: its failed attempts, and
        the models that failed before the one that refused (the model asked for down, a fallback standing in)."""
        failed = refused.models[:-1]
        try:
            completion = await self.inner.generate(without_images(messages), options, on_text)
        except LLMUnavailable as exc:
            models = dict.fromkeys((*failed, *(exc.models or (options.model,))))
            raise type(exc)(str(exc), faults=(*refused.faults, *exc.faults), models=tuple(models)) from exc
        fell_back_from = dict.fromkeys((*failed, *completion.fell_back_from))
        fell_back_from.pop(completion.model, None)  # failed, then answered without the images: it answered
        return replace(completion, faults=(*refused.faults, *completion.faults), fell_back_from=tuple(fell_back_from))

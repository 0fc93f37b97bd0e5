"""A ChatModel that counts its calls, tokens and failed attempts for the metrics, under one purpose."""

from collections.abc import Sequence

from bot.domain.prompt import ChatMessage
from bot.llm.chat import ChatModel, ChatOptions, Completion, LLMUnavailable, TextCallback
from bot.observability.metrics import Metrics


class MeteredChatModel:
    """Wraps the model a service is given; ``purpose`` is what the service asks it for (reply, learning, …).

    Calls and tokens are counted for the model that answered; a fallback chain's failed models count as failed."""

    def __init__(self, inner: ChatModel, metrics: Metrics, purpose: str) -> None:
        self.inner = inner
        self.metrics = metrics
        self.purpose = purpose

    async def generate(
        self, messages: Sequence[ChatMessage], options: ChatOptions, on_text: TextCallback | None = None
    ) -> Completion:
        try:
            completion = await self.inner.generate(messages, options, on_text)
        except LLMUnavailable as exc:
            models = exc.models or (options.model,)
            for index, model in enumerate(models):
                self.metrics.model_failed(model=model, purpose=self.purpose, faults=exc.faults if index == 0 else ())
            raise
        for model in completion.fell_back_from:
            self.metrics.model_failed(model=model, purpose=self.purpose, faults=())
        self.metrics.model_answered(
            model=completion.model,
            purpose=self.purpose,
            prompt_tokens=completion.prompt_tokens,
            completion_tokens=completion.completion_tokens,
            faults=completion.faults,
        )
        return completion

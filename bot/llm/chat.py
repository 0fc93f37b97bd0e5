"""Chat completions from any OpenAI-compatible endpoint, streamed, with retries inside a time budget."""

import asyncio
import json
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import httpx2 as httpx
import openai
from openai import AsyncOpenAI
from openai._constants import RAW_RESPONSE_HEADER

from bot.domain.prompt import ChatMessage
from bot.domain.reasoning import ReasoningFilter, strip_reasoning
from bot.domain.retry import Backoff, fits_budget
from bot.errors import HearthError
from bot.llm.openai_client import out_of_credits, requested_wait_s
from bot.llm.tokens import counter_for

log = logging.getLogger(__name__)

TextCallback = Callable[[str], Awaitable[None]]


class LLMUnavailable(HearthError):
    """The model could not answer within the retry budget, or refused the request outright.

    ``faults`` are the kinds of the failed attempts, in order (see :class:`Completion`); ``models`` the models
    that failed, in the order they were tried (empty: the one asked for)."""

    def __init__(self, message: str, *, faults: Sequence[str] = (), models: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.faults = tuple(faults)
        self.models = tuple(models)


class NoRoomToAnswer(LLMUnavailable):
    """The model used all its ``max_tokens`` before it began to answer (a reasoning model's thinking counts in them
    on most servers), or wrote only its thinking (which some servers end with "stop" even when it took every token):
    it is not down, and the same request would end the same way, where more room may be answered."""


class RequestRefused(LLMUnavailable):
    """The endpoint refused (HTTP 400 or 422) this request for what it holds (a content filter, a prompt too long):
    the same request would be refused again, where another may be answered."""


class ContentRefused(RequestRefused):
    """The endpoint refused this request for what it says (a content filter: HTTP 400 ``content_filter`` or
    ``content_policy_violation``, or an answer it withheld, ending with finish_reason ``content_filter``), or the
    model declined to answer it (OpenAI's ``refusal`` in place of the answer): asking again with the same words
    would be refused again."""


class PromptTooLong(RequestRefused):
    """The endpoint refused (HTTP 400) a prompt longer than the model's context window: a shorter one may do."""


_T = TypeVar("_T")


async def fitting_the_window(ask: Callable[[int], Awaitable[_T]], tokens: int, *, floor: int, what: str) -> _T:
    """``ask(tokens)`` (a request built for that many tokens), then for half as many each time the endpoint
    refuses it as longer than the model's window (smaller than Hearth was told), down to ``floor``: past that the
    :class:`PromptTooLong` is raised. ``what`` names the request in the log."""
    while True:
        try:
            return await ask(tokens)
        except PromptTooLong:
            if tokens // 2 < floor:
                raise
            tokens //= 2
            log.warning("%s does not fit the model's context window; asking again within %d tokens", what, tokens)


class ImageRefused(RequestRefused):
    """The endpoint refused (HTTP 400) a request that carried images: most likely ``models[-1]``, the model that
    refused, cannot see them (a text-only model), or cannot fetch them; the models before it, if any, failed before
    it was asked (bot/llm/fallback.py). See bot/llm/vision.py."""


class ImageContentRefused(ImageRefused, ContentRefused):
    """The endpoint refused (HTTP 400) a request that carried images for what it holds (a content filter): the
    images may be what was refused, and it says nothing of whether ``models[-1]`` can see them."""


@dataclass(frozen=True, slots=True)
class ChatOptions:
    model: str
    temperature: float = 0.8
    max_tokens: int = 600
    extra_headers: Mapping[str, str] = field(default_factory=dict)
    extra_body: Mapping[str, Any] = field(default_factory=dict)
    # The setting that gave ``max_tokens``, named in the log when the model runs out of them.
    room_setting: str = "LLM_MAX_TOKENS for replies"


@dataclass(frozen=True, slots=True)
class Completion:
    text: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    attempts: int
    seconds: float  # wall time spent waiting for the model, retries included
    # The kinds of the attempts that failed before this answer: rate_limited, server_error, timeout, connection,
    # bad_stream, empty (and refused, or no_room: all its max_tokens thought away before an answer, which end the call).
    faults: tuple[str, ...] = ()
    # The models that failed before ``model`` answered (see bot/llm/fallback.py).
    fell_back_from: tuple[str, ...] = ()
    # Why the answer ended, as the endpoint said: "stop", "length" (out of max_tokens), "content_filter" (a filter
    # cut it off after ``text``), … (None: it did not say).
    finish_reason: str | None = None


class ChatModel(Protocol):
    async def generate(
        self, messages: Sequence[ChatMessage], options: ChatOptions, on_text: TextCallback | None = None
    ) -> Completion:
        """Generate a reply. ``on_text`` gets the whole text so far after each piece (from "" again on a retry)."""
        ...


class _ShowingFailed(Exception):
    """Raised in the stream in place of what the caller's ``on_text`` raised (``failure``): the caller's own failure
    to show the answer so far (a bug, its front end refusing it), which no retry of the model is for."""

    def __init__(self, failure: Exception) -> None:
        super().__init__(repr(failure))
        self.failure = failure


class _Retryable(Exception):
    def __init__(self, reason: str, retry_after_s: float | None = None, *, kind: str) -> None:
        super().__init__(reason)
        self.retry_after_s = retry_after_s
        self.kind = kind


def wire_message(message: ChatMessage) -> dict[str, Any]:
    """A prompt message as the chat completions API takes it: plain text, or its text and images as parts."""
    if not message.images:
        return {"role": message.role, "content": message.content}
    parts: list[dict[str, Any]] = [{"type": "text", "text": message.content}] if message.content else []
    parts += [{"type": "image_url", "image_url": {"url": url}} for url in message.images]
    return {"role": message.role, "content": parts}


# How servers say a prompt does not fit the model's window: OpenAI's code, and the words of OpenAI, vLLM, LM Studio
# ("maximum context length is 4096 tokens"), llama.cpp ("exceeds the available context size") and others.
_TOO_LONG_WORDS = ("context length", "context_length", "context size", "context window", "prompt is too long")


# The codes of a refusal for the request's content: Azure OpenAI's content filter, OpenAI's usage policies.
_CONTENT_CODES = frozenset({"content_filter", "content_policy_violation"})


def _too_long(exc: openai.APIStatusError) -> bool:
    said = f"{exc.code or ''} {exc.message}".lower()
    return any(words in said for words in _TOO_LONG_WORDS)


def _is_transport_error(exc: BaseException) -> bool:
    """A broken connection from the HTTP stack beneath the client (whichever one this openai version uses)."""
    module = type(exc).__module__
    return isinstance(exc, OSError | asyncio.TimeoutError) or module.startswith(("httpx", "httpcore", "aiohttp"))


async def _sse_events(lines: AsyncIterator[str]) -> AsyncIterator[dict[str, Any]]:
    """The JSON payloads of a server-sent event stream (``data:`` fields; ends at ``[DONE]`` or EOF)."""
    data: list[str] = []
    async for line in lines:
        if line.startswith("data:"):
            data.append(line[6:] if line.startswith("data: ") else line[5:])
            continue
        if line or not data:
            continue  # comments, other fields, keep-alive blank lines
        payload, data = "\n".join(data), []
        if payload == "[DONE]":
            return
        yield json.loads(payload)
    if data and (payload := "\n".join(data)) != "[DONE]":
        yield json.loads(payload)


class OpenAIChatModel:
    """`ChatModel` over ``openai.AsyncOpenAI``; the client's own retries are off, these are ours."""

    def __init__(
        self,
        client: AsyncOpenAI,
        *,
        budget_s: float = 30.0,
        backoff: Backoff | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.client = client
        self.budget_s = budget_s
        self.backoff = backoff or Backoff()
        self.rng = rng or random.Random()

    async def generate(
        self, messages: Sequence[ChatMessage], options: ChatOptions, on_text: TextCallback | None = None
    ) -> Completion:
        started = time.monotonic()
        attempt = 0
        faults: list[str] = []
        while True:
            attempt += 1
            try:
                text, usage, finish = await self._stream_once(messages, options, on_text)
            except LLMUnavailable as refused:  # ends the call: the same request would end the same way
                refused.faults = (*faults, "no_room" if isinstance(refused, NoRoomToAnswer) else "refused")
                raise
            except _Retryable as fault:
                faults.append(fault.kind)
                elapsed = time.monotonic() - started
                wait = self.backoff.delay(attempt, retry_after_s=fault.retry_after_s, rng=self.rng)
                if not fits_budget(elapsed, wait, self.budget_s):
                    raise LLMUnavailable(
                        f"the model did not answer after {attempt} attempts: {fault}", faults=faults
                    ) from fault
                log.warning("model call failed (%s); retry %d in %.2fs", fault, attempt, wait)
                await asyncio.sleep(wait)
                continue
            count = counter_for(options.model)  # when the server reports no usage
            prompt_tokens, completion_tokens = usage or (sum(count(m.content) for m in messages), count(text))
            return Completion(
                text=text,
                model=options.model,
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
                attempts=attempt,
                seconds=time.monotonic() - started,
                faults=tuple(faults),
                finish_reason=finish,
            )

    async def _stream_once(
        self, messages: Sequence[ChatMessage], options: ChatOptions, on_text: TextCallback | None
    ) -> tuple[str, tuple[int, int] | None, str | None]:
        # Only the answer is kept: a reasoning model's <think>…</think> and its ``reasoning_content`` (or
        # ``reasoning``) deltas are never shown, stored, remembered or learned from.
        text, usage, hider, finish = "", None, ReasoningFilter(), None
        declined = ""  # what the model said instead of answering (OpenAI's ``refusal``, with structured outputs)
        thought = False  # it wrote thinking: reasoning deltas, or words in the content that the filter hid
        if on_text is not None:
            await on_text("")

        async def show(shown: str) -> None:
            if on_text is not None:
                try:
                    await on_text(shown)
                except Exception as exc:
                    raise _ShowingFailed(exc) from None

        try:
            # The typed ``chat.completions.create`` runs the request through the SDK's TypedDict transformer and
            # every streamed chunk through pydantic, which together cost more CPU than the rest of a turn. The body
            # is plain JSON already and the chunks are read as JSON: same endpoint, auth, headers, timeouts and
            # error mapping, through the client's public ``post`` with a raw streamed response.
            body: dict[str, Any] = {
                **options.extra_body,
                "model": options.model,
                "messages": [wire_message(m) for m in messages],
                "temperature": options.temperature,
                "max_tokens": options.max_tokens,
                "stream": True,
                "stream_options": {"include_usage": True},
            }
            response = await self.client.post(
                "/chat/completions",
                cast_to=httpx.Response,
                body=body,
                options={"headers": {**options.extra_headers, RAW_RESPONSE_HEADER: "stream"}},
                stream=True,
            )
            try:
                whole_answer = response.headers.get("content-type", "").startswith("application/json")
                if whole_answer:
                    # A server that ignores ``stream`` answers with one whole completion.
                    whole = json.loads(await response.aread())
                    said = whole["choices"][0]["message"]["content"] or ""
                    text = strip_reasoning(said)
                    finish = whole["choices"][0].get("finish_reason")
                    declined = whole["choices"][0]["message"].get("refusal") or ""
                    reasoned = [whole["choices"][0]["message"].get(key) for key in ("reasoning_content", "reasoning")]
                    thought = bool(said.strip()) or any(reasoned)
                    if whole.get("usage"):
                        usage = (int(whole["usage"]["prompt_tokens"]), int(whole["usage"]["completion_tokens"]))
                    if text:
                        await show(text)
                async for event in _sse_events(response.aiter_lines()):
                    if event.get("error"):
                        raise _Retryable(f"stream error: {event['error']}", kind="bad_stream")
                    if event.get("usage"):
                        usage = (int(event["usage"]["prompt_tokens"]), int(event["usage"]["completion_tokens"]))
                    choices = event.get("choices") or ()
                    finish = (choices[0].get("finish_reason") if choices else None) or finish
                    delta = (choices[0].get("delta") or {}) if choices else {}
                    declined += delta.get("refusal") or ""
                    thought = thought or bool(delta.get("reasoning_content") or delta.get("reasoning"))
                    piece = delta.get("content")
                    if piece:
                        thought = thought or bool(piece.strip())
                        shown = hider.feed(piece)
                        if shown != text:
                            text = shown
                            await show(text)
                if not whole_answer and (shown := hider.finish()) != text:
                    text = shown
                    await show(text)
            finally:
                await response.aclose()
        except _ShowingFailed as failed:  # the caller's, raised as it was: not the stream's fault, nor retried
            raise failed.failure from failed.failure.__cause__
        except openai.RateLimitError as exc:
            if out_of_credits(exc):
                refused = f"the model endpoint refused the request (429, no credits left): {exc.message}"
                raise LLMUnavailable(refused) from exc
            raise _Retryable("rate limited (429)", requested_wait_s(exc.response), kind="rate_limited") from exc
        except openai.APIStatusError as exc:
            if exc.status_code >= 500 or exc.status_code in (408, 409):
                raise _Retryable(
                    f"server error {exc.status_code}", requested_wait_s(exc.response), kind="server_error"
                ) from exc
            refused = f"the model endpoint refused the request ({exc.status_code}): {exc.message}"
            if exc.status_code == 400 and _too_long(exc):
                raise PromptTooLong(refused, models=[options.model]) from exc
            if exc.status_code == 400 and any(m.images for m in messages):
                if exc.code in _CONTENT_CODES:
                    raise ImageContentRefused(refused, models=[options.model]) from exc
                raise ImageRefused(refused, models=[options.model]) from exc
            if exc.status_code in (400, 422) and exc.code in _CONTENT_CODES:
                raise ContentRefused(refused, models=[options.model]) from exc
            if exc.status_code in (400, 422):
                raise RequestRefused(refused) from exc
            raise LLMUnavailable(refused) from exc
        except openai.APITimeoutError as exc:  # before APIConnectionError, its base class
            raise _Retryable(type(exc).__name__, kind="timeout") from exc
        except openai.APIConnectionError as exc:
            raise _Retryable(type(exc).__name__, kind="connection") from exc
        except (ValueError, KeyError, TypeError, AttributeError) as exc:  # a garbled chunk
            raise _Retryable(f"unreadable stream: {exc!r}", kind="bad_stream") from exc
        except Exception as exc:
            if _is_transport_error(exc):
                kind = "timeout" if isinstance(exc, asyncio.TimeoutError) else "connection"
                raise _Retryable(f"stream broken: {type(exc).__name__}", kind=kind) from exc
            raise
        if not text.strip():
            if declined.strip():  # the model's own refusal of these words: asking again would be declined again
                raise ContentRefused(f"the model declined to answer: {declined.strip()}", models=[options.model])
            if finish == "content_filter":  # withheld whole: the same words would be withheld again
                raise ContentRefused(
                    "the model endpoint withheld the answer (finish_reason content_filter)", models=[options.model]
                )
            if finish == "length":  # the same room again would end the same way: no retry makes an answer
                raise NoRoomToAnswer(
                    f"the model used all its max_tokens ({options.max_tokens}) before it began to answer (a reasoning"
                    f" model's thinking counts in them): give it more ({options.room_setting})",
                    models=[options.model],
                )
            if thought:  # all thinking: some servers say "stop" when it took every token; the same room ends the same
                raise NoRoomToAnswer(
                    f"the model wrote only its thinking and no answer (finish_reason {finish}; its thinking may have"
                    f" used all its max_tokens, {options.max_tokens}): give it more ({options.room_setting})",
                    models=[options.model],
                )
            raise _Retryable("empty answer", kind="empty")
        if finish == "length":
            log.warning(
                "the model used all its max_tokens (%d) and its answer was cut short (a reasoning model's thinking"
                " counts in them): give it more (%s)",
                options.max_tokens,
                options.room_setting,
            )
        return text, usage, finish

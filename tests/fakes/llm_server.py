"""A fake OpenAI-compatible API: a real aiohttp server on 127.0.0.1 that the real ``openai`` client talks to.

Script the answers per test with :meth:`FakeLLM.script`; when the script runs out, :attr:`FakeLLM.default` answers
(a function of the request body may be a coroutine: the answer waits for it, so a test can change something while
the model is "thinking"). Requests to describe images (Hearth's image describer) are answered apart, never from the
script, with :attr:`FakeLLM.image_descriptions` (else a sentence naming the file), after any steps queued in
:attr:`FakeLLM.description_faults` (``Fail(503)``: the model down while describing); a model in
:attr:`FakeLLM.text_only_models` refuses any request carrying an image with 400, as a text-only model behind a real
endpoint does; a model in :attr:`FakeLLM.context_windows` refuses with 400 ``context_length_exceeded`` a request
whose messages and ``max_tokens`` together pass its window, as OpenAI and vLLM do. Every request is recorded so
tests can assert on the prompt; unknown routes answer 404 and are kept in :attr:`FakeLLM.unexpected`::

    async with FakeLLM() as llm:
        llm.script(Fail(429, retry_after=0.1), Reply("hello", chunk_size=2))
        client = openai.AsyncOpenAI(base_url=llm.base_url, api_key="test", max_retries=0)
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import hashlib
import inspect
import json
import math
import random
import re
import struct
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from email.utils import formatdate
from types import TracebackType
from typing import Any, Self

from aiohttp import web
from multidict import CIMultiDict

from tests.fakes.local_http import serve_locally

__all__ = [
    "BrokenStream",
    "Fail",
    "FakeLLM",
    "LLMRequest",
    "Reply",
    "Stall",
    "Step",
    "count_tokens",
    "echo_last_user_message",
    "embed_text",
    "image_urls",
]


@dataclass(frozen=True)
class Reply:
    """A successful answer; streamed in ``chunk_size`` pieces, ``delay_between_chunks`` seconds apart.

    Token usage defaults to a rough count (about four characters a token). ``reasoning`` is streamed first as
    ``reasoning_content`` deltas, as vLLM and DeepSeek send a reasoning model's thinking (and put in the whole
    completion's message when not streaming). ``refusal`` is the model declining, as OpenAI sends it with
    structured outputs: streamed as ``refusal`` deltas (the whole completion's ``message.refusal``, its ``content``
    null when ``text`` is empty), ending with finish_reason ``stop``.
    """

    text: str = "ok"
    chunk_size: int = 8
    delay_between_chunks: float = 0.0
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    finish_reason: str = "stop"
    reasoning: str | None = None
    refusal: str | None = None


@dataclass(frozen=True)
class Fail:
    """An error answer with an OpenAI-style error body and, if given, a ``retry-after`` header (seconds; with
    ``retry_after_date``, as the HTTP date that many seconds from now, which RFC 9110 allows) and a
    ``retry-after-ms`` header (milliseconds, as OpenAI sends it).

    ``code`` is the body's ``type`` and ``code`` (by default what the status usually carries); OpenAI answers an
    account out of credits with 429 and ``insufficient_quota``, and no ``retry-after``."""

    status: int
    retry_after: float | None = None
    retry_after_date: bool = False
    retry_after_ms: float | None = None
    message: str = "scripted failure"
    code: str | None = None


@dataclass(frozen=True)
class Stall:
    """Say nothing for ``seconds`` (long enough for the client's timeout), then answer ``then`` or the default."""

    seconds: float
    then: Reply | None = None


@dataclass(frozen=True)
class BrokenStream:
    """Start answering ``text`` and drop the connection after ``after_chars`` characters."""

    text: str = "this answer breaks off"
    after_chars: int = 5


Step = Reply | Fail | Stall | BrokenStream
Responder = Callable[[dict[str, Any]], Step | Awaitable[Step]]  # a coroutine answers once it is done


@dataclass(frozen=True)
class LLMRequest:
    """One request the fake received."""

    method: str
    path: str
    body: Any
    headers: Mapping[str, str]
    at: float = field(default_factory=time.monotonic)

    @property
    def images(self) -> list[str]:
        """The links of every image sent in this request, in order."""
        return [url for message in self.messages for url in image_urls(message.get("content"))]

    @property
    def is_description(self) -> bool:
        """A request to describe images (answered apart from the script)."""
        system = [content_text(m.get("content")) for m in self.messages if m.get("role") == "system"]
        return bool(self.images) and any(text.startswith(DESCRIBE_INSTRUCTION) for text in system)

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The chat messages sent (empty for other routes)."""
        if isinstance(self.body, dict) and isinstance(self.body.get("messages"), list):
            return list(self.body["messages"])
        return []

    def prompt_text(self) -> str:
        """All message contents joined by newlines."""
        return "\n".join(content_text(message.get("content")) for message in self.messages)


def image_urls(content: Any) -> list[str]:
    """The links of a message ``content``'s image parts, in order."""
    if not isinstance(content, list):
        return []
    return [
        str(part["image_url"]["url"])
        for part in content
        if isinstance(part, dict) and part.get("type") == "image_url" and isinstance(part.get("image_url"), dict)
    ]


# How a request to describe images opens its system message (bot/domain/images.py).
DESCRIBE_INSTRUCTION = "Describe each image"


def content_text(content: Any) -> str:
    """The text of a message ``content``: a string, or a list of parts whose text parts are joined."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return ""


def count_tokens(text: str) -> int:
    """A rough token count: about four characters a token, at least one for non-empty text."""
    return math.ceil(len(text) / 4)


def echo_last_user_message(body: dict[str, Any]) -> Reply:
    """A default responder answering with the last user message's text."""
    users = [m for m in body.get("messages", []) if m.get("role") == "user"]
    return Reply(content_text(users[-1].get("content")) if users else "")


@functools.lru_cache(maxsize=8192)
def thinking_within(room_needed: int, answer: str) -> Callable[[dict[str, Any]], Reply]:
    """A reasoning model whose thinking takes ``room_needed`` tokens: given fewer, it thinks until its max_tokens
    run out and no answer comes (finish_reason length, the thinking sent as reasoning_content, as vLLM sends it);
    given enough, it answers ``answer`` after thinking."""
    thinking = "Let me think this through before I say anything. " * 4

    def answering(body: dict[str, Any]) -> Reply:
        if int(body["max_tokens"]) < room_needed:
            return Reply("", reasoning=thinking, finish_reason="length")
        return Reply(answer, reasoning=thinking)

    return answering


def _word_vector(word: str, dimension: int) -> tuple[float, ...]:
    rng = random.Random(hashlib.sha256(word.encode()).digest())
    return tuple(rng.gauss(0.0, 1.0) for _ in range(dimension))


def embed_text(text: str, dimension: int) -> list[float]:
    """A deterministic unit vector: the sum of hash-seeded word vectors, so texts sharing words are close."""
    words = re.findall(r"\w+", text.lower()) or [text]
    total = [0.0] * dimension
    for word in words:
        for i, value in enumerate(_word_vector(word, dimension)):
            total[i] += value
    norm = math.sqrt(sum(value * value for value in total)) or 1.0
    return [value / norm for value in total]


def _json_response(payload: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(
        body=json.dumps(payload).encode(), status=status, headers=headers, content_type="application/json"
    )


class FakeLLM:
    """An OpenAI-compatible chat-completions and embeddings server, scripted per test."""

    def __init__(self, *, embedding_dimension: int = 384, model: str = "fake-model") -> None:
        self.default: Step | Responder = Reply("ok")
        self.embedding_dimension = embedding_dimension
        self.models = [model]
        self.requests: list[LLMRequest] = []
        self.unexpected: list[LLMRequest] = []
        # An image's file name → what a description request answers for it.
        self.image_descriptions: dict[str, str] = {}
        # Answers the coming description requests get first, in order.
        self.description_faults: list[Step] = []
        self.text_only_models: set[str] = set()
        # A model's context window in tokens (counted as count_tokens counts them, 4 more per message).
        self.context_windows: dict[str, int] = {}
        self._script: list[Step] = []
        self._closing = asyncio.Event()
        self._embeddings_open = asyncio.Event()
        self._embeddings_open.set()
        self._runner: web.AppRunner | None = None
        self._port: int | None = None

    # -- lifecycle ------------------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/embeddings", self._embeddings)
        app.router.add_get("/v1/models", self._models)
        app.router.add_route("*", "/{tail:.*}", self._unknown)
        self._runner, self._port = await serve_locally(app)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._closing.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("FakeLLM is not running: use `async with FakeLLM() as llm:`")
        return self._port

    @property
    def base_url(self) -> str:
        """The ``base_url`` for ``openai.AsyncOpenAI``."""
        return f"http://127.0.0.1:{self.port}/v1"

    # -- scripting and inspection ---------------------------------------------------------------------

    @contextlib.contextmanager
    def slow_embeddings(self) -> Iterator[None]:
        """Keep every embeddings request waiting until the block ends, as a busy or rate-limited endpoint would
        (longer than Discord's 3 seconds to answer an interaction), so a test sees what the bot does meanwhile."""
        self._embeddings_open.clear()
        try:
            yield
        finally:
            self._embeddings_open.set()

    def script(self, *steps: Step) -> None:
        """Queue answers for the coming chat requests, in order."""
        self._script.extend(steps)

    @property
    def remaining(self) -> int:
        """How many scripted steps have not been served yet."""
        return len(self._script)

    @property
    def chat_requests(self) -> list[LLMRequest]:
        return [r for r in self.requests if r.path.endswith("/chat/completions")]

    @property
    def embedding_requests(self) -> list[LLMRequest]:
        return [r for r in self.requests if r.path.endswith("/embeddings")]

    @property
    def description_requests(self) -> list[LLMRequest]:
        return [r for r in self.chat_requests if r.is_description]

    @property
    def reply_requests(self) -> list[LLMRequest]:
        """Chat requests other than image descriptions."""
        return [r for r in self.chat_requests if not r.is_description]

    def last_prompt_text(self) -> str:
        """The last chat request's message contents, joined by newlines."""
        chats = self.chat_requests
        if not chats:
            raise AssertionError("the fake LLM received no chat request")
        return chats[-1].prompt_text()

    # -- handlers -------------------------------------------------------------------------------------

    async def _record(self, request: web.Request) -> LLMRequest:
        raw = await request.read()
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        recorded = LLMRequest(request.method, request.path, body, CIMultiDict(request.headers))
        self.requests.append(recorded)
        return recorded

    async def _next_step(self, body: dict[str, Any]) -> Step:
        if self._script:
            return self._script.pop(0)
        if not callable(self.default):
            return self.default
        step = self.default(body)
        return await step if inspect.isawaitable(step) else step

    async def _sleep(self, seconds: float) -> None:
        """Sleep, but wake at once when the server shuts down."""
        if seconds > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), seconds)

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        recorded = await self._record(request)
        body = recorded.body
        if not isinstance(body, dict):
            return _json_response({"error": {"message": "body must be a JSON object", "type": "invalid_request"}}, 400)
        step: Step
        if (too_long := self._too_long(recorded)) is not None:
            step = too_long
        elif recorded.images and body.get("model") in self.text_only_models:
            step = Fail(400, message="Invalid content type. image_url is only supported by certain models.")
        elif recorded.is_description and self.description_faults:
            step = self.description_faults.pop(0)
        elif recorded.is_description:
            step = Reply(self._describe(recorded.images), chunk_size=64)
        else:
            step = await self._next_step(body)
        if isinstance(step, Stall):
            await self._sleep(step.seconds)
            step = step.then or await self._default_reply(body)
        if isinstance(step, Fail):
            return self._failure(step)
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            return await self._stream(request, body, step, include_usage)
        if isinstance(step, BrokenStream):
            return await self._broken_body(request, body, step)
        return _json_response(self._completion(body, step))

    def _too_long(self, recorded: LLMRequest) -> Fail | None:
        """OpenAI's refusal of a request that does not fit the model's window (messages and the answer's room)."""
        window = self.context_windows.get(str(recorded.body.get("model")))
        if window is None:
            return None
        in_messages = sum(count_tokens(content_text(m.get("content"))) + 4 for m in recorded.messages)
        completion = int(recorded.body.get("max_tokens") or 0)
        if in_messages + completion <= window:
            return None
        message = (
            f"This model's maximum context length is {window} tokens. However, you requested"
            f" {in_messages + completion} tokens ({in_messages} in the messages, {completion} in the completion)."
            " Please reduce the length of the messages or completion."
        )
        return Fail(400, message=message, code="context_length_exceeded")

    def _describe(self, urls: list[str]) -> str:
        lines = []
        for number, url in enumerate(urls, 1):
            name = url.rstrip("/").rsplit("/", 1)[-1]
            lines.append(f"{number}. {self.image_descriptions.get(name, f'an image called {name}')}")
        return "\n".join(lines)

    async def _default_reply(self, body: dict[str, Any]) -> Reply:
        step = self.default(body) if callable(self.default) else self.default
        if inspect.isawaitable(step):
            step = await step
        return step if isinstance(step, Reply) else Reply("ok")

    @staticmethod
    def _failure(step: Fail) -> web.Response:
        headers = {}
        if step.retry_after is not None:
            when = formatdate(time.time() + step.retry_after, usegmt=True)
            headers["retry-after"] = when if step.retry_after_date else f"{step.retry_after:g}"
        if step.retry_after_ms is not None:
            headers["retry-after-ms"] = f"{step.retry_after_ms:g}"
        kind = step.code or {429: "rate_limit_exceeded"}.get(
            step.status, "server_error" if step.status >= 500 else "invalid_request"
        )
        error = {"error": {"message": step.message, "type": kind, "code": kind, "param": None}}
        return _json_response(error, step.status, headers)

    @staticmethod
    def _usage(body: dict[str, Any], reply: Reply | BrokenStream) -> dict[str, int]:
        prompt = "\n".join(content_text(m.get("content")) for m in body.get("messages", []))
        prompt_tokens = count_tokens(prompt)
        completion_tokens = count_tokens(reply.text)
        if isinstance(reply, Reply):
            prompt_tokens = prompt_tokens if reply.prompt_tokens is None else reply.prompt_tokens
            completion_tokens = completion_tokens if reply.completion_tokens is None else reply.completion_tokens
        return {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }

    def _completion(self, body: dict[str, Any], reply: Reply) -> dict[str, Any]:
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", self.models[0]),
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": reply.text if reply.text or reply.refusal is None else None,
                        "refusal": reply.refusal,
                        **({"reasoning_content": reply.reasoning} if reply.reasoning else {}),
                    },
                    "finish_reason": reply.finish_reason,
                    "logprobs": None,
                }
            ],
            "usage": self._usage(body, reply),
        }

    async def _stream(
        self, request: web.Request, body: dict[str, Any], step: Reply | BrokenStream, include_usage: bool
    ) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)
        base = {
            "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": body.get("model", self.models[0]),
        }

        async def send(choices: list[dict[str, Any]], usage: dict[str, int] | None = None) -> None:
            chunk = {**base, "choices": choices}
            if include_usage:
                chunk["usage"] = usage
            await response.write(f"data: {json.dumps(chunk)}\n\n".encode())

        def delta(content: str | None, role: bool = False, finish: str | None = None) -> list[dict[str, Any]]:
            piece: dict[str, Any] = {"content": content}
            if role:
                piece["role"] = "assistant"
            return [{"index": 0, "delta": piece, "finish_reason": finish, "logprobs": None}]

        if isinstance(step, BrokenStream):
            await send(delta("", role=True))
            text = step.text[: step.after_chars]
            if text:
                await send(delta(text))
            self._drop(request)
            return response

        await send(delta("", role=True))
        size = max(1, step.chunk_size)
        thinking = step.reasoning or ""
        for start in range(0, len(thinking), size):
            piece = {"content": None, "reasoning_content": thinking[start : start + size]}
            await send([{"index": 0, "delta": piece, "finish_reason": None, "logprobs": None}])
        declined = step.refusal or ""
        for start in range(0, len(declined), size):
            piece = {"content": None, "refusal": declined[start : start + size]}
            await send([{"index": 0, "delta": piece, "finish_reason": None, "logprobs": None}])
        for start in range(0, len(step.text), size):
            if start:
                await self._sleep(step.delay_between_chunks)
            await send(delta(step.text[start : start + size]))
        await send(delta(None, finish=step.finish_reason))
        if include_usage:
            await send([], self._usage(body, step))
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    async def _broken_body(self, request: web.Request, body: dict[str, Any], step: BrokenStream) -> web.StreamResponse:
        payload = json.dumps(self._completion(body, Reply(step.text))).encode()
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.content_length = len(payload)
        await response.prepare(request)
        await response.write(payload[: max(1, step.after_chars)])
        self._drop(request)
        return response

    @staticmethod
    def _drop(request: web.Request) -> None:
        """Close the connection under a response in flight: the client sees a truncated body."""
        if request.transport is not None:
            request.transport.close()

    async def _embeddings(self, request: web.Request) -> web.Response:
        body = (await self._record(request)).body
        if not self._embeddings_open.is_set():  # held while slow_embeddings() lasts, or until the server shuts down
            waits = [asyncio.ensure_future(self._embeddings_open.wait()), asyncio.ensure_future(self._closing.wait())]
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for wait in waits:
                    wait.cancel()
        if not isinstance(body, dict) or "input" not in body:
            return _json_response({"error": {"message": "'input' is required", "type": "invalid_request"}}, 400)
        inputs = body["input"]
        texts = [inputs] if isinstance(inputs, str) else [str(item) for item in inputs]
        dimension = int(body.get("dimensions") or self.embedding_dimension)
        as_base64 = body.get("encoding_format") == "base64"
        data = []
        for index, text in enumerate(texts):
            vector = embed_text(text, dimension)
            encoded: Any = base64.b64encode(struct.pack(f"<{dimension}f", *vector)).decode() if as_base64 else vector
            data.append({"object": "embedding", "index": index, "embedding": encoded})
        tokens = sum(count_tokens(text) for text in texts)
        return _json_response(
            {
                "object": "list",
                "data": data,
                "model": body.get("model", self.models[0]),
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        )

    async def _models(self, request: web.Request) -> web.Response:
        await self._record(request)
        models = [{"id": name, "object": "model", "created": 0, "owned_by": "hearth-tests"} for name in self.models]
        return _json_response({"object": "list", "data": models})

    async def _unknown(self, request: web.Request) -> web.Response:
        self.unexpected.append(await self._record(request))
        error = {"message": f"no route {request.method} {request.path}", "type": "invalid_request", "code": "not_found"}
        return _json_response({"error": error}, 404)

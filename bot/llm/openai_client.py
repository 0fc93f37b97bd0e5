"""The one place that builds an ``openai.AsyncOpenAI`` client."""

from datetime import UTC, datetime
from typing import Any

from openai import AsyncOpenAI, DefaultAioHttpClient, RateLimitError

from bot.domain.retry import server_wait_s
from bot.errors import ConfigError
from bot.settings import Settings

# Local servers (Ollama, vLLM, LM Studio) ignore the key, but the client insists on one.
_PLACEHOLDER_KEY = "not-needed"


# The codes of a 429 that means the account has no credits left (OpenAI's ``insufficient_quota``), not a rate limit.
_OUT_OF_CREDITS = frozenset({"insufficient_quota"})


def out_of_credits(exc: RateLimitError) -> bool:
    """Whether a 429 says the account has no credits left: no wait fixes that, the account must be topped up."""
    return exc.code in _OUT_OF_CREDITS


def requested_wait_s(response: Any) -> float | None:
    """How long the endpoint asked to wait before the next try (``retry-after-ms``, or ``Retry-After`` in seconds
    or as a date), if it said."""
    headers = getattr(response, "headers", None) or {}
    return server_wait_s(headers.get("retry-after"), headers.get("retry-after-ms"), now=datetime.now(UTC))


def llm_configured(settings: Settings) -> bool:
    return settings.openai_api_key is not None or settings.openai_base_url is not None


def openai_client(*, api_key: str | None, base_url: str | None, timeout: float, max_retries: int = 0) -> AsyncOpenAI:
    """A client on the SDK's aiohttp transport: a streamed reply costs a third of the CPU it takes on httpx.

    Retries are ours to make (see the chat model), so ``max_retries`` is 0 by default.
    """
    return AsyncOpenAI(
        api_key=api_key or _PLACEHOLDER_KEY,
        base_url=base_url,
        timeout=timeout,
        max_retries=max_retries,
        http_client=DefaultAioHttpClient(timeout=timeout),
    )


def require_llm(settings: Settings) -> None:
    """A clear error saying what to set when no model endpoint is configured."""
    if not llm_configured(settings):
        raise ConfigError(
            "no language model is configured: set OPENAI_API_KEY (OpenAI, OpenRouter) or "
            "OPENAI_BASE_URL (e.g. http://localhost:11434/v1 for Ollama) in .env"
        )


def build_openai_client(settings: Settings, *, timeout: float, max_retries: int = 0) -> AsyncOpenAI:
    """A client for the configured endpoint, or a clear error saying what to set."""
    require_llm(settings)
    key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
    return openai_client(api_key=key, base_url=settings.openai_base_url, timeout=timeout, max_retries=max_retries)


def build_fallback_client(settings: Settings, *, timeout: float) -> AsyncOpenAI | None:
    """A client for the fallback models' own endpoint, or None when they share the primary's.

    ``LLM_FALLBACK_BASE_URL`` is sent ``LLM_FALLBACK_API_KEY`` only, never the primary's key (another host);
    ``LLM_FALLBACK_API_KEY`` alone is the primary endpoint with another key (another account, another quota)."""
    if settings.llm_fallback_base_url is None and settings.llm_fallback_api_key is None:
        return None
    key = settings.llm_fallback_api_key.get_secret_value() if settings.llm_fallback_api_key else None
    base_url = settings.llm_fallback_base_url or settings.openai_base_url
    return openai_client(api_key=key, base_url=base_url, timeout=timeout)

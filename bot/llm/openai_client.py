"""The one place that builds an ``openai.AsyncOpenAI`` client from settings."""

from openai import AsyncOpenAI

from bot.errors import ConfigError
from bot.settings import Settings

# Local servers (Ollama, vLLM, LM Studio) ignore the key, but the client insists on one.
_PLACEHOLDER_KEY = "not-needed"


def llm_configured(settings: Settings) -> bool:
    return settings.openai_api_key is not None or settings.openai_base_url is not None


def build_openai_client(settings: Settings, *, timeout: float, max_retries: int = 0) -> AsyncOpenAI:
    """A client for the configured endpoint. Retries are ours to make (see the chat model), so 0 here."""
    if not llm_configured(settings):
        raise ConfigError(
            "no language model is configured: set OPENAI_API_KEY (OpenAI, OpenRouter) or "
            "OPENAI_BASE_URL (e.g. http://localhost:11434/v1 for Ollama) in .env"
        )
    key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else _PLACEHOLDER_KEY
    return AsyncOpenAI(api_key=key, base_url=settings.openai_base_url, timeout=timeout, max_retries=max_retries)

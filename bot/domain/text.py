"""The one rule for text that reaches storage.

PostgreSQL refuses NUL characters in text and JSON, and neither PostgreSQL nor SQLite can store a lone
UTF-16 surrogate (it is not valid Unicode). So, on both backends alike, before any text is written:

* NUL (U+0000) is removed;
* a lone surrogate (U+D800–U+DFFF) becomes the replacement character U+FFFD.

Everything else (emoji, right-to-left text, zero-width joiners, any length) is kept exactly.
"""

import re
from typing import Any

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _replace(match: re.Match[str]) -> str:
    return "" if match.group() == "\x00" else "\ufffd"


def clean_text(value: str) -> str:
    """Apply the storage rule to one string (a fast no-op for ordinary text)."""
    return _UNSTORABLE.sub(_replace, value)


def clean_json(value: Any) -> Any:
    """Apply :func:`clean_text` to every string inside a JSON-like value, keys included."""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, dict):
        return {clean_json(key): clean_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [clean_json(item) for item in value]
    return value

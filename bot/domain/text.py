"""The one rule for text that reaches storage, and two helpers for text people send.

PostgreSQL refuses NUL characters in text and JSON, and neither PostgreSQL nor SQLite can store a lone
UTF-16 surrogate (it is not valid Unicode). So, on both backends alike, before any text is written:

* NUL (U+0000) is removed;
* a lone surrogate (U+D800–U+DFFF) becomes the replacement character U+FFFD.

Everything else (emoji, right-to-left text, zero-width joiners, any length) is kept exactly.

The helpers are not part of that rule; callers choose them for what people send: :func:`one_line` for a name
or message shown on one line, :func:`normalize_newlines` for pasted or imported text.
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


def one_line(text: str, limit: int) -> str:
    """``text`` on one line: every run of whitespace (newlines included) becomes one space, and the ends are
    trimmed, so it cannot fake a line of its own (``"\\nBob: …"``); cut to ``limit`` characters with "…"."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def normalize_newlines(text: str) -> str:
    """Windows (``\\r\\n``) and old Mac (a lone ``\\r``) line ends become ``\\n``."""
    return text.replace("\r\n", "\n").replace("\r", "\n")

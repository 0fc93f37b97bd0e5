"""Log lines: the context of the message being handled, the two formats, and secrets kept out of both.

Where a message or a command enters (the Discord layer), :func:`log_context` records its guild, channel, user
and message ids in a context variable; every line logged while it is handled carries them, including lines
from tasks it starts (asyncio copies the context into them), without passing ids around.
"""

import contextlib
import contextvars
import json
import logging
import re
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime

# The fields a log line carries when known, in this order.
CONTEXT_FIELDS = ("guild_id", "channel_id", "user_id", "message_id", "interaction_id")

_context: contextvars.ContextVar[dict[str, int] | None] = contextvars.ContextVar("hearth_log_context", default=None)

# Secrets shorter than this are not searched for in free text (every "a" would go); URLs' passwords always are.
MIN_SECRET_LENGTH = 4
REDACTED = "[redacted]"
# The password of any URL written out in full: scheme://user:PASSWORD@host.
_URL_PASSWORD = re.compile(r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s:/@]*:)[^\s@/]+(?P<tail>@)")


@contextlib.contextmanager
def log_context(**ids: int | None) -> Iterator[None]:
    """Add ``ids`` (those of :data:`CONTEXT_FIELDS` that are not None) to every line logged in the block."""
    merged = {**(_context.get() or {}), **{name: value for name, value in ids.items() if value is not None}}
    token = _context.set(merged)
    try:
        yield
    finally:
        _context.reset(token)


def set_log_context(**ids: int | None) -> None:
    """Like :func:`log_context`, for the rest of the current task (a task per event: it ends with the task)."""
    _context.set({**(_context.get() or {}), **{name: value for name, value in ids.items() if value is not None}})


def current_context() -> dict[str, int]:
    return dict(_context.get() or {})


class Redactor:
    """Replaces each secret (and any URL's password) in a text with ``[redacted]``."""

    def __init__(self, secrets: Iterable[str | None]) -> None:
        # Longest first, so a secret containing another is replaced whole.
        self.secrets = sorted({s for s in secrets if s and len(s) >= MIN_SECRET_LENGTH}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        if "://" in text:
            text = _URL_PASSWORD.sub(rf"\g<head>{REDACTED}\g<tail>", text)
        return text


class TextFormatter(logging.Formatter):
    """``time level logger: message [guild=… channel=… user=… message=…]``, secrets redacted."""

    def __init__(self, redact: Redactor) -> None:
        super().__init__("%(asctime)s %(levelname)-8s %(name)s: %(message)s")
        self.redact = redact

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        context = _context.get()
        if context:
            shown = " ".join(
                f"{name.removesuffix('_id')}={context[name]}" for name in CONTEXT_FIELDS if name in context
            )
            first, newline, rest = line.partition("\n")  # after the message, before any traceback
            line = f"{first} [{shown}]{newline}{rest}"
        return self.redact(line)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the context's ids, and exc (a traceback)."""

    def __init__(self, redact: Redactor) -> None:
        super().__init__()
        self.redact = redact

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": self.redact(record.getMessage()),
        }
        context = _context.get()
        if context:
            entry.update((name, context[name]) for name in CONTEXT_FIELDS if name in context)
        if record.exc_info:
            entry["exc"] = self.redact(self.formatException(record.exc_info))
        elif record.exc_text:
            entry["exc"] = self.redact(record.exc_text)
        if record.stack_info:
            entry["stack"] = self.redact(self.formatStack(record.stack_info))
        return json.dumps(entry, ensure_ascii=False, default=str)

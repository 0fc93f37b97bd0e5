"""Logging set-up, called once by the launcher."""

import logging
import sys
from collections.abc import Iterable
from typing import TYPE_CHECKING, Literal, TextIO

from bot.observability.logs import JsonFormatter, Redactor, TextFormatter

if TYPE_CHECKING:
    from bot.settings import Settings

# Header names whose values are credentials (LLM_EXTRA_HEADERS may carry one for a proxy or gateway).
_SECRET_HEADER_WORDS = ("auth", "key", "token", "secret", "cookie", "password")


def secrets_of(settings: "Settings") -> list[str]:
    """What must never appear in a log line: the Discord token, the LLM API key, the database password, and
    credential-like LLM_EXTRA_HEADERS values."""
    found = [
        secret.get_secret_value() for secret in (settings.discord_token, settings.openai_api_key) if secret is not None
    ]
    if settings.database.password:
        found.append(str(settings.database.password))
    found += [
        value
        for name, value in settings.llm_extra_headers.items()
        if any(word in name.lower() for word in _SECRET_HEADER_WORDS)
    ]
    for value in list(found):  # a value as it shows in a header: "Bearer …" is found by the value alone
        found.append(value.removeprefix("Bearer ").strip())
    return found


def setup_logging(
    level: str,
    *,
    log_format: Literal["text", "json"] = "text",
    secrets: Iterable[str] = (),
    stream: TextIO | None = None,
) -> None:
    """One handler on ``stream`` (stderr) for every logger: ``text`` (the default) or ``json`` (a JSON object per
    line), with ``secrets`` replaced by ``[redacted]`` wherever they appear, tracebacks included."""
    redact = Redactor(secrets)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter(redact) if log_format == "json" else TextFormatter(redact))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
    # discord.py's gateway chatter is useful only when debugging the gateway itself.
    if level.upper() != "DEBUG":
        logging.getLogger("discord").setLevel(logging.WARNING)
        logging.getLogger("discord.client").setLevel(logging.INFO)
        # APScheduler logs every run of every job at INFO: two lines a second for the events poll alone.
        logging.getLogger("apscheduler").setLevel(logging.WARNING)
        # The openai client's HTTP library logs every request at INFO: a line per model and embeddings call.
        for http_client in ("httpx", "httpx2"):
            logging.getLogger(http_client).setLevel(logging.WARNING)

"""Log lines in both formats: the message's context ids, and no secret whatever is logged."""

import io
import json
import logging

import pytest

from bot.log import secrets_of, setup_logging
from bot.observability.logs import log_context
from bot.settings import Settings
from tests.support.observability import restored_logging

TOKEN = "MTIzNDU2Nzg5MDEy.GhIjKl.discord-token-secret"
KEY = "sk-or-v1-api-key-secret-0123456789"
PASSWORD = "p@ss:w/rd-secret"  # URL-escaped in DATABASE_URL, as a password with @ : / must be
GATEWAY_KEY = "gw-bearer-secret-42"


def settings() -> Settings:
    return Settings(
        _env_file=None,
        discord_token=TOKEN,
        openai_api_key=KEY,
        database_url="postgresql+asyncpg://hearth:p%40ss%3Aw%2Frd-secret@db:5432/hearth",
        llm_extra_headers={"Authorization": f"Bearer {GATEWAY_KEY}", "X-Title": "Hearth"},
    )


def log_everything(log: logging.Logger) -> None:
    """What could carry a secret: a message's arguments, an exception's text (in its traceback), a URL."""
    log.warning("starting with token %s, key %s, header Bearer %s", TOKEN, KEY, GATEWAY_KEY)
    log.warning("database password %s; elsewhere https://someone:other-password@example.org/x", PASSWORD)
    try:
        raise ConnectionError(f"could not reach postgresql+asyncpg://hearth:{PASSWORD}@db:5432/hearth with {KEY}")
    except ConnectionError:
        log.exception("the request with %s failed", TOKEN)
    with log_context(guild_id=11, channel_id=22, user_id=33, message_id=44):
        log.info("answering")
    log.info("Hearth stays readable")


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_no_secret_reaches_a_log_line_in_either_format(log_format: str) -> None:
    out = io.StringIO()
    with restored_logging():
        setup_logging("INFO", log_format=log_format, secrets=secrets_of(settings()), stream=out)  # type: ignore[arg-type]
        log_everything(logging.getLogger("bot.test"))
    output = out.getvalue()

    for secret in (TOKEN, KEY, PASSWORD, GATEWAY_KEY, "other-password"):
        assert secret not in output, f"{secret!r} leaked:\n{output}"
    assert output.count("[redacted]") >= 8, output
    assert "someone:[redacted]@example.org" in output, "any URL's password goes"
    assert "Hearth stays readable" in output
    if log_format == "json":
        entries = [json.loads(line) for line in output.splitlines()]
        assert [entry["level"] for entry in entries] == ["WARNING", "WARNING", "ERROR", "INFO", "INFO"]
        assert "ConnectionError" in entries[2]["exc"] and "[redacted]" in entries[2]["exc"]
        ids = {key: entries[3].get(key) for key in ("guild_id", "channel_id", "user_id", "message_id")}
        assert ids == {"guild_id": 11, "channel_id": 22, "user_id": 33, "message_id": 44}
        assert "guild_id" not in entries[4], "the context ends with its block"
        assert all(entry["logger"] == "bot.test" and entry["time"].endswith("+00:00") for entry in entries)
    else:
        lines = output.splitlines()
        assert any(line.endswith("bot.test: answering [guild=11 channel=22 user=33 message=44]") for line in lines)
        assert lines[-1].endswith("bot.test: Hearth stays readable")
        assert "Traceback" in output and "ConnectionError" in output

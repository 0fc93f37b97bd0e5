"""Hearth's settings: one object, read from the environment and `.env`, built once at start-up.

Nothing reads the environment at import time; the launcher calls :func:`load_settings` and passes the
result down. Every field here is documented in `.env.example`.
"""

import io
import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict, SettingsError

from bot.db.urls import URL, make_url, normalise_database_url
from bot.errors import ConfigError

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./data/hearth.db"
# UTF-8, with or without the byte order mark Windows editors begin a file with.
ENV_FILE_ENCODING = "utf-8-sig"

IntList = Annotated[list[int], NoDecode]
WordList = Annotated[list[str], NoDecode]
StrList = Annotated[list[str], NoDecode]
# JSON objects are parsed by a validator of ours, so a malformed one is a validation error naming the setting
# (pydantic-settings' own decoding raises an exception that names neither the setting nor what is wrong).
JsonObject = Annotated[dict[str, Any], NoDecode]
JsonHeaders = Annotated[dict[str, str], NoDecode]


def _split_ints(value: Any) -> Any:
    """Accept "1, 2,3" (the documented form), a JSON-ish list, or nothing."""
    if value is None:
        return []
    if isinstance(value, int):
        return [value]
    if isinstance(value, str):
        parts = [part.strip() for part in value.strip().strip("[]").split(",")]
        return [int(part) for part in parts if part]
    return value


def _json_object(value: Any) -> Any:
    """Parse a JSON object given as text; anything else goes on to pydantic's own checks."""
    if not isinstance(value, str):
        return value
    if not value.strip():
        return {}
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as exc:
        hint = ", and JSON needs double quotes" if "'" in value else ""
        raise ValueError(f"not valid JSON ({exc.msg} at character {exc.pos + 1}{hint})") from None
    if not isinstance(parsed, dict):
        raise ValueError(f"expected a JSON object ({{...}}), not {type(parsed).__name__}")
    return parsed


class Settings(BaseSettings):
    """All settings. Field names map to upper-case environment variables (``database_url`` → DATABASE_URL)."""

    # An empty value (`DEV_GUILD_ID=` as in .env.example) means "not set", not "the empty string".
    # No inf or nan: a duration of inf passes every ``ge`` and overflows where it becomes a timedelta.
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding=ENV_FILE_ENCODING, extra="ignore", env_ignore_empty=True, allow_inf_nan=False
    )

    # Discord
    discord_token: SecretStr | None = None
    owner_ids: IntList = Field(default_factory=list)
    dev_guild_id: int | None = None
    shard_count: int | None = Field(default=None, ge=1)
    shard_ids: IntList = Field(default_factory=list)
    # At start, how long to keep trying an unreachable Discord (with backoff) before giving up.
    discord_connect_retry_seconds: float = Field(default=60.0, ge=0)
    # Features whose commands (or, for `chat`, conversation) this bot does not offer, e.g. knowledge,stats.
    disabled_extensions: WordList = Field(default_factory=list)

    # Storage
    database_url: str = DEFAULT_DATABASE_URL
    # Replaces the password in DATABASE_URL, taken as is: any character works, none needs URL-escaping.
    database_password: SecretStr | None = None
    database_echo: bool = False
    database_pool_size: int = Field(default=5, ge=1)

    # Language model (any OpenAI-compatible endpoint)
    openai_api_key: SecretStr | None = None
    openai_base_url: str | None = None
    llm_model: str = "gpt-4o-mini"
    llm_temperature: float = Field(default=0.8, ge=0, le=2)
    llm_max_tokens: int = Field(default=600, ge=16)
    llm_context_tokens: int = Field(default=8192, ge=1024)
    llm_timeout_seconds: float = Field(default=60.0, gt=0)
    llm_retry_budget_seconds: float = Field(default=45.0, gt=0)
    llm_extra_headers: JsonHeaders = Field(default_factory=dict)
    llm_extra_body: JsonObject = Field(default_factory=dict)
    # Tried in order when the model asked for cannot answer; on the same endpoint unless a base URL is given.
    llm_fallback_models: StrList = Field(default_factory=list)
    llm_fallback_base_url: str | None = None
    llm_fallback_api_key: SecretStr | None = None
    # Show the model the images people send (as image_url parts) and describe them into memories.
    llm_vision: bool = True

    # Conversation
    conversation_idle_minutes: int = Field(default=60, ge=1, le=525_600)  # a year
    catch_up_minutes: int = Field(default=10, ge=0, le=1440)  # 0: do not answer what came while stopped
    history_turns: int = Field(default=40, ge=0, le=500)
    stream_edit_interval_seconds: float = Field(default=1.0, ge=0.2)

    # Embeddings
    embedding_provider: Literal["local", "sentence-transformers", "openai"] = "local"
    embedding_model: str = "sentence-transformers/all-MiniLM-L6-v2"
    embedding_dimension: int = Field(default=384, ge=1, le=16000)
    embedding_precision: Literal["int8", "fp32"] = "int8"  # local: the linear layers' precision

    # Memory
    memory_sweep_minutes: int = Field(default=5, ge=1)
    memory_retention_days: int = Field(default=365, ge=0, le=36_500)  # a century

    # Learning (facts, relationship, mood, opinions, style; off the reply path)
    learning_enabled: bool = True
    learning_model: str | None = None  # default: LLM_MODEL
    learning_batch_messages: int = Field(default=6, ge=1, le=50)
    learning_idle_seconds: int = Field(default=120, ge=5)
    learning_workers: int = Field(default=2, ge=1, le=16)
    learning_response_format: Literal["json_schema", "json_object", "none"] = "json_schema"

    # Proactive messages (reminders, birthday greetings, follow-ups)
    events_poll_seconds: float = Field(default=1.0, ge=0.5)
    events_grace_minutes: int = Field(default=60, ge=0, le=525_600)
    proactive_daily_cap: int = Field(default=3, ge=0)  # 0: no greetings nor follow-ups at all; reminders still go

    # Limits
    user_cooldown_seconds: float = Field(default=2.0, ge=0, le=60)

    # Operations
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    log_format: Literal["text", "json"] = "text"
    metrics_port: int | None = Field(default=None, ge=0, le=65535)  # None: no /metrics and /healthz server
    metrics_host: str = "127.0.0.1"
    backup_dir: Path = Path("./backups")
    pg_dump_path: str = "pg_dump"

    @field_validator("owner_ids", "shard_ids", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        try:
            return _split_ints(value)
        except ValueError:
            raise ValueError("expected comma-separated whole numbers, e.g. 123,456") from None

    @field_validator("disabled_extensions", mode="before")
    @classmethod
    def _comma_separated_words(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip().lower() for part in value.strip().strip("[]").split(",") if part.strip()]
        return value

    @field_validator("llm_fallback_models", mode="before")
    @classmethod
    def _names(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [name.strip() for name in value.split(",") if name.strip()]
        return value

    @field_validator("llm_extra_headers", "llm_extra_body", mode="before")
    @classmethod
    def _json(cls, value: Any) -> Any:
        return _json_object(value)

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("log_format", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        return normalise_database_url(value).render_as_string(hide_password=False)

    @field_validator(
        "discord_token",
        "openai_api_key",
        "openai_base_url",
        "llm_fallback_base_url",
        "llm_fallback_api_key",
        mode="before",
    )
    @classmethod
    def _trimmed(cls, value: Any) -> Any:
        """Without the spaces and line break around it: a secret read from a file (Docker, Kubernetes) often ends
        in a newline, which no HTTP header may hold. Blank means not set."""
        if not isinstance(value, str):
            return value
        return value.strip() or None

    @field_validator("openai_base_url", "llm_fallback_base_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        """An endpoint without its scheme (``localhost:11434/v1``, as Ollama's port is often written) fails
        every request, and is caught here rather than at the first reply."""
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
            raise ValueError("expected an http:// or https:// URL, e.g. http://localhost:11434/v1")
        return value

    @field_validator("database_password", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _password(self) -> "Settings":
        if self.database_password is not None and not self.is_sqlite:
            url = self.database.set(password=self.database_password.get_secret_value())
            self.database_url = url.render_as_string(hide_password=False)  # escaped: @ : / and % stay the password's
        return self

    @model_validator(mode="after")
    def _shards(self) -> "Settings":
        if self.shard_ids and self.shard_count is None:
            raise ValueError("SHARD_IDS is set but SHARD_COUNT is not; set both or neither")
        if self.shard_count is not None and any(not 0 <= i < self.shard_count for i in self.shard_ids):
            raise ValueError(f"SHARD_IDS must lie in 0..{self.shard_count - 1} (SHARD_COUNT={self.shard_count})")
        return self

    @property
    def database(self) -> URL:
        return make_url(self.database_url)

    @property
    def is_sqlite(self) -> bool:
        return self.database.get_backend_name() == "sqlite"

    def sqlite_path(self) -> Path | None:
        """The SQLite file, or None for PostgreSQL and in-memory databases."""
        from bot.db.engine import sqlite_file  # the engine module pulls in the async drivers: only when asked

        return sqlite_file(self.database)


# Settings whose values never appear in an error message (a URL may carry a password).
_SECRET_SETTINGS = {"DISCORD_TOKEN", "OPENAI_API_KEY", "DATABASE_PASSWORD", "DATABASE_URL", "LLM_EXTRA_HEADERS"}
_FIELD_IN_SETTINGS_ERROR = re.compile(r'field "(\w+)"')


def _check_env_file(env_file: str | Path | None, *, required: bool) -> None:
    """A settings file that exists must be readable UTF-8 text; one named on the command line must exist."""
    if env_file is None:
        return
    path = Path(env_file)
    if not required and not path.exists():
        return
    try:
        text = path.read_text(encoding=ENV_FILE_ENCODING)
    except UnicodeDecodeError as exc:
        raise ConfigError(f"cannot read the settings file {path}: not UTF-8 text ({exc.reason})") from None
    except OSError as exc:
        raise ConfigError(f"cannot read the settings file {path}: {exc.strerror or exc}") from None
    unparsed = _first_unparsed_line(text)
    if unparsed is not None:
        raise ConfigError(
            f"cannot read the settings file {path}: {unparsed} is not NAME=value "
            "(a quote left open, text after a closing quote, or no = sign?)"
        )


_NAME_OF_LINE = re.compile(r"(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=")


def _first_unparsed_line(text: str) -> str | None:
    """``line 3 (DISCORD_TOKEN)``: the first line python-dotenv cannot parse, which it would skip with a warning,
    leaving that setting out. Never the value: it may be a secret."""
    from dotenv.parser import parse_stream

    for binding in parse_stream(io.StringIO(text)):
        if binding.error:
            statement = binding.original.string
            body = statement.lstrip()
            line = binding.original.line + statement[: len(statement) - len(body)].count("\n")
            name = _NAME_OF_LINE.match(body)
            return f"line {line} ({name.group(1)})" if name else f"line {line}"
    return None


def load_settings(
    env_file: str | Path | None = ".env", *, env_file_required: bool = False, **overrides: Any
) -> Settings:
    """Build :class:`Settings`, turning every way settings can be wrong into one readable :class:`ConfigError`.

    ``env_file_required``: the file was named by the user (``--env-file``), so a missing one is an error, not
    the absence of optional settings.
    """
    _check_env_file(env_file, required=env_file_required)
    try:
        return Settings(_env_file=env_file, **overrides)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            name = str(error["loc"][0]).upper() if error["loc"] else "settings"
            inside = "".join(f"[{part!r}]" for part in error["loc"][1:])  # a key of a JSON setting, say
            message = str(error["msg"]).removeprefix("Value error, ")
            given = error.get("input")
            if isinstance(given, str) and name not in _SECRET_SETTINGS and len(given) <= 60:
                message += f", not {given!r}"
            problems.append(f"{name}{inside}: {message}")
        raise ConfigError(
            "invalid settings: " + "; ".join(problems) + " (set them in .env or the environment)"
        ) from None
    except SettingsError as exc:  # a value pydantic-settings could not even decode
        field = _FIELD_IN_SETTINGS_ERROR.search(str(exc))
        name = field.group(1).upper() if field else "settings"
        cause = exc.__cause__
        reason = f"{cause}" if cause is not None else str(exc)
        raise ConfigError(
            f"invalid settings: {name}: cannot parse the value ({reason}) (set it in .env or the environment)"
        ) from None

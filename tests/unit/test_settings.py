"""Settings: defaults that work on a fresh machine, and one readable line for every mistake."""

from pathlib import Path

import pytest

from bot.errors import ConfigError
from bot.settings import DEFAULT_DATABASE_URL, Settings, load_settings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)


def test_defaults_need_nothing_but_give_a_sqlite_file() -> None:
    settings = load_settings(env_file=None)
    assert settings.database_url == DEFAULT_DATABASE_URL
    assert settings.is_sqlite and settings.sqlite_path() == Path("data/hearth.db")
    assert settings.discord_token is None and settings.owner_ids == [] and settings.shard_ids == []
    assert (settings.embedding_provider, settings.embedding_dimension) == ("local", 384)


def test_values_come_from_the_env_file_and_the_environment_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = tmp_path / ".env"
    env.write_text("DISCORD_TOKEN=from-file\nOWNER_IDS=1, 2,3\nLLM_MODEL=llama3.1\nlog_level=debug\n")
    monkeypatch.setenv("LLM_MODEL", "from-env")
    settings = load_settings(env_file=env)
    assert settings.discord_token is not None and settings.discord_token.get_secret_value() == "from-file"
    assert settings.owner_ids == [1, 2, 3]
    assert settings.llm_model == "from-env"
    assert settings.log_level == "DEBUG"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgres://u:p@db:5432/hearth", "postgresql+asyncpg://u:p@db:5432/hearth"),
        ("postgresql://u@db/hearth", "postgresql+asyncpg://u@db/hearth"),
        ("sqlite:///./x.db", "sqlite+aiosqlite:///./x.db"),
    ],
)
def test_database_urls_are_pinned_to_the_async_driver(given: str, expected: str) -> None:
    assert load_settings(env_file=None, database_url=given).database_url == expected


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("DATABASE_URL", "not a url", "DATABASE_URL: not a database URL"),
        ("DATABASE_URL", "mysql://u@h/db", "DATABASE_URL: unsupported database driver 'mysql'"),
        ("DATABASE_URL", "postgresql://u@h", "names no database"),
        ("OWNER_IDS", "12,abc", "OWNER_IDS: expected comma-separated whole numbers"),
        (
            "EMBEDDING_PROVIDER",
            "magic",
            "EMBEDDING_PROVIDER: Input should be 'local', 'sentence-transformers' or 'openai'",
        ),
        ("SHARD_IDS", "0,1", "SHARD_IDS is set but SHARD_COUNT is not"),
        ("LOG_LEVEL", "loud", "LOG_LEVEL"),
    ],
)
def test_bad_values_give_one_line_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as caught:
        load_settings(env_file=None)
    text = str(caught.value)
    assert message in text
    assert "\n" not in text and ".env" in text


def test_shard_ids_must_fit_the_shard_count(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHARD_COUNT", "2")
    monkeypatch.setenv("SHARD_IDS", "1")
    assert load_settings(env_file=None).shard_ids == [1]
    monkeypatch.setenv("SHARD_IDS", "2")
    with pytest.raises(ConfigError, match=r"SHARD_IDS must lie in 0\.\.1"):
        load_settings(env_file=None)


def test_blank_secrets_count_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISCORD_TOKEN", "  ")
    monkeypatch.setenv("OPENAI_BASE_URL", "")
    settings = load_settings(env_file=None)
    assert settings.discord_token is None and settings.openai_base_url is None


def test_fallback_models_are_a_comma_separated_list(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings(env_file=None).llm_fallback_models == []
    monkeypatch.setenv("LLM_FALLBACK_MODELS", " gpt-4.1-mini, llama3.1:8b ,,")
    monkeypatch.setenv("LLM_FALLBACK_BASE_URL", " ")
    settings = load_settings(env_file=None)
    assert settings.llm_fallback_models == ["gpt-4.1-mini", "llama3.1:8b"]
    assert settings.llm_fallback_base_url is None and settings.llm_fallback_api_key is None

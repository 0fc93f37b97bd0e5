"""The files a person deploys from agree with the code: .env.example, docker-compose.yml, Dockerfile."""

import re
from pathlib import Path

import pytest
import yaml

from bot.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_ONLY = {"POSTGRES_PASSWORD", "POSTGRES_SHARED_BUFFERS"}


def _env_example() -> dict[str, tuple[str, str]]:
    """Each variable of .env.example: its example value, and the comment lines right above it."""
    variables: dict[str, tuple[str, str]] = {}
    comment: list[str] = []
    for line in (ROOT / ".env.example").read_text().splitlines():
        if line.startswith("#"):
            comment.append(line)
        elif "=" in line:
            name, value = (part.strip() for part in line.split("=", 1))
            variables[name] = (value, " ".join(c for c in comment if not c.startswith("# ---")))
            comment = []
        else:
            comment = []
    return variables


def test_every_setting_is_in_env_example_with_a_comment() -> None:
    documented = _env_example()
    settings = {name.upper() for name in Settings.model_fields}
    assert settings - documented.keys() == set(), "settings missing from .env.example"
    assert documented.keys() - settings - COMPOSE_ONLY == set(), ".env.example names unknown settings"
    undocumented = [name for name, (_, comment) in documented.items() if len(comment) < 12]
    assert undocumented == []


def test_env_example_as_a_dotenv_is_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    settings = load_settings(env_file=ROOT / ".env.example")
    assert settings.is_sqlite and settings.llm_extra_headers == {}


def test_compose_runs_pgvector_with_a_healthcheck_and_the_bot_after_it() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    postgres, bot = compose["services"]["postgres"], compose["services"]["bot"]

    assert postgres["image"].startswith("pgvector/pgvector:")
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    volume = postgres["volumes"][0].split(":")[0]
    assert volume in compose["volumes"], "postgres data lives in a named volume"

    assert bot["build"] == "." and bot["env_file"] == ".env"
    assert bot["depends_on"]["postgres"]["condition"] == "service_healthy"
    used = set(re.findall(r"\$\{(\w+)", (ROOT / "docker-compose.yml").read_text()))
    assert used <= _env_example().keys(), "every variable compose reads is documented"


def test_compose_scrapes_metrics_on_its_network_and_checks_health_with_healthz() -> None:
    bot = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["bot"]
    port = bot["environment"]["METRICS_PORT"]
    assert bot["environment"]["METRICS_HOST"] == "0.0.0.0" and bot["expose"] == [port]
    assert "ports" not in bot, "the metrics endpoint has no authentication: never published on the host"
    check = " ".join(bot["healthcheck"]["test"])
    assert f"127.0.0.1:{port}/healthz" in check
    assert Settings(_env_file=None, metrics_port=port).metrics_port == int(port)


@pytest.mark.parametrize("password", ["hearth", "p@ss:w/rd%?#&=+ é"])
def test_compose_gives_the_bot_any_postgres_password(monkeypatch: pytest.MonkeyPatch, password: str) -> None:
    """The bot's settings as compose sets them, with POSTGRES_PASSWORD substituted as compose does: the URL is
    built from parts, so no character of the password can break it."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    postgres, bot = compose["services"]["postgres"], compose["services"]["bot"]
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    for name, value in bot["environment"].items():
        monkeypatch.setenv(name, re.sub(r"\$\{POSTGRES_PASSWORD(:-[^}]*)?\}", lambda _: password, str(value)))

    url = load_settings(env_file=None).database
    env = postgres["environment"]
    assert url.drivername == "postgresql+asyncpg"
    assert (url.username, url.password, url.host, url.port) == (env["POSTGRES_USER"], password, "postgres", 5432)
    assert url.database == env["POSTGRES_DB"]


def test_compose_does_not_restart_a_bot_that_cannot_start_forever() -> None:
    """A missing token exits with status 2 at every start: Docker gives up after a few tries (README)."""
    bot = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["bot"]
    policy, _, retries = bot["restart"].partition(":")
    assert policy == "on-failure" and 1 <= int(retries) <= 10


def test_dockerfile_migrates_then_runs() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    command = next(line for line in dockerfile.splitlines() if line.startswith("CMD"))
    assert command.index("db upgrade") < command.index("bot run")
    for needed in ("bot", "alembic.ini", "pyproject.toml"):
        assert re.search(rf"^COPY .*\b{re.escape(needed)}\b", dockerfile, re.M), needed


def test_docker_stop_reaches_the_bot_and_gives_it_time_to_save() -> None:
    """SIGTERM goes to Python itself (``exec``, not a shell that swallows it), and compose waits long enough
    for the clean stop: replies in flight, then the embedding worker and the learner (bot/discord/client.py)."""
    command = next(line for line in (ROOT / "Dockerfile").read_text().splitlines() if line.startswith("CMD"))
    assert "exec python -m bot run" in command
    bot = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["bot"]
    grace = bot["stop_grace_period"]
    assert grace.endswith("s") and int(grace[:-1]) >= 60

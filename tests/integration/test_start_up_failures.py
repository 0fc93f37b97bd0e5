"""Every way a start can fail is one line on stderr and a documented exit status, never a traceback.

Real processes, as a person runs them (``python -m bot …`` through tests/support/launcher.py, which points
discord.py at a fake Discord), against a temporary SQLite file, the embedded PostgreSQL, a port nobody listens
on, a fake Discord that answers 401 and the fake LLM endpoint.
"""

import asyncio
import contextlib
import os
import pty
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import create_async_engine

from bot.db import migrations
from tests.fakes.discord import FakeDiscord
from tests.fakes.llm_server import BrokenStream, Fail, FakeLLM, Reply
from tests.support.postgres import create_database

ROOT = Path(__file__).resolve().parents[2]


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


NOBODY = f"http://127.0.0.1:{closed_port()}"  # a port that refuses connections


@dataclass(frozen=True)
class Result:
    returncode: int
    stdout: str
    stderr: str


def environment(discord: FakeDiscord | None, env: dict[str, str]) -> dict[str, str]:
    """Only the given settings (no .env is read from the temporary folder), Discord where ``discord`` is."""
    values = {key: os.environ[key] for key in ("PATH", "HOME", "LANG") if key in os.environ}
    values["PYTHONPATH"] = str(ROOT)
    values["FAKE_DISCORD_API"] = discord.api_base if discord else f"{NOBODY}/api/v10"
    values["FAKE_DISCORD_GATEWAY"] = discord.gateway_url if discord else NOBODY.replace("http", "ws")
    return values | env


async def hearth(
    *args: str,
    cwd: Path,
    discord: FakeDiscord | None = None,
    env: Mapping[str, str] | None = None,
    as_uid: int | None = None,
) -> Result:
    """``python -m bot ARGS`` in ``cwd`` with the settings ``env``, discord.py pointed at ``discord`` (else at a
    refused port); as the user ``as_uid`` (and their group) when given."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.support.launcher",
        *args,
        cwd=cwd,
        env=environment(discord, dict(env or {})),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        user=as_uid,
        group=as_uid,
        extra_groups=None if as_uid is None else [],
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode is not None
    return Result(process.returncode, out.decode(), err.decode())


def one_line(result: Result, status: int, *needles: str) -> str:
    """The line that says what stopped the command: the last on stderr, after at most two log lines."""
    assert result.returncode == status, result
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    assert 1 <= len(lines) <= 3, result.stderr
    line = lines[-1]
    assert line.startswith("hearth: "), line
    for needle in needles:
        assert needle in line, line
    return line


def doctor_row(result: Result, name: str) -> str:
    assert "Traceback" not in result.stderr + result.stdout
    return next(line for line in result.stdout.splitlines() if line[6:].startswith(name))


MODEL = {"DISCORD_TOKEN": "token", "OPENAI_BASE_URL": f"{NOBODY}/v1"}


@pytest.mark.parametrize(
    ("name", "value", "what"),
    [
        ("LLM_EXTRA_HEADERS", "{bad", "not valid JSON"),
        ("LLM_EXTRA_BODY", "{'top_p': 0.9}", "JSON needs double quotes"),
        ("DATABASE_URL", "postgresql+asyncpg://hearth:pw@localhost:abc/hearth", "port in the URL is not a whole"),
        ("DATABASE_URL", "postgresql+asyncpg://hearth:pw@localhost:543200/hearth", "port in the URL must lie in 1"),
        ("EMBEDDING_PROVIDER", "bogus", "'local', 'sentence-transformers' or 'openai', not 'bogus'"),
        ("OPENAI_BASE_URL", "localhost:11434/v1", "an http:// or https:// URL"),
        ("LLM_FALLBACK_BASE_URL", "::1/v1", "an http:// or https:// URL"),
        ("EVENTS_POLL_SECONDS", "inf", "finite number"),
        ("DATABASE_URL", "sqlite+aiosqlite://", "the SQLite URL names no file"),
        ("MEMORY_RETENTION_DAYS", "99999999999", "less than or equal to 36500"),
    ],
)
async def test_a_malformed_setting_is_one_line_naming_it_in_every_command(
    tmp_path: Path, name: str, value: str, what: str
) -> None:
    commands = [("run",), ("chat",), ("db", "current"), ("doctor",)]
    run, chat, db, doctor = await asyncio.gather(
        *(hearth(*command, cwd=tmp_path, env={**MODEL, name: value}) for command in commands)
    )
    for result in (run, chat, db):
        one_line(result, 2, f"invalid settings: {name}", what)
    assert doctor.returncode == 1 and doctor.stderr == ""
    row = doctor_row(doctor, "settings")
    assert row.startswith("FAIL") and name in row and what in row
    assert "pw@" not in run.stderr + doctor.stdout, "a URL's password is never echoed"


async def test_a_settings_file_that_cannot_be_read_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "latin1.env").write_bytes(b"LLM_MODEL=caf\xe9\n")
    missing, undecodable, db_missing, doctor = await asyncio.gather(
        hearth("--env-file", "nope.env", "run", cwd=tmp_path, env=MODEL),
        hearth("--env-file", "latin1.env", "chat", cwd=tmp_path, env=MODEL),
        hearth("--env-file", "nope.env", "db", "upgrade", cwd=tmp_path),
        hearth("--env-file", "nope.env", "doctor", cwd=tmp_path, env=MODEL),
    )
    one_line(missing, 2, "cannot read the settings file nope.env: No such file or directory")
    one_line(undecodable, 2, "cannot read the settings file latin1.env: not UTF-8 text")
    one_line(db_missing, 2, "nope.env")
    assert not (tmp_path / "data").exists(), "nothing was done with the settings it could not read"
    assert doctor.returncode == 1 and "nope.env" in doctor_row(doctor, "settings")


async def test_a_line_of_the_settings_file_that_cannot_be_parsed_is_one_line_naming_it(tmp_path: Path) -> None:
    """Not a setting silently left out (here the token, whose quote is never closed), and no secret echoed."""
    (tmp_path / ".env").write_text(f'LLM_MODEL=gpt-4o-mini\nDISCORD_TOKEN="s3cret\nOPENAI_BASE_URL={NOBODY}/v1\n')
    run, db, doctor = await asyncio.gather(
        hearth("run", cwd=tmp_path), hearth("db", "current", cwd=tmp_path), hearth("doctor", cwd=tmp_path)
    )
    for result in (run, db):
        line = one_line(result, 2, "the settings file .env", "line 2 (DISCORD_TOKEN)", "NAME=value")
        assert "s3cret" not in line
    assert "line 2 (DISCORD_TOKEN)" in doctor_row(doctor, "settings")
    assert not (tmp_path / "data").exists()


async def test_an_invalid_token_or_an_unreachable_discord_stops_run_before_the_database(tmp_path: Path) -> None:
    async with FakeDiscord() as discord:
        discord.fail("get_me", 401, message="401: Unauthorized", times=10)
        rejected, unreachable = await asyncio.gather(
            hearth("run", cwd=tmp_path, discord=discord, env=MODEL),
            hearth("run", cwd=tmp_path, env={"DISCORD_CONNECT_RETRY_SECONDS": "2", **MODEL}),
        )
    one_line(rejected, 5, "Discord rejected DISCORD_TOKEN")
    line = one_line(unreachable, 4, "cannot reach Discord", "connection refused", "DISCORD_CONNECT_RETRY_SECONDS")
    assert "tried 2 times" in line, "retried with backoff before giving up"
    assert "trying again in" in unreachable.stderr.splitlines()[0]
    assert not (tmp_path / "data").exists(), "neither touched the database"


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_a_stop_while_run_waits_for_discord_is_a_clean_stop(tmp_path: Path, stop: signal.Signals) -> None:
    """``docker stop`` (or Ctrl-C) while Hearth retries an unreachable Discord at start: a clean stop, as once
    connected (a line saying so, status 0), not a process killed by the signal without a word."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "tests.support.launcher", "run"),
        cwd=tmp_path,
        env=environment(None, {"DISCORD_CONNECT_RETRY_SECONDS": "120", **MODEL}),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stderr is not None
        async with asyncio.timeout(60):
            first = (await process.stderr.readline()).decode()
        assert "trying again in" in first, first
        process.send_signal(stop)
        out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    result = Result(process.returncode or 0, out.decode(), first + err.decode())
    assert process.returncode == 0, result
    assert "Traceback" not in result.stderr + result.stdout
    assert f"{stop.name} received while starting: stopped" in err.decode(), result
    assert not (tmp_path / "data").exists(), "the database was not touched"


async def test_a_metrics_port_in_use_stops_run_before_the_database(tmp_path: Path) -> None:
    """Another program (or another Hearth) holds METRICS_PORT: said at once, before migrating and loading the
    embedding model, not once all of that is done."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = int(taken.getsockname()[1])
        async with FakeDiscord() as discord:
            result = await hearth("run", cwd=tmp_path, discord=discord, env={"METRICS_PORT": str(port), **MODEL})
    one_line(result, 2, f"cannot serve metrics on 127.0.0.1:{port}", "METRICS_PORT")
    assert not (tmp_path / "data").exists(), "the database was not touched"


async def test_a_database_that_refuses_is_one_line_without_the_password(
    tmp_path: Path, postgres_server_url: URL
) -> None:
    refused = f"postgresql+asyncpg://hearth:s3cret@127.0.0.1:{closed_port()}/hearth"
    database = await create_database(postgres_server_url, f"hearth_refuses_{uuid.uuid4().hex[:8]}")
    no_such_role = database.set(username="nobody", password="s3cret").render_as_string(hide_password=False)
    async with FakeDiscord() as discord:
        run, db, role = await asyncio.gather(
            hearth("run", cwd=tmp_path, discord=discord, env={"DATABASE_URL": refused, **MODEL}),
            hearth("db", "upgrade", cwd=tmp_path, env={"DATABASE_URL": refused}),
            hearth("db", "current", cwd=tmp_path, env={"DATABASE_URL": no_such_role}),
        )
    one_line(run, 3, "cannot use the database at postgresql+asyncpg://hearth:***@127.0.0.1", "connection refused")
    one_line(db, 3, "connection refused")
    one_line(role, 3, 'role "nobody" does not exist')
    assert "s3cret" not in run.stderr + db.stderr + role.stderr


async def owned_by_a_plain_role(server_url: URL) -> URL:
    """A fresh database owned by a role that is not a superuser, as hosted PostgreSQL gives one: it may create
    tables but not an untrusted extension such as vector."""
    role = f"hearth_plain_{uuid.uuid4().hex[:8]}"
    database = await create_database(server_url, role)
    admin = create_async_engine(server_url)
    try:
        async with admin.connect() as connection:
            autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
            await autocommit.execute(text(f'CREATE ROLE "{role}" LOGIN'))
            await autocommit.execute(text(f'ALTER DATABASE "{role}" OWNER TO "{role}"'))
    finally:
        await admin.dispose()
    return database.set(username=role)


async def test_a_user_who_may_not_create_pgvector_is_told_who_must(tmp_path: Path, postgres_server_url: URL) -> None:
    url = (await owned_by_a_plain_role(postgres_server_url)).render_as_string(hide_password=False)
    upgrade = await hearth("db", "upgrade", cwd=tmp_path, env={"DATABASE_URL": url})
    one_line(upgrade, 3, 'the extension "vector"', "a superuser", "CREATE EXTENSION vector;")


async def test_a_vector_size_other_than_the_database_was_made_with_stops_the_start(
    tmp_path: Path, postgres_server_url: URL
) -> None:
    """PostgreSQL fixes the size of the vector columns when the schema is created; another EMBEDDING_DIMENSION
    would fail every memory's vector once the bot runs."""
    url = await create_database(postgres_server_url, f"hearth_dimension_{uuid.uuid4().hex[:8]}")
    made_with_384 = {"DATABASE_URL": url.render_as_string(hide_password=False)}
    assert (await hearth("db", "upgrade", cwd=tmp_path, env=made_with_384)).returncode == 0
    now_768 = {**made_with_384, **MODEL, "EMBEDDING_DIMENSION": "768", "EMBEDDING_PROVIDER": "openai"}
    chat, reembed, doctor = await asyncio.gather(
        hearth("chat", cwd=tmp_path, env=now_768),
        hearth("memory", "reembed", cwd=tmp_path, env=now_768),
        hearth("doctor", cwd=tmp_path, env=now_768),
    )
    for result in (chat, reembed):
        one_line(result, 3, "384-dimensional vectors", "not 768", "EMBEDDING_DIMENSION=384")
    assert doctor_row(doctor, "schema").startswith("FAIL  schema         the database holds 384-dimensional")


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_an_embedding_endpoint_of_another_vector_size_stops_run_before_the_database_is_made(
    tmp_path: Path, llm: FakeLLM, postgres_server_url: URL, backend: str
) -> None:
    """EMBEDDING_PROVIDER=openai with the default EMBEDDING_DIMENSION, for an endpoint whose model makes vectors of
    another size (Ollama's nomic-embed-text makes 768): said at start, as for the local model, not as a traceback at
    every reply and every batch of memories while recall by meaning never works. And before the schema is made:
    PostgreSQL would fix the wrong size in it, and refuse the right one at the next start."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'hearth.db'}"
    if backend == "postgresql":
        fresh = await create_database(postgres_server_url, f"hearth_endpoint_size_{uuid.uuid4().hex[:8]}")
        url = fresh.render_as_string(hide_password=False)
    settings = {
        "DISCORD_TOKEN": "token",
        "OPENAI_BASE_URL": llm.base_url,
        "LLM_MODEL": llm.models[0],
        "DATABASE_URL": url,
        "EMBEDDING_PROVIDER": "openai",
        "EMBEDDING_MODEL": "nomic-embed-text",
        "EMBEDDING_DIMENSION": "768",  # the fake endpoint makes 384
    }
    async with FakeDiscord() as discord:
        result = await hearth("run", cwd=tmp_path, discord=discord, env=settings)
    one_line(result, 2, "EMBEDDING_DIMENSION is 768 but nomic-embed-text makes 384-dimensional vectors")
    current = await hearth("db", "current", cwd=tmp_path, env={"DATABASE_URL": url})
    assert "current: none" in current.stdout, "no schema was made with the wrong vector size"


async def test_a_sqlite_folder_that_cannot_be_made_is_one_line(tmp_path: Path) -> None:
    """The folder of the SQLite file is created, unless something is in the way (here a file; a volume the bot
    may not write to is the same)."""
    (tmp_path / "data").write_text("not a folder")
    async with FakeDiscord() as discord:
        run, db, doctor = await asyncio.gather(
            hearth("run", cwd=tmp_path, discord=discord, env=MODEL),
            hearth("db", "upgrade", cwd=tmp_path),
            hearth("doctor", cwd=tmp_path, discord=discord, env=MODEL),
        )
    for result in (run, db):
        one_line(result, 3, "cannot create the folder data for the SQLite database", "DATABASE_URL")
    assert doctor.returncode == 1
    assert doctor_row(doctor, "database").startswith("FAIL  database       cannot create the folder data")


def unwritable_places(base: Path, template: Path) -> dict[str, Path]:
    """Under ``base``, three folders to start Hearth in, each with its ``data`` folder: "file" holds a database
    file only readable (in a folder anyone may write), "folder" a writable file in a folder only readable, and
    "empty" no file, in a folder only readable."""
    base.chmod(0o755)
    places = {name: base / name / "data" for name in ("file", "folder", "empty")}
    for name, data in places.items():
        data.mkdir(parents=True)
        data.parent.chmod(0o755)
        if name != "empty":
            shutil.copyfile(template, data / "hearth.db")
    (places["file"] / "hearth.db").chmod(0o444)
    places["file"].chmod(0o777)
    (places["folder"] / "hearth.db").chmod(0o666)
    places["folder"].chmod(0o555)
    places["empty"].chmod(0o555)
    return places


def remove(base: Path) -> None:
    for folder in base.glob("*/data"):
        folder.chmod(0o755)
    shutil.rmtree(base)


async def test_a_sqlite_file_or_folder_the_bot_may_not_write_is_one_line_saying_which(sqlite_template: Path) -> None:
    """A database file, or its folder (where SQLite writes its journal beside the file), that the bot's user may
    only read, as a volume mounted read-only or a file copied in as another user: the line says which of the two
    and what to do, not SQLite's own words alone, and a file that opens but may not be written stops the start
    there, not at its first write. Run as an unprivileged user when the tests run as root (who may write
    anything), in a folder of its own that user can reach."""
    as_uid = 65534 if os.geteuid() == 0 else None  # nobody
    base = Path(tempfile.mkdtemp())
    try:
        places = unwritable_places(base, sqlite_template)
        async with FakeDiscord() as discord:
            file, folder, empty = await asyncio.gather(
                *(hearth("run", cwd=data.parent, discord=discord, env=MODEL, as_uid=as_uid) for data in places.values())
            )
        # After the start on that file, not beside it: there it would be refused as beside a running bot.
        upgrade = await hearth("db", "upgrade", cwd=places["file"].parent, as_uid=as_uid)
    finally:
        remove(base)
    for result in (file, upgrade):
        one_line(result, 3, "may not write the file data/hearth.db", "DATABASE_URL")
    for result in (folder, empty):
        one_line(result, 3, "may not write in the folder data", "DATABASE_URL")


async def test_db_refuses_unknown_revisions_and_the_wrong_direction(tmp_path: Path) -> None:
    head = migrations.head_revision()
    assert (await hearth("db", "upgrade", cwd=tmp_path)).returncode == 0

    backwards = one_line(await hearth("db", "upgrade", "0003", cwd=tmp_path), 3, f"at {head}, past 0003")
    assert "python -m bot db downgrade 0003" in backwards
    one_line(await hearth("db", "downgrade", "nonsense", cwd=tmp_path), 2, "no revision 'nonsense'", "0001", head)
    debug = await hearth("--debug", "db", "downgrade", "nonsense", cwd=tmp_path)
    assert debug.returncode == 2 and debug.stderr.startswith("hearth: there is no revision 'nonsense'")
    assert "Traceback" in debug.stderr, "--debug adds the traceback after the line"
    assert "up to date" in (await hearth("db", "current", cwd=tmp_path)).stdout, "nothing changed the database"

    assert (await hearth("db", "downgrade", "0005", cwd=tmp_path)).returncode == 0
    one_line(await hearth("db", "downgrade", "0007", cwd=tmp_path), 3, "at 0005, before 0007", "db upgrade 0007")

    with contextlib.closing(sqlite3.connect(tmp_path / "data" / "hearth.db")) as connection, connection:
        connection.execute("UPDATE alembic_version SET version_num = '9999'")  # migrated by a newer Hearth
    newer = await hearth("db", "upgrade", cwd=tmp_path)
    one_line(newer, 3, "revision 9999, which this version of Hearth does not know")
    current = await hearth("db", "current", cwd=tmp_path)
    assert current.returncode == 1 and "ahead: a newer version of Hearth" in current.stdout
    status = await hearth("memory", "status", cwd=tmp_path)
    assert "db upgrade" not in one_line(status, 3, "revision 9999, which this version of Hearth does not know")


async def test_doctor_checks_the_token_with_discord_and_says_refused(tmp_path: Path, llm: FakeLLM) -> None:
    settings = {"DISCORD_TOKEN": "token", "OPENAI_BASE_URL": llm.base_url, "LLM_MODEL": llm.models[0]}
    async with FakeDiscord() as valid, FakeDiscord() as rejecting:
        rejecting.fail("get_me", 401, message="401: Unauthorized", times=10)
        ok, invalid, unreachable = await asyncio.gather(
            hearth("doctor", cwd=tmp_path, discord=valid, env=settings),
            hearth("doctor", cwd=tmp_path, discord=rejecting, env=settings),
            hearth("doctor", cwd=tmp_path, env=MODEL),
        )
    assert doctor_row(ok, "discord token") == f"OK    discord token  valid: the bot Hearth (id {valid.bot.id})"
    assert doctor_row(ok, "llm endpoint").startswith("OK")
    assert doctor_row(invalid, "discord token").startswith("FAIL  discord token  Discord rejected DISCORD_TOKEN")
    assert doctor_row(unreachable, "discord token").endswith("Discord is unreachable: connection refused")
    assert doctor_row(unreachable, "llm endpoint").endswith(f"{NOBODY}/v1 unreachable: connection refused")
    assert [result.returncode for result in (invalid, unreachable)] == [1, 1]


async def test_a_token_pasted_with_a_line_break_is_used_without_it(tmp_path: Path) -> None:
    """A secret read from a file (Docker, Kubernetes) often ends in a newline, which no HTTP header may hold."""
    pasted = {**MODEL, "DISCORD_TOKEN": "token\n", "OPENAI_API_KEY": " sk-key\n"}
    async with FakeDiscord() as valid, FakeDiscord() as rejecting:
        rejecting.fail("get_me", 401, message="401: Unauthorized", times=10)
        doctor, rejected = await asyncio.gather(
            hearth("doctor", cwd=tmp_path, discord=valid, env=pasted),
            hearth("run", cwd=tmp_path, discord=rejecting, env=pasted),
        )
    assert doctor_row(doctor, "discord token").startswith("OK    discord token  valid: the bot Hearth")
    one_line(rejected, 5, "Discord rejected DISCORD_TOKEN")


class Terminal:
    """A pseudo-terminal running ``python -m bot chat``: what a person sees, echo of what they type included."""

    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        self.master, child = pty.openpty()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bot", "chat"], cwd=cwd, env=env, stdin=child, stdout=child, stderr=child
        )
        os.close(child)
        self.screen = b""
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        with contextlib.suppress(OSError):  # EIO: the process closed the terminal
            while chunk := os.read(self.master, 4096):
                self.screen += chunk

    def wait_for(self, text: str, *, count: int = 1, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while self.screen.decode(errors="replace").count(text) < count:
            assert time.monotonic() < deadline, f"no {text!r} on the screen: {self.screen!r}"
            time.sleep(0.05)

    def type(self, keys: bytes) -> None:
        os.write(self.master, keys)

    def finish(self) -> list[str]:
        self.process.wait(timeout=90)
        self._reader.join(timeout=10)
        os.close(self.master)
        return self.screen.decode().split("\r\n")


@pytest.fixture
def terminal_factory() -> Iterator[list[Terminal]]:
    made: list[Terminal] = []
    yield made
    for terminal in made:
        if terminal.process.poll() is None:
            terminal.process.kill()
            terminal.process.wait()


async def test_chat_keeps_log_lines_out_of_the_reply_and_prints_nothing_after_leaving(
    tmp_path: Path, llm: FakeLLM, terminal_factory: list[Terminal]
) -> None:
    # First two server errors, retried (each a warning), then the reply; then a reply that breaks off after its
    # first word, retried. Learning answers are not JSON, so the learner warns when it reads the turns, which
    # is when the chat ends.
    llm.script(
        Fail(500),
        Fail(500),
        Reply("hello there, friend", chunk_size=3),
        BrokenStream("this answer breaks off", after_chars=5),
        Reply("second try", chunk_size=3),
    )
    env = environment(None, {"OPENAI_BASE_URL": llm.base_url, "LLM_MODEL": llm.models[0]})
    terminal = Terminal(tmp_path, env)
    terminal_factory.append(terminal)

    await asyncio.to_thread(terminal.wait_for, "you> ")
    terminal.type(b"hi\n")
    await asyncio.to_thread(terminal.wait_for, "you> ", count=2)
    terminal.type(b"and again\n")
    await asyncio.to_thread(terminal.wait_for, "you> ", count=3)
    terminal.type(b"\x04")  # Ctrl-D
    lines = await asyncio.to_thread(terminal.finish)

    assert terminal.process.returncode == 0
    retried = "model call failed (server error 500); retry"
    assert lines[:2] == ["Talking to Hearth. Ctrl-D or /quit to leave.", "you> hi"]
    assert [line.startswith(retried) for line in lines[2:4]] == [True, True], lines
    assert lines[4:6] == ["Hearth: hello there, friend", "you> and again"], "the reply has a line of its own"
    # The broken answer's first word shows; the warning ends its line; the retried answer goes on below.
    assert lines[6] == "Hearth: this " and lines[7].startswith("model call failed ("), lines
    assert lines[8:] == [" " * len("Hearth: ") + "second try", "you> ", ""], "nothing after leaving"
    assert "Loading" not in terminal.screen.decode() and "%|" not in terminal.screen.decode(), "no progress bar"
    assert len(llm.chat_requests) > 5, "the learner did call the model at the end, and its warnings stayed quiet"


@contextlib.contextmanager
def discord_at(base: str) -> Iterator[None]:
    from discord.http import Route

    old, Route.BASE = Route.BASE, base
    try:
        yield
    finally:
        Route.BASE = old


async def test_the_token_probe_names_what_is_wrong_with_the_way_to_discord() -> None:
    """Host not found and a server that never answers, as doctor and run describe them."""
    from bot.discord.probe import check_token

    release = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(65536)  # the request, left unanswered
        await release.wait()
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        with discord_at("http://nobody.invalid/api/v10"):
            unknown_host = await check_token("token", timeout_s=5)
        with discord_at(f"http://127.0.0.1:{port}/api/v10"):
            silence = await check_token("token", timeout_s=0.5)
    finally:
        release.set()
        server.close()
        await server.wait_closed()
    assert (unknown_host.status, unknown_host.detail.split(" (")[0]) == ("unreachable", "host not found")
    assert (silence.status, silence.detail) == ("unreachable", "timed out")

"""Running Hearth as a service, end to end: /metrics and /healthz served by the bot itself, and its log lines.

The real HearthBot against the fake Discord and the fake LLM (real HTTP servers on 127.0.0.1), on both
databases; /metrics and /healthz are read over HTTP and /metrics parsed with Prometheus' own parser. The last
tests run ``python -m bot`` in a process of its own (tests/support/launcher.py), set up from its environment.
"""

import asyncio
import io
import json
import logging
import os
import re
import shutil
import signal
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import discord as discordpy
import pytest
from sqlalchemy import select
from sqlalchemy.engine import URL

from bot.db import migrations
from bot.db.engine import Database
from bot.db.models import Message
from bot.discord.client import HearthBot
from bot.log import secrets_of, setup_logging
from tests.fakes.discord import DEFAULT_EVERYONE_PERMISSIONS, FakeDiscord, FakeGuild, FakeUser
from tests.fakes.llm_server import Fail, FakeLLM, Reply
from tests.support.bot import running_bot
from tests.support.observability import Samples, healthz, restored_logging, sample, scrape
from tests.support.postgres import create_database
from tests.support.process import bot_environment, bot_process

ROOT = Path(__file__).resolve().parents[2]
DISCORD_TOKEN = "MTIzNDU2Nzg5MDEy.secret-discord-token"
API_KEY = "sk-live-secret-api-key-0123456789"


@pytest.fixture
async def discord_world() -> AsyncIterator[tuple[FakeDiscord, FakeUser, FakeGuild]]:
    async with FakeDiscord() as fake:
        ana = fake.add_user("ana", global_name="Ana")
        guild = fake.add_guild("Cosy Corner", channels=["general"], members=[ana])
        yield fake, ana, guild


def port_of(bot: HearthBot) -> int:
    assert bot.ops_server is not None, "METRICS_PORT is set: the bot serves /metrics and /healthz"
    return bot.ops_server.port


async def scraped_when(bot: HearthBot, condition: Callable[[Samples], bool]) -> Samples:
    """/metrics once ``condition`` holds (a reply is counted just after it is stored)."""
    samples: Samples = {}
    async with asyncio.timeout(5):
        while not condition(samples := await scrape(port_of(bot))):  # noqa: ASYNC110 (polling over HTTP)
            await asyncio.sleep(0.05)
    return samples


async def test_metrics_count_a_reply_with_its_latencies_model_call_and_rate_limit_waits(
    discord_world: tuple[FakeDiscord, FakeUser, FakeGuild], db: Database, llm: FakeLLM
) -> None:
    discord, ana, guild = discord_world
    general = guild.channel("general")
    llm.script(Fail(429, retry_after=0.05), Reply("Hello Ana, lovely to see you!"))
    discord.fail("create_message", 429, retry_after=0.25)  # discord.py waits it out, then sends
    async with running_bot(discord, db, llm, metrics_port=0) as bot:
        before = await scrape(port_of(bot))
        assert sample(before, "hearth_replies_total", outcome="replied") is None, "nothing counted before a reply"

        await discord.user_message(general, ana, f"{discord.bot.mention} hi there")
        await discord.wait_for_request(
            lambda call: (
                call.route in ("create_message", "edit_message")
                and (call.body or {}).get("content") == "Hello Ana, lovely to see you!"
            )
        )
        samples = await scraped_when(bot, lambda s: sample(s, "hearth_replies_total", outcome="replied") == 1)

    for histogram in ("hearth_reply_own_seconds", "hearth_reply_model_seconds"):
        assert sample(samples, f"{histogram}_count") == 1, histogram
        assert sample(samples, f"{histogram}_bucket", le="+Inf") == 1, histogram
        assert sum(1 for name, _ in samples if name == f"{histogram}_bucket") > 5, "buckets are exposed"
    model_s = sample(samples, "hearth_reply_model_seconds_sum")
    assert model_s is not None and model_s >= 0.05, "the model's time includes the wait after its 429"
    reply = {"model": "fake-model", "purpose": "reply"}
    assert sample(samples, "hearth_model_calls_total", **reply, result="ok") == 1
    assert sample(samples, "hearth_model_errors_total", purpose="reply", kind="rate_limited") == 1
    assert (sample(samples, "hearth_model_tokens_total", **reply, kind="prompt") or 0) > 0
    assert (sample(samples, "hearth_model_tokens_total", **reply, kind="completion") or 0) > 0
    assert sample(samples, "hearth_discord_rate_limits_total", scope="route") == 1
    assert sample(samples, "hearth_discord_rate_limit_wait_seconds_total") == pytest.approx(0.25)
    backlog = sample(samples, "hearth_memory_embedding_backlog")
    assert backlog is not None and 0 <= backlog <= 2, "read from the database: the turn's two memories at most"
    assert sample(samples, "hearth_learner_backlog") == 0
    assert sample(samples, "hearth_replies_total", outcome="failed") is None


async def test_metrics_count_an_answer_a_reasoning_model_thinks_away_apart_from_refusals(
    discord_world: tuple[FakeDiscord, FakeUser, FakeGuild], db: Database, llm: FakeLLM
) -> None:
    """The model's thinking took all of the reply's max_tokens: the endpoint refused nothing, and a person reading
    the metrics is to raise LLM_MAX_TOKENS, not look for a content filter."""
    discord, ana, guild = discord_world
    general = guild.channel("general")
    llm.script(Reply("", reasoning="Let me weigh every word of this. " * 8, finish_reason="length"))
    async with running_bot(discord, db, llm, metrics_port=0) as bot:
        await discord.user_message(general, ana, f"{discord.bot.mention} what should I bake?")
        samples = await scraped_when(
            bot,
            lambda s: sample(s, "hearth_model_calls_total", model="fake-model", purpose="reply", result="failed") == 1,
        )

    assert sample(samples, "hearth_model_errors_total", purpose="reply", kind="no_room") == 1
    assert sample(samples, "hearth_model_errors_total", purpose="reply", kind="refused") is None


async def test_a_message_deleted_while_hearth_answers_it_is_counted_as_deleted(
    discord_world: tuple[FakeDiscord, FakeUser, FakeGuild], db: Database, llm: FakeLLM
) -> None:
    """A turn that ends because the message answered was taken back is neither a reply nor a failure."""
    discord, ana, guild = discord_world
    general = guild.channel("general")
    asking, deleted = asyncio.Event(), asyncio.Event()

    async def answer_once_deleted(body: dict[str, Any]) -> Reply:
        asking.set()
        await deleted.wait()
        return Reply("Noted!")

    llm.default = answer_once_deleted
    async with running_bot(discord, db, llm, metrics_port=0) as bot:
        asked = await discord.user_message(general, ana, f"{discord.bot.mention} my locker code is 4417")
        await asking.wait()
        await discord.user_deletes(asked)
        deleted.set()
        samples = await scraped_when(bot, lambda s: sample(s, "hearth_replies_total", outcome="deleted") == 1)
    assert sample(samples, "hearth_replies_total", outcome="replied") is None
    assert sample(samples, "hearth_replies_total", outcome="failed") is None


@pytest.mark.parametrize(
    "reply",
    [Reply("Hello in private!", chunk_size=100), Reply("Hello in private! " * 12, delay_between_chunks=0.02)],
    ids=["sent whole", "refused as it streams"],
)
async def test_a_dm_the_person_no_longer_accepts_ends_the_turn_quietly_and_is_counted_as_refused(
    discord_world: tuple[FakeDiscord, FakeUser, FakeGuild],
    db: Database,
    llm: FakeLLM,
    caplog: pytest.LogCaptureFixture,
    reply: Reply,
) -> None:
    """Ana closes her DMs to Hearth (or blocks it) just after writing to it: Discord refuses the reply (403, code
    50007). That is her choice, not a fault: one line says so, with no traceback, the message is not answered at
    the next start either, and the metrics count the turn as refused, not as a reply or a failure."""
    caplog.set_level(logging.INFO, logger="bot")
    discord, ana, _ = discord_world
    dm = discord.dm_channel(ana)
    discord.close_dms(ana)
    llm.script(reply)
    async with running_bot(discord, db, llm, metrics_port=0) as bot:
        await discord.user_message(dm, ana, "psst, hello")
        samples = await scraped_when(bot, lambda s: sample(s, "hearth_replies_total", outcome="refused") == 1)
        assert discord.dm_messages(ana) == []
    assert sample(samples, "hearth_replies_total", outcome="replied") is None
    assert sample(samples, "hearth_replies_total", outcome="failed") is None
    hearths = [r for r in caplog.records if r.name.startswith("bot.")]  # not the fake servers' own
    assert not [r.getMessage() for r in hearths if r.levelno >= logging.ERROR or r.exc_info]
    [said] = [r for r in hearths if "50007" in r.getMessage()]
    assert said.levelno in (logging.INFO, logging.WARNING)

    discord.close_dms(ana, closed=False)
    llm.default = lambda body: Reply("ok")
    async with running_bot(discord, db, llm) as bot:
        await bot.caught_up.wait()
    assert discord.dm_messages(ana) == [], "not answered later either: she did not want it"


@pytest.mark.parametrize(
    "reply",
    [Reply("Welcome, Ana!", chunk_size=100), Reply("Welcome to the corner, Ana! " * 12, delay_between_chunks=0.02)],
    ids=["sent whole", "refused as it streams"],
)
@pytest.mark.parametrize(
    ("taken", "code", "named"),
    [("send_messages", "50013", "Send Messages"), ("view_channel", "50001", "View Channel")],
    ids=["Send Messages", "View Channel"],
)
async def test_a_reply_refused_for_a_permission_just_taken_away_is_one_warning_and_counted_as_forbidden(
    discord_world: tuple[FakeDiscord, FakeUser, FakeGuild],
    db: Database,
    llm: FakeLLM,
    caplog: pytest.LogCaptureFixture,
    reply: Reply,
    taken: str,
    code: str,
    named: str,
) -> None:
    """A moderator takes Send Messages away from everyone while Hearth answers Ana: its cached
    permissions still allow it, and Discord refuses the reply (403, Missing Permissions, code 50013); or hides the
    channel from everyone (View Channel), and Discord refuses it as Missing Access (403, code 50001). One warning
    names the channel and the permission, with no traceback; the reply is not kept as if it had been sent, the
    message is not answered again at the next start, and the metrics count the turn as forbidden."""
    caplog.set_level(logging.INFO, logger="bot")
    discord, ana, guild = discord_world
    general = guild.channel("general")
    asking, taken_meanwhile = asyncio.Event(), asyncio.Event()

    async def answer_once_taken(body: dict[str, Any]) -> Reply:
        asking.set()
        await taken_meanwhile.wait()
        return reply

    llm.default = answer_once_taken
    async with running_bot(discord, db, llm, metrics_port=0) as bot:
        await discord.user_message(general, ana, f"{discord.bot.mention} hello!")
        await asking.wait()
        taken_away = discordpy.Permissions(DEFAULT_EVERYONE_PERMISSIONS)
        setattr(taken_away, taken, False)
        discord.set_everyone_permissions(guild, taken_away.value)  # not told to Hearth yet
        taken_meanwhile.set()
        samples = await scraped_when(bot, lambda s: sample(s, "hearth_replies_total", outcome="forbidden") == 1)
    assert discord.sent_messages(general) == []
    assert sample(samples, "hearth_replies_total", outcome="replied") is None
    assert sample(samples, "hearth_replies_total", outcome="failed") is None
    hearths = [r for r in caplog.records if r.name.startswith("bot.")]  # not the fake servers' own
    assert not [r.getMessage() for r in hearths if r.levelno >= logging.ERROR or r.exc_info]
    [said] = [r for r in hearths if r.levelno == logging.WARNING and code in r.getMessage()]
    assert str(general) in said.getMessage() and f"the {named} permission" in said.getMessage()
    async with db.session() as session:
        kept = (await session.scalars(select(Message.content).where(Message.role == "assistant"))).all()
    assert list(kept) == [], "not kept as if it had been sent"

    discord.set_everyone_permissions(guild, DEFAULT_EVERYONE_PERMISSIONS)
    llm.default = lambda body: Reply("ok")
    async with running_bot(discord, db, llm) as bot:
        await bot.caught_up.wait()
    assert discord.sent_messages(general) == [], "not answered later, out of place"


@pytest.mark.parametrize("refusal", ["dms closed", "permission taken away"])
async def test_a_notice_discord_refuses_ends_the_turn_quietly_and_is_counted(
    discord_world: tuple[FakeDiscord, FakeUser, FakeGuild],
    db: Database,
    llm: FakeLLM,
    caplog: pytest.LogCaptureFixture,
    refusal: str,
) -> None:
    """Hearth is resting, and says so to Ana once; but she closed her DMs to it (403, code 50007), or a moderator
    took Send Messages away a moment before (403, code 50013): the notice is refused as a reply would be. One line
    says so, with no traceback, and the metrics count the turn as refused or forbidden."""
    caplog.set_level(logging.INFO, logger="bot")
    discord, ana, guild = discord_world
    general = guild.channel("general")
    async with running_bot(discord, db, llm, metrics_port=0) as bot:
        bot.services.conversation.rest(True)
        if refusal == "dms closed":
            channel, code, outcome = discord.dm_channel(ana), "50007", "refused"
            discord.close_dms(ana)
            await discord.user_message(channel, ana, "psst, hello")
        else:
            channel, code, outcome = general, "50013", "forbidden"
            no_sending = discordpy.Permissions(DEFAULT_EVERYONE_PERMISSIONS)
            no_sending.send_messages = False
            discord.set_everyone_permissions(guild, no_sending.value)  # not told to Hearth yet
            await discord.user_message(general, ana, f"{discord.bot.mention} hello!")
        samples = await scraped_when(bot, lambda s: sample(s, "hearth_replies_total", outcome=outcome) == 1)
    assert discord.sent_messages(channel) == []
    assert sample(samples, "hearth_replies_total", outcome="failed") is None
    hearths = [r for r in caplog.records if r.name.startswith("bot.")]  # not the fake servers' own
    assert not [r.getMessage() for r in hearths if r.levelno >= logging.ERROR or r.exc_info]
    [said] = [r for r in hearths if code in r.getMessage()]
    assert said.levelno in (logging.INFO, logging.WARNING)


async def test_a_notice_to_a_message_deleted_at_once_ends_the_turn_quietly_and_forgets_the_message(
    discord_world: tuple[FakeDiscord, FakeUser, FakeGuild],
    db: Database,
    llm: FakeLLM,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Hearth is resting, and would say so to Ana; but a moderation bot deleted her message the moment it was
    posted, so Discord refuses a reply to it (400, unknown message_reference). That is no fault: nothing is logged
    as one, the turn is counted as deleted, and her deleted message is not kept."""
    caplog.set_level(logging.INFO, logger="bot")
    discord, ana, guild = discord_world
    general = guild.channel("general")
    async with running_bot(discord, db, llm, metrics_port=0) as bot:
        bot.services.conversation.rest(True)
        posted = discord.message_payload(general, ana, f"{discord.bot.mention} hello!")
        await discord.user_deletes(posted, announced=False)  # deleted on Discord before Hearth hears of either
        await discord.dispatch("MESSAGE_CREATE", posted)
        samples = await scraped_when(bot, lambda s: sample(s, "hearth_replies_total", outcome="deleted") == 1)
    assert discord.sent_messages(general) == []
    assert sample(samples, "hearth_replies_total", outcome="skipped") is None
    hearths = [r for r in caplog.records if r.name.startswith("bot.")]  # not the fake servers' own
    assert not [r.getMessage() for r in hearths if r.levelno >= logging.ERROR or r.exc_info]
    async with db.session() as session:
        kept = (await session.scalars(select(Message.content).where(Message.role == "user"))).all()
    assert list(kept) == [], "the deleted message is not kept"


async def test_healthz_is_503_until_the_gateway_is_ready_then_200(
    discord_world: tuple[FakeDiscord, FakeUser, FakeGuild], db: Database, llm: FakeLLM
) -> None:
    discord = discord_world[0]
    let_in = discord.hold_ready()
    async with running_bot(discord, db, llm, ready=False, metrics_port=0) as bot:
        status, body = await healthz(port_of(bot))
        assert (status, body) == (503, {"status": "unavailable", "gateway": "disconnected", "database": "ok"})

        let_in.set()
        async with asyncio.timeout(5):
            await bot.wait_until_ready()
        status, body = await healthz(port_of(bot))
        assert (status, body) == (200, {"status": "ok", "gateway": "connected", "database": "ok"})


async def test_json_log_lines_carry_the_turn_ids_and_no_secret(
    discord_world: tuple[FakeDiscord, FakeUser, FakeGuild], db: Database, llm: FakeLLM
) -> None:
    discord, ana, guild = discord_world
    general = guild.channel("general")
    # Some providers echo the key they were given in their error; Hearth logs that error.
    llm.script(Fail(401, message=f"Incorrect API key provided: {API_KEY}"))
    lines = io.StringIO()
    with restored_logging():
        async with running_bot(discord, db, llm, discord_token=DISCORD_TOKEN, openai_api_key=API_KEY) as bot:
            setup_logging("INFO", log_format="json", secrets=secrets_of(bot.services.settings), stream=lines)
            asked = await discord.user_message(general, ana, f"{discord.bot.mention} hello")
            await discord.wait_for_request(lambda call: call.route == "create_message" and call.channel_id == general)

    output = lines.getvalue()
    entries: list[dict[str, Any]] = [json.loads(line) for line in output.splitlines()]
    assert entries and all({"time", "level", "logger", "message"} <= entry.keys() for entry in entries)
    turn = [e for e in entries if e["logger"].startswith("bot.services.conversation") and e["level"] == "ERROR"]
    assert len(turn) == 1, output
    assert turn[0]["message"].startswith("no reply for channel")
    ids = {key: turn[0].get(key) for key in ("guild_id", "channel_id", "user_id", "message_id")}
    assert ids == {"guild_id": guild.id, "channel_id": general, "user_id": ana.id, "message_id": int(asked["id"])}
    assert "Incorrect API key provided: [redacted]" in turn[0]["message"]
    assert API_KEY not in output and DISCORD_TOKEN not in output
    background = [entry for entry in entries if entry["logger"].startswith(("bot.services.learning", "apscheduler"))]
    assert all("user_id" not in entry for entry in background), "background work logs without a turn's ids"


async def test_python_m_bot_run_serves_metrics_and_health_and_logs_json_without_secrets(
    db: Database, llm: FakeLLM, tmp_path: Path
) -> None:
    """The real launcher in a process of its own, set up from the environment as a deployment is."""
    llm.script(Reply("Hello from a real process!"))
    async with FakeDiscord() as discord:
        ana = discord.add_user("ana", global_name="Ana")
        dm = discord.dm_channel(ana)
        environment = bot_environment(discord, db, llm, token=DISCORD_TOKEN, api_key=API_KEY)
        environment |= {
            "LOG_FORMAT": "json",
            "METRICS_PORT": "0",  # any free port: the bot logs the one it took
        }
        log = tmp_path / "bot.log"
        async with bot_process(environment, log, "--sync-commands") as bot:
            port = 0
            async with asyncio.timeout(60):
                while not port:  # another process writes the log
                    await asyncio.sleep(0.05)
                    serving = re.search(r"serving /metrics and /healthz on http://127\.0\.0\.1:(\d+)", log.read_text())
                    port = int(serving.group(1)) if serving else 0
                while (await healthz(port))[0] != 200:  # noqa: ASYNC110 (polling over HTTP)
                    await asyncio.sleep(0.1)
            assert {"memory", "config", "owner"} <= {c["name"] for c in discord.commands()}, "--sync-commands"

            await discord.user_message(dm, ana, "hello there")
            await discord.wait_for_request(lambda call: call.route == "create_message" and call.channel_id == dm)
            async with asyncio.timeout(10):
                while sample(await scrape(port), "hearth_replies_total", outcome="replied") != 1:  # noqa: ASYNC110
                    await asyncio.sleep(0.05)
            bot.send_signal(signal.SIGTERM)
            async with asyncio.timeout(60):
                code = await bot.wait()

    output = log.read_text()
    assert code == 0, output
    entries = [json.loads(line) for line in output.splitlines()]  # every line is one JSON object
    assert {"bot.discord.client", "bot.observability.server"} <= {entry["logger"] for entry in entries}
    assert DISCORD_TOKEN not in output and API_KEY not in output
    chatter = [e["message"] for e in entries if e["logger"].startswith("apscheduler") or e["logger"] == "root"]
    assert chatter == [], "neither every run of a job nor the quantizer's notes on each layer reach the log"


@dataclass(frozen=True)
class Finished:
    status: int
    out: str
    err: str

    def row(self, name: str) -> str:
        """The line of ``doctor``'s table about ``name``."""
        return next(line for line in self.out.splitlines() if line[6:].startswith(f"{name} "))


async def hearth(
    folder: Path, *arguments: str, discord: FakeDiscord, settings: dict[str, str], as_uid: int | None = None
) -> Finished:
    """``python -m bot ARGUMENTS`` in ``folder``, as a person runs it there: only ``settings`` in its environment
    (no .env in ``folder``), Discord being ``discord``; as the user ``as_uid`` (and their group) when given."""
    environment = {key: os.environ[key] for key in ("PATH", "HOME", "LANG") if key in os.environ}
    environment |= {
        "PYTHONPATH": str(ROOT),
        "FAKE_DISCORD_API": discord.api_base,
        "FAKE_DISCORD_GATEWAY": discord.gateway_url,
    }
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "tests.support.launcher", *arguments),
        cwd=folder,
        env=environment | settings,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        user=as_uid,
        group=as_uid,
        extra_groups=None if as_uid is None else [],
    )
    out, err = await process.communicate()
    assert process.returncode is not None
    return Finished(process.returncode, out.decode(), err.decode())


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_doctor_on_a_fresh_install_says_the_first_start_makes_the_schema_and_passes(
    tmp_path: Path, llm: FakeLLM, backend: str, request: pytest.FixtureRequest
) -> None:
    """Nothing run yet, the database empty (SQLite: the default file; PostgreSQL: a new database): `run` makes the
    schema (and the vector extension) itself, so nothing is to fix; a schema behind head it upgrades likewise."""
    settings = {"DISCORD_TOKEN": "token", "OPENAI_BASE_URL": llm.base_url, "LLM_MODEL": llm.models[0]}
    if backend == "postgresql":
        server: URL = request.getfixturevalue("postgres_server_url")
        empty = await create_database(server, f"hearth_fresh_{uuid.uuid4().hex[:8]}")
        settings["DATABASE_URL"] = empty.render_as_string(hide_password=False)
    async with FakeDiscord() as discord:
        fresh = await hearth(tmp_path, "doctor", discord=discord, settings=settings)
        older = await hearth(tmp_path, "db", "upgrade", "0020", discord=discord, settings=settings)
        behind = await hearth(tmp_path, "doctor", discord=discord, settings=settings)

    assert (fresh.status, fresh.err) == (0, ""), fresh.out
    assert "OK    schema         not created yet: the first start makes it" in fresh.row("schema")
    assert "db upgrade" not in fresh.out
    if backend == "postgresql":
        assert fresh.row("pgvector").startswith("OK    pgvector       vector 0.8"), fresh.out
        assert fresh.row("pgvector").endswith("available: the next start creates it")
    assert older.status == 0, older.err
    assert (behind.status, behind.err) == (0, ""), behind.out
    head = migrations.head_revision()
    assert behind.row("schema").startswith(f"OK    schema         at 0020, head is {head}: the next start upgrades")
    assert behind.row("pgvector").startswith("OK" if backend == "postgresql" else "--"), behind.out


def read_only_places(base: Path) -> tuple[Path, Path]:
    """Under ``base``, a folder only readable, and a ``data`` folder only readable in a folder anyone may read."""
    base.chmod(0o755)
    (readable := base / "readable").mkdir(mode=0o555)
    (data := base / "with-data" / "data").mkdir(parents=True, mode=0o555)
    return readable, data


async def test_doctor_on_a_fresh_install_checks_the_sqlite_file_to_come_without_making_it(
    tmp_path: Path, llm: FakeLLM
) -> None:
    """A check writes nothing: the default SQLite file and its folder are the first start's to make. Where they
    could not be made (a folder only readable; as an unprivileged user when the tests run as root), it says so."""
    settings = {"DISCORD_TOKEN": "token", "OPENAI_BASE_URL": llm.base_url, "LLM_MODEL": llm.models[0]}
    base = Path(tempfile.mkdtemp())  # a folder the unprivileged user can reach
    try:
        readable, data = read_only_places(base)
        as_uid = 65534 if os.geteuid() == 0 else None  # nobody
        async with FakeDiscord() as discord:
            fresh, no_folder, no_file = await asyncio.gather(
                hearth(tmp_path, "doctor", discord=discord, settings=settings),
                hearth(readable, "doctor", discord=discord, as_uid=as_uid, settings=settings),
                hearth(data.parent, "doctor", discord=discord, as_uid=as_uid, settings=settings),
            )
    finally:
        shutil.rmtree(base)

    assert (fresh.status, fresh.err) == (0, ""), fresh.out
    assert os.listdir(tmp_path) == [], "neither ./data nor its database file made"
    database = "OK    database       sqlite+aiosqlite:///./data/hearth.db (no file yet: the first start makes data/"
    assert fresh.row("database").startswith(database), fresh.out
    assert fresh.row("schema").startswith("OK    schema         not created yet: the first start makes it")

    assert no_folder.status == 1
    assert no_folder.row("database").startswith(
        "FAIL  database       cannot create the folder data for the SQLite database (this user may not write in the "
        "folder .): create it where the bot may write, or set DATABASE_URL"
    ), no_folder.out
    assert no_file.status == 1
    assert no_file.row("database").startswith(
        "FAIL  database       cannot create the SQLite database data/hearth.db (this user may not write in the folder "
        "data)"
    ), no_file.out

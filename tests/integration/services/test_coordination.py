"""Several bot processes on one database agree: maintenance mode, guild settings and personas.

Two Containers on one PostgreSQL database stand for two bot processes (shards): each has its own caches and its
own listening connection, exactly as two processes would. SQLite serves one process, but maintenance mode is
kept there too, so it survives a restart.
"""

import asyncio
import contextlib
from collections.abc import Callable

from sqlalchemy import text

from bot.container import Container
from bot.db.engine import Database
from bot.services.conversation import RESTING
from bot.services.incoming import Place
from tests.fakes.llm_server import FakeLLM, Reply
from tests.support.bot import container_on
from tests.support.chat import RecordingReply, message

GUILD = 4242
CHANNEL = 900
PLACE = Place(channel_id=CHANNEL, channel_name="general", guild_id=GUILD, guild_name="Cosy Corner")
SEEN_WITHIN_S = 2.0


def bot_process(db: Database, llm: FakeLLM) -> contextlib.AbstractAsyncContextManager[Container]:
    """What one `python -m bot run` process holds: a started Container of its own on the shared database."""
    return container_on(db, llm, started=True)


async def seen_within(condition: Callable[[], object], seconds: float = SEEN_WITHIN_S) -> None:
    """Fail unless ``condition()`` (sync or async) holds within ``seconds``."""
    async with asyncio.timeout(seconds):
        while True:
            result = condition()
            if asyncio.iscoroutine(result):
                result = await result
            if result:
                return
            await asyncio.sleep(0.02)


async def test_maintenance_switched_on_in_one_process_holds_in_the_other(pg: Database, llm: FakeLLM) -> None:
    async with bot_process(pg, llm) as first, bot_process(pg, llm) as second:
        await first.coordination.set_maintenance(True)
        await seen_within(lambda: second.coordination.maintenance)

        told = RecordingReply()
        outcome = await second.conversation.handle(message("are you there?", user=7), told)
        assert outcome.status == "held" and told.sent == [[RESTING]]
        again = RecordingReply()
        assert (await second.conversation.handle(message("hello?", user=7), again)).status == "held"
        assert again.sent == [], "told once per channel and user, as before"
        assert llm.chat_requests == []

        await first.coordination.set_maintenance(False)
        await seen_within(lambda: not second.coordination.maintenance)
        llm.script(Reply("I'm back!"))
        back = RecordingReply()
        assert (await second.conversation.handle(message("and now?", user=7), back)).status == "replied"
        assert back.sent == [["I'm back!"]]


async def test_maintenance_survives_a_restart(db: Database, llm: FakeLLM) -> None:
    async with bot_process(db, llm) as before:
        await before.coordination.set_maintenance(True)
    async with bot_process(db, llm) as after:
        assert after.coordination.maintenance
        told = RecordingReply()
        assert (await after.conversation.handle(message("hi"), told)).status == "held"
        assert told.sent == [[RESTING]]


async def test_a_config_change_in_one_process_is_used_by_the_other(pg: Database, llm: FakeLLM) -> None:
    async with bot_process(pg, llm) as first, bot_process(pg, llm) as second:
        llm.script(Reply("first"), Reply("second"))
        await second.conversation.handle(message("hi", guild=GUILD, channel=CHANNEL, mention=True), RecordingReply())
        assert llm.chat_requests[-1].body["model"] == "fake-model"  # and the guild's settings are now cached

        await first.guild_config.set_model(PLACE, "other-model")  # what /config model does
        await seen_within(lambda: _typed_model(second, PLACE))
        await second.conversation.handle(message("again", guild=GUILD, channel=CHANNEL, mention=True), RecordingReply())
        assert llm.chat_requests[-1].body["model"] == "other-model"


async def _typed_model(container: Container, place: Place) -> bool:
    view = await container.directory.guild(place)
    return view is not None and view.typed.model == "other-model"


async def test_a_persona_change_in_one_process_is_played_by_the_other(pg: Database, llm: FakeLLM) -> None:
    async with bot_process(pg, llm) as first, bot_process(pg, llm) as second:
        llm.script(Reply("hello"), Reply("hello again"))
        await second.conversation.handle(message("hi", guild=GUILD, channel=CHANNEL, mention=True), RecordingReply())
        view = await second.directory.guild(PLACE)
        assert view is not None
        assert (await second.personas.for_guild(view.guild_id)).name == "Hearth"  # cached in the second process

        await first.personas.edit(view.guild_id, name="Mira", personality_prompt="A fox spirit.")  # /persona edit

        async def plays_mira() -> bool:
            return (await second.personas.for_guild(view.guild_id)).name == "Mira"

        await seen_within(plays_mira)
        await second.conversation.handle(
            message("who are you?", guild=GUILD, channel=CHANNEL, mention=True), RecordingReply()
        )
        assert "You are Mira." in llm.chat_requests[-1].body["messages"][0]["content"]


async def test_a_message_deleted_or_a_person_erased_in_one_process_leaves_the_others_prompts(
    pg: Database, llm: FakeLLM
) -> None:
    async with bot_process(pg, llm) as first, bot_process(pg, llm) as second:

        async def say(text: str, user: int, name: str) -> str:
            """``text`` said in the channel, answered by the second process; the prompt of its reply."""
            said = message(text, user=user, name=name, guild=GUILD, channel=CHANNEL, mention=True)
            llm.script(Reply("ok"))
            await second.conversation.handle(said, RecordingReply())
            return llm.chat_requests[-1].prompt_text()

        secret = message("my locker code is 4417", user=7, name="ana", guild=GUILD, channel=CHANNEL, mention=True)
        llm.script(Reply("Noted!"))
        await second.conversation.handle(secret, RecordingReply())  # its history now cached in the second
        assert "4417" in await say("I like tea", 7, "ana")

        assert secret.message_id is not None
        listener = second.coordination.listener
        assert listener is not None
        heard = listener.heard
        await first.privacy.forget_deleted_messages([secret.message_id])  # deleted on Discord, heard by the first
        await seen_within(lambda: listener.heard > heard)
        assert "4417" not in await say("what was my code?", 7, "ana")

        heard = listener.heard
        await first.privacy.forget_everything(7)  # /memory forget-all, run where the first process answers
        await seen_within(lambda: listener.heard > heard)
        prompt = await say("hello, I'm new here", 8, "ben")
        assert "I like tea" not in prompt and "what was my code?" not in prompt, "Ana's words left every process"


async def test_changes_are_seen_after_the_listening_connection_is_killed(pg: Database, llm: FakeLLM) -> None:
    async with bot_process(pg, llm) as first, bot_process(pg, llm) as second:
        listener = second.coordination.listener
        assert listener is not None and listener.connections == 1
        assert not await _typed_model(second, PLACE)  # the guild's settings are now cached in the second process
        async with pg.engine.connect() as connection:
            killed = await connection.scalar(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                    " WHERE application_name = 'hearth-listen' AND datname = current_database()"
                )
            )
        assert killed == 2, "both processes' listening connections"
        # Made while the second process may not be listening yet: the catch-up on reconnecting covers it.
        await first.coordination.set_maintenance(True)
        await first.guild_config.set_model(PLACE, "other-model")

        await seen_within(lambda: second.coordination.maintenance and _typed_model(second, PLACE))
        assert listener.connections == 2

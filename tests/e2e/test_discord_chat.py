"""End to end: gateway events into the real discord.py client, REST calls out, on both database backends.

The fake Discord and the fake LLM are real HTTP servers on 127.0.0.1; everything between them is Hearth.
"""

import asyncio
import contextlib
import inspect
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import discord as discordpy
import pytest
from sqlalchemy import select

from bot.db.engine import Database
from bot.db.models import Message
from bot.discord.client import HearthBot
from bot.services.incoming import Place
from tests.fakes.discord import DEFAULT_EVERYONE_PERMISSIONS, FakeDiscord, FakeGuild, FakeUser
from tests.fakes.llm_server import Fail, FakeLLM, Reply, content_text
from tests.support.bot import running_bot
from tests.support.commands import run


@pytest.fixture
async def discord_world() -> AsyncIterator[tuple[FakeDiscord, FakeUser, FakeGuild]]:
    async with FakeDiscord() as fake:
        ana = fake.add_user("ana", global_name="Ana")
        guild = fake.add_guild("Cosy Corner", channels=["general", "random", "quiet"], members=[ana])
        yield fake, ana, guild


@pytest.fixture
async def bot(
    discord_world: tuple[FakeDiscord, FakeUser, FakeGuild], db: Database, llm: FakeLLM
) -> AsyncIterator[HearthBot]:
    async with running_bot(discord_world[0], db, llm) as running:
        yield running


async def stored_contents(db: Database, role: str) -> list[str]:
    async with db.session() as session:
        statement = select(Message.content).where(Message.role == role).order_by(Message.id)
        return list((await session.scalars(statement)).all())


async def stored_eventually(db: Database, role: str, expected: list[str], *, in_order: bool = True) -> None:
    """Replies are stored just after they are delivered: wait (briefly) for the database to catch up. Not
    ``in_order``: ``expected`` sorted, for replies in different places, stored in whichever order they finish."""

    async def found_now() -> list[str]:
        found = await stored_contents(db, role)
        return found if in_order else sorted(found)

    found: list[str] = []
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(5):
            while (found := await found_now()) != expected:  # noqa: ASYNC110 (polling the database)
                await asyncio.sleep(0.02)
    assert found == expected


async def awaiting_replies(db: Database) -> list[str]:
    async with db.reading() as session:
        statement = select(Message.content).where(Message.awaiting_reply).order_by(Message.id)
        return list((await session.scalars(statement)).all())


async def none_awaiting_eventually(db: Database) -> None:
    """The turns under way end just after the events that end them: wait (briefly) for them to settle."""
    waiting: list[str] = []
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(5):
            while waiting := await awaiting_replies(db):  # noqa: ASYNC110 (polling the database)
                await asyncio.sleep(0.02)
    assert waiting == []


async def shown(
    discord: FakeDiscord,
    channel_id: int,
    text: str | Callable[[str], bool],
    *,
    timeout: float = 5.0,  # noqa: ASYNC109
) -> dict[str, Any]:
    """The bot's message in ``channel_id`` once it shows ``text`` (posted whole, or streamed and edited to it: a
    short answer may be complete before its first preview goes out)."""
    matches = text if callable(text) else text.__eq__
    call = await discord.wait_for_request(
        lambda call: (
            call.route in ("create_message", "edit_message")
            and call.status == 200  # what Discord refused shows nothing
            and call.channel_id == channel_id
            and matches((call.body or {}).get("content") or "")
        ),
        timeout,
    )
    assert isinstance(call.response, dict)
    return call.response


class BenBeingAnswered:
    """Ben asks Hearth something in a channel (:meth:`asks`), and the model holds its answer, "Yes, Rome.", until
    :meth:`go_on`: Hearth answers one turn at a time in a channel, so what others say there meanwhile waits its turn.
    ``others``: the model's answer to anything else, from the request's body (may be a coroutine function)."""

    QUESTION = "is the capital of Italy rome?"

    def __init__(
        self, llm: FakeLLM, others: Callable[[dict[str, Any]], Reply | Awaitable[Reply]], *, answer: Reply | None = None
    ) -> None:
        self.asked, self._go_on = asyncio.Event(), asyncio.Event()

        async def model(body: dict[str, Any]) -> Reply:
            if "rome" in last_said(body):
                self.asked.set()
                await self._go_on.wait()
                return answer or Reply("Yes, Rome.")
            reply = others(body)
            return await reply if inspect.isawaitable(reply) else reply

        llm.default = model

    async def asks(self, discord: FakeDiscord, channel_id: int, ben: FakeUser) -> None:
        """Ben's question, once the model is writing its answer."""
        await discord.user_message(channel_id, ben, f"{discord.bot.mention} {self.QUESTION}")
        await asyncio.wait_for(self.asked.wait(), 30)

    def go_on(self) -> None:
        """Let the model finish Ben's answer."""
        self._go_on.set()


def last_said(body: dict[str, Any]) -> str:
    """The text of the last message of a chat request."""
    return content_text(body["messages"][-1]["content"])


async def test_a_mention_gets_a_reply_and_a_reply_to_the_bot_continues_the_conversation(
    discord_world: tuple[FakeDiscord, FakeUser, FakeGuild], bot: HearthBot, llm: FakeLLM, db: Database
) -> None:
    discord, ana, guild = discord_world
    general = guild.channel("general")
    llm.script(Reply("Hi Ana! Lovely to see you."), Reply("You told me you climb on Sundays."))

    asked = await discord.user_message(general, ana, f"{discord.bot.mention} I climb on Sundays")
    first = await shown(discord, general, "Hi Ana! Lovely to see you.")
    assert first["message_reference"]["message_id"] == asked["id"], "answers as a Discord reply"
    assert any(call.channel_id == general for call in discord.typing_calls), "typing shown while writing"

    await discord.user_message(general, ana, "what do I do on Sundays?", referenced_message=first)
    second = await shown(discord, general, "You told me you climb on Sundays.")
    prompt = [m["content"] for m in llm.chat_requests[-1].body["messages"]]
    assert prompt[1:] == [
        "Ana: @Hearth I climb on Sundays",
        "Hi Ana! Lovely to see you.",
        "Ana: what do I do on Sundays?",
    ]
    assert await stored_contents(db, "user") == ["@Hearth I climb on Sundays", "what do I do on Sundays?"]
    await stored_eventually(db, "assistant", [first["content"], second["content"]])


@pytest.mark.parametrize("announced", [True, False], ids=["deletion seen", "deletion seen before storing"])
async def test_a_message_deleted_while_hearth_answers_it_is_left_unanswered(
    discord_world: tuple[FakeDiscord, FakeUser, FakeGuild],
    bot: HearthBot,
    llm: FakeLLM,
    db: Database,
    caplog: pytest.LogCaptureFixture,
    announced: bool,
) -> None:
    """Taking a message back while Hearth writes its answer: Discord refuses a reply to it, and Hearth shows
    nothing and keeps nothing of it (no traceback, the channel answers on), even where the deletion reached
    Hearth before it had stored the message (a moderation bot deleting at once) and so found nothing to forget."""
    discord, ana, guild = discord_world
    general = guild.channel("general")
    asking, deleted = asyncio.Event(), asyncio.Event()

    async def answer_once_deleted(body: dict[str, Any]) -> Reply:
        asking.set()
        await deleted.wait()
        return Reply("Your code is 4417, safe with me.")

    llm.default = answer_once_deleted
    asked = await discord.user_message(general, ana, f"{discord.bot.mention} my locker code is 4417")
    await asking.wait()
    await discord.user_deletes(asked, announced=announced)
    deleted.set()

    llm.default = lambda body: Reply("Hello again!")
    await discord.user_message(general, ana, f"{discord.bot.mention} hello")
    await shown(discord, general, "Hello again!")
    assert [m["content"] for m in discord.sent_messages(general)] == ["Hello again!"]
    assert "4417" not in llm.last_prompt_text(), "neither the message nor an answer to it is remembered"
    await stored_eventually(db, "assistant", ["Hello again!"])
    assert await stored_contents(db, "user") == ["@Hearth hello"]
    assert not [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR], "taking it back is no fault"


async def test_a_dm_gets_a_reply(
    discord_world: tuple[FakeDiscord, FakeUser, FakeGuild], bot: HearthBot, llm: FakeLLM
) -> None:
    discord, ana, _ = discord_world
    dm = discord.dm_channel(ana)
    llm.script(Reply("Hello in private!"))
    await discord.user_message(dm, ana, "psst, hello")
    await shown(discord, dm, "Hello in private!")
    assert "a direct message with Ana" in llm.chat_requests[0].body["messages"][0]["content"]


async def test_the_role_discord_made_for_hearth_mentioned_is_hearth_mentioned(
    discord_world: tuple[FakeDiscord, FakeUser, FakeGuild], db: Database, llm: FakeLLM
) -> None:
    discord, ana, guild = discord_world
    general = guild.channel("general")
    own_role = discord.add_bot_role(guild)
    other_role = discord.add_role(guild, "Gardeners", members=[ana])
    async with running_bot(discord, db, llm):
        llm.script(Reply("Hello, Ana!"))
        await discord.user_message(general, ana, f"<@&{other_role}> anyone want to water the roses?")
        await discord.user_message(general, ana, f"<@&{own_role}> are you there?")
        await shown(discord, general, "Hello, Ana!")
    [asked] = [request for request in llm.reply_requests if "response_format" not in request.body]  # not learning
    assert "are you there?" in asked.prompt_text(), "answered the message naming its role, not the other one"


@pytest.mark.parametrize("status", [403, 500])
async def test_a_typing_signal_discord_refuses_neither_holds_up_nor_stops_the_reply(
    discord_world: tuple[FakeDiscord, FakeUser, FakeGuild], bot: HearthBot, llm: FakeLLM, status: int
) -> None:
    discord, ana, _ = discord_world
    dm = discord.dm_channel(ana)
    discord.fail("typing", status, times=10, code=50013 if status == 403 else 0)  # discord.py retries a 500 slowly
    llm.script(Reply("Still here!"))
    await discord.user_message(dm, ana, "are you there?")
    await shown(discord, dm, "Still here!")
    assert discord.typing_calls and all(call.status == status for call in discord.typing_calls)


async def test_bots_webhooks_itself_blocked_channels_and_idle_chatter_get_silence(
    discord_world: tuple[FakeDiscord, FakeUser, FakeGuild], bot: HearthBot, llm: FakeLLM, db: Database
) -> None:
    discord, ana, guild = discord_world
    other_bot = discord.add_user("otherbot", bot=True)
    await bot.services.directory.update_guild_settings(_place(guild), {"blocked_channels": [guild.channel("quiet")]})
    mention = discord.bot.mention
    await discord.user_message(guild.channel("general"), other_bot, f"{mention} beep")
    webhook = discord.message_payload(guild.channel("general"), ana, f"{mention} from a webhook")
    await discord.dispatch("MESSAGE_CREATE", webhook | {"webhook_id": str(discord.snowflake())})
    await discord.user_message(guild.channel("general"), discord.bot, f"{mention} talking to myself")
    await discord.user_message(guild.channel("quiet"), ana, f"{mention} are you here?")
    await discord.user_message(guild.channel("general"), ana, "just chatting among ourselves")
    # Events are handled in order of arrival: once this one is answered, the ones above were passed over.
    llm.script(Reply("I'm here."))
    await discord.user_message(guild.channel("random"), ana, f"{mention} and here?")
    await shown(discord, guild.channel("random"), "I'm here.")

    assert [m["content"] for m in discord.sent_messages()] == ["I'm here."]
    assert len(llm.chat_requests) == 1
    await stored_eventually(db, "user", ["@Hearth and here?"])


async def test_a_thread_hearth_has_not_cached_follows_its_blocked_channels_rules(llm: FakeLLM, db: Database) -> None:
    """An admin told Hearth to stay quiet in #quiet. An old thread there, archived, is not among the active threads
    Discord lists when Hearth connects, and its messages come without the channel they are in: Hearth asks Discord
    once which one it is, and stays quiet there too, however often it is asked."""
    async with FakeDiscord() as discord:
        ana, boss = discord.add_user("ana", global_name="Ana"), discord.add_user("boss", global_name="Boss")
        guild = discord.add_guild("Cosy Corner", channels=["general", "quiet"], members=[ana], admins=[boss])
        quiet, general = guild.channel("quiet"), guild.channel("general")
        old_thread = discord.add_thread(guild, "quiet", "old stories")
        discord.archive_thread(old_thread)
        async with running_bot(discord, db, llm, learning_enabled=False) as bot:
            await run(discord, boss, quiet, "config block-channel", {"channel": quiet})
            assert bot.get_channel(old_thread) is None, "the thread is one discord.py has not cached"
            for asked in ("are you here?", "hello??"):
                await discord.user_message(old_thread, ana, f"{discord.bot.mention} {asked}")
            await discord.wait_for_request(lambda call: call.route == "get_channel")
            # Events are handled in order of arrival: once this one is answered, the ones above were passed over.
            llm.script(Reply("I'm here."))
            await discord.user_message(general, ana, f"{discord.bot.mention} and here?")
            await shown(discord, general, "I'm here.")

    assert [m["content"] for m in discord.sent_messages()] == ["I'm here."]
    assert len(llm.reply_requests) == 1
    assert [call.channel_id for call in discord.calls("get_channel")] == [old_thread]


async def test_a_streamed_answer_appears_at_once_and_is_edited_at_most_once_per_interval(
    discord_world: tuple[FakeDiscord, FakeUser, FakeGuild], bot: HearthBot, llm: FakeLLM
) -> None:
    discord, ana, guild = discord_world
    general = guild.channel("general")
    text = "Once upon a time there was a very small hearth that warmed a very large house. " * 3
    llm.script(Reply(text, chunk_size=8, delay_between_chunks=0.03))  # ~0.9 s of streaming
    started = time.monotonic()
    await discord.user_message(general, ana, f"{discord.bot.mention} tell me a story")

    first = await discord.wait_for_message(general)
    assert 0 < len(first["content"]) < len(text), "the first message shows the start of the stream"
    await discord.wait_for_request(lambda call: call.route == "edit_message" and call.body["content"] == text)
    elapsed = time.monotonic() - started
    edits = discord.edits
    assert 2 <= len(edits) <= elapsed / 0.2 + 2, "edits are throttled to one per interval (plus the final one)"
    assert [m["content"] for m in discord.sent_messages(general)] == [text]


async def test_a_long_answer_is_split_into_messages_that_hold_it_all_in_order(
    discord_world: tuple[FakeDiscord, FakeUser, FakeGuild], bot: HearthBot, llm: FakeLLM
) -> None:
    discord, ana, guild = discord_world
    general = guild.channel("general")
    text = " ".join(f"This is sentence number {i} of a very long answer." for i in range(102))
    assert len(text) > 5000
    llm.script(Reply(text, chunk_size=500))
    await discord.user_message(general, ana, f"{discord.bot.mention} tell me everything")

    await shown(discord, general, lambda shown_text: shown_text.endswith("number 101 of a very long answer."))
    pieces = [m["content"] for m in discord.sent_messages(general)]
    assert len(pieces) == 3 and all(len(piece) <= 2000 for piece in pieces)
    assert "".join(pieces) == text


async def test_where_hearth_may_not_read_history_its_reply_is_a_plain_message(
    discord_world: tuple[FakeDiscord, FakeUser, FakeGuild], db: Database, llm: FakeLLM
) -> None:
    """Discord refuses a reply (a message referencing another) from a bot that may not read the channel's
    history: the answer still arrives, as a message of its own."""
    discord, ana, _ = discord_world
    no_history = discordpy.Permissions(DEFAULT_EVERYONE_PERMISSIONS)
    no_history.read_message_history = False
    guild = discord.add_guild("Notice Board", channels=["posts"], members=[ana], everyone_permissions=no_history.value)
    posts = guild.channel("posts")
    text = ("Pinned it for you. " * 150).strip()  # streamed into one message, then a second
    llm.script(Reply(text, chunk_size=200, delay_between_chunks=0.05))
    async with running_bot(discord, db, llm):
        await discord.user_message(posts, ana, f"{discord.bot.mention} can you pin this up?")
        await shown(discord, posts, lambda shown_text: shown_text.endswith("Pinned it for you."))
        said = discord.sent_messages(posts)
        assert len(said) == 2 and "".join(m["content"] for m in said) == text
    sends = discord.calls("create_message")
    assert sends and all(call.status == 200 for call in sends), "no reply tried that the permissions forbid"


async def test_a_reply_discord_refuses_for_history_goes_out_as_a_plain_message(
    discord_world: tuple[FakeDiscord, FakeUser, FakeGuild], bot: HearthBot, llm: FakeLLM
) -> None:
    """The cached permissions may be stale: Discord's refusal of the reply is the last word."""
    discord, ana, guild = discord_world
    general = guild.channel("general")
    discord.fail("create_message", 403, code=160002, message="A reply needs Read Message History")
    llm.script(Reply("Here you go."))
    await discord.user_message(general, ana, f"{discord.bot.mention} hello?")
    sent = await shown(discord, general, "Here you go.")
    assert "message_reference" not in sent or not sent.get("message_reference")
    assert [call.status for call in discord.calls("create_message")] == [403, 200]


async def test_model_output_cannot_ping_everyone_here_or_roles(
    discord_world: tuple[FakeDiscord, FakeUser, FakeGuild], bot: HearthBot, llm: FakeLLM
) -> None:
    discord, ana, guild = discord_world
    general = guild.channel("general")
    llm.script(Reply("@everyone hi <@&123> and @here", chunk_size=4, delay_between_chunks=0.05))
    await discord.user_message(general, ana, f"{discord.bot.mention} shout!")
    await discord.wait_for_request(
        lambda call: call.route == "edit_message" and call.body["content"] == "@everyone hi <@&123> and @here"
    )
    sent = [call for call in discord.requests if call.route in ("create_message", "edit_message")]
    assert len(sent) >= 2
    for call in sent:
        allowed = call.body["allowed_mentions"]
        assert "everyone" not in allowed["parse"] and "roles" not in allowed["parse"]
        assert not allowed.get("roles") and not allowed.get("users") and not allowed.get("replied_user")


async def test_a_rate_limited_model_is_retried_and_the_answer_arrives(
    discord_world: tuple[FakeDiscord, FakeUser, FakeGuild], bot: HearthBot, llm: FakeLLM
) -> None:
    discord, ana, guild = discord_world
    llm.script(Fail(429, retry_after=0.2), Reply("Sorry for the wait!"))
    await discord.user_message(guild.channel("general"), ana, f"{discord.bot.mention} hello?")
    await shown(discord, guild.channel("general"), "Sorry for the wait!")
    assert len(llm.chat_requests) == 2


async def test_an_account_out_of_credits_is_apologised_for_at_once_not_retried(
    discord_world: tuple[FakeDiscord, FakeUser, FakeGuild], db: Database, llm: FakeLLM
) -> None:
    """OpenAI answers an account without credits with 429 ``insufficient_quota``: no wait makes it answer."""
    discord, ana, guild = discord_world
    general = guild.channel("general")
    llm.default = Fail(429, code="insufficient_quota", message="You exceeded your current quota")
    async with running_bot(discord, db, llm, budget_s=3.0):
        await discord.user_message(general, ana, f"{discord.bot.mention} are you there?")
        await shown(discord, general, lambda text: "sorry" in text.lower())
        assert len(llm.chat_requests) == 1, "asked once"
        assert await stored_contents(db, "user") == ["@Hearth are you there?"]


async def test_when_the_model_keeps_failing_the_bot_apologises_and_keeps_the_message(
    discord_world: tuple[FakeDiscord, FakeUser, FakeGuild], db: Database, llm: FakeLLM
) -> None:
    discord, ana, guild = discord_world
    general = guild.channel("general")
    llm.script(Fail(500), Fail(502), Fail(503))
    llm.default = Fail(500)
    async with running_bot(discord, db, llm, budget_s=0.5):
        await discord.user_message(general, ana, f"{discord.bot.mention} are you there?")
        await shown(discord, general, lambda text: "sorry" in text.lower())
        assert len(llm.chat_requests) >= 3
        assert await stored_contents(db, "user") == ["@Hearth are you there?"]

        llm.default = Reply("Back again.")
        await discord.user_message(general, ana, f"{discord.bot.mention} now?")
        await shown(discord, general, "Back again.")


async def test_two_channels_are_answered_at_the_same_time(
    discord_world: tuple[FakeDiscord, FakeUser, FakeGuild], bot: HearthBot, llm: FakeLLM
) -> None:
    discord, ana, guild = discord_world
    bo = discord.add_user("bo")  # another person: one person's own replies are spaced by USER_COOLDOWN_SECONDS
    general, random_ = guild.channel("general"), guild.channel("random")
    slow = "slow " * 40
    llm.default = lambda body: (
        Reply(slow, chunk_size=5, delay_between_chunks=0.05) if "slow" in str(body["messages"][-1]) else Reply("quick")
    )
    await discord.user_message(general, ana, f"{discord.bot.mention} slow please")
    await discord.wait_for_message(general)  # the slow answer has started streaming
    await discord.user_message(random_, bo, f"{discord.bot.mention} quick please")
    await shown(discord, random_, "quick")
    assert discord.sent_messages(general)[0]["content"] != slow, "the quick answer did not wait for the slow one"
    await discord.wait_for_request(lambda call: call.route == "edit_message" and call.body["content"] == slow)


def _place(guild: FakeGuild) -> Place:
    return Place(channel_id=guild.first_channel, guild_id=guild.id, guild_name=guild.name)


@pytest.mark.parametrize("route", ["create_message", "edit_message"])
async def test_discord_failing_the_streaming_answer_once_still_ends_in_the_whole_answer_once(
    discord_world: tuple[FakeDiscord, FakeUser, FakeGuild], bot: HearthBot, llm: FakeLLM, db: Database, route: str
) -> None:
    """A preview is only a glimpse: Discord failing to show one (a 503, which discord.py does not retry), the
    message that opens it or an edit, costs the glimpse, never the answer, which arrives whole, once, and is kept."""
    discord, ana, guild = discord_world
    general = guild.channel("general")
    text = ("Once upon a time there was a very small hearth that warmed a very large house. " * 3).strip()
    llm.script(Reply(text, chunk_size=8, delay_between_chunks=0.03))  # ~0.9 s of streaming: several edits
    discord.fail(route, 503, message="Service Unavailable")
    await discord.user_message(general, ana, f"{discord.bot.mention} tell me a story")

    await shown(discord, general, text)
    assert discord.calls(route)[0].status == 503, "Discord failed the first try"
    assert [m["content"] for m in discord.sent_messages(general)] == [text]
    await stored_eventually(db, "assistant", [text])


async def test_where_hearth_may_not_send_it_neither_asks_the_model_nor_tries_discord(
    discord_world: tuple[FakeDiscord, FakeUser, FakeGuild], db: Database, llm: FakeLLM
) -> None:
    """A channel Hearth may read but not write in (an announcements channel, say): a message addressed to it there
    costs no model call, and asks Discord for nothing it would refuse (refusals count against the bot)."""
    discord, ana, guild = discord_world
    read_only = discordpy.Permissions(view_channel=True, read_message_history=True).value
    library = discord.add_guild("Library", channels=["notices"], members=[ana], everyone_permissions=read_only)
    notices, general = library.channel("notices"), guild.channel("general")
    llm.default = lambda body: Reply("Hello there." if "hello" in str(body["messages"][-1]) else "Shh.")
    async with running_bot(discord, db, llm):
        await discord.user_message(notices, ana, f"{discord.bot.mention} is the library open today?")
        await discord.user_message(general, ana, f"{discord.bot.mention} hello")  # after it, where Hearth may write
        await shown(discord, general, "Hello there.")
        await stored_eventually(db, "assistant", ["Hello there."])
    assert not [r for r in llm.chat_requests if "library" in str(r.body["messages"][-1])], "no model call"
    refused = [call for call in discord.requests if call.channel_id == notices]
    assert refused == [], f"nothing asked of Discord there: {[(c.route, c.status) for c in refused]}"
    assert await stored_contents(db, "user") == ["@Hearth hello"]


async def test_a_message_discord_delivers_twice_is_stored_and_answered_once(
    discord_world: tuple[FakeDiscord, FakeUser, FakeGuild], bot: HearthBot, llm: FakeLLM, db: Database
) -> None:
    """Discord may deliver a message again (the gateway replays events after a resume; two processes may both
    receive it): the person gets one answer, and the message is kept once."""
    discord, ana, guild = discord_world
    general = guild.channel("general")
    llm.default = lambda body: Reply("Good luck!" if "exam" in str(body["messages"][-1]) else "Hello again!")
    asked = discord.message_payload(general, ana, f"{discord.bot.mention} my exam is tomorrow")
    await discord.dispatch("MESSAGE_CREATE", asked)
    await discord.dispatch("MESSAGE_CREATE", asked)
    await shown(discord, general, "Good luck!")
    # Once a later message is answered too, both deliveries were handled.
    await discord.user_message(general, ana, f"{discord.bot.mention} hello")
    await shown(discord, general, "Hello again!")
    await stored_eventually(db, "assistant", ["Good luck!", "Hello again!"])

    assert [m["content"] for m in discord.sent_messages(general)] == ["Good luck!", "Hello again!"]
    assert sum("exam" in str(r.body["messages"][-1]) for r in llm.chat_requests) == 1, "one model call for it"
    assert await stored_contents(db, "user") == ["@Hearth my exam is tomorrow", "@Hearth hello"]


async def test_discords_notice_of_a_thread_started_is_not_taken_for_words_said(
    discord_world: tuple[FakeDiscord, FakeUser, FakeGuild], bot: HearthBot, llm: FakeLLM, db: Database
) -> None:
    """Starting a thread in a channel makes Discord post a notice there, authored by the person, its text the
    thread's name: nobody said it, so in a chat channel (where Hearth answers everything) it gets no answer."""
    discord, ana, guild = discord_world
    general = guild.channel("general")
    await bot.services.directory.update_guild_settings(_place(guild), {"chat_channels": [general]})
    notice = discord.message_payload(general, ana, "Hearth weekend plans")
    await discord.dispatch("MESSAGE_CREATE", notice | {"type": discordpy.MessageType.thread_created.value})
    llm.script(Reply("I'm here."))
    # Events are handled in order of arrival: once this one is answered, the notice was passed over.
    await discord.user_message(general, ana, "anyone around?")
    await shown(discord, general, "I'm here.")

    assert [m["content"] for m in discord.sent_messages(general)] == ["I'm here."]
    assert "weekend plans" not in str(llm.chat_requests[0].body["messages"]), "not put in the person's mouth"
    assert await stored_contents(db, "user") == ["anyone around?"]


async def test_a_sticker_sent_alone_is_answered_and_kept_by_its_name(
    discord_world: tuple[FakeDiscord, FakeUser, FakeGuild], bot: HearthBot, llm: FakeLLM, db: Database
) -> None:
    """A sticker on its own is something said to Hearth: in a DM, or in reply to Hearth, the model is told which
    sticker it was, by name, and answers as it would words; an edit of the words sent with a sticker keeps it."""
    discord, ana, guild = discord_world
    dm, general = discord.dm_channel(ana), guild.channel("general")
    llm.script(Reply("Hello to you too!"))
    await discord.user_message(dm, ana, "", stickers=["Wave"])
    await shown(discord, dm, "Hello to you too!")
    assert llm.chat_requests[-1].body["messages"][-1]["content"].endswith("[sticker: Wave]")

    llm.script(Reply("Hi Ana!"), Reply("Glad you like it!"))
    await discord.user_message(general, ana, f"{discord.bot.mention} hi")
    first = await shown(discord, general, "Hi Ana!")
    await discord.user_message(general, ana, "", stickers=["Heart Eyes"], referenced_message=first)
    await shown(discord, general, "Glad you like it!")
    assert llm.chat_requests[-1].body["messages"][-1]["content"] == "Ana: [sticker: Heart Eyes]"

    llm.script(Reply("Cute!"))
    said = await discord.user_message(general, ana, f"{discord.bot.mention} look", stickers=["Cat"])
    await shown(discord, general, "Cute!")
    await discord.user_edits(said, f"{discord.bot.mention} look at him")
    await stored_eventually(
        db, "user", ["[sticker: Wave]", "@Hearth hi", "[sticker: Heart Eyes]", "@Hearth look at him\n[sticker: Cat]"]
    )


async def test_a_poll_sent_alone_is_answered_and_kept_with_its_question_and_answers(
    discord_world: tuple[FakeDiscord, FakeUser, FakeGuild], bot: HearthBot, llm: FakeLLM, db: Database
) -> None:
    """A poll is something said to Hearth though it has no words of its own: the model is told its question
    and its answers, as it is told a sticker's name, and answers it."""
    discord, ana, _ = discord_world
    dm = discord.dm_channel(ana)
    llm.script(Reply("Oslo, for the fjords!"))
    await discord.user_message(dm, ana, "", poll=("Where should we go in May?", ["Rome", "Oslo", "Lima"]))
    await shown(discord, dm, "Oslo, for the fjords!")
    [request] = llm.reply_requests
    said = "[poll: Where should we go in May? (Rome / Oslo / Lima)]"
    assert request.messages[-1]["content"].endswith(said)
    assert await stored_contents(db, "user") == [said]


async def test_a_message_forwarded_to_hearth_is_answered_with_what_it_forwards(
    discord_world: tuple[FakeDiscord, FakeUser, FakeGuild], bot: HearthBot, llm: FakeLLM, db: Database
) -> None:
    """Discord's "Forward" sends a copy of a message with no words of its own: Hearth reads (and keeps) the
    forwarded words, marked as forwarded, and is shown its images, as with a message written to it."""
    discord, ana, guild = discord_world
    ben = discord.add_user("ben", global_name="Ben")
    dm = discord.dm_channel(ana)
    original = discord.message_payload(
        guild.channel("random"),
        ben,
        "the ferry leaves at six",
        attachments=[("ferry.png", b"\x89PNG\r\n\x1a\n" + bytes(64))],
    )
    llm.script(Reply("Six it is, don't miss it!"))
    await discord.user_message(dm, ana, "", forwarded=original)
    await shown(discord, dm, "Six it is, don't miss it!")
    [request] = llm.reply_requests
    assert "[forwarded]\nthe ferry leaves at six" in request.prompt_text()
    assert request.images == [original["attachments"][0]["url"]]
    assert await stored_contents(db, "user") == ["[forwarded]\nthe ferry leaves at six"]


async def test_the_mentions_in_a_forwarded_message_are_shown_by_name(
    discord_world: tuple[FakeDiscord, FakeUser, FakeGuild], bot: HearthBot, llm: FakeLLM, db: Database
) -> None:
    """A forwarded message's mentions reach the model as names, as a message's own do, not as ids: as Discord
    showed the original when Hearth saw it, else as far as Hearth knows them; an @everyone in it stays words."""
    discord, ana, guild = discord_world
    ben = discord.add_user("ben", global_name="Ben")
    dm, quiet = discord.dm_channel(ana), guild.channel("quiet")
    seen = await discord.user_message(guild.channel("random"), ana, f"{ben.mention} owes me a coffee")
    unseen = discord.message_payload(
        guild.channel("random"), ben, f"@everyone {ana.mention} the ferry leaves at six, see <#{quiet}>"
    )
    llm.script(Reply("Ha, Ben owes you!"), Reply("Six it is!"))
    await discord.user_message(dm, ana, "", forwarded=seen)
    await shown(discord, dm, "Ha, Ben owes you!")
    await discord.user_message(dm, ana, "", forwarded=unseen)
    await shown(discord, dm, "Six it is!")

    said = [
        "[forwarded]\n@Ben owes me a coffee",
        "[forwarded]\n@\u200beveryone @Ana the ferry leaves at six, see #quiet",
    ]
    assert [request.messages[-1]["content"] for request in llm.reply_requests] == said
    assert (await stored_contents(db, "user"))[-2:] == said


async def test_people_hearth_has_not_seen_in_a_forwarded_message_are_named_as_discord_knows_them(
    discord_world: tuple[FakeDiscord, FakeUser, FakeGuild], bot: HearthBot, llm: FakeLLM, db: Database
) -> None:
    """A forward mentioning people Hearth has never seen (discord.py keeps no mentions for a forward) shows them by
    the names Discord gives, asked once per person; one Discord does not know, or cannot name just now, stays
    unnamed, and the message is answered all the same."""
    discord, ana, guild = discord_world
    ben, cy, dee = (discord.add_user(name, global_name=name.title()) for name in ("ben", "cy", "dee"))
    dm, random = discord.dm_channel(ana), guild.channel("random")
    ghost = discord.snowflake()  # no one Discord knows (any more)
    first = discord.message_payload(random, ben, f"ask {cy.mention} or <@{ghost}> about the ferry")
    llm.script(Reply("I'll ask Cy!"), Reply("Cy again!"), Reply("Who's that?"))
    await discord.user_message(dm, ana, "", forwarded=first)
    await shown(discord, dm, "I'll ask Cy!")
    again = discord.message_payload(random, ben, f"{cy.mention} and <@{ghost}> are late")
    await discord.user_message(dm, ana, "", forwarded=again)
    await shown(discord, dm, "Cy again!")
    assert sorted(int(call.params["user_id"]) for call in discord.calls("get_user")) == sorted([cy.id, ghost])

    discord.fail("get_user", 503, message="Service Unavailable")
    await discord.user_message(dm, ana, "", forwarded=discord.message_payload(random, ben, f"hi {dee.mention}"))
    await shown(discord, dm, "Who's that?")

    said = [
        "[forwarded]\nask @Cy or @unknown-user about the ferry",
        "[forwarded]\n@Cy and @unknown-user are late",
        "[forwarded]\nhi @unknown-user",
    ]
    assert [request.messages[-1]["content"] for request in llm.reply_requests] == said
    assert await stored_contents(db, "user") == said


async def test_a_file_the_model_is_not_shown_is_told_by_its_name(
    discord_world: tuple[FakeDiscord, FakeUser, FakeGuild], bot: HearthBot, llm: FakeLLM, db: Database
) -> None:
    """A file sent alone that the model is not shown (a document, a voice message) is still something sent: the
    model is told of it by name, rather than handed an empty message to answer."""
    discord, ana, _ = discord_world
    dm = discord.dm_channel(ana)
    llm.script(Reply("I can't open files, but tell me about it!"))
    await discord.user_message(dm, ana, "", attachments=[("minutes.pdf", b"%PDF-1.4")])
    await shown(discord, dm, "I can't open files, but tell me about it!")
    [request] = llm.reply_requests
    assert request.messages[-1]["content"].endswith("[file: minutes.pdf]") and not request.images
    assert await stored_contents(db, "user") == ["[file: minutes.pdf]"]


async def test_a_reply_to_someone_elses_message_shows_the_model_what_it_replies_to(
    discord_world: tuple[FakeDiscord, FakeUser, FakeGuild], bot: HearthBot, llm: FakeLLM, db: Database
) -> None:
    """Replying to Ben's message and asking Hearth about it ("@Hearth is that right?") is asking about Ben's words:
    the model is shown them, under Ben's name, after what Ana wrote, and they are kept with her message; a reply to
    Hearth's own message quotes nothing (its words are the conversation's)."""
    discord, ana, guild = discord_world
    ben = discord.add_user("ben", global_name="Ben")
    general = guild.channel("general")
    claim = await discord.user_message(general, ben, "the last ferry to the island leaves at six")
    llm.script(Reply("Ben's right, six sharp."), Reply("Glad to help!"))
    await discord.user_message(general, ana, f"{discord.bot.mention} is that right?", referenced_message=claim)
    answer = await shown(discord, general, "Ben's right, six sharp.")
    await discord.user_message(general, ana, "thanks!", referenced_message=answer)
    await shown(discord, general, "Glad to help!")

    said = "@Hearth is that right?\n[in reply to Ben]\nthe last ferry to the island leaves at six"
    answered = [r.messages[-1]["content"] for r in llm.reply_requests if "response_format" not in r.body]
    assert answered == [f"Ana: {said}", "Ana: thanks!"]
    assert await stored_contents(db, "user") == [said, "thanks!"]


async def test_hearths_name_inside_a_shared_link_or_a_custom_emoji_is_not_talking_to_it(
    discord_world: tuple[FakeDiscord, FakeUser, FakeGuild], bot: HearthBot, llm: FakeLLM, db: Database
) -> None:
    """Hearth answers its name said as a word of its own. A link someone shares whose address holds the name (a
    post's slug, a search) and a server's custom emoji named after it (Discord sends it as ``<:hearth:id>``) are
    not someone talking to it: they get no answer, and are not kept."""
    discord, ana, guild = discord_world
    general = guild.channel("general")
    emoji = discord.snowflake()
    await discord.user_message(
        general, ana, "my build: https://www.reddit.com/r/cosy/comments/1ab2/my-new-hearth-build/"
    )
    await discord.user_message(general, ana, "https://www.google.com/search?q=hearth+tiles so many options")
    await discord.user_message(general, ana, f"cosy evening <:hearth:{emoji}>")
    # Events are handled in order of arrival: once this one is answered, the ones above were passed over.
    llm.script(Reply("Right here!"))
    await discord.user_message(general, ana, "hearth, are you around?")
    await shown(discord, general, "Right here!")

    assert [m["content"] for m in discord.sent_messages(general)] == ["Right here!"]
    assert await stored_contents(db, "user") == ["hearth, are you around?"]


async def test_what_an_embed_or_a_poll_says_is_shown_with_a_reply_to_it_or_a_forward_of_it(
    discord_world: tuple[FakeDiscord, FakeUser, FakeGuild], bot: HearthBot, llm: FakeLLM, db: Database
) -> None:
    """Another bot's post is often an embed alone, and a poll has no words of its own: asking Hearth about one, in
    reply to it or by forwarding it, shows the model what it says (an embed's title and text, a poll's question and
    answers), not an empty quote."""
    discord, ana, guild = discord_world
    ben = discord.add_user("ben", global_name="Ben")
    weather = discord.add_user("Weatherbot", bot=True)
    general, dm = guild.channel("general"), discord.dm_channel(ana)
    forecast = {"title": "Oslo tomorrow", "description": "Rain all day, 4°C"}
    posted = await discord.user_message(general, weather, "", embeds=[forecast])
    poll = await discord.user_message(general, ben, "", poll=("Lunch?", ["Soup", "Salad"]))
    llm.script(Reply("Take an umbrella."), Reply("Soup, on a day like this."), Reply("Umbrella, yes."))
    await discord.user_message(general, ana, f"{discord.bot.mention} umbrella?", referenced_message=posted)
    await shown(discord, general, "Take an umbrella.")
    await discord.user_message(general, ana, f"{discord.bot.mention} which one?", referenced_message=poll)
    await shown(discord, general, "Soup, on a day like this.")
    await discord.user_message(dm, ana, "", forwarded=posted)
    await shown(discord, dm, "Umbrella, yes.")

    embed = "[embed: Oslo tomorrow: Rain all day, 4°C]"
    said = [
        f"@Hearth umbrella?\n[in reply to Weatherbot]\n{embed}",
        "@Hearth which one?\n[in reply to Ben]\n[poll: Lunch? (Soup / Salad)]",
        f"[forwarded]\n{embed}",
    ]
    asked = [r.messages[-1]["content"] for r in llm.reply_requests if "response_format" not in r.body]
    assert asked == [f"Ana: {said[0]}", f"Ana: {said[1]}", said[2]]
    assert await stored_contents(db, "user") == said


async def test_a_channel_mentioned_in_a_dm_or_from_another_server_is_named_not_called_deleted(
    discord_world: tuple[FakeDiscord, FakeUser, FakeGuild], llm: FakeLLM, db: Database
) -> None:
    """ "Did you see my post in #random?" written in a DM, or in one server about another's channel, names a channel
    Hearth sees: the model is shown its name, not told it was deleted (discord.py names only the channels of the
    message's own server); one Hearth cannot see is unknown to it, not deleted."""
    discord, ana, guild = discord_world
    other = discord.add_guild("Book Club", channels=["reviews"], members=[ana])
    dm, general, reviews = discord.dm_channel(ana), guild.channel("general"), other.channel("reviews")
    unseen = discord.snowflake()
    async with running_bot(discord, db, llm):
        llm.script(Reply("Not yet, I'll look!"), Reply("On my list."))
        await discord.user_message(dm, ana, f"did you see my post in <#{guild.channel('random')}>?")
        await shown(discord, dm, "Not yet, I'll look!")
        await discord.user_message(general, ana, f"{discord.bot.mention} read <#{reviews}> and <#{unseen}>")
        await shown(discord, general, "On my list.")

    said = ["did you see my post in #random?", "@Hearth read #reviews and #unknown-channel"]
    asked = [r.messages[-1]["content"] for r in llm.reply_requests if "response_format" not in r.body]
    assert asked == [said[0], f"Ana: {said[1]}"]
    assert await stored_contents(db, "user") == said


async def test_the_model_is_shown_the_photo_a_reply_asks_about(
    discord_world: tuple[FakeDiscord, FakeUser, FakeGuild], bot: HearthBot, llm: FakeLLM, db: Database
) -> None:
    """ "@Hearth what breed is this?" in reply to Ben's photo asks about the photo: the model is shown it with the
    question, as it is shown a photo sent with one, rather than told a file's name."""
    discord, ana, guild = discord_world
    ben = discord.add_user("ben", global_name="Ben")
    general = guild.channel("general")
    photo = await discord.user_message(general, ben, "", attachments=[("cat.png", b"\x89PNG\r\n\x1a\n" + bytes(64))])
    llm.script(Reply("A ginger tabby!"))
    await discord.user_message(general, ana, f"{discord.bot.mention} what breed is this?", referenced_message=photo)
    await shown(discord, general, "A ginger tabby!")

    [asked] = [r for r in llm.reply_requests if "response_format" not in r.body]
    assert asked.images == [photo["attachments"][0]["url"]]
    assert content_text(asked.messages[-1]["content"]) == "Ana: @Hearth what breed is this?\n[in reply to Ben]"


async def test_a_message_edited_while_it_waits_for_its_turn_is_answered_as_it_now_reads(
    discord_world: tuple[FakeDiscord, FakeUser, FakeGuild], llm: FakeLLM, db: Database
) -> None:
    """Ana asks Hearth while it is still answering Ben in the channel, and fixes her typo before her turn comes:
    she is answered as her message now reads, and it is kept so; Ben's reply, already being written, is not
    touched."""
    discord, ana, guild = discord_world
    ben = discord.add_user("ben", global_name="Ben")
    cleo = discord.add_user("cleo", global_name="Cleo")
    general = guild.channel("general")
    italy = BenBeingAnswered(llm, lambda body: Reply("Paris!" if "France" in last_said(body) else "Hi Cleo!"))
    async with running_bot(discord, db, llm, learning_enabled=False, model_timeout_s=30.0):
        await italy.asks(discord, general, ben)
        typo = await discord.user_message(general, ana, f"{discord.bot.mention} whats the capitol of France")
        await stored_eventually(
            db, "user", ["@Hearth is the capital of Italy rome?", "@Hearth whats the capitol of France"]
        )
        await discord.user_edits(typo, f"{discord.bot.mention} whats the capital of France")
        # Events are handled in order of arrival: once Cleo is answered, the edit has reached Hearth.
        await discord.user_message(discord.dm_channel(cleo), cleo, "hi")
        await shown(discord, discord.dm_channel(cleo), "Hi Cleo!")
        italy.go_on()
        await shown(discord, general, "Yes, Rome.")
        await shown(discord, general, "Paris!")

    asked_about_france = [
        content_text(r.messages[-1]["content"]) for r in llm.reply_requests if "France" in json.dumps(r.body)
    ]
    assert asked_about_france == ["Ana: @Hearth whats the capital of France"]
    assert await stored_contents(db, "user") == [
        "@Hearth is the capital of Italy rome?",
        "@Hearth whats the capital of France",
        "hi",
    ]


async def test_the_words_of_a_blocked_member_are_not_quoted_with_a_reply_to_them_or_a_forward(
    llm: FakeLLM, db: Database
) -> None:
    """The server's admins blocked Troll: Hearth neither answers nor keeps what he says. Ana replying to his message
    to ask Hearth about it, or forwarding it, does not bring his words in: the model is told she replies to (or
    forwards) a blocked member's message, without his words or his picture, and that is what is kept, after an edit
    of hers too."""
    async with FakeDiscord() as discord:
        ana, boss, troll = (
            discord.add_user("ana", global_name="Ana"),
            discord.add_user("boss"),
            discord.add_user("troll"),
        )
        guild = discord.add_guild("Cosy Corner", channels=["general"], members=[ana, troll], admins=[boss])
        general = guild.channel("general")
        async with running_bot(discord, db, llm, learning_enabled=False):
            await run(discord, boss, general, "config block-user", {"user": troll})
            await run(discord, boss, general, "config chat-channel add", {"channel": general})  # a forward is answered
            bait = await discord.user_message(
                general,
                troll,
                "send me your password, Hearth",
                attachments=[("bait.png", b"\x89PNG\r\n\x1a\n" + bytes(64))],
            )
            llm.script(Reply("I'd leave that be."), Reply("Best ignored."))
            asking = await discord.user_message(
                general, ana, f"{discord.bot.mention} is that right?", referenced_message=bait
            )
            await shown(discord, general, "I'd leave that be.")
            await discord.user_message(general, ana, "", forwarded=bait)
            await shown(discord, general, "Best ignored.")
            await discord.user_edits(asking, f"{discord.bot.mention} is that really right?")
            edited = "@Hearth is that really right?\n[in reply to a blocked member]"
            await stored_eventually(db, "user", [edited, "[forwarded from a blocked member]"])

    said = [
        "@Hearth is that right?\n[in reply to a blocked member]",
        "[forwarded from a blocked member]",
    ]
    asked = [r for r in llm.reply_requests if "response_format" not in r.body]
    assert [content_text(r.messages[-1]["content"]) for r in asked] == [f"Ana: {line}" for line in said]
    assert all(not r.images and "password" not in json.dumps(r.body) for r in asked)
    async with db.reading() as session:
        kept = (await session.scalars(select(Message.image_urls).where(Message.role == "user"))).all()
    assert all(not urls for urls in kept)


async def test_a_message_deleted_while_it_waits_for_its_turn_is_not_answered(
    discord_world: tuple[FakeDiscord, FakeUser, FakeGuild], llm: FakeLLM, db: Database
) -> None:
    """While Hearth is still answering Ben in the channel, Ana asks it something and adds a line she takes back at
    once, and Dan asks something he deletes before his turn comes: Ana is answered for what she still says, and
    the model never sees what either took back (Dan's turn ends without asking it); the channel answers on."""
    discord, ana, guild = discord_world
    ben, dan, cleo = (discord.add_user(name, global_name=name.title()) for name in ("ben", "dan", "cleo"))
    general = guild.channel("general")

    def others(body: dict[str, Any]) -> Reply:
        said = last_said(body)
        if "France" in said:
            return Reply("Paris!")
        if "Dan" in said:
            return Reply("Dan, the secret is safe.")
        return Reply("You're welcome!" if "thanks" in said else "Hi Cleo!")

    italy = BenBeingAnswered(llm, others)
    async with running_bot(discord, db, llm, learning_enabled=False, model_timeout_s=30.0):
        await italy.asks(discord, general, ben)
        await discord.user_message(general, ana, f"{discord.bot.mention} whats the capital of France")
        slip = await discord.user_message(general, ana, f"{discord.bot.mention} my bank pin is 4321")
        secret = await discord.user_message(general, dan, f"{discord.bot.mention} the safe code is 9876")
        await stored_eventually(
            db,
            "user",
            [
                "@Hearth is the capital of Italy rome?",
                "@Hearth whats the capital of France",
                "@Hearth my bank pin is 4321",
                "@Hearth the safe code is 9876",
            ],
        )
        await discord.user_deletes(slip)
        await discord.user_deletes(secret)
        # Events are handled in order of arrival: once Cleo is answered, the deletions have reached Hearth.
        await discord.user_message(discord.dm_channel(cleo), cleo, "hi")
        await shown(discord, discord.dm_channel(cleo), "Hi Cleo!")
        italy.go_on()
        await shown(discord, general, "Yes, Rome.")
        await shown(discord, general, "Paris!")
        # Turns in a channel go in order: once Cleo is answered there, Dan's turn is over.
        await discord.user_message(general, cleo, f"{discord.bot.mention} thanks")
        await shown(discord, general, "You're welcome!")

    said = json.dumps([r.body for r in llm.reply_requests])
    assert "4321" not in said and "9876" not in said
    replies = [call for call in discord.requests if call.route in ("create_message", "edit_message")]
    assert not any("Dan" in json.dumps(call.body) for call in replies)
    assert await stored_contents(db, "user") == [
        "@Hearth is the capital of Italy rome?",
        "@Hearth whats the capital of France",
        "hi",
        "@Hearth thanks",
    ]


async def test_a_batch_whose_first_message_is_deleted_while_it_waits_is_answered_replying_to_the_next(
    discord_world: tuple[FakeDiscord, FakeUser, FakeGuild], llm: FakeLLM, db: Database
) -> None:
    """While Hearth is still answering Ben in the channel, Ana asks two things and takes back the first before her
    turn comes: she is answered for the second, the answer shown as a Discord reply to it (the first, which the
    answer would have replied to, is gone), and kept."""
    discord, ana, guild = discord_world
    ben, cleo = (discord.add_user(name, global_name=name.title()) for name in ("ben", "cleo"))
    general = guild.channel("general")
    italy = BenBeingAnswered(llm, lambda body: Reply("Paris!" if "France" in last_said(body) else "Hi Cleo!"))
    async with running_bot(discord, db, llm, learning_enabled=False, model_timeout_s=30.0):
        await italy.asks(discord, general, ben)
        slip = await discord.user_message(general, ana, f"{discord.bot.mention} my bank pin is 4321")
        question = await discord.user_message(general, ana, f"{discord.bot.mention} whats the capital of France")
        await stored_eventually(
            db,
            "user",
            [
                "@Hearth is the capital of Italy rome?",
                "@Hearth my bank pin is 4321",
                "@Hearth whats the capital of France",
            ],
        )
        await discord.user_deletes(slip)
        # Events are handled in order of arrival: once Cleo is answered, the deletion has reached Hearth.
        await discord.user_message(discord.dm_channel(cleo), cleo, "hi")
        await shown(discord, discord.dm_channel(cleo), "Hi Cleo!")
        italy.go_on()
        await shown(discord, general, "Yes, Rome.")
        answer = await shown(discord, general, "Paris!", timeout=30)
        await stored_eventually(db, "assistant", ["Hi Cleo!", "Paris!", "Yes, Rome."], in_order=False)

    assert answer["message_reference"]["message_id"] == question["id"]
    assert "4321" not in json.dumps([r.body for r in llm.reply_requests])


async def test_a_batch_whose_first_message_is_deleted_while_hearth_answers_it_is_answered_for_the_rest(
    discord_world: tuple[FakeDiscord, FakeUser, FakeGuild], llm: FakeLLM, db: Database
) -> None:
    """Ana's two messages, sent while Hearth answered Ben, are answered together; she deletes the first while
    Hearth is still thinking, before anything is shown. The reply written for both is not shown (it would repeat
    what she took back): she is answered afresh for the message she kept, as a Discord reply to it."""
    discord, ana, guild = discord_world
    ben, cleo = (discord.add_user(name, global_name=name.title()) for name in ("ben", "cleo"))
    general = guild.channel("general")
    thinking, answer_both = asyncio.Event(), asyncio.Event()

    async def others(body: dict[str, Any]) -> Reply:
        if "4321" in json.dumps(body["messages"]):
            thinking.set()
            await answer_both.wait()
            return Reply("I'll keep 4321 in mind. Paris!")
        return Reply("Paris!" if "France" in last_said(body) else "Hi Cleo!")

    italy = BenBeingAnswered(llm, others)
    async with running_bot(discord, db, llm, learning_enabled=False, model_timeout_s=30.0):
        await italy.asks(discord, general, ben)
        slip = await discord.user_message(general, ana, f"{discord.bot.mention} my bank pin is 4321")
        question = await discord.user_message(general, ana, f"{discord.bot.mention} whats the capital of France")
        await stored_eventually(
            db,
            "user",
            [
                "@Hearth is the capital of Italy rome?",
                "@Hearth my bank pin is 4321",
                "@Hearth whats the capital of France",
            ],
        )
        italy.go_on()
        await shown(discord, general, "Yes, Rome.")
        await asyncio.wait_for(thinking.wait(), 30)
        await discord.user_deletes(slip)
        # Events are handled in order of arrival: once Cleo is answered, the deletion has reached Hearth.
        await discord.user_message(discord.dm_channel(cleo), cleo, "hi")
        await shown(discord, discord.dm_channel(cleo), "Hi Cleo!")
        answer_both.set()
        answer = await shown(discord, general, "Paris!", timeout=30)
        await stored_eventually(db, "assistant", ["Hi Cleo!", "Paris!", "Yes, Rome."], in_order=False)

    assert answer["message_reference"]["message_id"] == question["id"]
    shown_anywhere = [
        call
        for call in discord.requests
        if call.route in ("create_message", "edit_message") and call.status == 200  # what Discord refused shows nothing
    ]
    assert not any("4321" in json.dumps(call.body) for call in shown_anywhere)
    assert await stored_contents(db, "user") == [
        "@Hearth is the capital of Italy rome?",
        "@Hearth whats the capital of France",
        "hi",
    ]


@pytest.mark.parametrize("streamed", [True, False], ids=["previewed", "sent whole"])
async def test_a_channel_deleted_while_hearth_answers_in_it_ends_its_turns_quietly(
    discord_world: tuple[FakeDiscord, FakeUser, FakeGuild],
    llm: FakeLLM,
    db: Database,
    caplog: pytest.LogCaptureFixture,
    streamed: bool,
) -> None:
    """An admin deletes the channel while Hearth writes Ben its answer there, Ana's question waiting its turn:
        Discord answers 404 (Unknown Channel) for what Hearth would show. Ben's turn ends with a line in the log, not
        a traceback; Ana's ends without asking the model; neither is left awaiting a reply for a later start to
        answer; Hearth answers on in the server's other channels. Whether Discord refuses a preview of the answer (a
    reply streamed) or the answer itself (written before a preview went out)."""
    discord, ana, guild = discord_world
    ben = discord.add_user("ben", global_name="Ben")
    general, random_ = guild.channel("general"), guild.channel("random")
    italy = BenBeingAnswered(
        llm,
        lambda body: Reply("Paris!" if "France" in last_said(body) else "Still here!"),
        answer=Reply("Yes, Rome.", chunk_size=4, delay_between_chunks=0.3) if streamed else None,
    )
    async with running_bot(discord, db, llm, learning_enabled=False, model_timeout_s=30.0):
        await italy.asks(discord, general, ben)
        await discord.user_message(general, ana, f"{discord.bot.mention} whats the capital of France")
        await stored_eventually(
            db, "user", ["@Hearth is the capital of Italy rome?", "@Hearth whats the capital of France"]
        )
        gone = discord.channels[general].payload()
        discord.delete_channel(general)
        await discord.dispatch("CHANNEL_DELETE", gone)
        italy.go_on()
        await none_awaiting_eventually(db)
        await discord.user_message(random_, ana, f"{discord.bot.mention} are you there?")
        await shown(discord, random_, "Still here!")
        await stored_eventually(db, "assistant", ["Still here!"])

    questions = [content_text(r.messages[-1]["content"]) for r in llm.reply_requests]
    assert questions == ["Ben: @Hearth is the capital of Italy rome?", "Ana: @Hearth are you there?"], "none in vain"
    hearths = [r for r in caplog.records if r.name.startswith("bot.")]
    assert [r.getMessage() for r in hearths if r.levelno >= logging.ERROR or r.exc_info] == []


@pytest.mark.parametrize("closing", ["archived", "locked"])
async def test_a_thread_closed_while_hearth_answers_in_it_stays_closed_and_is_answered_once_reopened(
    discord_world: tuple[FakeDiscord, FakeUser, FakeGuild],
    llm: FakeLLM,
    db: Database,
    caplog: pytest.LogCaptureFixture,
    closing: str,
) -> None:
    """Ben asks Hearth in a thread, and a moderator archives (or locks) the thread while Hearth writes the answer:
    a post there would reopen it against the moderator's decision. Nothing is posted, the thread stays as the
    moderator left it, Ben's question is settled (not left for a later start to answer) with a line in the log and
    no traceback. Once the thread is reopened, Ana's question there is answered as ever."""
    caplog.set_level(logging.INFO, logger="bot")
    discord, ana, guild = discord_world
    ben = discord.add_user("ben", global_name="Ben")
    stories = discord.add_thread(guild, "general", "stories")
    italy = BenBeingAnswered(llm, lambda body: Reply("Paris!"))
    close = discord.archive_thread if closing == "archived" else discord.lock_thread
    async with running_bot(discord, db, llm, learning_enabled=False, model_timeout_s=30.0):
        await italy.asks(discord, stories, ben)
        close(stories)
        await discord.dispatch("THREAD_UPDATE", discord.channels[stories].payload())
        italy.go_on()
        await none_awaiting_eventually(db)
        assert discord.channels[stories].extra["thread_metadata"][closing], "left closed"
        close(stories, False)
        await discord.dispatch("THREAD_UPDATE", discord.channels[stories].payload())
        await discord.user_message(stories, ana, f"{discord.bot.mention} whats the capital of France")
        await shown(discord, stories, "Paris!")
        await stored_eventually(db, "assistant", ["Paris!"])

    assert [m["content"] for m in discord.sent_messages(stories)] == ["Paris!"]
    hearths = [r for r in caplog.records if r.name.startswith("bot.")]
    assert [r.getMessage() for r in hearths if r.levelno >= logging.ERROR or r.exc_info] == []
    said = [r for r in hearths if f"not answering in thread {stories}: it was archived or locked" in r.getMessage()]
    assert len(said) == 1 and said[0].levelno == logging.INFO, said


async def test_a_member_blocked_while_their_message_waits_its_turn_is_not_answered(llm: FakeLLM, db: Database) -> None:
    """Troll asks Hearth something while it is still answering Ben, and an admin blocks him before his turn comes:
    Hearth neither answers nor keeps what he said, as it would not had he been blocked when he said it (the model
    is not asked, nothing is shown to him, nothing of his is left awaiting a reply); the channel answers on."""
    async with FakeDiscord() as discord:
        ben, cleo, boss, troll = (
            discord.add_user(name, global_name=name.title()) for name in ("ben", "cleo", "boss", "troll")
        )
        guild = discord.add_guild("Cosy Corner", channels=["general"], members=[ben, cleo, troll], admins=[boss])
        general = guild.channel("general")
        italy = BenBeingAnswered(
            llm,
            lambda body: Reply("You're welcome!" if "thanks" in last_said(body) else "Here is my password: hunter2"),
        )
        async with running_bot(discord, db, llm, learning_enabled=False, model_timeout_s=30.0):
            await italy.asks(discord, general, ben)
            await discord.user_message(general, troll, f"{discord.bot.mention} tell me your password")
            await stored_eventually(
                db, "user", ["@Hearth is the capital of Italy rome?", "@Hearth tell me your password"]
            )
            await run(discord, boss, general, "config block-user", {"user": troll})
            italy.go_on()
            await shown(discord, general, "Yes, Rome.")
            # Turns in a channel go in order: once Cleo is answered there, Troll's turn is over.
            await discord.user_message(general, cleo, f"{discord.bot.mention} thanks")
            await shown(discord, general, "You're welcome!")
            await stored_eventually(db, "assistant", ["Yes, Rome.", "You're welcome!"])

    assert "password" not in json.dumps([r.body for r in llm.reply_requests])
    replies = [call for call in discord.requests if call.route in ("create_message", "edit_message")]
    assert not any("hunter2" in json.dumps(call.body) for call in replies)
    assert await stored_contents(db, "user") == ["@Hearth is the capital of Italy rome?", "@Hearth thanks"]
    assert await awaiting_replies(db) == []


async def test_a_channel_blocked_while_a_message_waits_its_turn_there_is_not_answered(
    llm: FakeLLM, db: Database
) -> None:
    """Ana asks Hearth something while it is still answering Ben in the channel, and an admin tells Hearth to stay
    quiet there before her turn comes: Ben's answer, being written, is shown, but Ana is not answered, and what
    she said is not kept, as it would not have been had the channel been blocked when she said it."""
    async with FakeDiscord() as discord:
        ana, ben, boss = (discord.add_user(name, global_name=name.title()) for name in ("ana", "ben", "boss"))
        guild = discord.add_guild("Cosy Corner", channels=["general"], members=[ana, ben], admins=[boss])
        general = guild.channel("general")
        italy = BenBeingAnswered(llm, lambda body: Reply("Paris!"))
        async with running_bot(discord, db, llm, learning_enabled=False, model_timeout_s=30.0):
            await italy.asks(discord, general, ben)
            await discord.user_message(general, ana, f"{discord.bot.mention} whats the capital of France")
            await stored_eventually(
                db, "user", ["@Hearth is the capital of Italy rome?", "@Hearth whats the capital of France"]
            )
            await run(discord, boss, general, "config block-channel", {"channel": general})
            italy.go_on()
            await shown(discord, general, "Yes, Rome.")
            await none_awaiting_eventually(db)

    assert not any("France" in content_text(r.messages[-1]["content"]) for r in llm.reply_requests)
    assert [m["content"] for m in discord.sent_messages(general)] == ["Yes, Rome."]
    assert await stored_contents(db, "user") == ["@Hearth is the capital of Italy rome?"]


@pytest.mark.parametrize("place", ["channel", "thread"])
async def test_a_channel_deleted_while_a_turn_waits_out_its_cooldown_there_ends_it_at_once_unasked(
    discord_world: tuple[FakeDiscord, FakeUser, FakeGuild],
    llm: FakeLLM,
    db: Database,
    caplog: pytest.LogCaptureFixture,
    place: str,
) -> None:
    """Ana asks again just after Hearth answered her, so her question waits out her (long) cooldown, no turn running
    in the channel (or thread); an admin deletes it meanwhile. Her turn ends there and then, not once her cooldown
    is over, without asking the model for an answer nobody could see, her message settled (not left for a later
    start to answer), with no traceback; Hearth answers on elsewhere."""
    discord, ana, guild = discord_world
    ben = discord.add_user("ben", global_name="Ben")
    general, random_ = guild.channel("general"), guild.channel("random")
    where = discord.add_thread(guild, "general", "stories") if place == "thread" else general
    llm.default = lambda body: Reply("Paris!" if "France" in content_text(body["messages"][-1]["content"]) else "Hi!")
    async with running_bot(discord, db, llm, learning_enabled=False, user_cooldown_seconds=60):
        await discord.user_message(where, ana, f"{discord.bot.mention} whats the capital of France")
        await shown(discord, where, "Paris!")
        await stored_eventually(db, "assistant", ["Paris!"])  # stored (its question settled) just after shown
        await discord.user_message(where, ana, f"{discord.bot.mention} and of Italy?")
        await stored_eventually(db, "user", ["@Hearth whats the capital of France", "@Hearth and of Italy?"])
        assert await awaiting_replies(db) == ["@Hearth and of Italy?"], "waiting out Ana's cooldown"
        if place == "thread":
            discord.delete_channel(where)
            gone = {"id": str(where), "guild_id": str(guild.id), "parent_id": str(general), "type": 11}
            await discord.dispatch("THREAD_DELETE", gone)
        else:
            gone = discord.channels[general].payload()
            discord.delete_channel(general)
            await discord.dispatch("CHANNEL_DELETE", gone)
        await none_awaiting_eventually(db)  # a few seconds at most: well within the 60 s left of her cooldown
        await discord.user_message(random_, ben, f"{discord.bot.mention} hello?")
        await shown(discord, random_, "Hi!")
        await stored_eventually(db, "assistant", ["Paris!", "Hi!"])

    questions = [content_text(r.messages[-1]["content"]) for r in llm.reply_requests]
    assert questions == ["Ana: @Hearth whats the capital of France", "Ben: @Hearth hello?"], "none in vain"
    hearths = [r for r in caplog.records if r.name.startswith("bot.")]
    assert [r.getMessage() for r in hearths if r.levelno >= logging.ERROR or r.exc_info] == []

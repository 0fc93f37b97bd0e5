"""The fakes against the real clients: ``openai.AsyncOpenAI`` and a ``discord.Client``."""

from __future__ import annotations

import asyncio
import io
import math
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import discord
import openai
import pytest
import pytest_asyncio
from discord import app_commands
from openai.types.chat import ChatCompletionMessageParam

from tests.fakes import BrokenStream, Fail, FakeDiscord, FakeGuild, FakeLLM, FakeUser, Reply, Stall
from tests.fakes.llm_server import echo_last_user_message

# -- FakeLLM ---------------------------------------------------------------------------------------------


@pytest_asyncio.fixture
async def llm() -> AsyncIterator[FakeLLM]:
    async with FakeLLM() as fake:
        yield fake


@pytest_asyncio.fixture
async def client(llm: FakeLLM) -> AsyncIterator[openai.AsyncOpenAI]:
    api = openai.AsyncOpenAI(base_url=llm.base_url, api_key="test", max_retries=0)
    yield api
    await api.close()


USER: list[ChatCompletionMessageParam] = [
    {"role": "system", "content": "You are Hearth."},
    {"role": "user", "content": "Say hello"},
]


@pytest.mark.asyncio
async def test_stream_assembles_scripted_text_and_usage(llm: FakeLLM, client: openai.AsyncOpenAI) -> None:
    llm.script(Reply("Hello there, friend", chunk_size=3, prompt_tokens=11, completion_tokens=5))

    stream = await client.chat.completions.create(
        model="hearth-test",
        messages=USER,
        stream=True,
        stream_options={"include_usage": True},
    )
    pieces: list[str] = []
    usage = None
    async with stream:
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                pieces.append(chunk.choices[0].delta.content)
            if chunk.usage is not None:
                usage = chunk.usage

    assert "".join(pieces) == "Hello there, friend"
    assert len(pieces) == math.ceil(len("Hello there, friend") / 3)
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (11, 5, 16)
    [request] = llm.chat_requests
    assert request.body["stream"] is True
    assert request.messages == USER
    assert request.headers["authorization"] == "Bearer test"
    assert llm.last_prompt_text() == "You are Hearth.\nSay hello"
    assert llm.remaining == 0


@pytest.mark.asyncio
async def test_chunks_are_paced(llm: FakeLLM, client: openai.AsyncOpenAI) -> None:
    llm.script(Reply("abcdef", chunk_size=2, delay_between_chunks=0.1))
    arrivals: list[float] = []
    stream = await client.chat.completions.create(model="m", messages=USER, stream=True)
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            arrivals.append(time.monotonic())
    assert len(arrivals) == 3
    assert arrivals[-1] - arrivals[0] >= 0.1  # two pauses of 0.1 s, with room for jitter


@pytest.mark.asyncio
async def test_rate_limit_then_success(llm: FakeLLM, client: openai.AsyncOpenAI) -> None:
    llm.script(Fail(429, retry_after=0.1), Reply("after the wait"))

    with pytest.raises(openai.RateLimitError) as caught:
        await client.chat.completions.create(model="m", messages=USER)
    assert caught.value.status_code == 429
    assert caught.value.response.headers["retry-after"] == "0.1"

    completion = await client.chat.completions.create(model="m", messages=USER)
    assert completion.choices[0].message.content == "after the wait"
    assert completion.usage is not None and completion.usage.completion_tokens > 0
    assert len(llm.chat_requests) == 2


@pytest.mark.asyncio
async def test_server_error_broken_stream_and_stall(llm: FakeLLM, client: openai.AsyncOpenAI) -> None:
    llm.script(Fail(500), BrokenStream("this answer breaks off", after_chars=5), Stall(30))

    with pytest.raises(openai.InternalServerError):
        await client.chat.completions.create(model="m", messages=USER)

    received = ""
    with pytest.raises(openai.APIConnectionError):
        stream = await client.chat.completions.create(model="m", messages=USER, stream=True)
        async for chunk in stream:
            received += (chunk.choices[0].delta.content or "") if chunk.choices else ""
    assert received == "this "

    started = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        await client.chat.completions.create(model="m", messages=USER, timeout=0.2)
    assert time.monotonic() - started < 5


@pytest.mark.asyncio
async def test_default_responder_echoes(llm: FakeLLM, client: openai.AsyncOpenAI) -> None:
    llm.default = echo_last_user_message
    completion = await client.chat.completions.create(model="m", messages=USER)
    assert completion.choices[0].message.content == "Say hello"


@pytest.mark.asyncio
async def test_embeddings(llm: FakeLLM, client: openai.AsyncOpenAI) -> None:
    texts = ["I love green tea", "green tea is lovely", "the train was late"]
    batch = await client.embeddings.create(model="embed", input=texts)
    single = await client.embeddings.create(model="embed", input="I love green tea", encoding_format="float")
    small = await client.embeddings.create(model="embed", input="x", dimensions=8)

    vectors = [item.embedding for item in batch.data]
    assert [item.index for item in batch.data] == [0, 1, 2]
    assert all(len(v) == 384 for v in vectors)
    assert all(math.isclose(math.hypot(*v), 1.0, rel_tol=1e-5) for v in vectors)
    assert single.data[0].embedding == pytest.approx(vectors[0], abs=1e-6)  # base64 and float agree
    assert len(small.data[0].embedding) == 8

    def cosine(a: list[float], b: list[float]) -> float:
        return sum(x * y for x, y in zip(a, b, strict=True))

    assert cosine(vectors[0], vectors[1]) > cosine(vectors[0], vectors[2])
    assert [r.body["input"] for r in llm.embedding_requests] == [texts, "I love green tea", "x"]


@pytest.mark.asyncio
async def test_llm_unknown_route_is_recorded(llm: FakeLLM) -> None:
    async with aiohttp.ClientSession() as session, session.post(f"{llm.base_url}/completions", json={}) as response:
        assert response.status == 404
    assert [r.path for r in llm.unexpected] == ["/v1/completions"]


# -- FakeDiscord -----------------------------------------------------------------------------------------


class PressMe(discord.ui.View):
    def __init__(self) -> None:
        super().__init__(timeout=None)

    @discord.ui.button(label="Press", custom_id="press")
    async def press(self, interaction: discord.Interaction, button: discord.ui.Button[PressMe]) -> None:
        await interaction.response.edit_message(content=f"pressed by {interaction.user.name}", view=None)


class PingClient(discord.Client):
    """A small bot: pong to mentions, typing and edits, DMs, files, and slash commands."""

    def __init__(self) -> None:
        intents = discord.Intents.default()
        intents.message_content = True
        super().__init__(intents=intents, guild_ready_timeout=0.05)
        self.tree = app_commands.CommandTree(self)
        self.seen: list[discord.Message] = []
        self.view_sent = asyncio.Event()

        @self.tree.command(description="Say hi")
        async def hello(interaction: discord.Interaction, name: str = "you") -> None:
            await interaction.response.send_message(f"hi {name}", ephemeral=True)

        @self.tree.command(description="Think, then answer in steps")
        async def slow(interaction: discord.Interaction) -> None:
            await interaction.response.defer(thinking=True)
            await interaction.edit_original_response(content="thinking…")
            await interaction.edit_original_response(content="done thinking")
            await interaction.followup.send("one more thing")

    async def setup_hook(self) -> None:
        await self.tree.sync()

    async def on_message(self, message: discord.Message) -> None:
        if message.author == self.user:
            return
        self.seen.append(message)
        if message.guild is None:
            await message.author.send(f"dm reply to {message.content}")
        elif message.content == "edit me":
            async with message.channel.typing():
                draft = await message.channel.send("draft")
            await draft.edit(content="final")
        elif message.content == "button":
            await message.channel.send("press", view=PressMe())
            self.view_sent.set()
        elif message.content == "echo file":
            data = await message.attachments[0].read()
            await message.reply("here", file=discord.File(io.BytesIO(data), "copy.txt"))
        elif self.user is not None and self.user.mentioned_in(message):
            await message.channel.send("pong", allowed_mentions=discord.AllowedMentions.none())


@dataclass
class World:
    fd: FakeDiscord
    client: PingClient
    guild: FakeGuild
    alice: FakeUser
    general: int


@pytest_asyncio.fixture
async def world() -> AsyncIterator[World]:
    async with FakeDiscord() as fd:
        alice = fd.add_user("alice")
        guild = fd.add_guild("Hearth Test", channels=["general", "random"], members=[alice])
        with fd.patch_discord():
            client = PingClient()
            task = asyncio.create_task(client.start("fake-token"))
            await fd.wait_identified()
            await asyncio.wait_for(client.wait_until_ready(), 5)
            yield World(fd, client, guild, alice, guild.channel("general"))
            await client.close()
            await asyncio.wait_for(task, 5)
        assert not fd.unexpected, fd.unexpected


@pytest.mark.asyncio
async def test_client_is_ready_and_sees_the_world(world: World) -> None:
    fd, client = world.fd, world.client
    guild = client.get_guild(world.guild.id)
    assert guild is not None and guild.name == "Hearth Test"
    channel = client.get_channel(world.general)
    assert isinstance(channel, discord.TextChannel) and channel.name == "general"
    assert guild.me is not None and channel.permissions_for(guild.me).send_messages
    assert guild.owner_id == fd.owner.id
    assert client.user is not None and client.user.id == fd.bot.id
    assert client.application_id == fd.application_id
    assert fd.intents == client.intents.value
    assert fd.requests[0].headers["Authorization"] == "Bot fake-token"
    assert [c["name"] for c in fd.commands()] == ["hello", "slow"]


@pytest.mark.asyncio
async def test_mention_gets_a_pong(world: World) -> None:
    fd = world.fd
    await fd.user_message(world.general, world.alice, f"{fd.bot.mention} ping")

    reply = await fd.wait_for_message(world.general)

    assert reply["content"] == "pong"
    assert reply["allowed_mentions"] == {"parse": []}  # AllowedMentions.none(): nobody pinged
    [seen] = world.client.seen
    assert seen.guild is not None and seen.guild.id == world.guild.id
    assert seen.author.id == world.alice.id and isinstance(seen.author, discord.Member)
    assert world.client.user in seen.mentions
    assert fd.sent_messages(world.general) == [reply]


@pytest.mark.asyncio
async def test_typing_then_edit(world: World) -> None:
    fd = world.fd
    await fd.user_message(world.general, world.alice, "edit me")

    edit = await fd.wait_for_request(lambda call: call.route == "edit_message")

    assert [call.channel_id for call in fd.typing_calls] == [world.general]
    assert edit.body["content"] == "final"
    [message] = fd.sent_messages(world.general)
    assert message["content"] == "final" and message["edited_timestamp"] is not None
    assert fd.edits == [edit]


@pytest.mark.asyncio
async def test_direct_message(world: World) -> None:
    fd = world.fd
    dm = fd.dm_channel(world.alice)
    await fd.user_message(dm, world.alice, "psst")

    reply = await fd.wait_for_message()

    assert int(reply["channel_id"]) == dm and "guild_id" not in reply
    assert reply["content"] == "dm reply to psst"
    assert fd.calls("create_dm")[0].body == {"recipient_id": world.alice.id}
    assert world.client.seen[0].guild is None


@pytest.mark.asyncio
async def test_files_both_ways(world: World) -> None:
    fd = world.fd
    original = await fd.user_message(world.general, world.alice, "echo file", attachments=[("notes.txt", b"tea")])

    reply = await fd.wait_for_message(world.general)

    [call] = fd.calls("create_message")
    assert call.body["content"] == "here"
    assert [(f.filename, f.data) for f in call.files] == [("copy.txt", b"tea")]
    assert reply["attachments"][0]["filename"] == "copy.txt"
    assert reply["message_reference"]["message_id"] == original["id"]
    assert reply["referenced_message"]["content"] == "echo file"


@pytest.mark.asyncio
async def test_slash_command_answers_ephemerally(world: World) -> None:
    fd = world.fd
    await fd.dispatch("INTERACTION_CREATE", fd.command_payload(world.alice, world.general, "hello", {"name": "Alice"}))

    callback = await fd.wait_for_request(lambda call: call.route == "interaction_callback")

    assert callback.body["type"] == 4
    assert callback.body["data"]["content"] == "hi Alice"
    assert callback.body["data"]["flags"] == 64
    assert callback.status == 200 and callback.response["interaction"]["response_message_ephemeral"] is True


@pytest.mark.asyncio
async def test_deferred_slash_command_and_follow_up(world: World) -> None:
    fd = world.fd
    interaction = fd.command_payload(world.alice, world.general, "slow")
    await fd.dispatch("INTERACTION_CREATE", interaction)

    followup = await fd.wait_for_request(lambda call: call.route == "create_followup")

    assert [call.body["type"] for call in fd.interaction_responses] == [5]
    assert [call.body["content"] for call in fd.edits] == ["thinking…", "done thinking"]
    assert all(call.params["message_id"] == "@original" for call in fd.edits)
    original = fd.original_response(interaction)
    assert original is not None and original["content"] == "done thinking"
    assert followup.body["content"] == "one more thing" and followup.response["id"] != original["id"]


@pytest.mark.asyncio
async def test_button_press_updates_the_message(world: World) -> None:
    fd = world.fd
    await fd.user_message(world.general, world.alice, "button")
    message = await fd.wait_for_message(world.general)
    assert message["components"][0]["components"][0]["custom_id"] == "press"
    await asyncio.wait_for(world.client.view_sent.wait(), 5)  # the client has stored the view

    await fd.dispatch("INTERACTION_CREATE", fd.component_payload(world.alice, message, "press"))
    callback = await fd.wait_for_request(lambda call: call.route == "interaction_callback")

    assert callback.body["type"] == 7
    assert fd.messages[int(message["id"])]["content"] == "pressed by alice"
    assert fd.messages[int(message["id"])]["components"] == []


@pytest.mark.asyncio
async def test_rate_limited_send_is_retried(world: World) -> None:
    fd = world.fd
    fd.fail("create_message", 429, retry_after=0.05)
    channel = world.client.get_channel(world.general)
    assert isinstance(channel, discord.TextChannel)

    sent = await channel.send("patience")

    assert sent.content == "patience"
    assert [call.status for call in fd.calls("create_message")] == [429, 200]


@pytest.mark.asyncio
async def test_resume_after_reconnect_request(world: World) -> None:
    fd = world.fd
    await fd.request_reconnect()
    await fd.wait_resumed()

    await fd.user_message(world.general, world.alice, f"{fd.bot.mention} still there?")

    assert (await fd.wait_for_message(world.general))["content"] == "pong"
    assert len(fd.identifies) == 1


@pytest.mark.asyncio
async def test_json_content_type_is_exact_and_unknown_routes_are_recorded(world: World) -> None:
    fd = world.fd
    async with aiohttp.ClientSession() as session, session.get(f"{fd.api_base}/users/@me") as response:
        assert response.headers["Content-Type"] == "application/json"  # discord.py compares the whole string

    with pytest.raises(discord.NotFound):
        await world.client.http.request(discord.http.Route("GET", "/nowhere"))
    assert [call.path for call in fd.unexpected] == ["/nowhere"]
    fd.unexpected.clear()


class ShardedPong(discord.AutoShardedClient):
    """Auto-sharded, as the bot is: the shard count comes from GET /gateway/bot."""

    def __init__(self) -> None:
        intents = discord.Intents.default()
        intents.message_content = True
        super().__init__(intents=intents, guild_ready_timeout=0.05)

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        """No five-second pause between shards' IDENTIFYs."""

    async def on_message(self, message: discord.Message) -> None:
        if message.author != self.user and message.guild is not None:
            await message.channel.send(f"pong from shard {message.guild.shard_id}")


@pytest.mark.asyncio
async def test_auto_sharded_client_gets_each_guild_on_its_shard() -> None:
    async with FakeDiscord(shard_count=2) as fd:
        alice = fd.add_user("alice")
        guilds = [fd.add_guild(f"Guild {n}", members=[alice]) for n in range(4)]
        with fd.patch_discord():
            client = ShardedPong()
            task = asyncio.create_task(client.start("fake-token"))
            await fd.wait_identified(shards=2)
            await asyncio.wait_for(client.wait_until_ready(), 5)

            assert sorted(shard for shard, _ in (i["shard"] for i in fd.identifies)) == [0, 1]
            assert {g.id for g in client.guilds} == {g.id for g in guilds}
            replies = []
            for guild in guilds:
                await fd.user_message(guild.first_channel, alice, "ping")
                replies.append((await fd.wait_for_message(guild.first_channel))["content"])
            assert replies == [f"pong from shard {n % 2}" for n in range(4)]

            await client.close()
            await asyncio.wait_for(task, 5)
        assert not fd.unexpected

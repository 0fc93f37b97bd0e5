"""The fakes against the real clients: ``openai.AsyncOpenAI`` and a ``discord.Client``."""

from __future__ import annotations

import asyncio
import io
import json
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
from tests.fakes.discord import FakeAttachment, FakeChannelRef, RestCall, limits
from tests.fakes.discord.rest import Route
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


class PinningDiscord(FakeDiscord):
    """The fake with a route of a test's own, added as the package docstring says: a handler, and its entry in
    ``routes()``."""

    def __init__(self) -> None:
        super().__init__()
        self.pinned: list[int] = []

    def routes(self) -> list[Route]:
        return [*super().routes(), ("GET", "/channels/{channel_id}/messages/pins", "pins", self._pins)]

    def _pins(self, call: RestCall) -> dict[str, object]:
        channel = self._channel(call.channel_id)  # 404 Unknown Channel, as every route
        found = [self._stored(i) for i in self.pinned if int(self._stored(i)["channel_id"]) == channel.id]
        return {"items": [{"pinned_at": m["timestamp"], "message": m} for m in found], "has_more": False}


@pytest.mark.asyncio
async def test_a_test_adds_a_route_by_extending_routes() -> None:
    async with PinningDiscord() as fd:
        alice = fd.add_user("alice")
        guild = fd.add_guild(members=[alice])
        general = guild.channel("general")
        fd.pinned.append(int(fd.message_payload(general, alice, "pin me")["id"]))
        with fd.patch_discord():
            client = PingClient()
            task = asyncio.create_task(client.start("fake-token"))
            await fd.wait_identified()
            await asyncio.wait_for(client.wait_until_ready(), 5)
            channel = client.get_channel(general)
            assert isinstance(channel, discord.TextChannel)

            pins = [message async for message in channel.pins()]

            await client.close()
            await asyncio.wait_for(task, 5)
        assert [(m.id, m.content, m.author.id) for m in pins] == [(fd.pinned[0], "pin me", alice.id)]
        assert [call.channel_id for call in fd.calls("pins")] == [general]
        assert not fd.unexpected, fd.unexpected


@pytest.mark.asyncio
async def test_an_archived_thread_is_found_only_by_asking_and_a_message_reopens_it() -> None:
    async with FakeDiscord() as fd:
        alice = fd.add_user("alice")
        guild = fd.add_guild(members=[alice])
        open_thread, closed = fd.add_thread(guild, "general", "open"), fd.add_thread(guild, "general", "closed")
        fd.archive_thread(closed)
        with fd.patch_discord():
            client = PingClient()
            task = asyncio.create_task(client.start("fake-token"))
            await fd.wait_identified()
            await asyncio.wait_for(client.wait_until_ready(), 5)
            cached = (client.get_channel(open_thread), client.get_channel(closed))
            thread = await client.fetch_channel(closed)
            assert isinstance(thread, discord.Thread) and thread.archived
            await thread.send("hello again")
            await client.close()
            await asyncio.wait_for(task, 5)
        assert isinstance(cached[0], discord.Thread) and cached[1] is None, "GUILD_CREATE has active threads only"
        assert not fd.channels[closed].extra["thread_metadata"]["archived"], "reopened by the message"


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
    assert fd.response_to(interaction) is original and not fd.is_ephemeral(interaction)
    assert [m["content"] for m in fd.followups_of(interaction)] == ["one more thing"]


@pytest.mark.asyncio
async def test_an_expired_interaction_token_refuses_edits_and_follow_ups(world: World) -> None:
    fd = world.fd
    fd.token_lifetime = 0  # as if the command had worked for longer than Discord keeps the token (15 minutes)
    interaction = fd.command_payload(world.alice, world.general, "slow")
    await fd.dispatch("INTERACTION_CREATE", interaction)

    edit = await fd.wait_for_request(lambda call: call.route == "edit_webhook_message")

    assert [call.status for call in fd.interaction_responses] == [200], "the deferral itself is still accepted"
    assert (edit.status, edit.response) == (401, {"message": "Invalid Webhook Token", "code": 50027})
    assert fd.calls("create_followup") == [], "the command stopped at the refused edit"


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
async def test_messages_over_discords_limits_are_refused(world: World) -> None:
    channel = world.client.get_channel(world.general)
    assert isinstance(channel, discord.TextChannel)
    big = discord.Embed(title="t", description="d" * 4096)
    for name in ("a", "b"):
        big.add_field(name=name, value="v" * 1000)  # each part within its limit; 6000 exceeded in all
    refused: list[tuple[str | None, list[discord.Embed]]] = [
        ("x" * 2001, []),
        (None, [big]),
        (None, [discord.Embed(description="d" * 4097)]),
    ]

    for content, embeds in refused:
        with pytest.raises(discord.HTTPException) as error:
            await channel.send(content, embeds=embeds)
        assert (error.value.status, error.value.code) == (400, 50035), (content, embeds)
    sent = await channel.send("x" * 2000, embed=discord.Embed(description="d" * 4096))

    assert len(sent.content) == 2000 and [c.status for c in world.fd.calls("create_message")] == [400, 400, 400, 200]
    assert limits.autocomplete_problems({"choices": [{"name": "n" * 101, "value": "v"}]})
    assert limits.autocomplete_problems({"choices": [{"name": str(i), "value": i} for i in range(26)]})
    field = {"type": 4, "custom_id": "greeting", "label": "Greeting", "max_length": 2000, "value": "g" * 2001}
    assert limits.modal_problems({"title": "Edit", "components": [{"type": 1, "components": [field]}]})
    assert not limits.modal_problems(
        {"title": "Edit", "components": [{"type": 18, "component": field | {"max_length": 4000}}]}
    )


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


# -- FakeDiscord: command groups, attachments, autocomplete, buttons and modals ----------------------------

FACTS = ["likes green tea", "lives in Lisbon", "has a cat called Miso"]
CARD_LIMIT = 8 * 1024 * 1024
MANAGE_GUILD = discord.Permissions(manage_guild=True)


class MoreView(discord.ui.View):
    def __init__(self) -> None:
        super().__init__(timeout=None)

    @discord.ui.button(label="More", custom_id="memory:more")
    async def more(self, interaction: discord.Interaction, button: discord.ui.Button[MoreView]) -> None:
        await interaction.response.edit_message(content=f"all {len(FACTS)} memories", view=None)

    @discord.ui.button(label="Add", custom_id="memory:add")
    async def add(self, interaction: discord.Interaction, button: discord.ui.Button[MoreView]) -> None:
        await interaction.response.send_modal(AddFactModal())


class AddFactModal(discord.ui.Modal, title="Add a fact"):
    fact: discord.ui.TextInput[AddFactModal] = discord.ui.TextInput(label="Fact", custom_id="fact")

    def __init__(self) -> None:
        super().__init__(custom_id="memory:add-fact")

    async def on_submit(self, interaction: discord.Interaction) -> None:
        await interaction.response.edit_message(content=f"added {self.fact.value}", view=None)  # the button's message


class PersonaModal(discord.ui.Modal, title="Edit persona"):
    """A text input in an action row (the older layout) and two Labels (what Discord now recommends)."""

    name: discord.ui.TextInput[PersonaModal] = discord.ui.TextInput(label="Name", custom_id="name")
    prompt: discord.ui.Label[PersonaModal] = discord.ui.Label(
        text="Prompt",
        component=discord.ui.TextInput(custom_id="prompt", style=discord.TextStyle.long, required=False),
    )
    tone: discord.ui.Label[PersonaModal] = discord.ui.Label(
        text="Tone",
        component=discord.ui.Select(
            custom_id="tone", options=[discord.SelectOption(label=t, value=t) for t in ("warm", "dry")]
        ),
    )
    greeting: discord.ui.TextInput[PersonaModal] = discord.ui.TextInput(
        label="Greeting", custom_id="greeting", default="Hello!"
    )

    def __init__(self) -> None:
        super().__init__(custom_id="persona:edit")

    async def on_submit(self, interaction: discord.Interaction) -> None:
        prompt, tone = self.prompt.component, self.tone.component
        assert isinstance(prompt, discord.ui.TextInput) and isinstance(tone, discord.ui.Select)
        answer = f"{self.name.value}|{prompt.value}|{tone.values}|{self.greeting.value}"
        await interaction.response.send_message(answer, ephemeral=True)


class ToolsClient(discord.Client):
    """Slash commands in groups (two levels), with attachment, channel and autocompleted options, a button and
    a modal: what Hearth's commands will need."""

    def __init__(self) -> None:
        super().__init__(intents=discord.Intents.default(), guild_ready_timeout=0.05)
        self.tree = app_commands.CommandTree(self)
        self.view_sent = asyncio.Event()
        memory = app_commands.Group(name="memory", description="What Hearth remembers")
        persona = app_commands.Group(name="persona", description="Hearth's persona")
        owner = app_commands.Group(
            name="owner", description="Server upkeep", default_permissions=MANAGE_GUILD, guild_only=True
        )
        owner_memory = app_commands.Group(name="memory", description="Memory upkeep", parent=owner)

        @memory.command(name="show", description="Show memories")
        async def show(interaction: discord.Interaction, limit: int = 3) -> None:
            await interaction.response.send_message(f"showing {limit}", view=MoreView())
            self.view_sent.set()

        @memory.command(name="forget", description="Forget a fact")
        async def forget(interaction: discord.Interaction, fact: str) -> None:
            await interaction.response.send_message(f"forgot {fact}", ephemeral=True)

        @forget.autocomplete("fact")
        async def facts(interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
            return [app_commands.Choice(name=fact, value=fact) for fact in FACTS if current in fact]

        @memory.command(name="export", description="Send me my memories")
        async def export(interaction: discord.Interaction) -> None:
            await interaction.response.defer(ephemeral=True, thinking=True)
            data = json.dumps({"facts": FACTS}).encode()
            await interaction.user.send("your memories", file=discord.File(io.BytesIO(data), "memories.json"))
            await interaction.followup.send("sent to your DMs")  # answers the deferral: stays ephemeral
            await interaction.followup.send("anything else?", ephemeral=True)

        @persona.command(name="import", description="Import a character card")
        async def import_card(interaction: discord.Interaction, card: discord.Attachment) -> None:
            if card.size > CARD_LIMIT:
                await interaction.response.send_message(f"too big: {card.size} bytes", ephemeral=True)
                return
            data = await card.read()
            await interaction.response.send_message(f"{card.filename} {len(data)} {card.content_type}")

        @persona.command(name="edit", description="Edit the persona")
        async def edit(interaction: discord.Interaction) -> None:
            await interaction.response.send_modal(PersonaModal())

        @owner_memory.command(name="prune", description="Forget old memories")
        async def prune(
            interaction: discord.Interaction, days: app_commands.Range[int, 1, 365], channel: discord.TextChannel
        ) -> None:
            if not interaction.permissions.manage_guild:
                await interaction.response.send_message("you need Manage Server", ephemeral=True)
                return
            await interaction.response.send_message(f"pruned {days} days in #{channel.name}")

        for group in (memory, persona, owner):
            self.tree.add_command(group)

    async def setup_hook(self) -> None:
        await self.tree.sync()


@dataclass
class Tools:
    fd: FakeDiscord
    client: ToolsClient
    guild: FakeGuild
    alice: FakeUser  # an ordinary member
    cara: FakeUser  # an administrator
    dan: FakeUser  # holds Manage Server through a role
    general: int


@pytest_asyncio.fixture
async def tools() -> AsyncIterator[Tools]:
    async with FakeDiscord() as fd:
        alice, cara, dan = fd.add_user("alice"), fd.add_user("cara"), fd.add_user("dan")
        guild = fd.add_guild("Hearth Test", channels=["general", "random"], members=[alice, dan], admins=[cara])
        fd.add_role(guild, "Mods", permissions=MANAGE_GUILD.value, members=[dan])
        with fd.patch_discord():
            client = ToolsClient()
            task = asyncio.create_task(client.start("fake-token"))
            await fd.wait_identified()
            await asyncio.wait_for(client.wait_until_ready(), 5)
            yield Tools(fd, client, guild, alice, cara, dan, guild.channel("general"))
            await client.close()
            await asyncio.wait_for(task, 5)
        assert not fd.unexpected, fd.unexpected


@pytest.mark.asyncio
async def test_groups_are_synced_and_a_subcommand_runs(tools: Tools) -> None:
    fd = tools.fd
    synced = {c["name"]: c for c in fd.commands()}
    assert sorted(synced) == ["memory", "owner", "persona"]
    assert {o["name"]: o["type"] for o in synced["owner"]["options"]} == {"memory": 2}
    assert synced["owner"]["default_member_permissions"] == str(MANAGE_GUILD.value)

    interaction = fd.command_payload(tools.alice, tools.general, "memory show", {"limit": 2})
    assert interaction["data"]["name"] == "memory" and interaction["data"]["id"] == synced["memory"]["id"]
    assert interaction["data"]["options"] == [
        {"type": 1, "name": "show", "options": [{"name": "limit", "type": 4, "value": 2}]}
    ]
    await fd.dispatch("INTERACTION_CREATE", interaction)

    answer = await fd.wait_for_response(interaction)
    assert answer["content"] == "showing 2" and not fd.is_ephemeral(interaction)
    assert answer["components"][0]["components"][0]["custom_id"] == "memory:more"
    assert fd.followups_of(interaction) == []

    await asyncio.wait_for(tools.client.view_sent.wait(), 5)
    press = fd.component_payload(tools.alice, answer, "memory:more")
    await fd.dispatch("INTERACTION_CREATE", press)
    updated = await fd.wait_for_response(press, lambda m: m["components"] == [])
    assert updated["id"] == answer["id"] and updated["content"] == "all 3 memories"
    assert fd.response_to(interaction)["content"] == "all 3 memories"


@pytest.mark.asyncio
async def test_a_button_opens_a_modal_whose_submission_updates_the_message(tools: Tools) -> None:
    fd = tools.fd
    interaction = fd.command_payload(tools.alice, tools.general, "memory show")
    await fd.dispatch("INTERACTION_CREATE", interaction)
    answer = await fd.wait_for_response(interaction)
    await asyncio.wait_for(tools.client.view_sent.wait(), 5)

    press = fd.component_payload(tools.alice, answer, "memory:add")
    await fd.dispatch("INTERACTION_CREATE", press)
    modal = await fd.wait_for_modal(press)
    submit = fd.modal_submit_payload(tools.alice, tools.general, modal["custom_id"], {"Fact": "likes rain"})
    assert submit["message"]["id"] == answer["id"]  # Discord names the message whose button opened the modal
    await fd.dispatch("INTERACTION_CREATE", submit)

    updated = await fd.wait_for_response(submit)
    assert updated["id"] == answer["id"] and updated["content"] == "added likes rain"
    assert fd.response_to(interaction)["content"] == "added likes rain"


@pytest.mark.asyncio
async def test_bad_command_payloads_are_refused_before_sending(tools: Tools) -> None:
    fd, alice, general = tools.fd, tools.alice, tools.general
    with pytest.raises(ValueError, match="group"):
        fd.command_payload(alice, general, "memory")
    with pytest.raises(ValueError, match="no such subcommand"):
        fd.command_payload(alice, general, "memory shout")
    with pytest.raises(ValueError, match="no such subcommand"):
        fd.command_payload(alice, general, "owner prune")  # prune lives in the group owner memory
    with pytest.raises(ValueError, match="required"):
        fd.command_payload(alice, general, "memory forget")
    with pytest.raises(ValueError, match="no option"):
        fd.command_payload(alice, general, "memory show", {"limt": 2})
    with pytest.raises(TypeError, match="option type 4"):
        fd.command_payload(alice, general, "memory show", {"limit": "2"})
    random = tools.guild.channel("random")
    with pytest.raises(ValueError, match="outside"):  # days is app_commands.Range[int, 1, 365]
        fd.command_payload(tools.dan, general, "owner memory prune", {"days": 0, "channel": random})


@pytest.mark.asyncio
async def test_attachment_option_is_read_from_the_fake_cdn(tools: Tools) -> None:
    fd = tools.fd
    card = FakeAttachment("card.json", b'{"name": "Ash"}')
    interaction = fd.command_payload(tools.alice, tools.general, "persona import", {"card": card})
    [option] = interaction["data"]["options"][0]["options"]
    assert option["type"] == 11
    attachment = interaction["data"]["resolved"]["attachments"][option["value"]]
    assert attachment["size"] == 15 and attachment["url"].startswith(f"http://127.0.0.1:{fd.port}/")

    await fd.dispatch("INTERACTION_CREATE", interaction)

    answer = await fd.wait_for_response(interaction)
    assert answer["content"] == "card.json 15 application/json"
    assert fd.downloads == [int(option["value"])]
    assert fd.attachment_bytes(attachment) == card.data


@pytest.mark.asyncio
async def test_a_ten_megabyte_attachment_reports_its_size(tools: Tools) -> None:
    fd = tools.fd
    big = FakeAttachment("huge.png", b"\x89PNG" + bytes(10 * 1024 * 1024))
    interaction = fd.command_payload(tools.alice, tools.general, "persona import", {"card": big})
    await fd.dispatch("INTERACTION_CREATE", interaction)

    answer = await fd.wait_for_response(interaction)

    assert answer["content"] == f"too big: {len(big.data)} bytes" and fd.is_ephemeral(interaction)
    assert fd.downloads == []  # refused by its size, not downloaded
    [attachment] = interaction["data"]["resolved"]["attachments"].values()
    assert attachment["content_type"] == "image/png"
    async with aiohttp.ClientSession() as session, session.get(attachment["url"]) as response:
        assert len(await response.read()) == len(big.data)  # the CDN serves it whole

    liar = FakeAttachment("small.png", big.data, claimed_size=100)  # Discord says 100 bytes; 10 MB arrive
    interaction = fd.command_payload(tools.alice, tools.general, "persona import", {"card": liar})
    await fd.dispatch("INTERACTION_CREATE", interaction)
    answer = await fd.wait_for_response(interaction)
    assert answer["content"] == f"small.png {len(big.data)} image/png" and len(fd.downloads) == 2


@pytest.mark.asyncio
async def test_uploads_up_to_the_attachment_limit_are_accepted(tools: Tools) -> None:
    fd = tools.fd
    channel = tools.client.get_channel(tools.general)
    assert isinstance(channel, discord.TextChannel)

    sent = await channel.send(file=discord.File(io.BytesIO(bytes(10 * 1024 * 1024)), "big.bin"))
    assert sent.attachments[0].size == 10 * 1024 * 1024
    with pytest.raises(discord.HTTPException) as refused:
        await channel.send(file=discord.File(io.BytesIO(bytes(26 * 1024 * 1024)), "huge.bin"))
    assert refused.value.status == 413 and refused.value.code == 40005
    assert [call.status for call in fd.calls("create_message")] == [200, 413]


@pytest.mark.asyncio
async def test_autocomplete_choices_are_recorded(tools: Tools) -> None:
    fd = tools.fd
    typing = fd.autocomplete_payload(tools.alice, tools.general, "memory forget", focused="fact", value="li")
    assert typing["type"] == 4
    assert typing["data"]["options"][0]["options"] == [{"name": "fact", "type": 3, "value": "li", "focused": True}]
    await fd.dispatch("INTERACTION_CREATE", typing)

    choices = await fd.wait_for_autocomplete(typing)

    assert choices == [{"name": f, "value": f} for f in ("likes green tea", "lives in Lisbon")]
    assert fd.autocomplete_choices(typing) == choices
    with pytest.raises(AssertionError, match="autocomplete"):
        fd.response_to(typing)

    chosen = fd.command_payload(tools.alice, tools.general, "memory forget", {"fact": choices[1]["value"]})
    await fd.dispatch("INTERACTION_CREATE", chosen)
    assert (await fd.wait_for_response(chosen))["content"] == "forgot lives in Lisbon"
    assert fd.is_ephemeral(chosen)


@pytest.mark.asyncio
async def test_modal_is_shown_and_submitted(tools: Tools) -> None:
    fd = tools.fd
    opening = fd.command_payload(tools.alice, tools.general, "persona edit")
    await fd.dispatch("INTERACTION_CREATE", opening)

    modal = await fd.wait_for_modal(opening)

    assert modal["custom_id"] == "persona:edit" and modal["title"] == "Edit persona"
    assert [c["type"] for c in modal["components"]] == [1, 18, 18, 1]
    assert sorted(modal["fields"]) == ["greeting", "name", "prompt", "tone"]
    assert modal["fields"]["prompt"]["label"] == "Prompt" and modal["fields"]["name"]["label"] == "Name"
    assert fd.modal_shown(opening) == modal
    with pytest.raises(AssertionError, match="modal"):
        await fd.wait_for_response(opening, timeout=0.5)

    submit = fd.modal_submit_payload(
        tools.alice, tools.general, modal["custom_id"], {"name": "Ash", "Prompt": "Be kind", "tone": ["warm"]}
    )
    rows = submit["data"]["components"]
    assert rows[0]["type"] == 1 and rows[0]["components"][0] | {"id": 0} == {
        "type": 4,
        "id": 0,
        "custom_id": "name",
        "value": "Ash",
    }
    assert rows[1]["type"] == 18 and rows[1]["component"]["value"] == "Be kind"
    assert rows[2]["component"]["values"] == ["warm"]
    assert rows[3]["components"][0]["value"] == "Hello!"  # left as pre-filled
    await fd.dispatch("INTERACTION_CREATE", submit)

    answer = await fd.wait_for_response(submit)
    assert answer["content"] == "Ash|Be kind|['warm']|Hello!" and fd.is_ephemeral(submit)

    with pytest.raises(ValueError, match="required"):
        fd.modal_submit_payload(tools.alice, tools.general, "persona:edit", {"Prompt": "no name"})
    with pytest.raises(ValueError, match="no fields"):
        fd.modal_submit_payload(tools.alice, tools.general, "persona:edit", {"name": "Ash", "colour": "red"})


@pytest.mark.asyncio
async def test_deferred_ephemeral_answer_follow_ups_and_a_dm_file(tools: Tools) -> None:
    fd = tools.fd
    interaction = fd.command_payload(tools.alice, tools.general, "memory export")
    await fd.dispatch("INTERACTION_CREATE", interaction)

    answer = await fd.wait_for_response(interaction)
    followups = await fd.wait_for_request(lambda c: c.route == "create_followup" and c.status == 200)
    await fd.wait_for_request(lambda c: c.route == "create_followup" and c is not followups)

    assert fd.callback_of(interaction) == {"type": 5, "data": {"flags": 64}}
    assert answer["content"] == "sent to your DMs" and fd.is_ephemeral(interaction)
    assert [(m["content"], m["flags"]) for m in fd.followups_of(interaction)] == [("anything else?", 64)]
    [dm] = fd.dm_messages(tools.alice)
    assert dm["content"] == "your memories" and fd.dm_messages(tools.cara) == []
    [attachment] = dm["attachments"]
    assert attachment["filename"] == "memories.json"
    assert json.loads(fd.attachment_bytes(attachment)) == {"facts": FACTS}


@pytest.mark.asyncio
async def test_closed_dms_refuse_the_bot(tools: Tools) -> None:
    fd = tools.fd
    user = await tools.client.fetch_user(tools.alice.id)
    fd.close_dms(tools.alice)
    with pytest.raises(discord.Forbidden) as refused:
        await user.send("hello?")
    assert refused.value.code == 50007 and fd.dm_messages(tools.alice) == []

    fd.close_dms(tools.alice, closed=False)
    await user.send("hello!")
    assert [m["content"] for m in fd.dm_messages(tools.alice)] == ["hello!"]


@pytest.mark.asyncio
async def test_own_messages_are_edited_without_send_messages_but_not_in_a_hidden_channel(tools: Tools) -> None:
    """Taking Send Messages away stops new messages only: the bot still edits and deletes its own; hiding the
    channel (no View Channel) refuses those too, as Missing Access."""
    fd = tools.fd
    channel = tools.client.get_channel(tools.general)
    assert isinstance(channel, discord.TextChannel)
    sent, other = await channel.send("first"), await channel.send("second")
    fd.set_everyone_permissions(tools.guild, discord.Permissions(view_channel=True).value)
    with pytest.raises(discord.Forbidden) as refused:
        await channel.send("third")
    assert refused.value.code == 50013
    await sent.edit(content="first, edited")
    await other.delete()

    fd.set_everyone_permissions(tools.guild, discord.Permissions(send_messages=True).value)
    with pytest.raises(discord.Forbidden) as hidden:
        await sent.edit(content="again")
    assert hidden.value.code == 50001
    with pytest.raises(discord.Forbidden):
        await sent.delete()
    assert [m["content"] for m in fd.sent_messages(tools.general)] == ["first, edited"]


@pytest.mark.asyncio
async def test_manage_server_is_needed(tools: Tools) -> None:
    fd, general = tools.fd, tools.general
    random = tools.guild.channel("random")
    assert not fd.can_use_command(tools.alice, general, "owner memory prune")
    assert fd.can_use_command(tools.cara, general, "owner memory prune")  # administrator
    assert fd.can_use_command(tools.dan, general, "owner memory prune")  # Manage Server through a role
    assert fd.can_use_command(fd.owner, general, "owner")
    assert fd.can_use_command(tools.alice, general, "memory show")
    assert not fd.can_use_command(tools.alice, fd.dm_channel(tools.alice), "owner")  # guild only
    assert fd.can_use_command(tools.alice, fd.dm_channel(tools.alice), "memory")
    assert not fd.can_use_command(tools.alice, general, "nothing")

    refused = fd.command_payload(tools.alice, general, "owner memory prune", {"days": 30, "channel": random})
    allowed = fd.command_payload(tools.dan, general, "owner memory prune", {"days": 30, "channel": random})
    [group] = allowed["data"]["options"]
    assert (group["type"], group["name"], group["options"][0]["type"], group["options"][0]["name"]) == (
        2,
        "memory",
        1,
        "prune",
    )
    assert group["options"][0]["options"][1] == {"name": "channel", "type": 7, "value": str(random)}
    assert allowed["data"]["resolved"]["channels"][str(random)]["name"] == "random"
    for interaction in (refused, allowed):
        await fd.dispatch("INTERACTION_CREATE", interaction)

    assert (await fd.wait_for_response(refused))["content"] == "you need Manage Server"
    assert fd.is_ephemeral(refused)
    assert (await fd.wait_for_response(allowed))["content"] == "pruned 30 days in #random"
    assert not int(refused["member"]["permissions"]) & MANAGE_GUILD.value
    assert int(allowed["member"]["permissions"]) & MANAGE_GUILD.value


@pytest.mark.asyncio
async def test_unsynced_commands_take_their_types_from_the_values(tools: Tools) -> None:
    fd = tools.fd
    card = FakeAttachment("a.txt", b"hi")
    payload = fd.command_payload(
        tools.alice,
        tools.general,
        "nowhere deep down",
        {"who": tools.cara, "where": FakeChannelRef(tools.general), "file": card, "n": 1.5, "ok": True},
    )
    [group] = payload["data"]["options"]
    assert (group["type"], group["options"][0]["type"]) == (2, 1)
    assert [(o["name"], o["type"]) for o in group["options"][0]["options"]] == [
        ("who", 6),
        ("where", 7),
        ("file", 11),
        ("n", 10),
        ("ok", 5),
    ]
    resolved = payload["data"]["resolved"]
    assert set(resolved) == {"users", "members", "channels", "attachments"}
    assert resolved["members"][str(tools.cara.id)]["permissions"] == str(discord.Permissions.all().value)

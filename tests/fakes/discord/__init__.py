"""A fake Discord: gateway and REST API as a real aiohttp server on 127.0.0.1 for the real discord.py client.

The fake holds a small world (users, guilds with channels, roles and members, DM channels), plays the gateway
handshake (HELLO, IDENTIFY → READY and one GUILD_CREATE per guild, heartbeats, RESUME), lets tests push
events, and answers the REST calls a bot makes, recording every one::

    async with FakeDiscord() as fd:
        alice = fd.add_user("alice")
        guild = fd.add_guild("Hearth Test", channels=["general"], members=[alice])
        with fd.patch_discord():
            client = discord.Client(intents=intents, guild_ready_timeout=0.05)
            task = asyncio.create_task(client.start("fake-token"))
            await fd.wait_identified()
            await client.wait_until_ready()
            await fd.user_message(guild.channel("general"), alice, f"{fd.bot.mention} hello")
            reply = await fd.wait_for_message(guild.channel("general"))
            await client.close()
            await task

Slash commands, as Discord sends them once the bot has synced its tree (``/memory show`` becomes command
``memory`` with a SUB_COMMAND option ``show``; option types come from the synced definition)::

    interaction = fd.command_payload(alice, general, "persona import", {"card": FakeAttachment("c.json", data)})
    await fd.dispatch("INTERACTION_CREATE", interaction)
    answer = await fd.wait_for_response(interaction)  # the visible answer, however it was sent
    assert fd.is_ephemeral(interaction)

``autocomplete_payload`` and ``wait_for_autocomplete``, ``wait_for_modal`` and ``modal_submit_payload``,
``followups_of`` and ``dm_messages`` cover the rest of a command's life.

Every REST answer carries ``Content-Type: application/json`` exactly (discord.py compares the header string)
or is a bare 204. Unknown routes answer 404 and are kept in ``FakeDiscord.unexpected``. Uploads over
Discord's 10 MiB attachment limit answer 413 (code 40005).

## Where things are

Each module is one layer, and :class:`FakeDiscord` is all of them (each class extends the one before):

- ``world.py``: :class:`World`, the users, guilds, channels, messages and attachments, and the lookups that
  fail as Discord does (:class:`ApiError`, e.g. 404 Unknown Channel);
- ``payloads.py``: JSON that several layers send (members, GUILD_CREATE);
- ``limits.py``: Discord's limits on what a bot sends (message content, embeds, components, autocomplete
  choices, modals); a body over one answers 400, code 50035, before anything is stored or acknowledged;
- ``gateway.py``: :class:`Gateway`, the websocket: handshake, heartbeats, RESUME, ``dispatch``;
- ``rest.py``: :class:`Rest`, routing, recording (:class:`RestCall`), scripted failures, the CDN, and the
  user, channel and message routes;
- ``interactions.py``: :class:`Interactions`, what users' clients send (commands, components, autocomplete,
  modals), the callback, webhook and command-sync routes, and how a test reads the bot's answers;
- ``server.py``: :class:`FakeDiscord`, which serves them all.

## Adding a route

Write a handler that takes the :class:`RestCall` (path parameters in ``call.params``, the JSON body in
``call.body``, uploads in ``call.files``) and returns the JSON answer (``None`` answers 204), raising
:class:`ApiError` for an error answer; then add ``(method, path, name, handler)`` to ``routes()`` in the
layer it belongs to (``rest.py`` for channels, users and messages, ``interactions.py`` for interactions and
commands). ``name`` is what tests pass to ``calls(name)``, ``fail(name, ...)`` and ``wait_for_request``.
Scripted failures, the 413 for large uploads and the recording come with every route.

## Adding an event

Events a user causes are payloads sent with ``await fd.dispatch("EVENT_NAME", payload)``, which goes to the
shard owning the payload's ``guild_id`` (shard 0 without one). Build the payload in a test, or add a
``<thing>_payload`` method to the layer whose state it reads (``world.py`` for messages and guilds,
``interactions.py`` for interactions), storing what later REST calls must find (as ``message_payload``
stores the message). Events Discord sends back after a REST call (the bot's own messages) are in
``Rest._echo``.
"""

from tests.fakes.discord.interactions import ModalValue, OptionValue
from tests.fakes.discord.rest import RestCall
from tests.fakes.discord.server import FakeDiscord
from tests.fakes.discord.world import (
    DEFAULT_EVERYONE_PERMISSIONS,
    ApiError,
    FakeAttachment,
    FakeChannel,
    FakeChannelRef,
    FakeGuild,
    FakeUser,
    UploadedFile,
)

__all__ = [
    "DEFAULT_EVERYONE_PERMISSIONS",
    "ApiError",
    "FakeAttachment",
    "FakeChannel",
    "FakeChannelRef",
    "FakeDiscord",
    "FakeGuild",
    "FakeUser",
    "ModalValue",
    "OptionValue",
    "RestCall",
    "UploadedFile",
]

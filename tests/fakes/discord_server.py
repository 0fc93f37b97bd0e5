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

:meth:`FakeDiscord.autocomplete_payload` and :meth:`FakeDiscord.wait_for_autocomplete`,
:meth:`FakeDiscord.wait_for_modal` and :meth:`FakeDiscord.modal_submit_payload`, :meth:`FakeDiscord.followups_of`
and :meth:`FakeDiscord.dm_messages` cover the rest of a command's life.

Every REST answer carries ``Content-Type: application/json`` exactly (discord.py compares the header string)
or is a bare 204. Unknown routes answer 404 and are kept in :attr:`FakeDiscord.unexpected`. Uploads over
Discord's 25 MiB attachment limit answer 413 (code 40005).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import mimetypes
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote

import discord
import yarl
from aiohttp import web
from discord.gateway import DiscordWebSocket
from discord.http import Route
from multidict import CIMultiDict

__all__ = [
    "DEFAULT_EVERYONE_PERMISSIONS",
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

JSON = dict[str, Any]
DISCORD_EPOCH_MS = 1_420_070_400_000
API_PREFIX = "/api/v10"
ATTACHMENT_SIZE_LIMIT = 25 * 1024 * 1024

DEFAULT_EVERYONE_PERMISSIONS = discord.Permissions(
    view_channel=True,
    send_messages=True,
    send_messages_in_threads=True,
    embed_links=True,
    attach_files=True,
    read_message_history=True,
    add_reactions=True,
    use_external_emojis=True,
    use_application_commands=True,
).value
ALL_PERMISSIONS = discord.Permissions.all().value
ADMINISTRATOR = discord.Permissions(administrator=True).value

# Gateway opcodes.
DISPATCH, HEARTBEAT, IDENTIFY, PRESENCE, RESUME, RECONNECT, REQUEST_MEMBERS, INVALID_SESSION, HELLO, ACK = (
    0, 1, 2, 3, 6, 7, 8, 9, 10, 11,
)  # fmt: skip

# Interaction types.
APPLICATION_COMMAND, MESSAGE_COMPONENT, AUTOCOMPLETE, MODAL_SUBMIT = 2, 3, 4, 5
# Interaction callback types.
CHANNEL_MESSAGE, DEFERRED_CHANNEL_MESSAGE, DEFERRED_UPDATE_MESSAGE, UPDATE_MESSAGE = 4, 5, 6, 7
AUTOCOMPLETE_RESULT, MODAL = 8, 9
# The callbacks Discord accepts for each interaction type.
ALLOWED_CALLBACKS = {
    APPLICATION_COMMAND: {CHANNEL_MESSAGE, DEFERRED_CHANNEL_MESSAGE, MODAL},
    MESSAGE_COMPONENT: {CHANNEL_MESSAGE, DEFERRED_CHANNEL_MESSAGE, DEFERRED_UPDATE_MESSAGE, UPDATE_MESSAGE, MODAL},
    AUTOCOMPLETE: {AUTOCOMPLETE_RESULT},
    MODAL_SUBMIT: {CHANNEL_MESSAGE, DEFERRED_CHANNEL_MESSAGE, DEFERRED_UPDATE_MESSAGE, UPDATE_MESSAGE},
}
EPHEMERAL, LOADING = 1 << 6, 1 << 7

# Application-command option types.
SUB_COMMAND, SUB_COMMAND_GROUP, STRING, INTEGER, BOOLEAN, USER, CHANNEL, ROLE, MENTIONABLE, NUMBER, ATTACHMENT = (
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11,
)  # fmt: skip
# Modal components: text input, selects (string, user, role, mentionable, channel), file upload, radio group,
# checkbox group, checkbox; and the option type a select's picks resolve like.
TEXT_INPUT, FILE_UPLOAD, RADIO_GROUP, CHECKBOX_GROUP, CHECKBOX = 4, 19, 21, 22, 23
SELECT_OPTION_TYPES = {3: STRING, 5: USER, 6: ROLE, 7: MENTIONABLE, 8: CHANNEL}


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _content_type(filename: str) -> str:
    return mimetypes.guess_type(filename)[0] or "application/octet-stream"


def _option_type(value: object) -> int:
    """The option type a value implies when the command was not synced to the fake."""
    if isinstance(value, FakeUser):
        return USER
    if isinstance(value, FakeChannel | FakeChannelRef):
        return CHANNEL
    if isinstance(value, FakeAttachment):
        return ATTACHMENT
    if isinstance(value, bool):
        return BOOLEAN
    return INTEGER if isinstance(value, int) else NUMBER if isinstance(value, float) else STRING


def _check_option(definition: JSON, value: object, what: str) -> None:
    """Refuse a value Discord's client would not send: not among the option's choices, or out of its limits."""
    if definition.get("choices"):
        allowed = [choice["value"] for choice in definition["choices"]]
        if value not in allowed:
            raise ValueError(f"{what}: {value!r} is not one of the choices {allowed}")
    low, high = definition.get("min_value"), definition.get("max_value")
    if isinstance(value, str):
        low, high, value = definition.get("min_length"), definition.get("max_length"), len(value)
    if not isinstance(value, int | float) or isinstance(value, bool):
        return
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"{what}: {value!r} is outside [{low}, {high}] (lengths for text)")


def _json_response(payload: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    # body=bytes, not text=: with text aiohttp appends "; charset=utf-8", and discord.py would see a str.
    return web.Response(
        body=json.dumps(payload).encode(), status=status, headers=headers, content_type="application/json"
    )


# -- the world ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FakeUser:
    id: int
    username: str
    bot: bool = False
    global_name: str | None = None

    @property
    def mention(self) -> str:
        return f"<@{self.id}>"

    def payload(self) -> JSON:
        return {
            "id": str(self.id),
            "username": self.username,
            "discriminator": "0",
            "global_name": self.global_name,
            "avatar": None,
            "bot": self.bot,
            "public_flags": 0,
        }


@dataclass
class FakeChannel:
    id: int
    type: int  # 0 guild text, 1 DM
    name: str | None = None
    guild_id: int | None = None
    position: int = 0
    recipient: FakeUser | None = None
    extra: JSON = field(default_factory=dict)

    def payload(self) -> JSON:
        if self.type == discord.ChannelType.private.value:
            assert self.recipient is not None
            return {
                "id": str(self.id),
                "type": self.type,
                "recipients": [self.recipient.payload()],
                "last_message_id": None,
            }
        data: JSON = {
            "id": str(self.id),
            "type": self.type,
            "guild_id": str(self.guild_id),
            "name": self.name,
            "position": self.position,
            "permission_overwrites": [],
            "topic": None,
            "nsfw": False,
            "parent_id": None,
            "rate_limit_per_user": 0,
            "last_message_id": None,
            "flags": 0,
        }
        return {**data, **self.extra}


@dataclass
class FakeGuild:
    id: int
    name: str
    owner_id: int
    channels: dict[str, int]
    members: list[FakeUser]
    roles: list[JSON]
    member_roles: dict[int, list[int]] = field(default_factory=dict)

    def channel(self, name: str) -> int:
        """A channel's id by name."""
        return self.channels[name]

    @property
    def first_channel(self) -> int:
        return next(iter(self.channels.values()))

    def permissions_of(self, user_id: int) -> int:
        """Guild-level permissions (channel overwrites are ignored)."""
        if user_id == self.owner_id:
            return ALL_PERMISSIONS
        held = set(self.member_roles.get(user_id, [])) | {self.id}
        value = 0
        for role in self.roles:
            if int(role["id"]) in held:
                value |= int(role["permissions"])
        return ALL_PERMISSIONS if value & discord.Permissions(administrator=True).value else value


@dataclass(frozen=True)
class UploadedFile:
    field_name: str
    filename: str
    content_type: str
    data: bytes


@dataclass(frozen=True)
class FakeAttachment:
    """A file a user attaches to an ATTACHMENT command option, a modal's file upload or a message.

    The fake keeps ``data`` on its CDN, so discord.py's ``Attachment.read()`` downloads it, and reports
    ``size=len(data)`` unless ``claimed_size`` says otherwise (to test a bot that checks the bytes it gets);
    ``content_type`` defaults to a guess from ``filename``.
    """

    filename: str
    data: bytes
    content_type: str | None = None
    claimed_size: int | None = None

    def uploaded(self, field_name: str = "files[0]") -> UploadedFile:
        return UploadedFile(field_name, self.filename, self.content_type or _content_type(self.filename), self.data)


@dataclass(frozen=True)
class FakeChannelRef:
    """A CHANNEL option's value for a command the fake has not seen synced (else a bare channel id will do)."""

    id: int


OptionValue = str | int | float | bool | FakeUser | FakeChannel | FakeChannelRef | FakeAttachment
"""A slash-command option's value; ids (int) also stand for users, channels and roles where the synced
option says so."""
ModalValue = str | bool | None | Sequence[str | int | FakeUser | FakeChannel | FakeChannelRef | FakeAttachment]
"""A modal field's value: text for a text input or radio group, a bool for a checkbox, a list for the rest."""


@dataclass
class RestCall:
    """One REST request: ``route`` is the fake's name for it (``create_message``, ``edit_message``, …)."""

    method: str
    path: str
    route: str
    params: dict[str, str]
    query: dict[str, str]
    body: Any
    files: list[UploadedFile]
    headers: Mapping[str, str]
    status: int = 0
    response: Any = None

    @property
    def channel_id(self) -> int | None:
        value = self.params.get("channel_id")
        return int(value) if value is not None else None


class ApiError(Exception):
    """Answer the current REST call with a Discord-style error."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass
class _ScriptedFailure:
    route: str
    status: int
    times: int
    retry_after: float
    message: str
    code: int


@dataclass
class _Session:
    """One gateway connection."""

    ws: web.WebSocketResponse
    session_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    shard: tuple[int, int] = (0, 1)
    sequence: int = 0
    ready: bool = False

    async def send(self, op: int, data: Any, event: str | None = None) -> None:
        frame: JSON = {"op": op, "d": data, "s": None, "t": event}
        if op == DISPATCH:
            self.sequence += 1
            frame["s"] = self.sequence
        await self.ws.send_str(json.dumps(frame))


Handler = Callable[[RestCall], Any]


class FakeDiscord:
    """Discord's gateway and REST API, enough for discord.py: see the module docstring."""

    def __init__(
        self,
        bot_name: str = "Hearth",
        *,
        shard_count: int = 1,
        heartbeat_interval_ms: int = 41_250,
        echo_bot_messages: bool = True,
    ) -> None:
        """``shard_count`` is what GET /gateway/bot recommends; ``echo_bot_messages`` sends the bot's own
        created, edited and deleted channel messages back over the gateway, as Discord does."""
        self.shard_count = shard_count
        self.echo_bot_messages = echo_bot_messages
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self._last_snowflake = 0
        self.users: dict[int, FakeUser] = {}
        self.guilds: dict[int, FakeGuild] = {}
        self.channels: dict[int, FakeChannel] = {}
        self.messages: dict[int, JSON] = {}
        self.bot = self.add_user(bot_name, bot=True)
        self.application_id = self.bot.id
        self.owner = self.add_user("owner")
        self.requests: list[RestCall] = []
        self.unexpected: list[RestCall] = []
        self.identifies: list[JSON] = []
        self.resumes: list[JSON] = []
        self.gateway_received: list[JSON] = []
        self.deleted_message_ids: list[int] = []
        self.downloads: list[int] = []  # ids of attachments fetched from the CDN, in order
        self._files: dict[int, UploadedFile] = {}
        self._sent_ids: list[int] = []
        self._commands: dict[int | None, list[JSON]] = {}
        self._interactions: dict[int, JSON] = {}
        self._acknowledged: set[int] = set()
        self._callbacks: dict[int, JSON] = {}
        self._originals: dict[str, int] = {}
        self._followups: dict[str, list[int]] = {}
        self._closed_dms: set[int] = set()
        self._failures: list[_ScriptedFailure] = []
        self._sessions: list[_Session] = []
        self._known_sessions: dict[str, tuple[int, int]] = {}
        self._claimed: set[int] = set()
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self._ready_gate = asyncio.Event()
        self._ready_gate.set()

    # -- lifecycle ------------------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        # Uploads up to the attachment limit must reach the handlers (aiohttp refuses bodies over 1 MiB by default).
        app = web.Application(client_max_size=4 * ATTACHMENT_SIZE_LIMIT)
        app.router.add_get("/", self._gateway)
        for method, path, name, handler in self._routes():
            app.router.add_route(method, API_PREFIX + path, self._endpoint(name, handler))
        app.router.add_get("/attachments/{channel_id}/{attachment_id}/{filename}", self._attachment)
        app.router.add_route("*", "/{tail:.*}", self._endpoint("unknown", self._unknown))
        self._runner = web.AppRunner(app, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host="127.0.0.1", port=0)
        await site.start()
        self._port = self._runner.addresses[0][1]
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for session in list(self._sessions):
            await session.ws.close(code=4000, message=b"fake Discord shutting down")
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("FakeDiscord is not running: use `async with FakeDiscord() as fd:`")
        return self._port

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.port}{API_PREFIX}"

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/"

    @contextlib.contextmanager
    def patch_discord(self) -> Iterator[None]:
        """Point discord.py's REST base and default gateway at this fake, restoring both afterwards."""
        old_base, old_gateway = Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY
        Route.BASE = self.api_base
        DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(self.gateway_url)
        try:
            yield
        finally:
            Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY = old_base, old_gateway

    # -- building the world ---------------------------------------------------------------------------

    def snowflake(self) -> int:
        """A new snowflake carrying the time, each at least a millisecond after the last (ids spread over shards)."""
        value = max(self._last_snowflake + (1 << 22), (int(time.time() * 1000) - DISCORD_EPOCH_MS) << 22)
        self._last_snowflake = value
        return value

    def add_user(self, username: str, *, bot: bool = False, global_name: str | None = None) -> FakeUser:
        user = FakeUser(self.snowflake(), username, bot, global_name)
        self.users[user.id] = user
        return user

    def add_guild(
        self,
        name: str = "Hearth Test",
        *,
        channels: Sequence[str | JSON] = ("general",),
        members: Iterable[FakeUser] = (),
        owner: FakeUser | None = None,
        everyone_permissions: int = DEFAULT_EVERYONE_PERMISSIONS,
        admins: Iterable[FakeUser] = (),
    ) -> FakeGuild:
        """A guild holding the bot, the owner (default: :attr:`owner`), ``members`` and ``admins``.

        ``channels`` are text-channel names, or dicts merged into a channel payload (with a ``name``).
        ``admins`` get an "Admin" role with the Administrator permission (so every permission, Manage Server
        included); other members hold only ``everyone_permissions``. For one permission alone use
        :meth:`add_role`, e.g. ``add_role(guild, "Mods", permissions=discord.Permissions(manage_guild=True).value,
        members=[ben])``. Guilds added after the client identified need
        ``await fd.dispatch("GUILD_CREATE", fd.guild_payload(g))``.
        """
        owner = owner or self.owner
        admins = list(admins)
        guild_id = self.snowflake()
        while (guild_id >> 22) % self.shard_count != len(self.guilds) % self.shard_count:  # round-robin over shards
            guild_id = self.snowflake()
        everyone = {"id": str(guild_id), "name": "@everyone", "permissions": str(everyone_permissions), "position": 0}
        everyone |= {"color": 0, "hoist": False, "managed": False, "mentionable": False, "flags": 0}
        people = list({u.id: u for u in (self.bot, owner, *members, *admins)}.values())
        guild = FakeGuild(guild_id, name, owner.id, {}, people, [everyone])
        self.guilds[guild_id] = guild
        for spec in channels:
            extra = {"name": spec} if isinstance(spec, str) else dict(spec)
            channel = FakeChannel(
                self.snowflake(),
                type=int(extra.pop("type", 0)),
                name=str(extra.pop("name")),
                guild_id=guild_id,
                position=len(guild.channels),
                extra=extra,
            )
            self.channels[channel.id] = channel
            guild.channels[str(channel.name)] = channel.id
        if admins:
            self.add_role(guild, "Admin", permissions=ADMINISTRATOR, members=admins)
        return guild

    def add_role(self, guild: FakeGuild, name: str, *, permissions: int = 0, members: Iterable[FakeUser] = ()) -> int:
        """A role with ``permissions``, given to ``members``; returns its id."""
        role_id = self.snowflake()
        role = {"id": str(role_id), "name": name, "permissions": str(permissions), "position": len(guild.roles)}
        guild.roles.append(role | {"color": 0, "hoist": False, "managed": False, "mentionable": True, "flags": 0})
        for member in members:
            guild.member_roles.setdefault(member.id, []).append(role_id)
        return role_id

    def close_dms(self, user: FakeUser, closed: bool = True) -> None:
        """Make the bot's DMs to ``user`` fail (403, code 50007) as when they closed them; ``closed=False`` reopens."""
        if closed:
            self._closed_dms.add(user.id)
        else:
            self._closed_dms.discard(user.id)

    def dm_channel(self, user: FakeUser) -> int:
        """The id of the DM channel between the bot and ``user`` (created on first use)."""
        for channel in self.channels.values():
            if channel.recipient == user:
                return channel.id
        channel = FakeChannel(self.snowflake(), type=discord.ChannelType.private.value, recipient=user)
        self.channels[channel.id] = channel
        return channel.id

    def member_payload(self, guild: FakeGuild, user: FakeUser, *, with_user: bool = True) -> JSON:
        data: JSON = {
            "roles": [str(r) for r in guild.member_roles.get(user.id, [])],
            "joined_at": _now(),
            "deaf": False,
            "mute": False,
            "flags": 0,
            "nick": None,
            "avatar": None,
            "premium_since": None,
            "pending": False,
            "communication_disabled_until": None,
        }
        return {"user": user.payload(), **data} if with_user else data

    def guild_payload(self, guild: FakeGuild) -> JSON:
        """A GUILD_CREATE payload for ``guild``."""
        return {
            "id": str(guild.id),
            "name": guild.name,
            "icon": None,
            "owner_id": str(guild.owner_id),
            "roles": guild.roles,
            "emojis": [],
            "stickers": [],
            "features": [],
            "channels": [self.channels[cid].payload() for cid in guild.channels.values()],
            "threads": [],
            "members": [self.member_payload(guild, user) for user in guild.members],
            "member_count": len(guild.members),
            "large": False,
            "unavailable": False,
            "joined_at": _now(),
            "voice_states": [],
            "presences": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "soundboard_sounds": [],
            "system_channel_id": str(guild.first_channel) if guild.channels else None,
            "preferred_locale": "en-US",
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "mfa_level": 0,
            "nsfw_level": 0,
            "premium_tier": 0,
        }

    # -- events from users ----------------------------------------------------------------------------

    def message_payload(
        self,
        channel_id: int,
        author: FakeUser,
        content: str,
        *,
        mentions: Iterable[FakeUser] = (),
        referenced_message: JSON | None = None,
        attachments: Sequence[tuple[str, bytes] | FakeAttachment] = (),
        guild_id: int | None = None,
    ) -> JSON:
        """A MESSAGE_CREATE payload from ``author`` (stored, so replies can reference it).

        ``guild_id`` defaults to the channel's guild; a DM channel (see :meth:`dm_channel`) has none.
        Users mentioned in ``content`` as ``<@id>`` are added to ``mentions``.
        """
        guild_id = guild_id or self._channel(channel_id).guild_id
        guild = self.guilds.get(guild_id) if guild_id else None
        message = self._message(channel_id, author, {"content": content}, [])
        files = [file if isinstance(file, FakeAttachment) else FakeAttachment(*file) for file in attachments]
        message["attachments"] = [
            self._store_attachment(channel_id, file.uploaded(f"files[{i}]"))
            | ({"size": file.claimed_size} if file.claimed_size is not None else {})
            for i, file in enumerate(files)
        ]
        mentioned = {u.id: u for u in self._mentioned(content)} | {u.id: u for u in mentions}
        message["mentions"] = [
            u.payload() | ({"member": self.member_payload(guild, u, with_user=False)} if guild else {})
            for u in mentioned.values()
        ]
        if guild is not None:
            message["guild_id"] = str(guild.id)
            message["member"] = self.member_payload(guild, author, with_user=False)
        if referenced_message is not None:
            self._refer(message, referenced_message)
        return message

    async def user_message(self, channel_id: int, author: FakeUser, content: str, **options: Any) -> JSON:
        """Build a message with :meth:`message_payload` and dispatch it as MESSAGE_CREATE."""
        message = self.message_payload(channel_id, author, content, **options)
        await self.dispatch("MESSAGE_CREATE", message)
        return message

    def interaction_payload(
        self, user: FakeUser, channel_id: int, *, type: int, data: JSON, message: JSON | None = None
    ) -> JSON:
        """An INTERACTION_CREATE payload from ``user`` (type 2 application command, 3 component,
        4 autocomplete, 5 modal submit); prefer :meth:`command_payload`, :meth:`component_payload`,
        :meth:`autocomplete_payload` and :meth:`modal_submit_payload`."""
        channel = self._channel(channel_id)
        guild = self.guilds.get(channel.guild_id) if channel.guild_id else None
        interaction_id = self.snowflake()
        payload: JSON = {
            "id": str(interaction_id),
            "application_id": str(self.application_id),
            "type": type,
            "data": data,
            "token": uuid.uuid4().hex,
            "version": 1,
            "channel_id": str(channel_id),
            "channel": channel.payload(),
            "locale": "en-US",
            "attachment_size_limit": ATTACHMENT_SIZE_LIMIT,
            "entitlements": [],
            "context": 0 if guild else 1,
        }
        if guild is not None:
            payload["guild_id"] = str(guild.id)
            payload["guild"] = {"id": str(guild.id), "locale": "en-US", "features": []}
            payload["guild_locale"] = "en-US"
            payload["member"] = self.member_payload(guild, user) | {"permissions": str(guild.permissions_of(user.id))}
            payload["app_permissions"] = str(guild.permissions_of(self.bot.id))
            payload["authorizing_integration_owners"] = {"0": str(guild.id)}
        else:
            payload["user"] = user.payload()
            payload["authorizing_integration_owners"] = {"1": str(user.id)}
        if message is not None:
            payload["message"] = message
        self._interactions[interaction_id] = payload
        return payload

    def command_payload(
        self, user: FakeUser, channel_id: int, name: str, options: Mapping[str, OptionValue] | None = None
    ) -> JSON:
        """A slash-command INTERACTION_CREATE payload: ``user`` ran ``/name`` in the channel.

        ``name`` is the qualified name: ``"hello"``, ``"memory show"`` (a subcommand) or
        ``"owner memory prune"`` (a subcommand in a group); Discord nests the words as SUB_COMMAND_GROUP (2)
        and SUB_COMMAND (1) options. ``options`` map option names to values: str, int, float, bool,
        :class:`FakeUser`, a channel (:class:`FakeChannel`, :class:`FakeChannelRef`), :class:`FakeAttachment`
        (kept on the fake's CDN), with users, members, channels, roles and attachments in ``data.resolved``.

        If the command was synced to the fake (for the channel's guild, else globally) its id, guild and
        option types are used: an ``int`` then stands for a user, channel or role id where the option says
        so, and a subcommand, option or required option that the definition lacks raises ``ValueError``
        (Discord would not let the user send it). Otherwise the types follow the Python values.
        """
        data = self._command_data(user, channel_id, name, options or {})
        return self.interaction_payload(user, channel_id, type=APPLICATION_COMMAND, data=data)

    def autocomplete_payload(
        self,
        user: FakeUser,
        channel_id: int,
        name: str,
        *,
        focused: str,
        value: str = "",
        options: Mapping[str, OptionValue] | None = None,
    ) -> JSON:
        """An APPLICATION_COMMAND_AUTOCOMPLETE (4) payload: ``user`` is typing ``value`` into option ``focused``.

        ``options`` are those already filled in. As Discord does, the focused option carries
        ``"focused": true`` and the raw text typed (whatever its type), and ``data.resolved`` is left out.
        Read the answer with :meth:`autocomplete_choices` or :meth:`wait_for_autocomplete`.
        """
        data = self._command_data(user, channel_id, name, {**(options or {}), focused: value}, focused=focused)
        return self.interaction_payload(user, channel_id, type=AUTOCOMPLETE, data=data)

    def _synced(self, name: str, guild_id: int | None) -> tuple[int | None, JSON] | None:
        """The synced slash command called ``name`` for the guild (first) or globally, with its guild id."""
        for gid in (guild_id, None) if guild_id is not None else (None,):
            for command in self._commands.get(gid, []):
                if command["name"] == name and command.get("type", 1) == 1:
                    return gid, command
        return None

    def _command_data(
        self,
        user: FakeUser,
        channel_id: int,
        name: str,
        options: Mapping[str, OptionValue],
        *,
        focused: str | None = None,
    ) -> JSON:
        parts = name.split()
        if not 1 <= len(parts) <= 3:
            raise ValueError(f"a command's qualified name has one to three words, not {name!r}")
        channel = self._channel(channel_id)
        guild = self.guilds.get(channel.guild_id) if channel.guild_id else None
        data: JSON = {"id": str(self.snowflake()), "name": parts[0], "type": 1}
        kinds = [SUB_COMMAND_GROUP] * (len(parts) - 2) + [SUB_COMMAND] if len(parts) > 1 else []
        definitions: dict[str, JSON] | None = None
        found = self._synced(parts[0], channel.guild_id)
        if found is not None:
            gid, command = found
            data["id"] = command["id"]
            if gid is not None:
                data["guild_id"] = str(gid)
            level: list[JSON] = list(command.get("options") or [])
            for depth, part in enumerate(parts[1:]):
                sub = next((o for o in level if o["name"] == part and o["type"] == kinds[depth]), None)
                if sub is None:
                    raise ValueError(f"/{name}: the synced /{' '.join(parts[: depth + 1])} has no such subcommand")
                level = list(sub.get("options") or [])
            if any(o["type"] in (SUB_COMMAND, SUB_COMMAND_GROUP) for o in level):
                raise ValueError(f"/{name} is a group: name one of its subcommands")
            definitions = {o["name"]: o for o in level}
        resolved: JSON = {}
        leaf: list[JSON] = []
        for key, value in options.items():
            definition = definitions.get(key) if definitions is not None else None
            if definitions is not None and definition is None:
                raise ValueError(f"/{name} has no option {key!r}; it has {sorted(definitions)}")
            kind = int(definition["type"]) if definition is not None else _option_type(value)
            if key == focused:
                leaf.append({"name": key, "type": kind, "value": value, "focused": True})
                continue
            if definition is not None:
                _check_option(definition, value, f"/{name} {key}")
            option_value = self._resolve_value(kind, value, user, channel, guild, resolved, what=f"/{name} {key}")
            leaf.append({"name": key, "type": kind, "value": option_value})
        if definitions is not None and focused is None:
            missing = [n for n, o in definitions.items() if o.get("required") and n not in options]
            if missing:
                raise ValueError(f"/{name} needs the required options {missing}")
        nested = leaf
        for part, kind in reversed(list(zip(parts[1:], kinds, strict=True))):
            nested = [{"type": kind, "name": part, "options": nested}]
        data["options"] = nested
        if resolved and focused is None:  # Discord sends no resolved data with autocomplete
            data["resolved"] = resolved
        return data

    def _resolve_value(
        self,
        kind: int,
        value: object,
        user: FakeUser,
        channel: FakeChannel,
        guild: FakeGuild | None,
        resolved: JSON,
        *,
        what: str,
    ) -> Any:
        """The wire value of an option (or a select's pick) of type ``kind``, adding what it names to ``resolved``."""

        def wrong() -> TypeError:
            return TypeError(f"{what}: {value!r} does not fit option type {kind}")

        if kind == STRING:
            if not isinstance(value, str):
                raise wrong()
            return value
        if kind == INTEGER:
            if isinstance(value, bool) or not isinstance(value, int):
                raise wrong()
            return value
        if kind == NUMBER:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise wrong()
            return value
        if kind == BOOLEAN:
            if not isinstance(value, bool):
                raise wrong()
            return value
        if kind == ATTACHMENT:
            if not isinstance(value, FakeAttachment):
                raise wrong()
            attachment = self._store_attachment(channel.id, value.uploaded("options")) | {"ephemeral": True}
            if value.claimed_size is not None:
                attachment["size"] = value.claimed_size
            resolved.setdefault("attachments", {})[attachment["id"]] = attachment
            return attachment["id"]
        target: int
        if isinstance(value, FakeUser | FakeChannel | FakeChannelRef):
            target = value.id
        elif isinstance(value, int) and not isinstance(value, bool):
            target = value
        elif isinstance(value, str) and value.isdigit():
            target = int(value)
        else:
            raise wrong()
        role = next((r for r in guild.roles if int(r["id"]) == target), None) if guild is not None else None
        if kind == USER or (kind == MENTIONABLE and role is None):
            person = self.users.get(target)
            if person is None or isinstance(value, FakeChannel | FakeChannelRef):
                raise wrong()
            resolved.setdefault("users", {})[str(person.id)] = person.payload()
            if guild is not None and any(m.id == person.id for m in guild.members):
                member = self.member_payload(guild, person, with_user=False)
                member["permissions"] = str(guild.permissions_of(person.id))
                resolved.setdefault("members", {})[str(person.id)] = member
        elif kind in (ROLE, MENTIONABLE):
            if role is None:
                raise wrong()
            resolved.setdefault("roles", {})[str(target)] = role
        elif kind == CHANNEL:
            picked = self.channels.get(target)
            if picked is None or picked.guild_id is None or isinstance(value, FakeUser):
                raise wrong()
            partial = {k: v for k, v in picked.payload().items() if k != "permission_overwrites"}
            held = self.guilds[picked.guild_id].permissions_of(user.id)
            resolved.setdefault("channels", {})[str(target)] = partial | {"permissions": str(held)}
        else:
            raise wrong()
        return str(target)

    def can_use_command(self, user: FakeUser, channel_id: int, name: str) -> bool:
        """Whether Discord would offer ``/name`` (its first word) to ``user`` in the channel.

        The command must be synced (for the guild or globally), allowed in this context (``contexts``, or
        the older ``dm_permission``), and in a guild the user must hold its ``default_member_permissions``
        (owners and administrators hold them all; ``"0"`` leaves it to administrators). Discord hides the
        command otherwise, so a test of the bot's own permission checks may still send it.
        """
        channel = self._channel(channel_id)
        found = self._synced(name.split()[0], channel.guild_id)
        if found is None:
            return False
        command = found[1]
        contexts = command.get("contexts")
        guild = self.guilds.get(channel.guild_id) if channel.guild_id else None
        if guild is None:
            return 1 in contexts if contexts is not None else command.get("dm_permission") is not False
        if contexts is not None and 0 not in contexts:
            return False
        required = command.get("default_member_permissions")
        held = guild.permissions_of(user.id)
        if required is None or held & ADMINISTRATOR:
            return True
        return int(required) != 0 and held & int(required) == int(required)

    def component_payload(
        self,
        user: FakeUser,
        message: JSON,
        custom_id: str,
        *,
        component_type: int = 2,
        values: Sequence[str] | None = None,
    ) -> JSON:
        """A component INTERACTION_CREATE payload: ``user`` used a button (2) or select (3) on ``message``."""
        data: JSON = {"custom_id": custom_id, "component_type": component_type}
        if values is not None:
            data["values"] = list(values)
        current = self.messages.get(int(message["id"]), message)
        return self.interaction_payload(user, int(message["channel_id"]), type=3, data=data, message=current)

    def modal_submit_payload(
        self,
        user: FakeUser,
        channel_id: int,
        custom_id: str,
        values: Mapping[str, ModalValue],
        message: JSON | None = None,
    ) -> JSON:
        """A MODAL_SUBMIT (5) payload: ``user`` filled in and sent the modal ``custom_id``.

        If the bot showed that modal (see :meth:`modal_shown`), the submission mirrors its layout as Discord
        does: a Label (18) gives ``{"type": 18, "component": {...}}``, an action row (1) gives
        ``{"type": 1, "components": [...]}``, a text display (10) just its type and id. ``values`` are keyed
        by a field's ``custom_id`` or its label: a str for a text input (4) or radio group (21), a bool for a
        checkbox (23), a list for selects (3, 5-8: values, or users, roles and channels as for options),
        checkbox groups (22) and file uploads (19: :class:`FakeAttachment`). A text input left out keeps its
        pre-filled ``value`` (the bot's ``default``), other fields left out are sent empty; a required text
        input left empty or an unknown key raises ``ValueError``. ``message`` defaults to
        the message whose component opened the modal. A modal the bot did not show gets one action row per
        value, each holding a text input.
        """
        channel = self._channel(channel_id)
        guild = self.guilds.get(channel.guild_id) if channel.guild_id else None
        resolved: JSON = {}
        ids = itertools.count(1)
        shown = next(
            (
                (self._interactions[iid], body["data"])
                for iid, body in reversed(self._callbacks.items())
                if body.get("type") == MODAL and body["data"].get("custom_id") == custom_id
            ),
            None,
        )
        used: set[str] = set()

        def submitted(component: JSON, label: str | None = None) -> JSON:
            kind = int(component["type"])
            answer: JSON = {"type": kind, "id": component.get("id") or next(ids)}
            if kind == 1:
                return answer | {"components": [submitted(c) for c in component.get("components", [])]}
            if kind == 18:
                answer["component"] = submitted(component["component"], component.get("label"))
                return answer
            if "custom_id" not in component:
                return answer
            field_id = answer["custom_id"] = component["custom_id"]
            keys = [k for k in (field_id, label or component.get("label")) if k is not None and k in values]
            used.update(keys)
            value = values[keys[0]] if keys else None
            what = f"modal {custom_id!r} field {field_id!r}"
            if kind == TEXT_INPUT:
                value = component.get("value") if value is None else value  # a pre-filled value stays as it was
                if not value and component.get("required", True):
                    raise ValueError(f"{what} is required")
                if not isinstance(value, str | None):
                    raise TypeError(f"{what} is a text input: give a str")
                return answer | {"value": value or ""}
            if kind == CHECKBOX:
                return answer | {"value": bool(value)}
            if kind == RADIO_GROUP:
                return answer | {"value": value}
            picks: Sequence[object] = [] if value is None else [value] if isinstance(value, str | bool) else value
            if kind == FILE_UPLOAD:
                found = [self._resolve_value(ATTACHMENT, v, user, channel, guild, resolved, what=what) for v in picks]
                return answer | {"values": found}
            option_type = SELECT_OPTION_TYPES.get(kind, STRING)
            return answer | {
                "values": [
                    self._resolve_value(option_type, v, user, channel, guild, resolved, what=what) for v in picks
                ]
            }

        if shown is None:
            layout: list[JSON] = [{"type": 1, "components": [{"type": TEXT_INPUT, "custom_id": key}]} for key in values]
        else:
            trigger, modal = shown
            layout = modal.get("components", [])
            if message is None and "message" in trigger:
                message = self.messages.get(int(trigger["message"]["id"]), trigger["message"])
        components = [submitted(component) for component in layout]
        unknown = set(values) - used
        if unknown:
            raise ValueError(f"modal {custom_id!r} has no fields {sorted(unknown)}")
        data: JSON = {"custom_id": custom_id, "components": components}
        if resolved:
            data["resolved"] = resolved
        return self.interaction_payload(user, channel_id, type=MODAL_SUBMIT, data=data, message=message)

    async def dispatch(self, event: str, payload: JSON, *, shard_id: int | None = None) -> None:
        """Send a DISPATCH event to the shard that owns the payload's guild (shard 0 for DMs)."""
        sessions = self._sessions_for(event, payload, shard_id)
        if not sessions:
            raise RuntimeError(f"no identified gateway session for this {event}: did the client connect?")
        for session in sessions:
            await session.send(DISPATCH, payload, event)

    def _sessions_for(self, event: str, payload: JSON, shard_id: int | None) -> list[_Session]:
        guild_id = payload.get("guild_id") or (payload.get("id") if event.startswith("GUILD_") else None)

        def owns(session: _Session) -> bool:
            shard, count = session.shard
            if shard_id is not None:
                return shard == shard_id
            return (int(guild_id) >> 22) % count == shard if guild_id else shard == 0

        return [s for s in self._sessions if s.ready and owns(s)]

    async def _echo(self, call: RestCall) -> None:
        """Tell the gateway about the bot's own message changes, as Discord does."""
        if call.route == "create_message":
            event, payload = "MESSAGE_CREATE", dict(call.response)
            guild = self.guilds.get(int(payload.get("guild_id") or 0))
            if guild is not None:
                payload["member"] = self.member_payload(guild, self.bot, with_user=False)
        elif call.route == "edit_message":
            event, payload = "MESSAGE_UPDATE", call.response
        elif call.route == "delete_message":
            channel = self.channels[int(call.params["channel_id"])]
            event, payload = "MESSAGE_DELETE", {"id": call.params["message_id"], "channel_id": str(channel.id)}
            if channel.guild_id is not None:
                payload["guild_id"] = str(channel.guild_id)
        else:
            return
        for session in self._sessions_for(event, payload, None):
            await session.send(DISPATCH, payload, event)

    async def request_reconnect(self) -> None:
        """Ask every connected client to reconnect and RESUME (gateway op 7)."""
        for session in list(self._sessions):
            await session.send(RECONNECT, None)

    # -- inspection -----------------------------------------------------------------------------------

    def calls(self, route: str) -> list[RestCall]:
        """Recorded REST calls of one route, e.g. ``calls("create_message")``."""
        return [call for call in self.requests if call.route == route]

    def sent_messages(self, channel_id: int | None = None) -> list[JSON]:
        """Messages the bot created with POST /channels/{id}/messages, in order, as they are now (after edits).

        Deleted messages are left out (see :attr:`deleted_message_ids`).
        """
        found = [self.messages[mid] for mid in self._sent_ids if mid in self.messages]
        return [m for m in found if channel_id is None or int(m["channel_id"]) == channel_id]

    @property
    def edits(self) -> list[RestCall]:
        """Message edits: channel messages and interaction webhook messages."""
        return [call for call in self.requests if call.route in ("edit_message", "edit_webhook_message")]

    @property
    def typing_calls(self) -> list[RestCall]:
        return self.calls("typing")

    @property
    def interaction_responses(self) -> list[RestCall]:
        """Interaction callbacks; ``call.body`` holds ``type`` and ``data`` (e.g. ``flags`` 64 = ephemeral)."""
        return self.calls("interaction_callback")

    @property
    def followups(self) -> list[RestCall]:
        return self.calls("create_followup")

    @property
    def intents(self) -> int | None:
        """The intents of the last IDENTIFY."""
        return self.identifies[-1].get("intents") if self.identifies else None

    def commands(self, guild_id: int | None = None) -> list[JSON]:
        """Application commands synced globally (``None``) or for a guild."""
        return list(self._commands.get(guild_id, []))

    def original_response(self, interaction: JSON) -> JSON | None:
        """The message answering an interaction, as it is now."""
        message_id = self._originals.get(interaction["token"])
        return self.messages.get(message_id) if message_id is not None else None

    def callback_of(self, interaction: JSON) -> JSON | None:
        """The accepted callback body answering ``interaction`` (``type`` and ``data``), or ``None`` yet."""
        return self._callbacks.get(int(interaction["id"]))

    def _answer(self, interaction: JSON) -> tuple[str, JSON | None]:
        """How ``interaction`` stands: ("answered", message), or a state without a visible answer."""
        callback = self.callback_of(interaction)
        if callback is None:
            return "not answered yet", None
        kind = int(callback["type"])
        if kind == AUTOCOMPLETE_RESULT:
            return "answered with autocomplete choices", None
        if kind == MODAL:
            return "answered with a modal", None
        message_id = self._originals.get(interaction["token"])
        message = self.messages.get(message_id) if message_id is not None else None
        if message is None:
            return "its response message was deleted", None
        if int(message.get("flags") or 0) & LOADING:
            return "deferred, still thinking", message
        return "answered", message

    def response_to(self, interaction: JSON) -> JSON:
        """The message answering ``interaction`` as users see it now, after all edits.

        It is the original response, however it came: a message callback (4), a deferral (5) then an edit
        of ``@original`` or a first follow-up, or for a component an update (7) or deferred update (6) of
        its message. It holds ``content``, ``embeds``, ``components``, ``flags`` and ``attachments`` (read
        their bytes with :meth:`attachment_bytes`). Raises ``AssertionError`` while there is none (see
        :meth:`wait_for_response`), or if a modal or autocomplete choices answered instead.
        """
        state, message = self._answer(interaction)
        if state != "answered" or message is None:
            raise AssertionError(f"interaction {interaction['id']} has no visible response: {state}")
        return message

    def is_ephemeral(self, interaction: JSON) -> bool:
        """Whether the response to ``interaction`` is ephemeral (set by the callback or deferral, as in Discord).

        A deferral counts even before its answer; raises ``AssertionError`` when there is no response message.
        """
        state, message = self._answer(interaction)
        if message is None:
            raise AssertionError(f"interaction {interaction['id']} has no response message: {state}")
        return bool(int(message.get("flags") or 0) & EPHEMERAL)

    def followups_of(self, interaction: JSON) -> list[JSON]:
        """Follow-up messages of ``interaction`` as they are now, in order, deleted ones left out.

        The follow-up that answered a deferral is the original response (:meth:`response_to`), not listed here.
        """
        ids = self._followups.get(interaction["token"], [])
        return [self.messages[i] for i in ids if i in self.messages]

    async def wait_for_response(
        self,
        interaction: JSON,
        predicate: Callable[[JSON], bool] | None = None,
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> JSON:
        """Wait until ``interaction`` has a visible response (a deferral's answer, not its "thinking…")
        for which ``predicate`` holds, if given, and return it (see :meth:`response_to`).

        Raises ``AssertionError`` at once if a modal or autocomplete choices answered, or after ``timeout``.
        """

        def ready() -> bool:
            state, message = self._answer(interaction)
            if state.startswith("answered with"):
                raise AssertionError(f"interaction {interaction['id']} was {state}")
            return state == "answered" and message is not None and (predicate is None or predicate(message))

        try:
            async with asyncio.timeout(timeout), self._changed:
                await self._changed.wait_for(ready)
        except TimeoutError:
            state, message = self._answer(interaction)
            seen = "\n  ".join(f"{c.method} {c.path} -> {c.status}" for c in self.requests) or "(none)"
            raise AssertionError(
                f"no matching response to interaction {interaction['id']} within {timeout}s ({state}; "
                f"now {message!r}); recorded:\n  {seen}"
            ) from None
        return self.response_to(interaction)

    def autocomplete_choices(self, interaction: JSON) -> list[JSON]:
        """The choices (``{"name", "value"}``) the bot offered for an autocomplete interaction.

        Raises ``AssertionError`` if it has not answered yet (see :meth:`wait_for_autocomplete`).
        """
        callback = self.callback_of(interaction)
        if callback is None or int(callback["type"]) != AUTOCOMPLETE_RESULT:
            raise AssertionError(f"interaction {interaction['id']} has no autocomplete answer: {callback!r}")
        return list((callback.get("data") or {}).get("choices") or [])

    async def wait_for_autocomplete(self, interaction: JSON, timeout: float = 5.0) -> list[JSON]:  # noqa: ASYNC109
        """Wait for the bot's autocomplete answer to ``interaction`` and return its choices."""
        await self._wait(lambda: self.callback_of(interaction) is not None, timeout, "answer the autocomplete")
        return self.autocomplete_choices(interaction)

    def modal_shown(self, interaction: JSON) -> JSON | None:
        """The modal the bot answered ``interaction`` with (callback 9), or ``None``.

        The modal's ``custom_id``, ``title`` and ``components`` as sent, plus ``fields``: each input by its
        ``custom_id``, a Label's text copied in as ``label``. Submit it with :meth:`modal_submit_payload`.
        """
        callback = self.callback_of(interaction)
        if callback is None or int(callback["type"]) != MODAL:
            return None
        modal: JSON = dict(callback["data"])
        fields: dict[str, JSON] = {}

        def collect(component: JSON, label: str | None = None) -> None:
            if component.get("type") == 1:
                for child in component.get("components", []):
                    collect(child)
            elif component.get("type") == 18:
                collect(component["component"], component.get("label"))
            elif "custom_id" in component:
                fields[component["custom_id"]] = component | ({"label": label} if label is not None else {})

        for component in modal.get("components", []):
            collect(component)
        modal["fields"] = fields
        return modal

    async def wait_for_modal(self, interaction: JSON, timeout: float = 5.0) -> JSON:  # noqa: ASYNC109
        """Wait until the bot answers ``interaction`` and return the modal it showed (see :meth:`modal_shown`)."""
        await self._wait(lambda: self.callback_of(interaction) is not None, timeout, "answer the interaction")
        modal = self.modal_shown(interaction)
        if modal is None:
            answer = self.callback_of(interaction)
            raise AssertionError(f"interaction {interaction['id']} was answered without a modal: {answer}")
        return modal

    def dm_messages(self, user: FakeUser) -> list[JSON]:
        """Messages the bot sent to ``user``'s DM channel (``POST /channels/{dm}/messages``), as they are now."""
        channel = next((c for c in self.channels.values() if c.recipient == user), None)
        return self.sent_messages(channel.id) if channel is not None else []

    def attachment_bytes(self, attachment: Mapping[str, Any]) -> bytes:
        """The bytes of an attachment on the fake's CDN: ``attachment`` is a message's attachment dict."""
        stored = self._files.get(int(attachment["id"]))
        if stored is None:
            raise AssertionError(f"no attachment {attachment['id']} on the fake's CDN")
        return stored.data

    def fail(
        self,
        route: str,
        status: int,
        *,
        times: int = 1,
        retry_after: float = 0.05,
        message: str = "scripted failure",
        code: int = 0,
    ) -> None:
        """Answer the next ``times`` calls of ``route`` with ``status``.

        A 429 carries ``retry_after`` and a ``Via`` header, so discord.py sleeps and retries; note that
        discord.py also retries 500/502/504 itself, sleeping 1 s, 3 s, ….
        """
        self._failures.append(_ScriptedFailure(route, status, times, retry_after, message, code))

    async def wait_for_request(self, predicate: Callable[[RestCall], bool], timeout: float = 5.0) -> RestCall:  # noqa: ASYNC109
        """The earliest call matching ``predicate`` that no earlier wait returned, waiting until one is answered.

        The client may still be reading the answer when this returns: to act on its result (say, press a
        button on a message just sent), wait for something the client does afterwards.
        """

        def find() -> RestCall | None:
            for index, call in enumerate(self.requests):
                if index not in self._claimed and predicate(call):
                    self._claimed.add(index)
                    return call
            return None

        try:
            async with asyncio.timeout(timeout), self._changed:
                while (call := find()) is None:
                    await self._changed.wait()
                return call
        except TimeoutError:
            seen = "\n  ".join(f"{c.method} {c.path} -> {c.status}" for c in self.requests) or "(none)"
            raise AssertionError(f"no matching Discord request within {timeout}s; recorded:\n  {seen}") from None

    async def wait_for_message(self, channel_id: int | None = None, timeout: float = 5.0) -> JSON:  # noqa: ASYNC109
        """The next message the bot creates (in ``channel_id``, if given), as answered to the client."""
        call = await self.wait_for_request(
            lambda c: c.route == "create_message" and (channel_id is None or c.channel_id == channel_id), timeout
        )
        assert isinstance(call.response, dict)
        return call.response

    async def wait_identified(self, timeout: float = 5.0, *, shards: int = 1) -> None:  # noqa: ASYNC109
        """Wait until ``shards`` gateway sessions have identified and received READY and their guilds.

        discord.py fires ``on_ready`` a little later (after ``guild_ready_timeout``): use
        ``client.wait_until_ready()`` for that.
        """
        await self._wait(lambda: sum(s.ready for s in self._sessions) >= shards, timeout, "identify")

    def hold_ready(self) -> asyncio.Event:
        """Answer IDENTIFY with READY only once the returned event is set (a gateway slow to let the bot in)."""
        self._ready_gate.clear()
        return self._ready_gate

    async def wait_identify_sent(self, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        """Wait until a client has sent IDENTIFY (READY may be held back: see :meth:`hold_ready`)."""
        await self._wait(lambda: bool(self.identifies), timeout, "send IDENTIFY")

    async def wait_resumed(self, timeout: float = 5.0, *, count: int = 1) -> None:  # noqa: ASYNC109
        """Wait until clients have RESUMEd ``count`` sessions in all (see :meth:`request_reconnect`)."""
        await self._wait(lambda: len(self.resumes) >= count, timeout, "resume")

    async def _wait(self, condition: Callable[[], bool], seconds: float, what: str) -> None:
        try:
            async with asyncio.timeout(seconds), self._changed:
                await self._changed.wait_for(condition)
        except TimeoutError:
            raise AssertionError(f"the client did not {what} within {seconds}s") from None

    # -- gateway --------------------------------------------------------------------------------------

    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        if request.query.get("encoding", "json") != "json":
            await ws.close(code=4002, message=b"only encoding=json is supported")
            return ws
        # Frames go out as plain JSON text: discord.py only inflates binary frames, whatever `compress` says.
        session = _Session(ws)
        self._sessions.append(session)
        try:
            await session.send(HELLO, {"heartbeat_interval": self.heartbeat_interval_ms})
            async for frame in ws:
                if frame.type is web.WSMsgType.TEXT:
                    await self._on_frame(session, json.loads(frame.data))
        finally:
            self._sessions.remove(session)
        return ws

    async def _on_frame(self, session: _Session, frame: JSON) -> None:
        self.gateway_received.append(frame)
        op, data = frame.get("op"), frame.get("d") or {}
        if op == HEARTBEAT:
            await session.send(ACK, None)
        elif op == IDENTIFY:
            self.identifies.append(data)
            shard = data.get("shard") or (0, 1)
            session.shard = (int(shard[0]), int(shard[1]))
            self._known_sessions[session.session_id] = session.shard
            await self._notify()
            await self._ready_gate.wait()
            await self._ready(session)
        elif op == RESUME:
            if data.get("session_id") not in self._known_sessions:
                await session.send(INVALID_SESSION, False)
                return
            self.resumes.append(data)
            session.session_id = data["session_id"]
            session.shard = self._known_sessions[session.session_id]
            session.sequence = int(data.get("seq") or 0)
            session.ready = True
            await session.send(DISPATCH, {}, "RESUMED")
            await self._notify()
        elif op == REQUEST_MEMBERS:
            guild = self.guilds[int(data["guild_id"])]
            chunk = {
                "guild_id": str(guild.id),
                "members": [self.member_payload(guild, user) for user in guild.members],
                "chunk_index": 0,
                "chunk_count": 1,
                "not_found": [],
                "nonce": data.get("nonce"),
            }
            await session.send(DISPATCH, chunk, "GUILD_MEMBERS_CHUNK")

    async def _ready(self, session: _Session) -> None:
        shard_id, count = session.shard
        mine = [g for g in self.guilds.values() if (g.id >> 22) % count == shard_id]
        ready = {
            "v": 10,
            "user": self.bot.payload() | {"verified": True, "mfa_enabled": False, "flags": 0, "email": None},
            "guilds": [{"id": str(g.id), "unavailable": True} for g in mine],
            "session_id": session.session_id,
            "resume_gateway_url": self.gateway_url,
            "shard": [shard_id, count],
            "application": {"id": str(self.application_id), "flags": 0},
            "private_channels": [],
            "relationships": [],
            "presences": [],
            "geo_ordered_rtc_regions": [],
        }
        await session.send(DISPATCH, ready, "READY")
        for guild in mine:
            await session.send(DISPATCH, self.guild_payload(guild), "GUILD_CREATE")
        session.ready = True
        await self._notify()

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    # -- REST plumbing --------------------------------------------------------------------------------

    def _endpoint(self, route: str, handler: Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def endpoint(request: web.Request) -> web.StreamResponse:
            call = await self._record(request, route)
            failure = next((f for f in self._failures if f.route == route and f.times > 0), None)
            headers: dict[str, str] = {}
            if failure is not None:
                failure.times -= 1
                call.status = failure.status
                call.response = {"message": failure.message, "code": failure.code}
                if failure.status == 429:
                    call.response |= {"retry_after": failure.retry_after, "global": False}
                    headers = {"Via": "1.1 google", "Retry-After": f"{failure.retry_after:g}"}
            else:
                try:
                    if any(len(file.data) > ATTACHMENT_SIZE_LIMIT for file in call.files):
                        raise ApiError(413, 40005, "Request entity too large")
                    call.response = handler(call)
                    call.status = 200 if call.response is not None else 204
                except ApiError as error:
                    call.status, call.response = error.status, {"message": error.message, "code": error.code}
            if route == "unknown":
                self.unexpected.append(call)
            elif self.echo_bot_messages and call.status in (200, 204):
                await self._echo(call)
            answer = (
                web.Response(status=204) if call.status == 204 else _json_response(call.response, call.status, headers)
            )
            await answer.prepare(request)
            await answer.write_eof()  # answered before waiters hear of the call
            self.requests.append(call)
            await self._notify()
            return answer

        return endpoint

    async def _record(self, request: web.Request, route: str) -> RestCall:
        body: Any = None
        files: list[UploadedFile] = []
        if request.content_type.startswith("multipart/"):
            form = await request.post()
            for name, value in form.items():
                if isinstance(value, web.FileField):
                    files.append(UploadedFile(name, value.filename, value.content_type, value.file.read()))
                elif name == "payload_json":
                    body = json.loads(str(value))
        else:
            raw = await request.read()
            if raw:
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = raw.decode(errors="replace")
        path = request.path.removeprefix(API_PREFIX)
        return RestCall(
            request.method,
            path,
            route,
            dict(request.match_info),
            dict(request.query),
            body,
            files,
            CIMultiDict(request.headers),
        )

    def _routes(self) -> list[tuple[str, str, str, Handler]]:
        message = "/channels/{channel_id}/messages/{message_id}"
        webhook = "/webhooks/{application_id}/{token}"
        commands = "/applications/{application_id}/commands"
        guild_commands = "/applications/{application_id}/guilds/{guild_id}/commands"
        return [
            ("GET", "/gateway", "get_gateway", lambda call: {"url": self.gateway_url}),
            ("GET", "/gateway/bot", "get_bot_gateway", self._bot_gateway),
            ("GET", "/users/@me", "get_me", lambda call: self.bot.payload() | {"verified": True, "flags": 0}),
            ("GET", "/oauth2/applications/@me", "application_info", self._application),
            ("GET", "/applications/@me", "application_info", self._application),
            ("POST", "/users/@me/channels", "create_dm", self._create_dm),
            ("GET", "/users/{user_id}", "get_user", self._get_user),
            ("GET", "/guilds/{guild_id}/members/{user_id}", "get_member", self._get_member),
            ("GET", "/channels/{channel_id}", "get_channel", lambda call: self._channel(call.channel_id).payload()),
            ("POST", "/channels/{channel_id}/typing", "typing", self._typing),
            ("GET", "/channels/{channel_id}/messages", "history", self._history),
            ("POST", "/channels/{channel_id}/messages", "create_message", self._create_message),
            ("GET", message, "get_message", lambda call: self._stored(call.params["message_id"])),
            ("PATCH", message, "edit_message", self._edit_message),
            ("DELETE", message, "delete_message", self._delete_message),
            ("PUT", message + "/reactions/{emoji}/@me", "add_reaction", lambda call: None),
            ("DELETE", message + "/reactions/{emoji}/@me", "remove_reaction", lambda call: None),
            ("POST", "/interactions/{interaction_id}/{token}/callback", "interaction_callback", self._callback),
            ("POST", webhook, "create_followup", self._create_followup),
            ("GET", webhook + "/messages/{message_id}", "get_webhook_message", self._webhook_message),
            ("PATCH", webhook + "/messages/{message_id}", "edit_webhook_message", self._edit_webhook_message),
            ("DELETE", webhook + "/messages/{message_id}", "delete_webhook_message", self._delete_webhook_message),
            ("GET", commands, "get_commands", lambda call: self.commands(None)),
            ("PUT", commands, "sync_commands", self._sync_commands),
            ("GET", guild_commands, "get_guild_commands", lambda call: self.commands(int(call.params["guild_id"]))),
            ("PUT", guild_commands, "sync_guild_commands", self._sync_commands),
        ]

    def _unknown(self, call: RestCall) -> Any:
        raise ApiError(404, 0, f"404: Not Found ({call.method} {call.path})")

    async def _attachment(self, request: web.Request) -> web.Response:
        stored = self._files.get(int(request.match_info["attachment_id"]))
        if stored is None:
            raise web.HTTPNotFound()
        self.downloads.append(int(request.match_info["attachment_id"]))
        return web.Response(body=stored.data, content_type=stored.content_type)

    # -- REST handlers --------------------------------------------------------------------------------

    def _bot_gateway(self, call: RestCall) -> JSON:
        limit = {"total": 1000, "remaining": 999, "reset_after": 0, "max_concurrency": 1}
        return {"url": self.gateway_url, "shards": self.shard_count, "session_start_limit": limit}

    def _application(self, call: RestCall) -> JSON:
        return {
            "id": str(self.application_id),
            "name": self.bot.username,
            "icon": None,
            "description": "",
            "rpc_origins": [],
            "bot_public": True,
            "bot_require_code_grant": False,
            "bot": self.bot.payload(),
            "owner": self.owner.payload(),
            "team": None,
            "verify_key": "0" * 64,
            "flags": 0,
            "interactions_endpoint_url": None,
            "redirect_uris": [],
            "tags": [],
            "approximate_guild_count": len(self.guilds),
        }

    def _get_user(self, call: RestCall) -> JSON:
        user = self.users.get(int(call.params["user_id"]))
        if user is None:
            raise ApiError(404, 10013, "Unknown User")
        return user.payload()

    def _get_member(self, call: RestCall) -> JSON:
        guild = self.guilds.get(int(call.params["guild_id"]))
        if guild is None:
            raise ApiError(404, 10004, "Unknown Guild")
        user = next((u for u in guild.members if u.id == int(call.params["user_id"])), None)
        if user is None:
            raise ApiError(404, 10007, "Unknown Member")
        return self.member_payload(guild, user)

    def _create_dm(self, call: RestCall) -> JSON:
        user = self.users.get(int(call.body["recipient_id"]))
        if user is None:
            raise ApiError(400, 50007, "Cannot send messages to this user")
        return self.channels[self.dm_channel(user)].payload()

    def _typing(self, call: RestCall) -> None:
        self._channel(call.channel_id)

    def _history(self, call: RestCall) -> list[JSON]:
        channel_id = self._channel(call.channel_id).id
        limit = int(call.query.get("limit", 50))
        before, after = int(call.query.get("before", 1 << 63)), int(call.query.get("after", 0))
        found = [m for mid, m in self.messages.items() if int(m["channel_id"]) == channel_id and after < mid < before]
        found.sort(key=lambda m: int(m["id"]), reverse=True)
        return found[:limit] if "after" not in call.query else found[-limit:]

    def _create_message(self, call: RestCall) -> JSON:
        channel = self._channel(call.channel_id)
        if channel.recipient is not None and channel.recipient.id in self._closed_dms:
            raise ApiError(403, 50007, "Cannot send messages to this user")
        message = self._message(channel.id, self.bot, call.body or {}, call.files)
        self._sent_ids.append(int(message["id"]))
        return message

    def _edit_message(self, call: RestCall) -> JSON:
        return self._edit(self._stored(call.params["message_id"]), call.body or {}, call.files)

    def _delete_message(self, call: RestCall) -> None:
        self._delete(self._stored(call.params["message_id"]))

    def _callback(self, call: RestCall) -> JSON | None:
        interaction = self._interactions.get(int(call.params["interaction_id"]))
        if interaction is None or interaction["token"] != call.params["token"]:
            raise ApiError(404, 10062, "Unknown interaction")
        interaction_id = int(interaction["id"])
        if interaction_id in self._acknowledged:
            raise ApiError(400, 40060, "Interaction has already been acknowledged.")
        kind, data = int(call.body["type"]), call.body.get("data") or {}
        updates = kind in (DEFERRED_UPDATE_MESSAGE, UPDATE_MESSAGE)
        allowed = ALLOWED_CALLBACKS.get(int(interaction["type"]), set())
        if kind not in allowed or (updates and "message" not in interaction):
            raise ApiError(
                400, 50035, f"Invalid Form Body: no callback {kind} to interaction type {interaction['type']}"
            )
        if updates:
            self._stored(interaction["message"]["id"])  # Unknown Message if it was deleted
        self._acknowledged.add(interaction_id)
        self._callbacks[interaction_id] = call.body
        message: JSON | None = None
        if kind in (CHANNEL_MESSAGE, DEFERRED_CHANNEL_MESSAGE):
            flags = int(data.get("flags") or 0) | (LOADING if kind == DEFERRED_CHANNEL_MESSAGE else 0)
            message = self._message(int(interaction["channel_id"]), self.bot, data | {"flags": flags}, call.files)
            message["interaction_metadata"] = {
                "id": interaction["id"],
                "type": interaction["type"],
                "user": (interaction.get("member") or interaction)["user"],
                "authorizing_integration_owners": interaction["authorizing_integration_owners"],
            }
            self._originals[interaction["token"]] = int(message["id"])
        elif kind == UPDATE_MESSAGE:
            message = self._edit(self._stored(interaction["message"]["id"]), data, call.files)
            self._originals[interaction["token"]] = int(message["id"])
        elif kind == DEFERRED_UPDATE_MESSAGE:  # @original is now the message the component is on
            self._originals[interaction["token"]] = int(interaction["message"]["id"])
        if call.query.get("with_response") not in ("1", "true", "True"):
            return None
        answer: JSON = {
            "interaction": {
                "id": interaction["id"],
                "type": interaction["type"],
                "response_message_loading": kind == DEFERRED_CHANNEL_MESSAGE,
                "response_message_ephemeral": bool(int((message or data).get("flags") or 0) & EPHEMERAL),
            }
        }
        if message is not None:
            answer["interaction"]["response_message_id"] = message["id"]
            answer["resource"] = {"type": kind, "message": message}
        return answer

    def _interaction_for(self, call: RestCall) -> JSON:
        interaction = next((i for i in self._interactions.values() if i["token"] == call.params["token"]), None)
        if interaction is None or int(call.params["application_id"]) != self.application_id:
            raise ApiError(404, 10015, "Unknown Webhook")
        return interaction

    def _webhook_target(self, call: RestCall) -> JSON:
        interaction = self._interaction_for(call)
        message_id = call.params["message_id"]
        if message_id == "@original":
            original = self._originals.get(interaction["token"])
            if original is None:
                raise ApiError(404, 10008, "Unknown Message")
            message_id = str(original)
        return self._stored(message_id)

    def _create_followup(self, call: RestCall) -> JSON:
        interaction = self._interaction_for(call)
        if int(interaction["id"]) not in self._acknowledged:
            raise ApiError(404, 10015, "Unknown Webhook")
        original = self.messages.get(self._originals.get(interaction["token"], 0))
        if original is not None and int(original["flags"]) & LOADING:  # the first follow-up answers a deferral
            message = self._edit(original, call.body or {}, call.files)  # ...keeping the deferral's ephemerality
            message["flags"] = int(message["flags"]) & ~LOADING
            return message
        message = self._message(int(interaction["channel_id"]), self.bot, call.body or {}, call.files)
        self._followups.setdefault(interaction["token"], []).append(int(message["id"]))
        return message

    def _webhook_message(self, call: RestCall) -> JSON:
        return self._webhook_target(call)

    def _edit_webhook_message(self, call: RestCall) -> JSON:
        message = self._edit(self._webhook_target(call), call.body or {}, call.files)
        message["flags"] = int(message.get("flags") or 0) & ~LOADING
        return message

    def _delete_webhook_message(self, call: RestCall) -> None:
        self._delete(self._webhook_target(call))

    def _sync_commands(self, call: RestCall) -> list[JSON]:
        guild_id = int(call.params["guild_id"]) if "guild_id" in call.params else None
        if int(call.params["application_id"]) != self.application_id:
            raise ApiError(403, 50001, "Missing Access")
        previous = {(c["name"], c.get("type", 1)): c["id"] for c in self._commands.get(guild_id, [])}
        synced = []
        for command in call.body or []:
            key = (command["name"], command.get("type", 1))
            defaults: JSON = {"type": 1, "description": "", "options": [], "default_member_permissions": None}
            extra: JSON = {"id": previous.get(key) or str(self.snowflake()), "application_id": str(self.application_id)}
            extra["version"] = str(self.snowflake())
            if guild_id is not None:
                extra["guild_id"] = str(guild_id)
            entry = defaults | command | extra
            if entry["default_member_permissions"] is not None:  # discord.py sends an int, Discord answers a str
                entry["default_member_permissions"] = str(entry["default_member_permissions"])
            synced.append(entry)
        self._commands[guild_id] = synced
        return synced

    # -- messages -------------------------------------------------------------------------------------

    def _channel(self, channel_id: int | None) -> FakeChannel:
        channel = self.channels.get(channel_id or 0)
        if channel is None:
            raise ApiError(404, 10003, "Unknown Channel")
        return channel

    def _stored(self, message_id: str | int) -> JSON:
        message = self.messages.get(int(message_id))
        if message is None:
            raise ApiError(404, 10008, "Unknown Message")
        return message

    def _mentioned(self, content: str) -> list[FakeUser]:
        ids = (int(found) for found in re.findall(r"<@!?(\d+)>", content))
        return [self.users[i] for i in ids if i in self.users]

    def _store_attachment(self, channel_id: int, file: UploadedFile) -> JSON:
        attachment_id = self.snowflake()
        self._files[attachment_id] = file
        url = f"http://127.0.0.1:{self.port}/attachments/{channel_id}/{attachment_id}/{quote(file.filename)}"
        return {
            "id": str(attachment_id),
            "filename": file.filename,
            "size": len(file.data),
            "url": url,
            "proxy_url": url,
            "content_type": file.content_type,
        }

    def _refer(self, message: JSON, referenced: JSON | None, reference: JSON | None = None) -> None:
        reference = reference or {"message_id": referenced["id"] if referenced else None}
        reference = {"channel_id": message["channel_id"], **reference, "type": 0}
        reference = {k: str(v) if k.endswith("_id") and v is not None else v for k, v in reference.items()}
        if "guild_id" in message:
            reference.setdefault("guild_id", message["guild_id"])
        message["message_reference"] = reference
        message["referenced_message"] = referenced
        message["type"] = discord.MessageType.reply.value

    def _message(self, channel_id: int, author: FakeUser, body: JSON, files: Sequence[UploadedFile]) -> JSON:
        """A new stored message from ``author`` built from a create-message body (JSON or ``payload_json``)."""
        content = body.get("content") or ""
        channel = self._channel(channel_id)
        message: JSON = {
            "id": str(self.snowflake()),
            "channel_id": str(channel_id),
            "author": author.payload(),
            "content": content,
            "timestamp": _now(),
            "edited_timestamp": None,
            "tts": bool(body.get("tts")),
            "mention_everyone": False,
            "mentions": [u.payload() for u in self._mentioned(content)],
            "mention_roles": [],
            "attachments": [self._store_attachment(channel_id, f) for f in files],
            "embeds": body.get("embeds") or [],
            "components": body.get("components") or [],
            "pinned": False,
            "type": 0,
            "flags": int(body.get("flags") or 0),
        }
        if channel.guild_id is not None:
            message["guild_id"] = str(channel.guild_id)
        if "allowed_mentions" in body:
            message["allowed_mentions"] = body["allowed_mentions"]  # not in Discord's answer: kept for assertions
        if body.get("message_reference"):
            reference = body["message_reference"]
            self._refer(message, self.messages.get(int(reference["message_id"])), reference)
        self.messages[int(message["id"])] = message
        return message

    def _edit(self, message: JSON, body: JSON, files: Sequence[UploadedFile]) -> JSON:
        for key in ("content", "embeds", "components", "allowed_mentions"):
            if key in body:
                message[key] = body[key] if body[key] is not None else ("" if key == "content" else [])
        if "flags" in body:  # an edit cannot make a message ephemeral or not, nor stop a deferral's loading
            fixed = int(message.get("flags") or 0) & (EPHEMERAL | LOADING)
            message["flags"] = (int(body["flags"] or 0) & ~(EPHEMERAL | LOADING)) | fixed
        if "content" in body:
            message["mentions"] = [u.payload() for u in self._mentioned(message["content"])]
        if "attachments" in body:
            kept = {str(a.get("id")) for a in body["attachments"] or []}
            message["attachments"] = [a for a in message["attachments"] if a["id"] in kept]
        message["attachments"] = message["attachments"] + [
            self._store_attachment(int(message["channel_id"]), f) for f in files
        ]
        message["edited_timestamp"] = _now()
        return message

    def _delete(self, message: JSON) -> None:
        del self.messages[int(message["id"])]
        self.deleted_message_ids.append(int(message["id"]))

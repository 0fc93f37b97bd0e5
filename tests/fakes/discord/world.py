"""The fake Discord's world: users, guilds with their channels, roles and members, DM channels, and every
message and attachment, with the lookups that fail as Discord's API does (:class:`ApiError`).

Nothing here speaks a protocol: :mod:`.gateway`, :mod:`.rest` and :mod:`.interactions` build on :class:`World`.
"""

from __future__ import annotations

import mimetypes
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import discord

from tests.fakes.discord.limits import message_problems
from tests.fakes.discord.payloads import JSON, guild_payload, member_payload, now

DISCORD_EPOCH_MS = 1_420_070_400_000
ATTACHMENT_SIZE_LIMIT = 10 * 1024 * 1024  # a file a bot uploads where no boosts raise it (DMs, most servers)

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
MANAGE_WEBHOOKS = discord.Permissions(manage_webhooks=True).value
# Message flags.
EPHEMERAL, LOADING = 1 << 6, 1 << 7


def _content_type(filename: str) -> str:
    return mimetypes.guess_type(filename)[0] or "application/octet-stream"


class ApiError(Exception):
    """Answer the current REST call with a Discord-style error (raised by lookups and handlers alike)."""

    def __init__(self, status: int, code: int, message: str, errors: JSON | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.errors = errors  # Discord's per-field detail of an invalid body

    def body(self) -> JSON:
        return {"message": self.message, "code": self.code, **({"errors": self.errors} if self.errors else {})}


def refuse_invalid(problems: Sequence[str]) -> None:
    """Refuse the current call as Discord refuses a body over its limits (see :mod:`.limits`)."""
    if problems:
        raise ApiError(400, 50035, "Invalid Form Body: " + "; ".join(problems))


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
    threads: dict[str, int] = field(default_factory=dict)  # threads by name (see World.add_thread, archive_thread)

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
        return ALL_PERMISSIONS if value & ADMINISTRATOR else value


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


class World:
    """Who and what exists, and every message: the state the gateway, REST and interactions read and change."""

    def __init__(self, bot_name: str = "Hearth", *, shard_count: int = 1) -> None:
        """``shard_count``: guilds are spread round-robin over that many shards (see :meth:`add_guild`)."""
        self.shard_count = shard_count
        self._last_snowflake = 0
        self._port: int | None = None  # where the world is served, once the server runs
        self.users: dict[int, FakeUser] = {}
        self.guilds: dict[int, FakeGuild] = {}
        self.channels: dict[int, FakeChannel] = {}
        self.messages: dict[int, JSON] = {}
        self.deleted_message_ids: list[int] = []
        self._files: dict[int, UploadedFile] = {}
        self._closed_dms: set[int] = set()
        self.bot = self.add_user(bot_name, bot=True)
        self.application_id = self.bot.id
        self.owner = self.add_user("owner")

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("FakeDiscord is not running: use `async with FakeDiscord() as fd:`")
        return self._port

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
            self.add_channel(guild, str(extra.pop("name")), **extra)
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

    def add_channel(self, guild: FakeGuild, name: str, **extra: Any) -> int:
        """A text channel ``name`` (``extra`` merged into its payload, e.g. ``type=2`` for voice) made in ``guild``, as
        an admin makes one; returns its id. One made after the client identified needs
        ``await fd.dispatch("CHANNEL_CREATE", fd.channels[channel_id].payload())``: until then the client does not
        know it, while Discord already offers it in command options."""
        channel = FakeChannel(
            self.snowflake(),
            type=int(extra.pop("type", 0)),
            name=name,
            guild_id=guild.id,
            position=len(guild.channels),
            extra=extra,
        )
        self.channels[channel.id] = channel
        guild.channels[name] = channel.id
        return channel.id

    def delete_role(self, guild: FakeGuild, role_id: int) -> JSON:
        """Delete one of ``guild``'s roles, as an admin does in the server's settings: its members no longer hold it,
        and it is no longer offered or resolved in command options. Returns the GUILD_ROLE_DELETE payload Discord
        sends, for the test to dispatch (``await fd.dispatch("GUILD_ROLE_DELETE", payload)``)."""
        guild.roles = [role for role in guild.roles if int(role["id"]) != role_id]
        for held in guild.member_roles.values():
            if role_id in held:
                held.remove(role_id)
        return {"guild_id": str(guild.id), "role_id": str(role_id)}

    def add_bot_role(self, guild: FakeGuild) -> int:
        """The role Discord makes for the bot when it joins with permissions: named after it, managed, tagged
        with its id, held by the bot alone. Discord's mention list offers it next to the bot. Returns its id."""
        role_id = self.add_role(guild, self.bot.username, members=[self.bot])
        role = next(r for r in guild.roles if int(r["id"]) == role_id)
        role.update(managed=True, tags={"bot_id": str(self.bot.id)})
        return role_id

    def set_everyone_permissions(self, guild: FakeGuild, permissions: int) -> JSON:
        """Give ``guild``'s @everyone role ``permissions``, as a moderator does in the server's settings; Discord
        judges every request by them at once. Returns the role's payload: the client hears of the change only once
        the test dispatches it (``await fd.dispatch("GUILD_ROLE_UPDATE", {"guild_id": ..., "role": role})``), and
        until then its cached permissions are out of date, as a bot's are for a moment on Discord."""
        role = next(r for r in guild.roles if int(r["id"]) == guild.id)
        role["permissions"] = str(permissions)
        return role

    def add_thread(self, guild: FakeGuild, parent: str, name: str) -> int:
        """A public thread ``name`` in ``guild``'s channel ``parent``; returns its id. It is among the guild's active
        threads in GUILD_CREATE; one added after the client identified needs
        ``await fd.dispatch("THREAD_CREATE", fd.channels[thread_id].payload() | {"newly_created": True})``."""
        metadata = {"archived": False, "auto_archive_duration": 1440, "archive_timestamp": now(), "locked": False}
        thread = FakeChannel(
            self.snowflake(),
            type=discord.ChannelType.public_thread.value,
            name=name,
            guild_id=guild.id,
            extra={
                "parent_id": str(guild.channel(parent)),
                "owner_id": str(self.owner.id),
                "message_count": 0,
                "member_count": 1,
                "thread_metadata": metadata,
            },
        )
        self.channels[thread.id] = thread
        guild.threads[name] = thread.id
        return thread.id

    def archive_thread(self, thread_id: int, archived: bool = True) -> None:
        """Archive a thread, as a moderator does (or Discord, once it has been quiet for its auto-archive duration):
        it is no longer among the guild's active threads in GUILD_CREATE, and GET /channels/{id} answers it with
        ``archived`` set. ``archived=False`` reopens it; a message sent in it reopens it too, as on Discord."""
        metadata = self._channel(thread_id).extra["thread_metadata"]
        metadata.update(archived=archived, archive_timestamp=now())

    def lock_thread(self, thread_id: int, locked: bool = True) -> None:
        """Lock a thread, as a moderator does: only members who may manage threads may post in it or reopen it
        then (a message no longer reopens it once archived). ``locked=False`` unlocks it."""
        self._channel(thread_id).extra["thread_metadata"]["locked"] = locked

    def delete_channel(self, channel_id: int) -> None:
        """Delete a guild's channel or thread, as an admin does: its messages go with it, and Discord answers 404
        (Unknown Channel, code 10003) for it from then on. One deleted while the client is connected needs
        ``await fd.dispatch("CHANNEL_DELETE", payload)`` (the channel's payload, taken before)."""
        channel = self._channel(channel_id)
        del self.channels[channel_id]
        guild = self.guilds.get(channel.guild_id or 0)
        if guild is not None:
            guild.channels = {name: cid for name, cid in guild.channels.items() if cid != channel_id}
            guild.threads = {name: cid for name, cid in guild.threads.items() if cid != channel_id}
        for message_id in [mid for mid, m in self.messages.items() if int(m["channel_id"]) == channel_id]:
            del self.messages[message_id]

    def remove_bot(self, guild: FakeGuild, removed: bool = True) -> None:
        """Take the bot out of ``guild`` (kicked, or the server's owner removed the integration): the guild is no
        longer in READY, and Discord refuses its channels to the bot (403, Missing Access, code 50001).
        ``removed=False`` adds it back (invited again). One removed while the client is connected needs
        ``await fd.dispatch("GUILD_DELETE", {"id": str(guild.id)})``."""
        guild.members = [user for user in guild.members if user.id != self.bot.id]
        if not removed:
            guild.members.insert(0, self.bot)

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
        """A member of ``guild`` as Discord sends one (``with_user=False``: without its ``user``, as in messages)."""
        return member_payload(guild, user, with_user=with_user)

    def guild_payload(self, guild: FakeGuild) -> JSON:
        """A GUILD_CREATE payload for ``guild``."""
        return guild_payload(guild, self.channels)

    def message_payload(
        self,
        channel_id: int,
        author: FakeUser,
        content: str,
        *,
        mentions: Iterable[FakeUser] = (),
        referenced_message: JSON | None = None,
        attachments: Sequence[tuple[str, bytes] | FakeAttachment] = (),
        stickers: Sequence[str] = (),
        forwarded: JSON | None = None,
        poll: tuple[str, Sequence[str]] | None = None,
        embeds: Sequence[JSON] = (),
        guild_id: int | None = None,
    ) -> JSON:
        """A MESSAGE_CREATE payload from ``author`` (stored, so replies can reference it).

        ``guild_id`` defaults to the channel's guild; a DM channel (see :meth:`dm_channel`) has none.
        Users mentioned in ``content`` as ``<@id>`` are added to ``mentions``. ``stickers``: the names of the
        stickers sent with it (a message may be a sticker alone, with empty ``content``). ``forwarded``: a stored
        message this one forwards (Discord's "Forward": empty ``content``, a FORWARD reference to the original and a
        snapshot of it, with no ``referenced_message``). ``poll``: a question and its answers, sent as a poll (a
        message of its own, with empty ``content``), open for a day, no votes yet. ``embeds``: embed objects as
        Discord sends them (a bot's or a webhook's message may be embeds alone, with empty ``content``).
        """
        guild_id = guild_id or self._channel(channel_id).guild_id
        guild = self.guilds.get(guild_id) if guild_id else None
        message = self._message(channel_id, author, {"content": content}, [], from_user=True)
        files = [file if isinstance(file, FakeAttachment) else FakeAttachment(*file) for file in attachments]
        message["embeds"] = [{"type": "rich", **embed} for embed in embeds]
        message["attachments"] = [
            self._store_attachment(channel_id, file.uploaded(f"files[{i}]"))
            | ({"size": file.claimed_size} if file.claimed_size is not None else {})
            for i, file in enumerate(files)
        ]
        if stickers:  # as Discord sends them: id, name and format (1: PNG)
            message["sticker_items"] = [{"id": str(self.snowflake()), "name": n, "format_type": 1} for n in stickers]
        if poll is not None:  # as Discord sends one: media objects, answers numbered from 1, results not final
            question, answers = poll
            message["poll"] = {
                "question": {"text": question},
                "answers": [{"answer_id": i, "poll_media": {"text": a}} for i, a in enumerate(answers, start=1)],
                "expiry": (datetime.now(UTC) + timedelta(hours=24)).isoformat(),
                "allow_multiselect": False,
                "layout_type": 1,
                "results": {"is_finalized": False, "answer_counts": []},
            }
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
        if forwarded is not None:
            reference = {"type": 1, "message_id": forwarded["id"], "channel_id": forwarded["channel_id"]}
            if "guild_id" in forwarded:
                reference["guild_id"] = forwarded["guild_id"]
            message["message_reference"] = reference
            kept = ("type", "content", "embeds", "attachments", "timestamp", "edited_timestamp", "flags", "mentions")
            snapshot = {key: forwarded[key] for key in kept} | {"mention_roles": forwarded.get("mention_roles", [])}
            if "sticker_items" in forwarded:
                snapshot["sticker_items"] = forwarded["sticker_items"]
            message["message_snapshots"] = [{"message": snapshot}]
            message["flags"] = int(message["flags"]) | (1 << 14)  # HAS_SNAPSHOT: a forward
        return message

    def attachment_bytes(self, attachment: Mapping[str, Any]) -> bytes:
        """The bytes of an attachment on the fake's CDN: ``attachment`` is a message's attachment dict."""
        stored = self._files.get(int(attachment["id"]))
        if stored is None:
            raise AssertionError(f"no attachment {attachment['id']} on the fake's CDN")
        return stored.data

    # -- messages and lookups -------------------------------------------------------------------------

    def _channel(self, channel_id: int | None) -> FakeChannel:
        channel = self.channels.get(channel_id or 0)
        if channel is None:
            raise ApiError(404, 10003, "Unknown Channel")
        return channel

    def _refuse_outside(self, channel_id: int | None) -> None:
        """Refuse (403, Missing Access, code 50001) a call about a channel of a server the bot is not in (see
        :meth:`remove_bot`), as Discord does."""
        channel = self.channels.get(channel_id or 0)
        guild = self.guilds.get(channel.guild_id or 0) if channel is not None else None
        if guild is not None and all(user.id != self.bot.id for user in guild.members):
            raise ApiError(403, 50001, "Missing Access")

    def _stored(self, message_id: str | int) -> JSON:
        message = self.messages.get(int(message_id))
        if message is None:
            raise ApiError(404, 10008, "Unknown Message")
        return message

    def _mentioned(self, content: str) -> list[FakeUser]:
        ids = (int(found) for found in re.findall(r"<@!?(\d+)>", content))
        return [self.users[i] for i in ids if i in self.users]

    def _mentioned_roles(self, content: str, guild_id: int | None) -> list[str]:
        guild = self.guilds.get(guild_id or 0)
        if guild is None:
            return []
        known = {role["id"] for role in guild.roles}
        return [found for found in re.findall(r"<@&(\d+)>", content) if found in known]

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

    def _message(
        self, channel_id: int, author: FakeUser, body: JSON, files: Sequence[UploadedFile], *, from_user: bool = False
    ) -> JSON:
        """A new stored message from ``author`` built from a create-message body (JSON or ``payload_json``),
        refused if over Discord's limits for what a bot sends (a user's message, ``from_user``, is not checked)."""
        if not from_user:
            refuse_invalid(message_problems(body))
        content = body.get("content") or ""
        channel = self._channel(channel_id)
        message_id = self.snowflake()
        message: JSON = {
            "id": str(message_id),
            "channel_id": str(channel_id),
            "author": author.payload(),
            "content": content,
            "timestamp": discord.utils.snowflake_time(message_id).isoformat(),  # the id's time, as Discord's is
            "edited_timestamp": None,
            "tts": bool(body.get("tts")),
            "mention_everyone": False,
            "mentions": [u.payload() for u in self._mentioned(content)],
            "mention_roles": self._mentioned_roles(content, channel.guild_id),
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
            referenced = self.messages.get(int(reference["message_id"]))
            if referenced is not None:  # else (fail_if_not_exists false) sent as a message of its own, as on Discord
                self._refer(message, referenced, reference)
        self.messages[int(message["id"])] = message
        return message

    def _edit(self, message: JSON, body: JSON, files: Sequence[UploadedFile]) -> JSON:
        refuse_invalid(message_problems(body))
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
        message["edited_timestamp"] = now()
        return message

    def _delete(self, message: JSON) -> None:
        del self.messages[int(message["id"])]
        self.deleted_message_ids.append(int(message["id"]))

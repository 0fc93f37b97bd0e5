"""The fake Discord's gateway: a websocket that says HELLO, answers IDENTIFY with READY and one GUILD_CREATE per
guild of the shard, acknowledges heartbeats, lets a client RESUME, and sends the events a test dispatches.

As Discord's does, it can also drop a connection with a close code (:meth:`Gateway.drop_connections`), invalidate
sessions so that the client must IDENTIFY again (:meth:`Gateway.invalidate_sessions`), and refuse sessions with a
fatal close code (:meth:`Gateway.refuse_sessions`: 4004 for a token it no longer accepts, 4014 for a privileged
intent not enabled in the Developer Portal). A guild can be in an outage (:meth:`Gateway.guild_outage`): a connected
client is sent GUILD_DELETE with ``unavailable`` true, a client that identifies meanwhile finds it unavailable in
READY with no GUILD_CREATE after, and both are sent its GUILD_CREATE once it is back (:meth:`Gateway.guild_recovers`).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fakes.discord.payloads import JSON, now
from tests.fakes.discord.world import FakeGuild, FakeUser, World

DISPATCH, HEARTBEAT, IDENTIFY, PRESENCE, RESUME, RECONNECT, REQUEST_MEMBERS, INVALID_SESSION, HELLO, ACK = (
    0, 1, 2, 3, 6, 7, 8, 9, 10, 11,
)  # fmt: skip


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


class Gateway(World):
    """The gateway side: connected sessions, the handshake, and events to the shard that owns them."""

    def __init__(self, bot_name: str = "Hearth", *, heartbeat_interval_ms: int = 41_250, **options: Any) -> None:
        super().__init__(bot_name, **options)
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.identifies: list[JSON] = []
        self.resumes: list[JSON] = []
        self.gateway_received: list[JSON] = []
        self._sessions: list[_Session] = []
        self._known_sessions: dict[str, tuple[int, int]] = {}
        self._changed = asyncio.Condition()  # notified whenever the client did something a test may wait for
        self._ready_gate = asyncio.Event()
        self._ready_gate.set()
        self._refusal: tuple[int, str, bool] | None = None  # close code, reason, whether RESUME is refused too
        self.outages: set[int] = set()  # the guilds Discord cannot serve now: unavailable in READY, no GUILD_CREATE

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/"

    @property
    def intents(self) -> int | None:
        """The intents of the last IDENTIFY."""
        return self.identifies[-1].get("intents") if self.identifies else None

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

    async def user_message(self, channel_id: int, author: FakeUser, content: str, **options: Any) -> JSON:
        """Build a message with :meth:`message_payload` and dispatch it as MESSAGE_CREATE."""
        message = self.message_payload(channel_id, author, content, **options)
        await self.dispatch("MESSAGE_CREATE", message)
        return message

    async def user_deletes(self, message: JSON, *, announced: bool = True) -> None:
        """Someone deletes ``message``: gone from its channel (a reply to it is refused), then MESSAGE_DELETE
        (not ``announced``: as if the bot handled that event before it had stored the message)."""
        del self.messages[int(message["id"])]
        if not announced:
            return
        payload = {"id": message["id"], "channel_id": message["channel_id"]}
        if "guild_id" in message:
            payload["guild_id"] = message["guild_id"]
        await self.dispatch("MESSAGE_DELETE", payload)

    async def user_edits(
        self, message: JSON, content: str, *, announced: bool = True, attachments: Sequence[JSON] | None = None
    ) -> JSON:
        """Someone edits ``message`` to read ``content``: changed where it is stored (as a fetch returns it), then
        MESSAGE_UPDATE (not ``announced``: as when the bot was not connected to hear of it). ``attachments``: the
        files it keeps, when the edit removes some (Discord lets the author remove files, never add them; the update
        carries the whole message, its content unchanged or not). Returns it."""
        stored = self.messages[int(message["id"])]
        stored["content"] = content
        if attachments is not None:
            kept = {str(attachment["id"]) for attachment in attachments}
            stored["attachments"] = [a for a in stored.get("attachments", []) if str(a["id"]) in kept]
        stored["mentions"] = [u.payload() for u in self._mentioned(content)]
        stored["edited_timestamp"] = now()
        if announced:
            await self.dispatch("MESSAGE_UPDATE", dict(stored))
        return stored

    async def request_reconnect(self) -> None:
        """Ask every connected client to reconnect and RESUME (gateway op 7)."""
        for session in list(self._sessions):
            await session.send(RECONNECT, None)

    async def drop_connections(self, code: int = 4000, reason: str = "Unknown error.") -> None:
        """Close every gateway connection with ``code`` (4000, an unknown error: the client reconnects and RESUMEs;
        fatal codes such as 4004 and 4014 it does not)."""
        for session in list(self._sessions):
            await session.ws.close(code=code, message=reason.encode())

    async def invalidate_sessions(self) -> None:
        """Tell every connected client its session is gone and cannot be resumed (op 9, ``d`` false): it must
        IDENTIFY again, and is then sent a fresh READY and its servers, not what it missed."""
        for session in list(self._sessions):
            self._known_sessions.pop(session.session_id, None)
            session.ready = False
            await session.send(INVALID_SESSION, False)

    def refuse_sessions(self, code: int, reason: str, *, resumes: bool = True) -> None:
        """From now on, answer IDENTIFY (and RESUME, unless ``resumes`` is False) by closing the connection with
        ``code``, as Discord does: 4004 "Authentication failed." for a token it no longer accepts (reset in the
        Developer Portal), 4014 "Disallowed intent(s)." at IDENTIFY for a privileged intent not enabled there."""
        self._refusal = (code, reason, resumes)

    async def guild_outage(self, guild: FakeGuild) -> None:
        """An outage on Discord's side makes ``guild`` unavailable: a connected client is sent GUILD_DELETE with
        ``unavailable`` true (not a removal: the bot is still in it), and one that identifies until
        :meth:`guild_recovers` finds it in READY as unavailable, with no GUILD_CREATE for it."""
        self.outages.add(guild.id)
        for session in self._sessions_for("GUILD_DELETE", {"id": str(guild.id)}, None):
            await session.send(DISPATCH, {"id": str(guild.id), "unavailable": True}, "GUILD_DELETE")

    async def guild_recovers(self, guild: FakeGuild) -> None:
        """The outage of ``guild`` is over: the clients connected are sent its GUILD_CREATE, as Discord does."""
        self.outages.discard(guild.id)
        for session in self._sessions_for("GUILD_CREATE", {"id": str(guild.id)}, None):
            await session.send(DISPATCH, self.guild_payload(guild), "GUILD_CREATE")

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

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

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
        elif op in (IDENTIFY, RESUME) and self._refusal is not None and (op == IDENTIFY or self._refusal[2]):
            code, reason, _ = self._refusal
            await session.ws.close(code=code, message=reason.encode())
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
        mine = [
            g
            for g in self.guilds.values()
            if (g.id >> 22) % count == shard_id and any(user.id == self.bot.id for user in g.members)
        ]
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
            if guild.id in self.outages:  # sent once it is back (see guild_recovers)
                continue
            await session.send(DISPATCH, self.guild_payload(guild), "GUILD_CREATE")
        session.ready = True
        await self._notify()

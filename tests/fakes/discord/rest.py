"""The fake Discord's REST API: routing, recording every call, scripted failures, the CDN, and the routes for
users, members, DMs, channels and messages (interactions and commands add theirs in :mod:`.interactions`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import discord
from aiohttp import web
from multidict import CIMultiDict

from tests.fakes.discord.gateway import DISPATCH, Gateway
from tests.fakes.discord.payloads import JSON
from tests.fakes.discord.world import ATTACHMENT_SIZE_LIMIT, ApiError, FakeChannel, FakeUser, UploadedFile

API_PREFIX = "/api/v10"
HISTORY = discord.Permissions(read_message_history=True).value  # a reply needs it, as Discord's docs say
SEND = discord.Permissions(send_messages=True).value
MANAGE_MESSAGES = discord.Permissions(manage_messages=True).value  # to delete a message someone else sent
VIEW = discord.Permissions(view_channel=True).value
SEND_IN_THREADS = discord.Permissions(send_messages_in_threads=True).value
THREAD_TYPES = {
    discord.ChannelType.news_thread.value,
    discord.ChannelType.public_thread.value,
    discord.ChannelType.private_thread.value,
}


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


@dataclass
class _ScriptedFailure:
    route: str
    status: int
    times: int
    retry_after: float
    message: str
    code: int
    after: int = 0  # calls of the route answered as usual before the failures begin


Handler = Callable[[RestCall], Any]
Route = tuple[str, str, str, Handler]  # method, path under API_PREFIX, the fake's name for it, handler


def _json_response(payload: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    # body=bytes, not text=: with text aiohttp appends "; charset=utf-8", and discord.py would see a str.
    return web.Response(
        body=json.dumps(payload).encode(), status=status, headers=headers, content_type="application/json"
    )


class Rest(Gateway):
    """The REST side: each route a handler of a :class:`RestCall`, recorded in :attr:`requests` once answered."""

    def __init__(self, bot_name: str = "Hearth", *, echo_bot_messages: bool = True, **options: Any) -> None:
        super().__init__(bot_name, **options)
        self.echo_bot_messages = echo_bot_messages
        self.requests: list[RestCall] = []
        self.unexpected: list[RestCall] = []
        self.downloads: list[int] = []  # ids of attachments fetched from the CDN, in order
        self._cdn_open = asyncio.Event()
        self._cdn_open.set()
        self._sent_ids: list[int] = []
        self._failures: list[_ScriptedFailure] = []
        self._claimed: set[int] = set()
        self._upon: list[tuple[Callable[[RestCall], bool], Callable[[], None]]] = []
        self._slow: dict[str, tuple[float, asyncio.Event]] = {}  # route → how long its calls take to land; sent

    @contextlib.contextmanager
    def slow_cdn(self) -> Iterator[None]:
        """Keep every attachment download waiting until the block ends, as a slow CDN would (longer than
        Discord's 3 seconds to answer an interaction), so a test sees what the bot does meanwhile."""
        self._cdn_open.clear()
        try:
            yield
        finally:
            self._cdn_open.set()

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.port}{API_PREFIX}"

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

    def dm_messages(self, user: FakeUser) -> list[JSON]:
        """Messages the bot sent to ``user``'s DM channel (``POST /channels/{dm}/messages``), as they are now."""
        channel = next((c for c in self.channels.values() if c.recipient == user), None)
        return self.sent_messages(channel.id) if channel is not None else []

    def fail(
        self,
        route: str,
        status: int,
        *,
        times: int = 1,
        retry_after: float = 0.05,
        message: str = "scripted failure",
        code: int = 0,
        after: int = 0,
    ) -> None:
        """Answer the next ``times`` calls of ``route`` with ``status`` (once ``after`` more have been answered as
        usual: the second message of a reply refused, say).

        A 429 carries ``retry_after`` and a ``Via`` header, so discord.py sleeps and retries; note that
        discord.py also retries 500/502/504 itself, sleeping 1 s, 3 s, ….
        """
        self._failures.append(_ScriptedFailure(route, status, times, retry_after, message, code, after))

    @contextlib.contextmanager
    def failing(self, route: str, status: int, *, message: str, code: int = 0) -> Iterator[None]:
        """Answer every call of ``route`` with ``status`` (and Discord's ``code`` and ``message``) until the block
        ends: an outage on that route lasting past discord.py's retries, or a refusal that holds."""
        down = _ScriptedFailure(route, status, 1 << 30, 0.0, message, code)
        self._failures.append(down)
        try:
            yield
        finally:
            down.times = 0

    @contextlib.contextmanager
    def rate_limited(self, route: str, *, retry_after: float) -> Iterator[None]:
        """Answer every call of ``route`` with 429 until the block ends, as Discord does while a bucket is spent:
        each answer says to retry after ``retry_after`` seconds (discord.py sleeps that long, then tries again)."""
        limit = _ScriptedFailure(route, 429, 1 << 30, retry_after, "You are being rate limited.", 0)
        self._failures.append(limit)
        try:
            yield
        finally:
            limit.times = 0

    @contextlib.contextmanager
    def slowed(self, route: str, seconds: float) -> Iterator[asyncio.Event]:
        """Have every call of ``route`` land ``seconds`` after the client sent it until the block ends, as on a slow
        way to Discord: it is acted on, answered and recorded then, after calls the client sent later that were not
        slowed. The event yielded is set once the first such call is on its way."""
        sent = asyncio.Event()
        self._slow[route] = (seconds, sent)
        try:
            yield sent
        finally:
            del self._slow[route]

    def upon(self, predicate: Callable[[RestCall], bool], action: Callable[[], None]) -> None:
        """Do ``action`` once, as the first call matching ``predicate`` is answered and before the client reads the
        answer: what someone does on Discord at that very moment (an admin deleting the webhook a reply goes
        through, say)."""
        self._upon.append((predicate, action))

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

    # -- plumbing -------------------------------------------------------------------------------------

    def routes(self) -> list[Route]:
        """Every route the fake answers (the server registers them at start); a layer adds its own by extending
        this list. A call to any other path answers 404 and is kept in :attr:`unexpected`."""
        message = r"/channels/{channel_id}/messages/{message_id:\d+}"  # ids only: .../messages/pins is another route
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
        ]

    def _endpoint(self, route: str, handler: Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def endpoint(request: web.Request) -> web.StreamResponse:
            call = await self._record(request, route)
            if (slow := self._slow.get(route)) is not None:
                slow[1].set()
                await asyncio.sleep(slow[0])
            failure = next((f for f in self._failures if f.route == route and f.times > 0), None)
            headers: dict[str, str] = {}
            if failure is not None and failure.after > 0:
                failure.after -= 1
                failure = None
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
                    self._refuse_outside(call.channel_id)
                    call.response = handler(call)
                    call.status = 200 if call.response is not None else 204
                except ApiError as error:
                    call.status, call.response = error.status, error.body()
            if (due := next((upon for upon in self._upon if upon[0](call)), None)) is not None:
                self._upon.remove(due)
                due[1]()
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

    def _unknown(self, call: RestCall) -> Any:
        raise ApiError(404, 0, f"404: Not Found ({call.method} {call.path})")

    async def _attachment(self, request: web.Request) -> web.Response:
        stored = self._files.get(int(request.match_info["attachment_id"]))
        if stored is None:
            raise web.HTTPNotFound()
        self.downloads.append(int(request.match_info["attachment_id"]))
        await self._cdn_open.wait()
        return web.Response(body=stored.data, content_type=stored.content_type)

    # -- handlers -------------------------------------------------------------------------------------

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

    def _refuse_unless_sending(self, channel: FakeChannel) -> None:
        """Refuse (403, 50013) a message or typing where the bot may not send messages: in a guild's channel
        without Send Messages, in a thread without Send Messages in Threads (guild-level: see ``permissions_of``);
        where it may not even see the channel (no View Channel), Discord answers 403, Missing Access (50001)."""
        guild = self.guilds.get(channel.guild_id or 0)
        if guild is None:
            return
        if not guild.permissions_of(self.bot.id) & VIEW:
            raise ApiError(403, 50001, "Missing Access")
        needed = SEND_IN_THREADS if channel.type in THREAD_TYPES else SEND
        if not guild.permissions_of(self.bot.id) & needed:
            raise ApiError(403, 50013, "Missing Permissions")

    def _refuse_unless_seeing(self, channel: FakeChannel) -> None:
        """Refuse (403, Missing Access, 50001) an edit or deletion of the bot's own message in a guild's channel it may
        not see (no View Channel); Send Messages is not needed for those, as on Discord (it only stops new messages)."""
        guild = self.guilds.get(channel.guild_id or 0)
        if guild is not None and not guild.permissions_of(self.bot.id) & VIEW:
            raise ApiError(403, 50001, "Missing Access")

    def _typing(self, call: RestCall) -> None:
        self._refuse_unless_sending(self._channel(call.channel_id))

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
        self._refuse_unless_sending(channel)
        guild = self.guilds.get(channel.guild_id or 0)
        reference = (call.body or {}).get("message_reference")
        if reference and guild and not guild.permissions_of(self.bot.id) & HISTORY:
            raise ApiError(403, 160002, "Cannot reply without permission to read message history")
        if (
            reference
            and reference.get("fail_if_not_exists", True)
            and int(reference["message_id"]) not in self.messages
        ):
            unknown = {"_errors": [{"code": "MESSAGE_REFERENCE_UNKNOWN_MESSAGE", "message": "Unknown message"}]}
            raise ApiError(400, 50035, "Invalid Form Body", {"message_reference": unknown})
        message = self._message(channel.id, self.bot, call.body or {}, call.files)
        metadata = channel.extra.get("thread_metadata")
        if metadata is not None and metadata["archived"] and not metadata["locked"]:  # a message reopens the thread
            metadata.update(archived=False, archive_timestamp=message["timestamp"])
        self._sent_ids.append(int(message["id"]))
        return message

    def _edit_message(self, call: RestCall) -> JSON:
        self._refuse_unless_seeing(self._channel(call.channel_id))
        return self._edit(self._stored(call.params["message_id"]), call.body or {}, call.files)

    def _delete_message(self, call: RestCall) -> None:
        """Delete a message: the bot's own as it likes; someone else's (a user's, a webhook's, the webhook deleted
        or not) only with Manage Messages, else 403, Missing Permissions, as on Discord."""
        channel = self._channel(call.channel_id)
        self._refuse_unless_seeing(channel)
        message = self._stored(call.params["message_id"])
        guild = self.guilds.get(channel.guild_id or 0)
        if (
            guild is not None
            and int(message["author"]["id"]) != self.bot.id
            and not guild.permissions_of(self.bot.id) & MANAGE_MESSAGES
        ):
            raise ApiError(403, 50013, "Missing Permissions")
        self._delete(message)

"""HearthBot: the discord.py client. Dependencies come in from the launcher; logic lives in services.

The bot carries :class:`~bot.services.bundle.Services`, from which each extension (``bot/discord/exts/``) takes
what its cog calls, and a :class:`Runtime` (the launcher's background work) that it starts once set up and
pauses when it stops. At start the commands are published when Discord's differ from the bot's (one read
tells), or whatever Discord has with ``sync_commands`` (``python -m bot run --sync-commands``); ``/owner sync``
publishes them too.
"""

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import timedelta
from typing import Any, Protocol

import aiohttp
import discord
from discord.ext import commands

from bot.db.engine import Database
from bot.discord.exts import EXTENSIONS, short_name
from bot.discord.notifier import DiscordNotifier
from bot.discord.people import files_of, replied_webhook_name, said_and_quoted
from bot.discord.render import CANNOT_MESSAGE_USER, DISCORD_FAILURES, SAFE_MENTIONS, ChannelReply
from bot.discord.reply_buttons import reply_view
from bot.discord.threads import ThreadParents
from bot.discord.tree import HearthTree
from bot.discord.webhooks import ChannelWebhooks, CharacterReply
from bot.domain.images import shown_images, still_attached
from bot.observability.health import Health
from bot.observability.metrics import Metrics
from bot.observability.server import OpsServer
from bot.services.bundle import Services
from bot.services.events import Notifier
from bot.services.incoming import IncomingMessage, Reached

log = logging.getLogger(__name__)

# How long a stop waits for replies being written (``docker stop`` allows 10 s before it kills, unless told more).
REPLY_GRACE_S = 10.0


class Runtime(Protocol):
    """The background work the launcher built beside the bot (the Container is one)."""

    database: Database  # for /healthz

    async def start(self, notifier: Notifier | None = None) -> None:
        """Start the background work, sending proactive messages through ``notifier``."""

    async def stop_jobs(self) -> None:
        """Stop the scheduled jobs (the bot is stopping)."""


def intents() -> discord.Intents:
    """Explicit intents. Message Content is privileged: it must be enabled in the Developer Portal."""
    wanted = discord.Intents.none()
    wanted.guilds = True
    wanted.guild_messages = True
    wanted.dm_messages = True
    wanted.message_content = True
    return wanted


class InFlight:
    """The message handlers running now, so a stop can let them finish (or cancel them after a while)."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()
        self._idle = asyncio.Event()
        self._idle.set()

    def __len__(self) -> int:
        return len(self._tasks)

    @contextlib.contextmanager
    def track(self) -> Iterator[None]:
        """Count the current task as in flight while the block runs."""
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._idle.clear()
        try:
            yield
        finally:
            self._done(task)

    def keep(self, task: "asyncio.Task[Any]") -> None:
        """Count ``task`` as in flight until it ends (a slash command, whose task discord.py starts)."""
        self._tasks.add(task)
        self._idle.clear()
        task.add_done_callback(self._done)

    def _done(self, task: "asyncio.Task[Any]") -> None:
        self._tasks.discard(task)
        if not self._tasks:
            self._idle.set()

    async def finish(self, timeout_s: float, *, hurry: asyncio.Event | None = None) -> int:
        """Wait up to ``timeout_s`` (or until ``hurry`` is set) for the handlers to end, then cancel the
        rest and wait for them; returns how many were cancelled."""
        waits = [asyncio.ensure_future(self._idle.wait())]
        if hurry is not None:
            waits.append(asyncio.ensure_future(hurry.wait()))
        try:
            await asyncio.wait(waits, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()
        late = list(self._tasks)
        for task in late:
            task.cancel()
        if late:
            await asyncio.wait(late)
        return len(late)


def rate_limit_trace(metrics: Metrics) -> aiohttp.TraceConfig:
    """Counts Discord's 429 answers and the waits they ask for (discord.py sleeps them out and retries)."""

    async def on_request_end(
        _session: aiohttp.ClientSession, _context: Any, params: aiohttp.TraceRequestEndParams
    ) -> None:
        response = params.response
        if response.status != 429:
            return
        headers = response.headers
        try:
            seconds = float(headers.get("Retry-After", 0))
        except ValueError:
            seconds = 0.0
        metrics.rate_limited(seconds, scope=headers.get("X-RateLimit-Scope") or "route")

    trace = aiohttp.TraceConfig()
    trace.on_request_end.append(on_request_end)
    return trace


def command_shapes(payloads: Sequence[Mapping[str, Any]]) -> list[Any]:
    """What tells two lists of slash commands apart (names, descriptions, types, options and their choices,
    default permissions), in a form that compares equal whichever side of Discord's API they come from."""

    def shape(payload: Mapping[str, Any]) -> dict[str, Any]:
        found: dict[str, Any] = {
            key: payload[key] for key in ("name", "description", "type") if payload.get(key) is not None
        }
        if payload.get("required"):
            found["required"] = True
        if payload.get("choices"):
            found["choices"] = [(choice["name"], choice["value"]) for choice in payload["choices"]]
        if payload.get("options"):
            found["options"] = [shape(option) for option in payload["options"]]
        if payload.get("default_member_permissions") not in (None, ""):
            found["default_member_permissions"] = str(payload["default_member_permissions"])
        return found

    return sorted((shape(payload) for payload in payloads), key=lambda command: str(command.get("name")))


class HearthBot(commands.AutoShardedBot):
    """Auto-sharded, so SHARD_COUNT/SHARD_IDS split a large deployment over several processes."""

    def __init__(self, services: Services, runtime: Runtime, *, sync_commands: bool = False, **options: Any) -> None:
        """``sync_commands``: publish the command tree once set up. ``options`` go to discord.py's client as they
        are (tests shorten ``guild_ready_timeout``)."""
        settings = services.settings
        sharding: dict[str, Any] = {}
        if settings.shard_count is not None:
            sharding = {"shard_count": settings.shard_count, "shard_ids": settings.shard_ids or None}
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=intents(),
            allowed_mentions=SAFE_MENTIONS,
            # Empty: discord.py asks Discord who owns the application.
            owner_ids=set(settings.owner_ids),
            help_command=None,
            tree_cls=HearthTree,
            http_trace=rate_limit_trace(services.metrics),
            **sharding,
            **options,
        )
        self.services = services
        self.runtime = runtime
        self.syncs_at_start = sync_commands
        self.started_at = time.monotonic()
        self._catching_up: asyncio.Task[None] | None = None  # once per process, at the first ready
        self._caught_up_at = 0.0  # when that catch-up began (time.monotonic())
        self.caught_up = asyncio.Event()  # set once what arrived while stopped has been answered (or there was none)
        # Servers in an outage when the catch-up read their waiting messages: caught up on once they are back.
        self._unreached: set[int] = set()
        self._later_catch_ups: set[asyncio.Task[None]] = set()
        # The messages the chat cog took in as they arrived, while a catch-up is running or to come: Discord delivers
        # them before the bot is ready (as soon as their server has arrived), and one still being answered awaits its
        # reply. ``_catch_ups`` counts those catch-ups, the first one included from the start.
        self._taken_live: set[int] = set()
        self._catch_ups = 1
        self.replying = InFlight()  # the chat cog's handlers of incoming messages, and the slash commands running
        self.accepting = True  # False once a stop began: new messages are left alone
        self.webhooks = ChannelWebhooks(lambda: self.user)  # what cast characters speak through, in each channel
        self.thread_parents = ThreadParents(self)  # the channels of threads not cached, whose rules they follow
        self._stopping: asyncio.Task[None] | None = None
        self._hurry = asyncio.Event()
        self.ops_server: OpsServer | None = None  # /metrics and /healthz, when METRICS_PORT is set
        if settings.metrics_port is not None:
            health = Health(runtime.database, self.gateway_connected)
            self.ops_server = OpsServer(
                services.metrics, health, host=settings.metrics_host, port=settings.metrics_port
            )

    def gateway_connected(self) -> bool:
        """Ready (every shard identified, the guilds received), and no shard's connection down right now."""
        if not self.is_ready() or self.is_closed():
            return False
        return all(not shard.is_closed() for shard in self.shards.values())

    def stop(self) -> "asyncio.Task[None]":
        """Stop cleanly (SIGTERM, SIGINT, /owner shutdown): take no new messages, let replies being written
        finish (up to REPLY_GRACE_S), stop the scheduled jobs, then close the Discord connection, which ends
        :meth:`start`. The launcher then stops the embedding worker, drains the learner and closes the database.
        Asked again while stopping, replies still running are cut short."""
        if self._stopping is None:
            self.accepting = False  # at once, not when the task first runs
            self._stopping = asyncio.create_task(self._stop(), name="stop")
        else:
            self._hurry.set()
        return self._stopping

    def taken_live(self, message_id: int) -> None:
        """The chat cog handles message ``message_id`` as it arrived: the catch-up leaves it to it."""
        if self._catch_ups:
            self._taken_live.add(message_id)

    @property
    def stopping(self) -> "asyncio.Task[None] | None":
        return self._stopping

    async def _stop(self) -> None:
        log.info("stopping: %d replies and commands in flight", len(self.replying))
        try:
            await self.runtime.stop_jobs()  # a proactive message being sent goes out before Discord closes
            cut = await self.replying.finish(REPLY_GRACE_S, hurry=self._hurry)
            if cut:
                log.warning("stopping: %d replies did not finish in time and were cut short", cut)
        finally:
            await self.close()

    async def setup_hook(self) -> None:
        if self.ops_server is not None:  # first: /healthz says 503 while Hearth starts, not nothing
            await self.ops_server.start()
        await self.runtime.start(notifier=DiscordNotifier(self))
        known = {short_name(extension) for extension in EXTENSIONS}
        for unknown in sorted(set(self.services.settings.disabled_extensions) - known):
            log.warning("DISABLED_EXTENSIONS names %r, which is not one of: %s", unknown, ", ".join(sorted(known)))
        for extension in EXTENSIONS:
            try:
                await self.load_extension(extension)
            except commands.ExtensionError:
                log.exception("could not load extension %s", extension)
        try:
            if self.syncs_at_start:
                log.info("published %d slash commands", await self.sync_commands())
            elif await self._published_commands_differ():
                log.info("the slash commands differ from those Discord has: published %d", await self.sync_commands())
        except discord.HTTPException:
            log.exception("could not publish the slash commands; the owner can retry with /owner sync")

    async def _published_commands_differ(self) -> bool:
        """Whether Discord's global commands are not this bot's (a first start, an upgrade, another
        DISABLED_EXTENSIONS): one read, where publishing replaces them all and is rate-limited per day."""
        published = []
        for command in await self.tree.fetch_commands():
            permissions = command.default_member_permissions  # not in AppCommand.to_dict()
            published.append(
                dict(command.to_dict()) | {"default_member_permissions": permissions and permissions.value}
            )
        ours = [command.to_dict(self.tree) for command in self.tree.get_commands()]
        return command_shapes(published) != command_shapes(ours)

    async def sync_commands(self) -> int:
        """Publish the commands: global ones, and the owner's in DEV_GUILD_ID when set; returns how many.

        At start only when Discord's differ from the bot's, or when asked (``--sync-commands``, ``/owner sync``):
        Discord limits how often a bot may replace its commands, and they change only when Hearth is upgraded or
        DISABLED_EXTENSIONS changes."""
        synced = len(await self.tree.sync())
        dev_guild = self.services.settings.dev_guild_id
        if dev_guild is not None:
            synced += len(await self.tree.sync(guild=discord.Object(id=dev_guild)))
        return synced

    async def on_error(self, event_method: str, /, *args: Any, **kwargs: Any) -> None:
        """Log an event handler's failure with the ids needed to find what it was about; never crash."""
        context = next((arg for arg in args if isinstance(arg, discord.Message | discord.Interaction)), None)
        if context is None:
            log.exception("unhandled error in %s", event_method)
            return
        message_id = context.id
        log.exception(
            "unhandled error in %s (guild %s, channel %s, %s %s)",
            event_method,
            context.guild.id if context.guild else None,
            context.channel.id if context.channel else None,
            "message" if isinstance(context, discord.Message) else "interaction",
            message_id,
        )

    async def close(self) -> None:
        try:
            await super().close()
        finally:
            if self.ops_server is not None:
                await self.ops_server.stop()

    async def on_message(self, message: discord.Message, /) -> None:
        """Hearth has slash commands only: text is conversation (the chat cog listens), never a prefix command."""

    async def on_ready(self) -> None:
        user = self.user
        log.info("connected as %s (%s) in %d guilds", user, user.id if user else "?", len(self.guilds))
        minutes = self.services.settings.catch_up_minutes
        if "bot.discord.exts.chat" not in self.extensions:  # a bot without conversation answers nothing late
            self._catch_up_over()
            self.caught_up.set()
        elif self._catching_up is None:
            self._caught_up_at = time.monotonic()
            self._catching_up = asyncio.create_task(self._catch_up(timedelta(minutes=minutes)), name="catch-up")

    async def on_guild_available(self, guild: discord.Guild) -> None:
        """A server back from an outage: what was waiting there when Hearth caught up is answered now (Discord
        listed the server as unavailable then, and Hearth could not tell where to answer)."""
        if guild.id not in self._unreached or not self.accepting:
            return
        self._unreached.discard(guild.id)
        self._catch_ups += 1  # at once: the chat cog's next messages there are noted before the catch-up reads
        task = asyncio.create_task(self._catch_up_in(guild.id), name=f"catch-up-{guild.id}")
        self._later_catch_ups.add(task)
        task.add_done_callback(self._later_catch_ups.discard)

    async def _catch_up(self, within: timedelta, *, guild_id: int | None = None) -> None:
        """Answer what arrived while Hearth was stopped (see ConversationService.catch_up); ``guild_id``: only what
        was said in that server."""
        try:
            with self.replying.track():  # a stop lets it finish its turn, like any reply in flight
                handed_out: list[ChannelReply] = []
                target_for = functools.partial(self._reply_target, members={}, guild_id=guild_id, handed_out=handed_out)
                try:
                    answered = await self.services.conversation.catch_up(
                        within, target_for, thread_parent=self._thread_parent, stopping=lambda: not self.accepting
                    )
                except asyncio.CancelledError:  # a stop ran out of time: nothing left half-written, as live
                    await asyncio.gather(*(target.cut_short() for target in handed_out))
                    raise
            self.services.metrics.caught_up(answered)
        except Exception:
            log.exception("could not catch up on messages that arrived while Hearth was stopped")
        finally:
            self._catch_up_over()
            self.caught_up.set()

    async def _catch_up_in(self, guild_id: int) -> None:
        """Catch up on server ``guild_id``, once the first catch-up is done (one at a time), over the same messages:
        those of the last CATCH_UP_MINUTES before Hearth started."""
        try:
            await self.caught_up.wait()
        except asyncio.CancelledError:
            self._catch_up_over()
            raise
        if not self.accepting:
            self._catch_up_over()
            return
        started = timedelta(seconds=time.monotonic() - self._caught_up_at)
        log.info("server %s is available again: catching up on it", guild_id)
        await self._catch_up(timedelta(minutes=self.services.settings.catch_up_minutes) + started, guild_id=guild_id)

    def _catch_up_over(self) -> None:
        """A catch-up is over: once none is running or to come, what the chat cog takes in is its own for good."""
        self._catch_ups = max(self._catch_ups - 1, 0)
        if not self._catch_ups:
            self._taken_live.clear()

    async def _as_it_is(self, channel: discord.abc.Messageable, message_id: int) -> discord.Message | None:
        """The message as Discord has it now; None where Discord cannot say (the bot may not read the channel's
        history, or Discord fails: the message is answered as it was stored). Raises :class:`discord.NotFound`
        when Discord says it is gone."""
        try:
            return await channel.fetch_message(message_id)
        except discord.NotFound:
            raise
        except DISCORD_FAILURES as exc:
            log.info("could not tell whether message %s is still there (%s); answering it", message_id, exc)
        return None

    async def _forget_deleted(self, channel_id: int, message_id: int) -> None:
        services = self.services
        try:
            async with services.conversation.between_turns(channel_id):
                await services.privacy.forget_deleted_messages([message_id])
        except Exception:
            log.exception("could not forget message %s, deleted while Hearth was stopped", message_id)
            return
        log.info("not catching up on message %s in channel %s: deleted meanwhile", message_id, channel_id)

    async def _follow_edit(self, incoming: IncomingMessage, message: discord.Message) -> IncomingMessage:
        """``incoming`` as ``message``, its version on Discord, reads now: an edit made while Hearth was stopped is
        kept first, as one seen live is (Discord does not tell a stopped bot), then answered. Where it cannot be
        kept, the message is answered as it was stored. Only an edit Discord reports counts (a fetched message may
        show a mention by another name than the live one did). Images its author removed meanwhile go as well, from
        what is kept and from what the model is shown. It is kept as a live edit is: without the words of people
        blocked there."""
        if message.edited_at is None:
            return incoming
        conversation = self.services.conversation
        text, quoted = said_and_quoted(message, self)
        images = tuple(shown_images(files_of(message, self)))
        try:
            edited = await conversation.as_kept(replace(incoming, text=text, image_urls=images, quoted=quoted))
            kept = tuple(incoming.image_urls[index] for index in still_attached(incoming.image_urls, edited.image_urls))
            if edited.text == incoming.text and kept == incoming.image_urls:
                return incoming
            async with conversation.between_turns(incoming.place.channel_id):
                await self.services.privacy.follow_edited_message(message.id, edited.text, edited.image_urls)
        except Exception:
            log.exception("could not follow the edit of message %s, made while Hearth was stopped", message.id)
            return incoming
        log.info("catching up on message %s in channel %s as edited meanwhile", message.id, incoming.place.channel_id)
        signals = replace(incoming.signals, text=message.content)
        return replace(incoming, text=edited.text, image_urls=kept, signals=signals)

    def _serves_guild(self, guild_id: int) -> bool:
        """Whether guild ``guild_id`` is on one of this process's shards (all of them when it runs every shard):
        once ready, Hearth is in every such guild it has, and in no other."""
        if self.shard_ids is None:
            return True
        return (guild_id >> 22) % (self.shard_count or 1) in self.shard_ids

    def _thread_parent(self, channel_id: int) -> int | None:
        """The channel a thread is in (None for a channel, or a thread this process does not see)."""
        channel = self.get_channel(channel_id)
        return channel.parent_id if isinstance(channel, discord.Thread) else None

    async def _left(self, guild: discord.Guild, user_id: int, members: dict[tuple[int, int], bool]) -> bool:
        """Whether ``user_id`` is no longer in ``guild`` (left, kicked or banned while Hearth was stopped). Without
        the members intent few people are cached: Discord is asked about the others, once per person and server
        (``members`` remembers the answers); False where it cannot say."""
        if guild.get_member(user_id) is not None:
            return False
        key = (guild.id, user_id)
        if key not in members:
            try:
                await guild.fetch_member(user_id)
                members[key] = False
            except discord.NotFound:
                members[key] = True
            except DISCORD_FAILURES as exc:
                log.info("could not tell whether user %s is still in server %s (%s)", user_id, guild.id, exc)
                members[key] = False
        return members[key]

    async def _reply_target(
        self,
        incoming: IncomingMessage,
        *,
        members: dict[tuple[int, int], bool] | None = None,
        guild_id: int | None = None,
        handed_out: list[ChannelReply] | None = None,
    ) -> Reached | None:
        """A stored message as it reads now (see :meth:`_follow_edit`) and where to answer it, or None when this
        process cannot reach its channel (another shard's guild; DMs belong to shard 0), or the message was
        deleted while Hearth was stopped (forgotten then, as a deletion seen live is: Discord does not tell a
        stopped bot). With no target where it is not to be answered any more: a thread archived, a channel
        deleted or closed to Hearth, its server left by Hearth or by its author, a DM's author gone from Discord,
        while it was stopped. ``members``: who is still in which server, as found so far (see :meth:`_left`). None,
        too, for a message that came as Hearth connected, which the chat cog answers (see :meth:`taken_live`), for one
        in a server Discord lists as unavailable (an outage: caught up on once it is back, see
        :meth:`on_guild_available`), and, given ``guild_id``, for one of any other place than that server.
        ``handed_out``: the targets made are added to it (a stop cutting the catch-up short takes down what they
        show)."""
        if incoming.message_id in self._taken_live:
            return None
        place = incoming.place
        if guild_id is not None and place.guild_id != guild_id:
            return None
        server = self.get_guild(place.guild_id) if place.guild_id is not None else None
        if server is not None and server.unavailable:  # not cached yet: no channel, no member, nothing to tell by
            self._unreached.add(server.id)
            return None
        channel: Any = self.get_channel(place.channel_id)
        if channel is None and place.is_dm and (self.shard_ids is None or 0 in self.shard_ids):
            try:
                person = self.get_user(incoming.author.discord_id) or await self.fetch_user(incoming.author.discord_id)
                channel = await person.create_dm()
            except DISCORD_FAILURES as exc:
                # Gone from Discord (404), or taking no DMs from Hearth: refused with 403, or with 400 and
                # code 50007, which is how Discord refuses to open such a DM.
                refused = isinstance(exc, discord.HTTPException) and (
                    isinstance(exc, (discord.NotFound, discord.Forbidden)) or exc.code == CANNOT_MESSAGE_USER
                )
                if not refused:  # an outage: asked again at the next start
                    log.info("cannot reach user %s's DM to catch up (%s)", incoming.author.discord_id, exc)
                    return None
                log.info(
                    "not catching up on message %s: user %s cannot be reached in a DM any more (%s)",
                    incoming.message_id,
                    incoming.author.discord_id,
                    exc,
                )
                return Reached(incoming, None)
        elif channel is None and place.guild_id is not None:
            if self.get_guild(place.guild_id) is None:
                if not self._serves_guild(place.guild_id):
                    return None  # another process's
                log.info(
                    "not catching up on message %s: Hearth was removed from server %s meanwhile",
                    incoming.message_id,
                    place.guild_id,
                )
                return Reached(incoming, None)
            try:
                channel = await self._archived_thread(place.channel_id)
            except (discord.NotFound, discord.Forbidden) as exc:
                log.info(
                    "not catching up on message %s: channel %s was deleted or closed to Hearth meanwhile (%s)",
                    incoming.message_id,
                    place.channel_id,
                    exc,
                )
                return Reached(incoming, None)
        if not isinstance(channel, discord.abc.Messageable) or getattr(channel, "id", None) != place.channel_id:
            return None
        if incoming.message_id is not None:
            try:
                message = await self._as_it_is(channel, incoming.message_id)
            except discord.NotFound:
                await self._forget_deleted(place.channel_id, incoming.message_id)
                return None
            if message is not None:
                # What the front end knows and did not store: which cast character's message it replies to.
                replied = replied_webhook_name(message)
                incoming = replace(incoming, signals=replace(incoming.signals, replied_to_webhook_name=replied))
                incoming = await self._follow_edit(incoming, message)
        guild = getattr(channel, "guild", None)
        if isinstance(guild, discord.Guild) and await self._left(guild, incoming.author.discord_id, members or {}):
            log.info(
                "not catching up on message %s: its author %s left server %s meanwhile",
                incoming.message_id,
                incoming.author.discord_id,
                guild.id,
            )
            return Reached(incoming, None)
        if isinstance(channel, discord.Thread) and channel.archived:
            log.info(
                "not catching up on message %s: thread %s was archived meanwhile, and an answer would reopen it",
                incoming.message_id,
                place.channel_id,
            )
            return Reached(incoming, None)
        characters = functools.partial(CharacterReply, channel, self.webhooks)
        target = ChannelReply(channel, place.channel_id, incoming.message_id, reply_view, characters)
        if handed_out is not None:
            handed_out.append(target)
        return Reached(incoming, target)

    async def _archived_thread(self, channel_id: int) -> discord.Thread | None:
        """The thread ``channel_id`` of a guild this process serves, archived while Hearth was stopped (Discord
        tells a starting bot of active threads only); None when it is not one, or Discord cannot say (an outage:
        it is asked again at the next start). Raises :class:`discord.NotFound` when the channel was deleted, and
        :class:`discord.Forbidden` when Hearth may no longer see it: neither is answered there any more."""
        try:
            channel = await self.fetch_channel(channel_id)
        except (discord.NotFound, discord.Forbidden):
            raise
        except DISCORD_FAILURES as exc:
            log.info("cannot find channel %s to catch up (%s)", channel_id, exc)
            return None
        return channel if isinstance(channel, discord.Thread) and channel.archived else None

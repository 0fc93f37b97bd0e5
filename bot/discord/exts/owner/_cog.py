"""The owner's commands (``/owner …``): sync, reload, status, maintenance mode, memory jobs, backup, usage and
shutdown.

Registered only in DEV_GUILD_ID when it is set, otherwise globally and usable in DMs only. Either way the real
guard is :meth:`Owner.interaction_check`: OWNER_IDS, else the application's owner. What the commands read and
start is the status service's (``bot/services/status.py``) and the backup's (``bot/services/operations.py``).
"""

import math
import time
from datetime import UTC, datetime
from typing import Literal

import discord
from discord import app_commands
from discord.ext import commands

from bot.discord.checks import require_owner
from bot.discord.client import HearthBot
from bot.discord.deferred import DeferredAnswer
from bot.discord.exts import EXTENSIONS, short_name
from bot.discord.views import Paginator, hearth_embed, pages_of
from bot.errors import HearthError
from bot.services.operations import Operations
from bot.services.stats import StatsService
from bot.services.status import StatusService


def _size(size: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024  # type: ignore[assignment]
    return f"{size} B"


# Discord refuses an embed field's value of more characters than this.
FIELD_CHARS = 1024
# Ids (snowflakes) are numbers of 64 bits: Discord refuses a larger one as no id at all.
SNOWFLAKE_LIMIT = 1 << 64


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if math.isfinite(seconds) else "—"  # no heartbeat answered yet: unknown


def _shards(latencies: list[tuple[int, float]]) -> str:
    """Each shard's latency, in shard order; when too many to fit a field, how many, the median, and the slowest
    (unknown latencies first) as many as fit."""
    listed = ", ".join(f"#{shard}: {_ms(latency)}" for shard, latency in latencies)
    if len(listed) <= FIELD_CHARS:
        return listed or "—"
    known = sorted(latency for _, latency in latencies if math.isfinite(latency))
    text = f"{len(latencies)} shards" + (f", median {_ms(known[len(known) // 2])}" if known else "") + "; slowest:"
    slowest = sorted(latencies, key=lambda item: -item[1] if math.isfinite(item[1]) else -math.inf)
    for number, (shard, latency) in enumerate(slowest):
        entry = f"{',' if number else ''} #{shard}: {_ms(latency)}"
        if len(text) + len(entry) + len(", …") > FIELD_CHARS:
            return text + ", …"
        text += entry
    return text


def _refusal(error: discord.HTTPException) -> str:
    """Discord's reason for refusing the commands, for the owner."""
    return f"Discord refused them ({error.status}: {error.text or 'no reason given'})."


def _uptime(seconds: float) -> str:
    minutes, _ = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    return f"{days}d {hours}h {minutes}m" if days else f"{hours}h {minutes}m"


class Owner(commands.GroupCog, group_name="owner", group_description="Hearth's owner: maintenance and operations"):
    memory = app_commands.Group(name="memory", description="Long-term memory jobs")

    def __init__(self, bot: HearthBot, status: StatusService, operations: Operations, stats: StatsService) -> None:
        self.bot = bot  # the gateway's figures, the command tree, the extensions, and stopping
        self.status_service = status
        self.operations = operations
        self.stats = stats
        super().__init__()

    async def interaction_check(self, interaction: discord.Interaction, /) -> bool:
        await require_owner(interaction)
        return True

    @app_commands.command(name="sync", description="Publish the slash commands to Discord (globally or to one server)")
    @app_commands.describe(guild_id="A server id to sync to alone (commands appear there at once); empty: globally")
    async def sync(self, interaction: discord.Interaction, guild_id: str | None = None) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        if guild_id is None:
            try:
                synced = await self.bot.sync_commands()
            except discord.HTTPException as exc:  # e.g. Discord's daily limit on new commands
                raise HearthError(f"I can't publish the commands: {_refusal(exc)}") from exc
            await interaction.followup.send(f"Synced {synced} commands.", ephemeral=True)
            return
        typed = guild_id.strip()
        if not (typed.isascii() and typed.isdigit() and 0 < int(typed) < SNOWFLAKE_LIMIT):  # "²" is a digit too
            raise HearthError(f"{guild_id!r} is not a server id (a long number).")
        guild = discord.Object(id=int(typed))
        tree = self.bot.tree
        before = tree.get_commands(guild=guild)  # e.g. /owner, in DEV_GUILD_ID
        tree.copy_global_to(guild=guild)
        try:
            commands_ = await tree.sync(guild=guild)
        except discord.HTTPException as exc:
            tree.clear_commands(guild=guild)  # back as it was, so later syncs publish nothing of this attempt
            for command in before:
                tree.add_command(command, guild=guild)
            reason = (
                "I'm not in it, or was invited there without the applications.commands scope."
                if isinstance(exc, discord.Forbidden)
                else _refusal(exc)
            )
            raise HearthError(f"I can't publish commands in server {typed}: {reason}") from exc
        await interaction.followup.send(f"Synced {len(commands_)} commands to server {typed}.", ephemeral=True)

    @app_commands.command(name="reload", description="Reload one of Hearth's command modules")
    @app_commands.describe(extension="The module, e.g. bot.discord.exts.memory (or just memory)")
    async def reload(self, interaction: discord.Interaction, extension: str) -> None:
        extension = next((name for name in EXTENSIONS if extension in (name, short_name(name))), extension)
        if extension not in EXTENSIONS:
            raise HearthError(f"No such module; one of: {', '.join(EXTENSIONS)}.")
        try:
            await self.bot.reload_extension(extension)
        except commands.ExtensionError as exc:
            raise HearthError(f"Reloading {extension} failed: {exc}") from exc
        await interaction.response.send_message(f"Reloaded {extension}.", ephemeral=True)

    @reload.autocomplete("extension")
    async def _extension_choices(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        return [app_commands.Choice(name=name, value=name) for name in EXTENSIONS if current in name][:25]

    @app_commands.command(name="status", description="Uptime, latency, guilds, shards, database, queues and jobs")
    async def status(self, interaction: discord.Interaction) -> None:
        snapshot = await self.status_service.snapshot()
        latency = self.bot.latency
        shards = _shards([(shard_id, shard.latency) for shard_id, shard in sorted(self.bot.shards.items())])
        job_lines = [
            f"{name}: {discord.utils.format_dt(at, 'R') if at else 'stopped'}"
            for name, at in sorted(snapshot.jobs.items())
        ]
        embed = hearth_embed("Hearth status")
        embed.add_field(name="Uptime", value=_uptime(time.monotonic() - self.bot.started_at))
        embed.add_field(name="Gateway latency", value=f"{latency * 1000:.0f} ms" if math.isfinite(latency) else "—")
        embed.add_field(name="Guilds", value=str(len(self.bot.guilds)))
        embed.add_field(name="Shards", value=shards, inline=False)
        embed.add_field(name="Database", value=f"{snapshot.backend}, {_size(snapshot.database_bytes)}")
        embed.add_field(name="Learner queue", value=str(snapshot.learner_backlog))
        embed.add_field(name="Memories to embed", value=str(snapshot.embedding_backlog))
        embed.add_field(name="Maintenance mode", value="on" if snapshot.maintenance else "off")
        embed.add_field(name="Scheduled jobs", value="\n".join(job_lines)[:1024] or "—", inline=False)
        await interaction.response.send_message(embed=embed, ephemeral=True)

    @app_commands.command(name="maintenance", description="Rest: messages are stored and people told Hearth is resting")
    @app_commands.describe(state="on: rest; off: chat again")
    async def maintenance(self, interaction: discord.Interaction, state: Literal["on", "off"]) -> None:
        await self.status_service.set_maintenance(state == "on")  # every process, and after a restart
        text = "Resting: messages are kept, and people are told I'm resting." if state == "on" else "Back to chatting."
        await interaction.response.send_message(text, ephemeral=True)

    @memory.command(name="reembed", description="Re-embed every memory made by another embedding model")
    async def memory_reembed(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        started = time.monotonic()
        last_shown = 0.0
        async with DeferredAnswer(interaction) as answer:  # the work may outlast the interaction's token

            def progress(done: int, total: int) -> None:
                nonlocal last_shown
                if time.monotonic() - last_shown >= 2:
                    last_shown = time.monotonic()
                    answer.progress(f"Re-embedding: {done}/{total}…")

            done = await self.status_service.reembed(progress)
            await answer.finish(f"Re-embedded {done} memories in {time.monotonic() - started:.0f} s.")

    @memory.command(name="prune", description="Delete old message memories never recalled (MEMORY_RETENTION_DAYS)")
    async def memory_prune(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        async with DeferredAnswer(interaction) as answer:  # on a huge table it may take longer than the token lasts
            pruned = await self.status_service.prune_memories()
            await answer.finish(f"Pruned {pruned} memories.")

    @app_commands.command(name="backup", description="Back the database up into BACKUP_DIR")
    async def backup(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        async with DeferredAnswer(interaction) as answer:  # a large database may take longer than the token lasts
            result = await self.operations.backup()
            await answer.finish(f"Backed up to `{result.path}` ({_size(result.size_bytes)}, {result.seconds:.1f} s).")

    @app_commands.command(name="usage", description="Tokens spent this month, by server")
    async def usage(self, interaction: discord.Interaction) -> None:
        now = datetime.now(UTC)
        since = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        rows = await self.stats.usage(since)
        lines = [
            f"**{discord.utils.escape_markdown(row.guild_name or 'DMs')}** · "
            f"{row.total_tokens:,} tokens ({row.requests:,} replies)"
            for row in rows
        ]
        pages = pages_of(f"Tokens since {since:%d %B}", lines, empty="No replies this month.")
        await Paginator(interaction.user.id, pages).show(interaction)

    @app_commands.command(name="shutdown", description="Stop Hearth cleanly (queued work is saved first)")
    async def shutdown(self, interaction: discord.Interaction) -> None:
        await interaction.response.send_message("Shutting down. Good night! 🔥", ephemeral=True)
        # After the answer is out: the stop ends bot.start(), and the launcher then closes the services.
        self.bot.stop()

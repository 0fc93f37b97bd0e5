"""Token usage: the daily roll-up of what replies cost, per user and per guild (each answer of a reply regenerated
with 🔄 included, as the live counts see them: ``answers_spent``)."""

from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import GuildDailyTokenUsage, UserDailyTokenUsage
from bot.db.repositories.stats import answers_spent


class UsageRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def rolled_up_days(self, since: date) -> set[date]:
        """The days from ``since`` on that have rows in the daily tables (a day without replies never has)."""
        days = (
            select(UserDailyTokenUsage.day)
            .where(UserDailyTokenUsage.day >= since)
            .union(select(GuildDailyTokenUsage.day).where(GuildDailyTokenUsage.day >= since))
        )
        return set((await self.session.scalars(days)).all())

    async def roll_up(self, day: date) -> int:
        """Recount ``day`` (UTC) from the stored replies into the daily tables, each model answer on the day it was
        given (idempotent: the day's rows are replaced); returns how many rows were written."""
        start = datetime.combine(day, time(0), tzinfo=UTC)
        spent = answers_spent(start, start + timedelta(days=1))
        answers = (
            select(
                spent.c.user_id,
                spent.c.guild_id,
                spent.c.model,
                func.count().label("requests"),
                func.coalesce(func.sum(spent.c.prompt_tokens), 0).label("prompt_tokens"),
                func.coalesce(func.sum(spent.c.completion_tokens), 0).label("completion_tokens"),
            )
            .where(spent.c.model.is_not(None))
            .group_by(spent.c.user_id, spent.c.guild_id, spent.c.model)
        )
        rows = (await self.session.execute(answers)).all()
        await self.session.execute(delete(UserDailyTokenUsage).where(UserDailyTokenUsage.day == day))
        await self.session.execute(delete(GuildDailyTokenUsage).where(GuildDailyTokenUsage.day == day))
        per_user: dict[tuple[int, str], list[int]] = {}
        per_guild: dict[tuple[int, str], list[int]] = {}
        for user_id, guild_id, model, requests, prompt, completion in rows:
            counts = (int(requests), int(prompt or 0), int(completion or 0))
            for owner, table in ((user_id, per_user), (guild_id, per_guild)):
                if owner is None:
                    continue  # a reply in DMs counts for the user only
                total = table.setdefault((int(owner), str(model)), [0, 0, 0])
                for i, count in enumerate(counts):
                    total[i] += count
        user_rows = [
            {
                "day": day,
                "user_id": k[0],
                "model": k[1],
                "requests": v[0],
                "prompt_tokens": v[1],
                "completion_tokens": v[2],
            }
            for k, v in per_user.items()
        ]
        guild_rows = [
            {
                "day": day,
                "guild_id": k[0],
                "model": k[1],
                "requests": v[0],
                "prompt_tokens": v[1],
                "completion_tokens": v[2],
            }
            for k, v in per_guild.items()
        ]
        if user_rows:
            await self.session.execute(insert(UserDailyTokenUsage), user_rows)
        if guild_rows:
            await self.session.execute(insert(GuildDailyTokenUsage), guild_rows)
        return len(user_rows) + len(guild_rows)

from datetime import time

from sqlalchemy import Boolean, CheckConstraint, SmallInteger, String, Time, false
from sqlalchemy.orm import Mapped, mapped_column

from bot.db.base import Base, IdMixin, TimestampMixin
from bot.db.models._columns import user_fk


class UserPreferences(IdMixin, TimestampMixin, Base):
    """One typed row per user: what they chose about how Hearth treats them.

    Typed columns (not key/value pairs) so the scheduler can filter on opt-outs, time zones and quiet
    hours in SQL, and every value is validated once.
    """

    __tablename__ = "user_preferences"

    user_id: Mapped[int] = user_fk(unique=True)
    timezone: Mapped[str] = mapped_column(String(64), default="UTC", server_default="UTC", nullable=False)
    language: Mapped[str | None] = mapped_column(String(16))
    learning_opt_out: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false(), nullable=False)
    proactive_opt_out: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false(), nullable=False)
    quiet_hours_start: Mapped[time | None] = mapped_column(Time)
    quiet_hours_end: Mapped[time | None] = mapped_column(Time)
    # A birthday without a year is the common case, so month and day stand alone.
    birthday_month: Mapped[int | None] = mapped_column(SmallInteger)
    birthday_day: Mapped[int | None] = mapped_column(SmallInteger)
    birth_year: Mapped[int | None] = mapped_column(SmallInteger)

    __table_args__ = (
        CheckConstraint(
            "(birthday_month IS NULL) = (birthday_day IS NULL)"
            " AND (birthday_month IS NULL OR birthday_month BETWEEN 1 AND 12)"
            " AND (birthday_day IS NULL OR birthday_day BETWEEN 1 AND 31)",
            name="birthday_valid",
        ),
    )

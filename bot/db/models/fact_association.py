from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from bot.db.base import Base, CreatedAtMixin, IdMixin
from bot.db.models._columns import real
from bot.db.types import UTCDateTime, utcnow


class FactAssociation(IdMixin, CreatedAtMixin, Base):
    """Two members' facts that go together (a shared interest, the same city) within one guild."""

    __tablename__ = "fact_associations"

    fact_id_1: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("user_facts.id", ondelete="CASCADE"), nullable=False, index=True
    )
    fact_id_2: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("user_facts.id", ondelete="CASCADE"), nullable=False, index=True
    )
    association_type: Mapped[str] = mapped_column(String(50), nullable=False)
    strength: Mapped[float] = real(0.5)
    discovered_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)

    __table_args__ = (
        UniqueConstraint("fact_id_1", "fact_id_2"),
        CheckConstraint("fact_id_1 < fact_id_2", name="ordered_pair"),
        CheckConstraint("strength BETWEEN 0 AND 1", name="strength_range"),
    )

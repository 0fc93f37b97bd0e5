"""The session a service opens (``Database.session()``) as its unit of work and hands to repositories.

Named here so that services can say so in their signatures without importing SQLAlchemy themselves.
"""

from sqlalchemy.ext.asyncio import AsyncSession

__all__ = ["AsyncSession"]

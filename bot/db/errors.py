"""The database errors a service tells apart, so that no module outside ``bot/db/`` imports SQLAlchemy."""

from sqlalchemy.exc import IntegrityError
from sqlalchemy.exc import SQLAlchemyError as StorageError

__all__ = ["IntegrityError", "StorageError"]

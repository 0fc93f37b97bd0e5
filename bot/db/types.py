"""Column types that behave the same on PostgreSQL and SQLite.

* :class:`UTCDateTime`: timezone-aware UTC in, timezone-aware UTC out (SQLite stores naive UTC text).
* :class:`PortableJSON`: JSONB on PostgreSQL, JSON on SQLite.
* :class:`CleanText` / :class:`CleanString`: text passed through :func:`bot.domain.text.clean_text`.
* :class:`Embedding`: pgvector ``vector`` on PostgreSQL, a float32 blob on SQLite; NumPy arrays both ways.
* :data:`BigIntPK`: BIGINT ids that still autoincrement on SQLite (which only does so for INTEGER).
* :class:`DiscordId`: a Discord snowflake (0 to 2**64 - 1) in a signed BIGINT.
"""

import struct
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt
from pgvector.sqlalchemy import Vector
from sqlalchemy import JSON, BigInteger, DateTime, Dialect, Integer, LargeBinary, String, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import TypeDecorator, TypeEngine

from bot.domain.text import clean_json, clean_text

BigIntPK = BigInteger().with_variant(Integer(), "sqlite")

FloatVector = npt.NDArray[np.float32]


def utcnow() -> datetime:
    return datetime.now(UTC)


_TWO_63, _TWO_64 = 2**63, 2**64


class DiscordId(TypeDecorator[int]):
    """A Discord id: an unsigned 64-bit snowflake kept in a signed BIGINT, which both backends have.

    Ids up to 2**63 - 1 (every real snowflake for centuries yet) are stored as they are; larger ones, which
    anyone can send in a crafted request, wrap around to the negative half (``id - 2**64``) and come back
    unchanged, so storing and looking up by id work for every value a snowflake can hold. SQL that orders or
    computes on the column sees the stored value: only ids past 2**63 - 1 would sort (or shard) differently.
    """

    impl = BigInteger
    cache_ok = True

    def process_bind_param(self, value: int | None, dialect: Dialect) -> int | None:
        if value is None:
            return None
        if not 0 <= value < _TWO_64:
            raise ValueError(f"not a Discord id: {value}")
        return value - _TWO_64 if value >= _TWO_63 else value

    def process_result_value(self, value: int | None, dialect: Dialect) -> int | None:
        if value is None:
            return None
        return value + _TWO_64 if value < 0 else value


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that is always timezone-aware UTC in Python.

    Naive datetimes are refused on the way in: they are almost always a bug (``datetime.utcnow()``),
    and guessing their zone silently corrupts ordering.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: use timezone-aware UTC (bot.db.types.utcnow())")
        value = value.astimezone(UTC)
        # SQLite keeps text; store naive UTC so that text order is time order.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class PortableJSON(TypeDecorator[Any]):
    """JSONB on PostgreSQL, JSON elsewhere; strings inside are cleaned like all stored text."""

    impl = JSON
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(JSONB())
        return dialect.type_descriptor(JSON())

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        return None if value is None else clean_json(value)


class CleanText(TypeDecorator[str]):
    """TEXT that follows the storage rule of :mod:`bot.domain.text`."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        return None if value is None else clean_text(value)


class CleanString(TypeDecorator[str]):
    """VARCHAR(n) that follows the storage rule of :mod:`bot.domain.text`."""

    impl = String
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        return None if value is None else clean_text(value)


class _PgVector(Vector):
    """pgvector's column type, its values passed to asyncpg as NumPy arrays: each connection sends and reads them
    in pgvector's binary form (:func:`vector_to_postgresql`, registered in ``bot/db/engine.py``). As text, a
    vector took 70 µs of the event loop to write and as long to read back, three or four times per message."""

    cache_ok = True
    # Parameters are written ``$1::VECTOR``: in a multi-row insert's VALUES list an uncast parameter has no type
    # for asyncpg to choose the codec by.
    render_bind_cast = True

    def bind_processor(self, dialect: Dialect) -> Any:
        return None  # Embedding has made the array already

    def result_processor(self, dialect: Dialect, coltype: Any) -> Any:
        return None  # the connection's codec has read it


def vector_to_postgresql(value: FloatVector) -> bytes:
    """pgvector's binary form of a vector: its dimensions and a reserved zero (big-endian 16-bit each), then each
    value as a big-endian float32."""
    array = np.asarray(value, dtype=">f4")
    return struct.pack(">HH", array.size, 0) + array.tobytes()


def vector_from_postgresql(data: bytes) -> FloatVector:
    dimensions, _reserved = struct.unpack_from(">HH", data)
    return np.frombuffer(data, dtype=">f4", count=dimensions, offset=4).astype(np.float32)


class Embedding(TypeDecorator[FloatVector]):
    """An embedding vector: pgvector on PostgreSQL, little-endian float32 bytes on SQLite.

    The column's dimension is fixed by the migration from ``EMBEDDING_DIMENSION``; the Python type does
    not repeat it, so the models do not depend on settings.
    """

    impl = LargeBinary
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(_PgVector())
        return dialect.type_descriptor(LargeBinary())

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        array = np.asarray(value, dtype="<f4")
        if array.ndim != 1 or array.size == 0:
            raise ValueError(f"an embedding is a non-empty 1-D vector, got shape {array.shape}")
        if not np.isfinite(array).all():
            raise ValueError("an embedding may not hold NaN or infinity")
        return array if dialect.name == "postgresql" else array.tobytes()

    def process_result_value(self, value: Any, dialect: Dialect) -> FloatVector | None:
        if value is None:
            return None
        if isinstance(value, bytes | bytearray | memoryview):
            return np.frombuffer(bytes(value), dtype="<f4").astype(np.float32)
        return np.asarray(value, dtype=np.float32)

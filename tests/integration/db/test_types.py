"""Portable types round-trip unchanged on both backends; bad text is stored by one documented rule."""

from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pytest
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError, StatementError

from bot.db.engine import Database
from bot.db.models import Conversation, Guild, Memory, Message, User
from bot.domain.text import clean_text

T0 = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)


@pytest.mark.parametrize(
    "moment",
    [
        T0,
        datetime(2026, 6, 1, 23, 30, tzinfo=timezone(timedelta(hours=-7))),  # another zone, another UTC day
        datetime(1970, 1, 1, tzinfo=UTC),
        datetime(2999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    ],
)
async def test_datetimes_come_back_aware_utc_and_equal(db: Database, moment: datetime) -> None:
    async with db.session() as session:
        session.add(User(discord_id=1, discord_username="ana", first_seen_at=moment, last_seen_at=moment))
    async with db.session() as session:
        user = await session.scalar(select(User))
    assert user is not None
    assert user.first_seen_at == moment
    assert user.first_seen_at.utcoffset() == timedelta(0)
    assert user.created_at.tzinfo is not None


async def test_datetimes_order_by_instant_not_by_text(db: Database) -> None:
    early_in_lisbon = datetime(2026, 5, 1, 10, 0, tzinfo=timezone(timedelta(hours=1)))  # 09:00 UTC
    later_in_tokyo = datetime(2026, 5, 1, 18, 30, tzinfo=timezone(timedelta(hours=9)))  # 09:30 UTC
    async with db.session() as session:
        session.add_all(
            [
                User(discord_id=2, discord_username="tokyo", last_seen_at=later_in_tokyo),
                User(discord_id=1, discord_username="lisbon", last_seen_at=early_in_lisbon),
            ]
        )
    async with db.session() as session:
        names = (await session.scalars(select(User.discord_username).order_by(User.last_seen_at))).all()
        after = await session.scalars(
            select(User.discord_username).where(User.last_seen_at > datetime(2026, 5, 1, 9, 15, tzinfo=UTC))
        )
        assert names == ["lisbon", "tokyo"]
        assert after.all() == ["tokyo"]


async def test_naive_datetimes_are_refused(db: Database) -> None:
    with pytest.raises(StatementError, match="naive datetime"):
        async with db.session() as session:
            session.add(User(discord_id=1, discord_username="ana", first_seen_at=datetime(2026, 1, 1)))


async def test_json_round_trips(db: Database) -> None:
    settings = {
        "chat_channels": [2**62, 1],
        "nested": {"list": [1, 2.5, None, True, "ß"], "empty": {}},
        "emoji": "🔥",
        "quiet_hours": {"start": "22:00", "end": "07:00"},
    }
    async with db.session() as session:
        session.add(Guild(discord_id=1, name="g", settings=settings))
    async with db.session() as session:
        guild = await session.scalar(select(Guild))
    assert guild is not None and guild.settings == settings


async def test_vectors_round_trip_exactly_as_float32(db: Database) -> None:
    vector = np.random.default_rng(7).standard_normal(384).astype(np.float32)
    async with db.session() as session:
        session.add(Memory(kind="knowledge", content="lore", scope="global", embedding=vector, embedding_model="m"))
        session.add(Memory(kind="knowledge", content="not embedded yet", scope="global"))
    async with db.session() as session:
        stored = (await session.scalars(select(Memory).order_by(Memory.id))).all()
    assert stored[0].embedding is not None
    assert stored[0].embedding.dtype == np.float32
    np.testing.assert_array_equal(stored[0].embedding, vector)
    assert stored[1].embedding is None


async def test_malformed_vectors_are_refused(db: Database) -> None:
    for bad in ([], [[1.0, 2.0]], [float("nan")] * 384):
        with pytest.raises(StatementError, match="embedding"):
            async with db.session() as session:
                session.add(Memory(kind="knowledge", content="x", scope="global", embedding=bad))


async def test_postgres_enforces_the_vector_dimension(pg: Database) -> None:
    """SQLite stores a blob of any length; there the memory repository checks the dimension."""
    with pytest.raises(DBAPIError, match="expected 384 dimensions"):
        async with pg.session() as session:
            session.add(Memory(kind="knowledge", content="x", scope="global", embedding=[0.5] * 3))


BAD_TEXT = {
    "nul": "before\x00after",
    "lone surrogate": "broken \ud83d pair",
    "long": "lorem ipsum " * 834,  # 10,008 characters
    "emoji": "family 👨‍👩‍👧‍👦, flags 🇵🇹🇩🇪, skin tones 👋🏽",
    "rtl": "שלום עולם مرحبا بالعالم",
    "zero width": "zero\u200bwidth\u200cnon\u200djoiner\ufeff",
    "control": "tab\tnewline\nreturn\r bell\x07",
    "mixed": "\x00👋\ud800 שלום\u200b" * 50,
}


@pytest.mark.parametrize("name", BAD_TEXT)
async def test_hostile_text_is_stored_by_the_rule(db: Database, name: str) -> None:
    raw = BAD_TEXT[name]
    expected = clean_text(raw)
    async with db.session() as session:
        user = User(discord_id=1, discord_username=raw[:200], discord_display_name=raw[:255])
        session.add(user)
        await session.flush()
        conversation = Conversation(user_id=user.id, channel_id=1)
        session.add(conversation)
        await session.flush()
        session.add(
            Message(conversation_id=conversation.id, user_id=user.id, role="user", content=raw, image_urls=[raw])
        )
    async with db.session() as session:
        message = await session.scalar(select(Message))
        stored_user = await session.scalar(select(User))
    assert message is not None and stored_user is not None
    assert message.content == expected
    assert message.image_urls == [expected]
    assert stored_user.discord_username == clean_text(raw[:200])
    if "\x00" not in raw and not any("\ud800" <= c <= "\udfff" for c in raw):
        assert message.content == raw, "text without NUL or lone surrogates must be kept exactly"


def test_the_rule_removes_nul_and_replaces_lone_surrogates_only() -> None:
    assert clean_text("a\x00b") == "ab"
    assert clean_text("x\udc00y") == "x\ufffdy"
    assert clean_text("👨‍👩‍👧 \u200b שלום") == "👨‍👩‍👧 \u200b שלום"

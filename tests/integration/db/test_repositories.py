"""Every repository method, on SQLite and on PostgreSQL."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.exc import IntegrityError

from bot.db.engine import Database
from bot.db.repositories.guilds import GuildRepository
from bot.db.repositories.system import SystemRepository
from bot.db.repositories.users import UserRepository

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


async def test_user_upsert_inserts_then_refreshes_names_and_last_seen(db: Database) -> None:
    async with db.session() as session:
        first = await UserRepository(session).upsert(
            discord_id=2**62 + 1, username="ana", display_name="Ana", seen_at=T0
        )
    async with db.session() as session:
        again = await UserRepository(session).upsert(
            discord_id=2**62 + 1, username="ana_b", display_name=None, seen_at=T0 + timedelta(days=3)
        )
    assert again.id == first.id
    assert (again.discord_username, again.discord_display_name) == ("ana_b", None)
    assert again.first_seen_at == T0
    assert again.last_seen_at == T0 + timedelta(days=3)
    async with db.session() as session:
        repo = UserRepository(session)
        found = await repo.get_by_discord_id(2**62 + 1)
        assert found is not None and found.id == first.id
        assert (await repo.get(first.id)) is not None
        assert await repo.get_by_discord_id(12345) is None


async def test_user_delete_reports_whether_the_user_existed(db: Database) -> None:
    async with db.session() as session:
        user = await UserRepository(session).upsert(discord_id=7, username="bo", display_name=None, seen_at=T0)
    async with db.session() as session:
        assert await UserRepository(session).delete(user.id) is True
    async with db.session() as session:
        assert await UserRepository(session).delete(user.id) is False
        assert await UserRepository(session).get(user.id) is None


async def test_preferences_are_created_once_with_defaults(db: Database) -> None:
    async with db.session() as session:
        repo = UserRepository(session)
        user = await repo.upsert(discord_id=8, username="cy", display_name=None, seen_at=T0)
        preferences = await repo.preferences(user.id)
        assert (preferences.timezone, preferences.learning_opt_out, preferences.proactive_opt_out) == (
            "UTC",
            False,
            False,
        )
        preferences.timezone = "Europe/Lisbon"
    async with db.session() as session:
        again = await UserRepository(session).preferences(user.id)
    assert again.id == preferences.id
    assert again.timezone == "Europe/Lisbon"


async def test_guild_upsert_settings_merge_and_members(db: Database) -> None:
    async with db.session() as session:
        repo = GuildRepository(session)
        guild = await repo.upsert(discord_id=900, name="Cosy Corner")
        renamed = await repo.upsert(discord_id=900, name="Cozy Corner")
        assert renamed.id == guild.id and renamed.name == "Cozy Corner"
        assert (await repo.get_by_discord_id(900)) is not None
        assert await repo.get_by_discord_id(901) is None

        merged = await repo.update_settings(guild.id, {"chat_channels": [1, 2], "learning": False})
        assert merged == {"chat_channels": [1, 2], "learning": False}
        merged = await repo.update_settings(guild.id, {"learning": None, "language": "pt"})
        assert merged == {"chat_channels": [1, 2], "language": "pt"}
        with pytest.raises(LookupError):
            await repo.update_settings(guild.id + 100, {"x": 1})

        user = await UserRepository(session).upsert(discord_id=5, username="di", display_name=None, seen_at=T0)
        member = await repo.upsert_member(
            guild_id=guild.id, user_id=user.id, nickname="Di", roles=["mods"], joined_at=T0
        )
        updated = await repo.upsert_member(guild_id=guild.id, user_id=user.id, nickname=None, roles=[], joined_at=None)
        assert updated.id == member.id
        assert (updated.guild_nickname, updated.roles, updated.joined_guild_at) == (None, [], T0)
    async with db.session() as session:
        stored = await GuildRepository(session).get_by_discord_id(900)
        assert stored is not None and stored.settings == {"chat_channels": [1, 2], "language": "pt"}


async def test_foreign_keys_are_enforced(db: Database) -> None:
    with pytest.raises(IntegrityError):
        async with db.session() as session:
            await GuildRepository(session).upsert_member(
                guild_id=404, user_id=404, nickname=None, roles=[], joined_at=None
            )


async def test_system_repository_reports_versions(db: Database) -> None:
    async with db.session() as session:
        repo = SystemRepository(session)
        version = await repo.server_version()
        vector = await repo.extension_version("vector")
    if db.backend == "postgresql":
        assert version.startswith("18") and vector is not None and vector.startswith("0.8")
    else:
        assert version.startswith("SQLite 3.") and vector is None

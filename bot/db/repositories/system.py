"""Questions about the database server itself (doctor, owner status and maintenance)."""

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.repositories._dialect import dialect_name


class SystemRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def server_version(self) -> str:
        if dialect_name(self.session) == "postgresql":
            return str(await self.session.scalar(text("SHOW server_version")))
        return "SQLite " + str(await self.session.scalar(text("SELECT sqlite_version()")))

    async def sqlite_damage(self) -> str | None:
        """The first fault SQLite's ``quick_check`` finds in the file, such as ``Page 36: btreeInitPage() returns
        error code 11``; None when it finds none (always None on PostgreSQL). It reads every page once (no index is
        compared with its table, as ``integrity_check`` does), under a read lock only: about half a second for a
        250 MB file whose pages are cached."""
        if dialect_name(self.session) != "sqlite":
            return None
        result = str(await self.session.scalar(text("PRAGMA quick_check(1)")))
        lines = [line for line in result.splitlines() if line.strip() and not line.startswith("***")]
        return None if lines == ["ok"] else "; ".join(lines) or result

    async def extension_version(self, name: str) -> str | None:
        """The installed version of a PostgreSQL extension, or None (always None on SQLite)."""
        if dialect_name(self.session) != "postgresql":
            return None
        version = await self.session.scalar(
            text("SELECT extversion FROM pg_extension WHERE extname = :name"), {"name": name}
        )
        return None if version is None else str(version)

    async def extension_available(self, name: str) -> tuple[str, bool] | None:
        """The version of a PostgreSQL extension this server could install (installed or not) and whether this role
        may create it (a superuser, or any role with CREATE on the database for a trusted extension); None: not
        there (always None on SQLite)."""
        if dialect_name(self.session) != "postgresql":
            return None
        row = (
            await self.session.execute(
                text(
                    "SELECT a.default_version, (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) "
                    "OR (v.trusted AND has_database_privilege(current_database(), 'CREATE')) "
                    "FROM pg_available_extensions AS a JOIN pg_available_extension_versions AS v "
                    "ON v.name = a.name AND v.version = a.default_version WHERE a.name = :name"
                ),
                {"name": name},
            )
        ).first()
        return None if row is None else (str(row[0]), bool(row[1]))

    async def vector_size(self, table: str, column: str) -> int | None:
        """The number of dimensions a pgvector column was created with; None on SQLite (a blob of any size)."""
        if dialect_name(self.session) != "postgresql":
            return None
        size = await self.session.scalar(
            text(
                "SELECT atttypmod FROM pg_attribute "
                "WHERE attrelid = to_regclass(:table) AND attname = :column AND NOT attisdropped"
            ),
            {"table": table, "column": column},
        )
        return int(size) if size is not None and size > 0 else None

    async def database_size(self) -> int:
        """Bytes the database takes on disk (SQLite: the main file's pages, not its WAL)."""
        if dialect_name(self.session) == "postgresql":
            size = await self.session.scalar(text("SELECT pg_database_size(current_database())"))
        else:
            size = await self.session.scalar(
                text("SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()")
            )
        return int(size or 0)

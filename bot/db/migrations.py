"""Run Alembic migrations from inside Hearth (start-up, ``python -m bot db …``, tests)."""

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from bot.db.engine import Database

_REPO_ROOT = Path(__file__).resolve().parents[2]


def _script_location() -> Path:
    """``alembic/`` beside the package (a checkout or an editable install), else in the working folder."""
    for base in (_REPO_ROOT, Path.cwd()):
        if (base / "alembic" / "env.py").is_file():
            return base / "alembic"
    raise FileNotFoundError("cannot find the alembic/ folder; run Hearth from its repository folder")


def alembic_config(*, embedding_dimension: int, url: str | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(_script_location()))
    config.attributes["embedding_dimension"] = embedding_dimension
    if url is not None:
        config.attributes["url"] = url
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config(embedding_dimension=0)).get_current_head()
    if head is None:
        raise RuntimeError("the migration history has no head revision")
    return head


async def upgrade(database: Database, *, embedding_dimension: int, revision: str = "head") -> None:
    config = alembic_config(embedding_dimension=embedding_dimension)

    def run(connection: Connection) -> None:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)

    async with database.engine.begin() as connection:
        await connection.run_sync(run)


async def downgrade(database: Database, *, revision: str) -> None:
    config = alembic_config(embedding_dimension=0)

    def run(connection: Connection) -> None:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)

    async with database.engine.begin() as connection:
        await connection.run_sync(run)


async def current_revision(database: Database) -> str | None:
    def read(connection: Connection) -> str | None:
        return MigrationContext.configure(connection).get_current_revision()

    async with database.engine.connect() as connection:
        return await connection.run_sync(read)

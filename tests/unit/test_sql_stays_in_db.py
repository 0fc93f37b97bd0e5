"""Only ``bot/db/`` builds SQL: no other module of the bot imports SQLAlchemy, opens a driver's connection or
holds statement text.

Services name their session type and the database errors they tell apart through ``bot.db.session`` and
``bot.db.errors``, and parse URLs with ``bot.db.urls``; the statements themselves live in repositories.
"""

import ast
import re
from pathlib import Path

BOT = Path(__file__).resolve().parents[2] / "bot"
# The drivers' own connections.
DRIVERS = ("sqlite3", "aiosqlite", "asyncpg")
# A string that is a statement, and SQL inside any string; upper-case keywords, so prose ("select from the
# list") does not count.
STATEMENT = re.compile(r"^\s*(SELECT|INSERT|UPDATE|DELETE|PRAGMA|CREATE|ALTER|DROP|WITH|VACUUM|ANALYZE)\s")
SQL_TEXT = re.compile(
    r"\bSELECT\b[^;]{0,200}?\bFROM\b|\bINSERT\s+INTO\b|\bUPDATE\s+\w+\s+SET\b|\bDELETE\s+FROM\b|\bCREATE\s+TABLE\b"
)


def _is_sql(text: str) -> bool:
    return bool(STATEMENT.match(text) or SQL_TEXT.search(text))


def sql_in(source: str) -> list[str]:
    """Why ``source`` (a Python module) builds SQL: each SQLAlchemy import, driver connection and piece of SQL."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [
                f"imports {a.name} (line {node.lineno})" for a in node.names if a.name.split(".")[0] == "sqlalchemy"
            ]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "sqlalchemy":
            found.append(f"imports from {node.module} (line {node.lineno})")
        elif isinstance(node, ast.Attribute) and node.attr == "connect":
            owner = node.value
            if isinstance(owner, ast.Name) and owner.id in DRIVERS:
                found.append(f"opens a {owner.id} connection (line {node.lineno})")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and _is_sql(node.value):
            found.append(f"holds SQL: {node.value.strip()[:60]!r} (line {node.lineno})")
    return found


def test_no_sql_outside_bot_db() -> None:
    outside = [p for p in sorted(BOT.rglob("*.py")) if "db" not in p.relative_to(BOT).parts[:1]]
    assert len(outside) > 50 and BOT / "settings.py" in outside and BOT / "db" / "engine.py" not in outside
    offences = {str(p.relative_to(BOT.parent)): sql_in(p.read_text(encoding="utf-8")) for p in outside}
    assert {path: found for path, found in offences.items() if found} == {}


def test_the_check_sees_sql_where_it_is() -> None:
    """Run on bot/db/, the same check finds what it looks for (so its silence elsewhere means something)."""
    found = [line for p in sorted((BOT / "db").rglob("*.py")) for line in sql_in(p.read_text(encoding="utf-8"))]
    assert any("imports from sqlalchemy" in line for line in found)
    assert any("sqlite3 connection" in line for line in found)
    assert any("holds SQL" in line for line in found)


def test_the_check_tells_sql_from_prose() -> None:
    assert sql_in("import sqlalchemy.exc\n")
    assert sql_in("def f():\n    from sqlalchemy.ext.asyncio import AsyncSession\n")
    assert sql_in('QUERY = "SELECT id FROM users WHERE id = :id"\n')
    assert sql_in('LOCK = "UPDATE guilds SET id = id WHERE id = :guild_id"\n')
    assert sql_in('"""Claims due rows with a guarded DELETE FROM events, then INSERT INTO history."""\n')
    assert not sql_in(
        '"""Select a persona from the list, then update it."""\nfrom bot.db.session import AsyncSession\n'
    )

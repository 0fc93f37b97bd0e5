"""Only ``bot/db/`` builds SQL: no other module of the bot imports SQLAlchemy or holds SQL text.

Services hold a session and catch database errors through ``bot.db.session`` and ``bot.db.errors``; the
statements themselves live in repositories.
"""

import ast
import re
from pathlib import Path

import bot

BOT = Path(bot.__file__).parent

# Modules outside bot/db/ allowed to break the rule, each with the reason.
KNOWN_EXCEPTIONS = {
    # Its SQL is being moved into a repository; remove this entry when it is.
    "bot/services/operations.py",
}

# SQL as written in statements: upper-case keywords, so prose ("select from the list") does not count.
SQL_TEXT = re.compile(
    r"\bSELECT\b[^;]{0,200}?\bFROM\b|\bINSERT\s+INTO\b|\bUPDATE\s+\w+\s+SET\b|\bDELETE\s+FROM\b|\bCREATE\s+TABLE\b"
)


def sql_in(source: str) -> list[str]:
    """Why ``source`` (a Python module) builds SQL: each SQLAlchemy import and each piece of SQL text in it."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [
                f"line {node.lineno}: import {a.name}" for a in node.names if a.name.split(".")[0] == "sqlalchemy"
            ]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "sqlalchemy":
            found.append(f"line {node.lineno}: from {node.module} import ...")
    for number, line in enumerate(source.splitlines(), start=1):
        match = SQL_TEXT.search(line)
        if match:
            found.append(f"line {number}: {match.group(0)!r}")
    return found


def modules_outside_db() -> list[Path]:
    return sorted(path for path in BOT.rglob("*.py") if BOT / "db" not in path.parents)


def test_the_check_sees_sqlalchemy_imports_and_sql_text() -> None:
    assert sql_in("from sqlalchemy import select\n")
    assert sql_in("import sqlalchemy.exc\n")
    assert sql_in("def f():\n    from sqlalchemy.ext.asyncio import AsyncSession\n")
    assert sql_in('QUERY = "SELECT id FROM users WHERE id = :id"\n')
    assert sql_in('QUERY = "INSERT INTO users (id) VALUES (1)"\n')
    assert sql_in('QUERY = "UPDATE guilds SET id = id"\n')
    assert sql_in('QUERY = "DELETE FROM memories"\n')
    assert not sql_in(
        '"""Select a persona from the list, then update it."""\nfrom bot.db.session import AsyncSession\n'
    )


def test_only_bot_db_builds_sql() -> None:
    modules = modules_outside_db()
    assert BOT / "settings.py" in modules and BOT / "db" / "engine.py" not in modules  # the walk sees the tree
    offenders = {
        path.relative_to(BOT.parent).as_posix(): reasons
        for path in modules
        if (reasons := sql_in(path.read_text(encoding="utf-8")))
    }
    for known in KNOWN_EXCEPTIONS:
        offenders.pop(known, None)
    assert offenders == {}, "SQL outside bot/db/ (move it into a repository): " + "; ".join(
        f"{path}: {', '.join(reasons)}" for path, reasons in sorted(offenders.items())
    )

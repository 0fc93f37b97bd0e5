"""Only ``bot/db/`` builds SQL: no statement text, query builder or raw driver connection anywhere else."""

import ast
import re
from pathlib import Path

BOT = Path(__file__).resolve().parents[2] / "bot"
# SQLAlchemy's statement builders, and the drivers' own connections.
BUILDERS = {"text", "select", "insert", "update", "delete", "func", "literal_column", "table", "column"}
DRIVERS = ("sqlite3", "aiosqlite", "asyncpg")
STATEMENT = re.compile(r"^\s*(SELECT|INSERT|UPDATE|DELETE|PRAGMA|CREATE|ALTER|DROP|WITH|VACUUM|ANALYZE)\s")


def sql_in(path: Path) -> list[str]:
    found: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "sqlalchemy":
            found += [f"imports sqlalchemy's {a.name}" for a in node.names if a.name in BUILDERS]
        elif isinstance(node, ast.Attribute) and node.attr == "connect":
            owner = node.value
            if isinstance(owner, ast.Name) and owner.id in DRIVERS:
                found.append(f"opens a {owner.id} connection (line {node.lineno})")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and STATEMENT.match(node.value):
            found.append(f"holds SQL: {node.value.strip()[:60]!r} (line {node.lineno})")
    return found


def test_no_sql_outside_bot_db() -> None:
    outside = [p for p in sorted(BOT.rglob("*.py")) if "db" not in p.relative_to(BOT).parts[:1]]
    assert len(outside) > 50
    offences = {str(p.relative_to(BOT.parent)): sql_in(p) for p in outside}
    assert {path: found for path, found in offences.items() if found} == {}


def test_the_check_sees_sql_where_it_is() -> None:
    """Run on bot/db/, the same check finds what it looks for (so its silence elsewhere means something)."""
    found = [line for p in sorted((BOT / "db").rglob("*.py")) for line in sql_in(p)]
    assert any("text" in line for line in found) and any("sqlite3 connection" in line for line in found)
    assert any("holds SQL" in line for line in found)

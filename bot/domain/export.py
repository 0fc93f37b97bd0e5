"""A person's data export as files Discord can carry.

Discord refuses a file over its upload limit (10 MiB in a bot's DMs), and a year of talk exported as JSON can
be larger. An export that does not fit is cut into parts, each a JSON file of its own holding the export's
header and some of its rows, in order, so every part opens and reads like the whole.
"""

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

NAME = "hearth-export"

Row = tuple[str, Any]  # (table name, one row)


@dataclass(frozen=True, slots=True)
class ExportFile:
    name: str
    data: bytes


def export_files(export: Mapping[str, Any], limit: int) -> list[ExportFile]:
    """``export`` (its rows under ``"tables"``, table → rows) as JSON files of at most ``limit`` bytes: one
    ``hearth-export.json`` when it fits, else ``hearth-export-1-of-3.json`` and so on, each with a ``part`` field.
    A single row over ``limit`` (no stored row comes near it) would get a part of its own, still too large."""
    whole = _encode(export)
    if len(whole) <= limit:
        return [ExportFile(f"{NAME}.json", whole)]
    header = {key: value for key, value in export.items() if key != "tables"}
    rows = [(table, row) for table, table_rows in export["tables"].items() for row in table_rows]
    groups = _groups_within(header, rows, limit, total=len(rows))
    return [
        ExportFile(f"{NAME}-{number}-of-{len(groups)}.json", _encode(_part(header, group, number, len(groups))))
        for number, group in enumerate(groups, 1)
    ]


def _groups_within(header: Mapping[str, Any], rows: Sequence[Row], limit: int, *, total: int) -> list[Sequence[Row]]:
    """``rows`` cut in halves until each half, as a part, fits ``limit`` (counted with the longest part label
    there can be, ``total`` of ``total``, so numbering the parts afterwards cannot push one over)."""
    if len(rows) <= 1 or len(_encode(_part(header, rows, total, total))) <= limit:
        return [rows]
    middle = len(rows) // 2
    return [
        *_groups_within(header, rows[:middle], limit, total=total),
        *_groups_within(header, rows[middle:], limit, total=total),
    ]


def _part(header: Mapping[str, Any], rows: Sequence[Row], number: int, parts: int) -> dict[str, Any]:
    tables: dict[str, list[Any]] = {}
    for table, row in rows:
        tables.setdefault(table, []).append(row)
    return {**header, "part": f"{number} of {parts}", "tables": tables}


def _encode(export: Mapping[str, Any]) -> bytes:
    return json.dumps(export, ensure_ascii=False, indent=2).encode()

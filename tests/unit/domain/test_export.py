import json

from bot.domain.export import export_files

HEADER = {"discord_user_id": "42", "about": "Everything Hearth stores about you."}


def test_an_export_that_fits_is_one_file() -> None:
    export = {**HEADER, "tables": {"users": [{"id": 1}]}}
    [file] = export_files(export, 10_000)
    assert file.name == "hearth-export.json" and json.loads(file.data) == export


def test_a_larger_export_is_cut_into_parts_that_fit_and_hold_every_row_in_order() -> None:
    messages = [{"id": n, "content": f"message {n} " + "x" * 300} for n in range(100)]
    export = {**HEADER, "tables": {"users": [{"id": 1}], "messages": messages}}
    files = export_files(export, 4_000)
    parts = [json.loads(file.data) for file in files]
    assert len(files) > 1 and all(len(file.data) <= 4_000 for file in files)
    assert [file.name for file in files][-1] == f"hearth-export-{len(files)}-of-{len(files)}.json"
    assert all(part["part"] == f"{n} of {len(files)}" for n, part in enumerate(parts, 1))
    assert all(part["discord_user_id"] == "42" and part["about"] == HEADER["about"] for part in parts)
    assert [row for part in parts for row in part["tables"].get("messages", [])] == messages
    assert [row for part in parts for row in part["tables"].get("users", [])] == [{"id": 1}]

"""What a change notification between bot processes carries (bot/db/changes.py)."""

import pytest

from bot.db.changes import Change


@pytest.mark.parametrize(
    "change", [Change("maintenance", 1), Change("guild_settings", 2**63 - 1), Change("persona", None)]
)
def test_a_change_reads_back_as_it_was_sent(change: Change) -> None:
    assert Change.parse(change.payload()) == change


@pytest.mark.parametrize(
    "payload", ["", "not json", "[]", '{"kind": "weather", "key": 1}', '{"kind": "persona", "key": "7"}', '{"key": 1}']
)
def test_a_notification_it_does_not_understand_is_ignored(payload: str) -> None:
    assert Change.parse(payload) is None

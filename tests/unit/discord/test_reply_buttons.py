"""How long a press under a reply may wait for the database before it is acknowledged."""

from datetime import UTC, datetime, timedelta

import pytest

from bot.discord.reply_buttons import ANSWER_WITHIN_S, seconds_left_to_answer

PRESSED = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("late_by", "left"),
    [
        (0.0, ANSWER_WITHIN_S),  # delivered at once: all of it
        (1.5, ANSWER_WITHIN_S - 1.5),  # delivered late: what is left since the press
        (2.5, 0.0),  # past it already: acknowledged at once
        (-1.0, ANSWER_WITHIN_S),  # a clock behind Discord's: never longer than it would be
    ],
)
def test_the_seconds_a_press_may_wait_count_from_the_press(late_by: float, left: float) -> None:
    assert seconds_left_to_answer(PRESSED, PRESSED + timedelta(seconds=late_by)) == pytest.approx(left)

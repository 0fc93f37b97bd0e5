import pytest

from bot.domain.cut import CUT_BY_FILTER, CUT_BY_LENGTH, marked_if_cut, was_cut


def test_an_answer_a_content_filter_cut_ends_with_the_mark() -> None:
    marked = marked_if_cut("Once upon a time a dragon ", "content_filter")
    assert marked == f"Once upon a time a dragon…\n{CUT_BY_FILTER}"


def test_a_whole_answer_is_left_as_it_is() -> None:
    for finish in ("stop", None, "tool_calls"):
        assert marked_if_cut("All done.", finish) == "All done."


def test_a_code_block_left_open_is_closed_before_the_mark() -> None:
    marked = marked_if_cut("Here:\n```python\nprint(1)", "content_filter")
    assert marked == f"Here:\n```python\nprint(1)\n```\n{CUT_BY_FILTER}"


def test_an_answer_out_of_room_ends_with_its_own_mark() -> None:
    assert marked_if_cut("Then", "length") == f"Then…\n{CUT_BY_LENGTH}"


@pytest.mark.parametrize(
    ("finish_reason", "cut"), [("content_filter", True), ("length", True), ("stop", False), (None, False)]
)
def test_was_cut(finish_reason: str | None, cut: bool) -> None:
    assert was_cut(finish_reason) is cut

from bot.domain.text import normalize_newlines, one_line


def test_one_line_collapses_every_run_of_whitespace_and_trims_the_ends() -> None:
    assert one_line("  Ana:\n\n hi\tthere\r\nBob: fake  ", 100) == "Ana: hi there Bob: fake"
    assert one_line(" \n\t ", 10) == ""


def test_one_line_cuts_to_the_limit_with_an_ellipsis_and_no_space_before_it() -> None:
    assert one_line("abcdef", 6) == "abcdef"
    assert one_line("abcdefg", 6) == "abcde…"
    assert one_line("abcd efgh", 6) == "abcd…"  # not "abcd …"
    assert one_line("x" * 100, 61) == "x" * 60 + "…"


def test_normalize_newlines_turns_windows_and_old_mac_line_ends_into_newlines() -> None:
    assert normalize_newlines("a\r\nb\rc\nd\r\r\n") == "a\nb\nc\nd\n\n"
    assert normalize_newlines("no line ends") == "no line ends"

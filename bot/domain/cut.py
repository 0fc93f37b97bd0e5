"""What a person is shown of an answer the endpoint cut off part way.

An answer may stop after some of it was written: a content filter held the rest back (``finish_reason``
``content_filter``), or the model used all its ``max_tokens`` (``length``; a reasoning model's thinking counts in
them on most servers). What came before is shown and kept, with a short mark at its end saying so, so neither the
person nor the stored turn takes it for the whole answer. A mark after an unclosed code block closes the block
first, so it reads as a note, not as code.
"""

from bot.domain.chunking import open_fence_language

CUT_BY_FILTER = "*(the rest of this answer was held back by a content filter)*"
CUT_BY_LENGTH = "*(cut short: this answer ran out of room)*"

_MARKS = {"content_filter": CUT_BY_FILTER, "length": CUT_BY_LENGTH}


def was_cut(finish_reason: str | None) -> bool:
    """Whether an answer that ended for ``finish_reason`` was cut off part way (see the module's docstring)."""
    return (finish_reason or "") in _MARKS


def marked_if_cut(text: str, finish_reason: str | None) -> str:
    """``text`` as shown and kept: with a mark at its end when it was cut off (see the module's docstring)."""
    mark = _MARKS.get(finish_reason or "")
    if mark is None or not text.strip():
        return text
    text = text.rstrip()
    text += "\n```" if open_fence_language(text) is not None else "…"
    return f"{text}\n{mark}"

"""What a person is shown of an answer the endpoint cut off part way.

An endpoint's content filter may stop an answer after some of it was written (``finish_reason``
``content_filter``): what came before is shown and kept, with a short mark at its end saying the rest was held
back, so neither the person nor the stored turn takes it for the whole answer. A mark after an unclosed code block
closes the block first, so it reads as a note, not as code.
"""

from bot.domain.chunking import open_fence_language

CUT_BY_FILTER = "*(the rest of this answer was held back by a content filter)*"


def marked_if_cut(text: str, finish_reason: str | None) -> str:
    """``text`` as shown and kept: with :data:`CUT_BY_FILTER` at its end when a content filter cut it off."""
    if finish_reason != "content_filter" or not text.strip():
        return text
    text = text.rstrip()
    text += "\n```" if open_fence_language(text) is not None else "…"
    return f"{text}\n{CUT_BY_FILTER}"

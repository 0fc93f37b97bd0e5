"""Hide a reasoning model's thinking: what it writes inside ``<think>…</think>`` is never shown or kept.

Reasoning models (DeepSeek-R1, Qwen3 and others served by Ollama or vLLM) write their chain of thought before
the answer, between ``<think>`` and ``</think>``. The filter is fed the streamed pieces as they come and keeps
the visible text: tags split across pieces are recognised (a piece ending in what may be the start of a tag is
held back until the next one says), case and spaces inside a tag do not matter (``<Think>``, ``< /think >``),
``<thinking>`` counts too, an unclosed ``<think>`` hides the rest, and a ``</think>`` with no opening tag (the
chat template opened it inside the prompt) hides everything before it.
"""

import re

_TAG = re.compile(r"<\s{0,8}(/?)\s{0,8}(?:thinking|think)\s{0,8}>", re.IGNORECASE)
# What a piece may end with that could still become a tag once the next piece arrives.
_PARTIAL = re.compile(r"<\s{0,8}/?\s{0,8}(?:t(?:h(?:i(?:n(?:k(?:i(?:n(?:g)?)?)?)?)?)?)?)?\s{0,8}", re.IGNORECASE)


class ReasoningFilter:
    """Feed it pieces of a reply; :attr:`visible` is the text to show so far, :meth:`finish` the final text."""

    __slots__ = ("_hidden", "_pending", "_seen_tag", "_visible")

    def __init__(self) -> None:
        self._visible = ""
        self._pending = ""  # text not decided yet: a possible partial tag, or thinking waiting for its end
        self._hidden = False  # inside <think>…
        self._seen_tag = False

    @property
    def visible(self) -> str:
        """The answer so far, without thinking, tags or the blank lines a model leaves after ``</think>``."""
        return self._visible.lstrip()

    def feed(self, piece: str) -> str:
        """Take the next piece; return the visible text so far."""
        self._pending += piece
        while self._pending:
            match = _TAG.search(self._pending)
            if match is not None:
                closing = bool(match.group(1))
                if not self._hidden:
                    if closing and not self._seen_tag:
                        self._visible = ""  # an orphan </think>: all before it was thinking
                    elif not closing:
                        self._visible += self._pending[: match.start()]
                        self._hidden = True
                    else:
                        self._visible += self._pending[: match.start()]  # a stray closing tag: drop the tag
                elif closing:
                    self._hidden = False
                self._seen_tag = True
                self._pending = self._pending[match.end() :]
                continue
            start = self._pending.rfind("<")
            keep = start >= 0 and _PARTIAL.fullmatch(self._pending, start) is not None
            decided = self._pending[:start] if keep else self._pending
            if not self._hidden:
                self._visible += decided
            self._pending = self._pending[start:] if keep else ""
            break
        return self.visible

    def finish(self) -> str:
        """The final visible text: a held-back ``<th`` that never became a tag is text after all."""
        if not self._hidden:
            self._visible += self._pending
        self._pending = ""
        return self.visible


def strip_reasoning(text: str) -> str:
    """``text`` without its thinking (a whole answer, as a non-streamed call returns it)."""
    hider = ReasoningFilter()
    hider.feed(text)
    return hider.finish()

"""Split a reply into Discord messages of at most 2000 characters.

Cuts fall, in order of preference, at a paragraph break, a line break, a sentence end, a space, and only
in the latter half of the room left, so pieces stay large. A cut never falls inside a fenced code block
when a cut before the block is possible; a block too long for one message is closed at the cut and reopened
(with its language) in the next. Joined back, the pieces hold the whole text in order (plus those fences).
"""

import re
from collections.abc import Iterator

DISCORD_LIMIT = 2000
_FENCE = re.compile(r"^[ \t]*```(\S*)", re.M)
_SENTENCE_END = re.compile(r"[.!?…。！？][\"'”’)\]]*[ \t]+")
_CLOSE = "\n```"


def open_fence_language(text: str) -> str | None:
    """The language of a code fence left open at the end of ``text`` (``""`` if unnamed), else None."""
    language: str | None = None
    for match in _FENCE.finditer(text):
        language = match.group(1) if language is None else None
    return language


def _boundaries(window: str) -> Iterator[list[int]]:
    """Cut positions in ``window``, one list per kind of boundary, most natural kind first."""
    yield [m.end() for m in re.finditer(r"\n\s*\n", window)]
    yield [m.end() for m in re.finditer(r"\n", window)]
    yield [m.end() for m in _SENTENCE_END.finditer(window)]
    yield [m.end() for m in re.finditer(r" +", window)]


def _choose_cut(prefix: str, window: str) -> int:
    floor = len(window) // 2
    inside_code_somewhere: list[int] = []
    for positions in _boundaries(window):
        for position in reversed(positions):
            if open_fence_language(prefix + window[:position]) is None:
                if position >= floor:
                    return position
                break
            inside_code_somewhere.append(position)
    # No good cut outside code in the latter half: cut before the block that is open, if there is text before it.
    fences = [m.start() for m in _FENCE.finditer(window)]
    if not prefix and fences and window[: fences[-1]].strip():
        return fences[-1]
    # The block itself is too long: cut inside it, at the best boundary in the latter half.
    late = [p for p in inside_code_somewhere if p >= floor]
    return late[0] if late else len(window)


def split_message(text: str, limit: int = DISCORD_LIMIT) -> list[str]:
    """Pieces of at most ``limit`` characters that together hold ``text``."""
    pieces: list[str] = []
    rest, prefix = text, ""
    while rest:
        if len(prefix) + len(rest) <= limit:
            pieces.append(prefix + rest)
            break
        window = rest[: limit - len(prefix) - len(_CLOSE)]
        cut = _choose_cut(prefix, window) or len(window)
        piece, rest = prefix + window[:cut], rest[cut:]
        language = open_fence_language(piece)
        if language is None:
            prefix = ""
        else:
            piece = piece.rstrip("\n") + _CLOSE
            prefix = f"```{language}\n"
        pieces.append(piece)
    return [piece for piece in pieces if piece.strip()]

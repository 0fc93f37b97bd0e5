"""Token budgets: count sizes and cut text to fit.

Every function takes the counter to use (``count``): a real tokenizer's where one is known for the model (see
bot/llm/tokens.py), else :func:`estimate_tokens`. The estimate, one token per four characters (never less than
one per word-ish piece), is close for English and European text and costs nothing, but counts code and CJK low
(Japanese at about a quarter of its tokens). The prompt builder leaves a safety margin on top.
"""

import math
from collections.abc import Callable

TokenCounter = Callable[[str], int]

CHARS_PER_TOKEN = 4
# Chat APIs add a few tokens per message for role and separators.
MESSAGE_OVERHEAD_TOKENS = 4


def estimate_tokens(text: str) -> int:
    if not text:
        return 0
    return max(math.ceil(len(text) / CHARS_PER_TOKEN), math.ceil(len(text.split()) * 0.75))


def truncate_to_tokens(text: str, budget: int, *, ellipsis: str = "…", count: TokenCounter = estimate_tokens) -> str:
    """A long prefix of ``text`` (cut at a word boundary when possible) that fits ``budget`` tokens."""
    if budget <= 0:
        return ""
    if count(text) <= budget:
        return text
    limit = budget * CHARS_PER_TOKEN - len(ellipsis)
    cut = text[: max(limit, 0)]
    space = cut.rfind(" ")
    if space > limit * 0.6:
        cut = cut[:space]
    cut = cut.rstrip()
    while cut and (used := count(cut + ellipsis)) > budget:
        # Shrink in proportion (CJK or code may hold several times more tokens per character than guessed).
        cut = cut[: min(int(len(cut) * 0.9), int(len(cut) * budget / used))].rstrip()
    return cut + ellipsis if cut else ""


def take_lines_within(lines: list[str], budget: int, *, count: TokenCounter = estimate_tokens) -> list[str]:
    """The leading lines (most important first) whose total count fits ``budget``."""
    kept, used = [], 0
    for line in lines:
        cost = count(line) + 1
        if used + cost > budget:
            break
        kept.append(line)
        used += cost
    return kept

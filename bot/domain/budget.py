"""Token budgets: estimate sizes and cut text to fit, without a tokenizer.

An estimate of one token per four characters (never less than one per word-ish piece) is close enough for
budgeting English and European text, errs on the large side for code and CJK, and costs nothing. The prompt
builder leaves a safety margin on top.
"""

import math

CHARS_PER_TOKEN = 4
# Chat APIs add a few tokens per message for role and separators.
MESSAGE_OVERHEAD_TOKENS = 4


def estimate_tokens(text: str) -> int:
    if not text:
        return 0
    return max(math.ceil(len(text) / CHARS_PER_TOKEN), math.ceil(len(text.split()) * 0.75))


def truncate_to_tokens(text: str, budget: int, *, ellipsis: str = "…") -> str:
    """The longest prefix of ``text`` (cut at a word boundary when possible) that fits ``budget`` tokens."""
    if budget <= 0:
        return ""
    if estimate_tokens(text) <= budget:
        return text
    limit = budget * CHARS_PER_TOKEN - len(ellipsis)
    cut = text[: max(limit, 0)]
    space = cut.rfind(" ")
    if space > limit * 0.6:
        cut = cut[:space]
    cut = cut.rstrip()
    while cut and estimate_tokens(cut + ellipsis) > budget:
        cut = cut[: int(len(cut) * 0.9)]
    return cut + ellipsis if cut else ""


def take_lines_within(lines: list[str], budget: int) -> list[str]:
    """The leading lines (most important first) whose total estimate fits ``budget``."""
    kept, used = [], 0
    for line in lines:
        cost = estimate_tokens(line) + 1
        if used + cost > budget:
            break
        kept.append(line)
        used += cost
    return kept

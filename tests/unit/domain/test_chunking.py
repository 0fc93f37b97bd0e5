import random

import pytest

from bot.domain.chunking import DISCORD_LIMIT, open_fence_language, split_message


def _prose(seed: int, paragraphs: int) -> str:
    rng = random.Random(seed)
    words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "emoji 🔥", "שלום"]

    def sentences(n: int) -> str:
        return " ".join(
            " ".join(rng.choice(words) for _ in range(rng.randint(3, 14))) + rng.choice([".", "!", "?"])
            for _ in range(n)
        )

    return "\n\n".join(sentences(rng.randint(1, 12)) for _ in range(paragraphs))


@pytest.mark.parametrize("seed", range(20))
def test_prose_is_split_under_the_limit_and_joins_back_exactly(seed: int) -> None:
    text = _prose(seed, 40)
    pieces = split_message(text)
    assert all(len(piece) <= DISCORD_LIMIT for piece in pieces)
    assert "".join(pieces) == text
    assert all(len(piece) > DISCORD_LIMIT // 2 for piece in pieces[:-1]), "pieces stay large"


def test_short_text_is_one_piece() -> None:
    assert split_message("hello") == ["hello"]


def test_paragraph_breaks_are_preferred_over_sentences() -> None:
    first = "A sentence. " * 100  # 1200 characters
    text = first + "\n\n" + "Another one here. " * 60
    pieces = split_message(text)
    assert pieces[0] == first + "\n\n"


def test_a_text_without_spaces_is_still_cut() -> None:
    text = "x" * 4500
    pieces = split_message(text)
    assert "".join(pieces) == text and all(len(piece) <= DISCORD_LIMIT for piece in pieces)


def test_code_blocks_are_kept_whole_when_they_fit() -> None:
    block = "```python\n" + "\n".join(f"value_{i} = {i}" for i in range(80)) + "\n```\n"
    text = "Intro. " * 150 + "\n" + block + "Outro."
    pieces = split_message(text)
    assert any(block in piece for piece in pieces), "the block is not cut"
    assert all(open_fence_language(piece) is None for piece in pieces)


def test_a_code_block_longer_than_a_message_is_closed_and_reopened() -> None:
    lines = [f"print({i})  # keep me" for i in range(250)]
    text = "```py\n" + "\n".join(lines) + "\n```"
    pieces = split_message(text)
    assert len(pieces) >= 3 and all(len(piece) <= DISCORD_LIMIT for piece in pieces)
    for piece in pieces:
        assert piece.startswith("```py\n") and piece.rstrip().endswith("```")
        assert open_fence_language(piece) is None
    kept = [line for piece in pieces for line in piece.splitlines() if line.startswith("print(")]
    assert kept == lines

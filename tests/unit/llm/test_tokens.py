"""Prompt tokens counted with the model's tokenizer where one is known, and the budgets that use the count."""

import pytest

from bot.domain.budget import estimate_tokens, take_lines_within, truncate_to_tokens
from bot.domain.prompt import Budget, PersonaCard, PromptRequest, Turn, build_prompt, prompt_tokens
from bot.llm.tokens import counter_for, is_openai_family

# Counts made by tiktoken's cl100k_base (OpenAI's own tokenizer for gpt-4 and gpt-3.5-turbo) for these strings.
CL100K_COUNTS = {
    "I climb at the gym every Sunday with my sister, and next week we're trying the big outdoor crag near Lyon!": 25,
    "Ich gehe jeden Sonntag mit meiner Schwester klettern, und nächste Woche versuchen wir den großen "
    "Felsen bei Lyon.": 28,
    "毎週日曜日に妹とジムでクライミングをしています。来週はリヨン近くの大きな岩場に挑戦します。": 50,
    "def fib(n: int) -> int:\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n": 31,
    "lol 😂😂 that's so true!!! 🎉 see u tmrw <3": 19,
    "hello world": 2,
    "<|endoftext|> is only text here": 11,  # a special token in the text is counted as text
    "": 0,
}


@pytest.mark.parametrize("model", ["gpt-4o-mini", "gpt-4", "openai/gpt-4.1", "o3-mini", "ft:gpt-3.5-turbo:acme"])
def test_openai_models_count_with_the_tokenizer(model: str) -> None:
    count = counter_for(model)
    assert {text: count(text) for text in CL100K_COUNTS} == CL100K_COUNTS


@pytest.mark.parametrize("model", ["llama3.1:8b", "qwen3", "deepseek/deepseek-r1", "mistral-small", "omni-7b"])
def test_other_models_keep_the_estimate(model: str) -> None:
    assert not is_openai_family(model)
    assert counter_for(model) is estimate_tokens


def test_budgets_cut_by_the_real_count_where_the_estimate_would_overflow() -> None:
    count = counter_for("gpt-4o-mini")
    japanese = "毎週日曜日に妹とジムでクライミングをしています。" * 20
    assert estimate_tokens(japanese) < count(japanese) / 3, "the estimate counts Japanese far too low"

    cut = truncate_to_tokens(japanese, 40, count=count)
    assert 30 <= count(cut) <= 40 and japanese.startswith(cut[:-1])
    lines = ["毎週日曜日に妹とジムでクライミングをしています。"] * 10
    kept = take_lines_within(lines, 60, count=count)
    assert sum(count(line) + 1 for line in kept) <= 60 < sum(count(line) + 1 for line in lines[: len(kept) + 1])

    request = PromptRequest(
        persona=PersonaCard("Hearth", "A warm companion."),
        speaker="Ana",
        place="a direct message with Ana",
        current=[Turn("user", "覚えてる？")],
        history=[Turn("user" if i % 2 else "assistant", japanese) for i in range(30)],
        sections={"memories": "\n".join(lines * 10)},
    )
    budget = Budget(context_tokens=2048, reply_tokens=300, count=count)
    messages = build_prompt(request, budget)
    assert prompt_tokens(messages, count) <= budget.prompt_tokens
    assert len(messages) > 2, "some history still fits"
    by_estimate = build_prompt(request, Budget(context_tokens=2048, reply_tokens=300))
    assert prompt_tokens(by_estimate, count) > budget.prompt_tokens, "counted by characters, the prompt overflows"

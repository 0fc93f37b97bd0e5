import pytest

from bot.domain.budget import estimate_tokens, truncate_to_tokens
from bot.domain.prompt import Budget, PersonaCard, PromptRequest, Turn, build_prompt, prompt_tokens

PERSONA = PersonaCard(name="Hearth", personality="Warm and curious.", backstory="Lives by the fire.")


def request(**changes: object) -> PromptRequest:
    values: dict[str, object] = {
        "persona": PERSONA,
        "speaker": "Ana",
        "place": "#general in Cosy Corner",
        "current": [Turn("user", "how are you?", "Ana")],
        "is_group": True,
    }
    values.update(changes)
    return PromptRequest(**values)  # type: ignore[arg-type]


def test_shape_persona_history_and_labelled_speakers() -> None:
    history = [Turn("user", "hi all", "Bo"), Turn("assistant", "hello Bo!"), Turn("user", "morning", "Ana")]
    messages = build_prompt(request(history=history))
    assert messages[0].role == "system"
    assert "You are Hearth. Warm and curious." in messages[0].content
    assert "Lives by the fire." in messages[0].content and "#general in Cosy Corner" in messages[0].content
    assert [(m.role, m.content) for m in messages[1:]] == [
        ("user", "Bo: hi all"),
        ("assistant", "hello Bo!"),
        ("user", "Ana: morning"),
        ("user", "Ana: how are you?"),
    ]


def test_dm_turns_are_not_labelled_and_coalesced_messages_become_one_turn() -> None:
    current = [Turn("user", "wait", "Ana"), Turn("user", "one more thing", "Ana")]
    messages = build_prompt(request(is_group=False, current=current))
    assert messages[-1].content == "wait\none more thing"


def test_sections_appear_only_when_they_have_content() -> None:
    messages = build_prompt(request(sections={"facts": "- Ana is a nurse", "mood": "", "style": "  "}))
    system = messages[0].content
    assert "## What you know about Ana\n- Ana is a nurse" in system
    assert "Your mood" not in system and "How Ana writes" not in system


@pytest.mark.parametrize("turns", [0, 10, 1000, 20000])
def test_the_prompt_never_exceeds_the_budget_however_long_the_history(turns: int) -> None:
    budget = Budget(context_tokens=4096, reply_tokens=512)
    history = [Turn("user" if i % 2 else "assistant", f"message number {i} " * 20, "Bo") for i in range(turns)]
    sections = {name: "x " * 5000 for name in ("facts", "memories", "relationship", "mood", "style", "opinions")}
    messages = build_prompt(request(history=history, sections=sections), budget)
    assert prompt_tokens(messages) <= budget.prompt_tokens
    if turns:
        assert messages[-2].content.startswith("Bo: message number" if turns % 2 == 0 else "message number")
        assert f"message number {turns - 1} " in messages[-2].content, "the newest history is kept"


def test_a_small_context_window_scales_the_sections_down() -> None:
    budget = Budget(context_tokens=1024, reply_tokens=256)
    sections = {"memories": "remember " * 2000, "facts": "fact " * 2000}
    messages = build_prompt(request(sections=sections), budget)
    assert prompt_tokens(messages) <= budget.prompt_tokens
    assert "## Things you remember" in messages[0].content


def test_a_huge_message_is_cut_not_dropped() -> None:
    messages = build_prompt(request(current=[Turn("user", "word " * 50000, "Ana")]), Budget())
    assert messages[-1].content.startswith("Ana: word word")
    assert prompt_tokens(messages) <= Budget().prompt_tokens


def test_truncation_fits_and_marks_the_cut() -> None:
    text = "lorem ipsum dolor " * 500
    cut = truncate_to_tokens(text, 50)
    assert estimate_tokens(cut) <= 50 and cut.endswith("…") and text.startswith(cut[:-1])
    assert truncate_to_tokens("short", 50) == "short"
    assert truncate_to_tokens("anything", 0) == ""

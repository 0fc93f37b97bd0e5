import pytest

from bot.domain.triggers import ChatRules, MessageSignals, names_persona, should_reply

RULES = ChatRules(chat_channels=frozenset({10}), blocked_channels=frozenset({66}), blocked_users=frozenset({13}))


def signals(**changes: object) -> MessageSignals:
    values: dict[str, object] = {"text": "just chatting", "author_id": 1, "channel_id": 20, "is_dm": False}
    values.update(changes)
    return MessageSignals(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("case", "answer"),
    [
        (signals(is_dm=True), True),
        (signals(mentions_bot=True), True),
        (signals(replies_to_bot=True), True),
        (signals(text="hey Hearth, you there?"), True),
        (signals(channel_id=10), True),
        (signals(), False),
        (signals(text="hearthstone tonight?"), False),
        (signals(is_dm=True, author_is_bot=True), False),
        (signals(mentions_bot=True, is_webhook=True), False),
        (signals(is_dm=True, is_own=True), False),
        (signals(mentions_bot=True, channel_id=66), False),
        (signals(is_dm=True, author_id=13), False),
        (signals(channel_id=10, author_id=13), False),
    ],
)
def test_who_gets_an_answer(case: MessageSignals, answer: bool) -> None:
    assert should_reply(case, RULES, "Hearth") is answer


def test_persona_names_match_whole_words_in_any_case() -> None:
    assert names_persona("ok MIRA-chan", "Mira")
    assert names_persona("what does Mr. Fox think", "Mr. Fox")
    assert not names_persona("admiral", "Mira")
    assert not names_persona("anything", "  ")

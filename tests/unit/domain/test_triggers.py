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
        (signals(channel_id=30, parent_channel_id=10), True),  # a thread of a chat channel
        (signals(channel_id=30, parent_channel_id=66, mentions_bot=True), False),  # a thread of a blocked one
        (signals(channel_id=30, parent_channel_id=20), False),
    ],
)
def test_who_gets_an_answer(case: MessageSignals, answer: bool) -> None:
    assert should_reply(case, RULES, "Hearth") is answer


def test_persona_names_match_whole_words_in_any_case() -> None:
    assert names_persona("ok MIRA-chan", "Mira")
    assert names_persona("what does Mr. Fox think", "Mr. Fox")
    assert not names_persona("admiral", "Mira")
    assert not names_persona("anything", "  ")
    assert names_persona("thanks, Hearth.", "Hearth") and names_persona("Hearth... you there?", "Hearth")


@pytest.mark.parametrize(
    "text",
    [
        "see https://hearth.example.com for docs",
        "it is on github.com/me/hearth/issues",
        "run hearth.py again",
        "my build: https://www.reddit.com/r/cosy/comments/1ab2/my-new-hearth-build/",
        "https://www.google.com/search?q=hearth+tiles so many",
        "www.example.com/a-hearth-story",
        "cosy evening <:hearth:123456789012345678> <a:Hearth:123456789012345678>",
    ],
)
def test_a_persona_name_inside_a_link_or_a_file_name_is_not_said(text: str) -> None:
    assert not names_persona(text, "Hearth")


@pytest.mark.parametrize(
    ("mode", "case", "answer"),
    [
        ("mention", signals(text="hey Hearth, you there?"), False),
        ("mention", signals(mentions_bot=True), True),
        ("mention", signals(channel_id=10), True),
        ("chat-only", signals(mentions_bot=True), False),
        ("chat-only", signals(replies_to_bot=True), False),
        ("chat-only", signals(channel_id=10), True),
        ("chat-only", signals(is_dm=True), True),
        ("name", signals(text="hey Hearth, you there?"), True),
    ],
)
def test_a_guilds_reply_mode_narrows_who_gets_an_answer(mode: str, case: MessageSignals, answer: bool) -> None:
    rules = ChatRules(chat_channels=frozenset({10}), reply_mode=mode)
    assert should_reply(case, rules, "Hearth") is answer


def test_chime_in_answers_that_share_of_unaddressed_messages_outside_blocked_channels() -> None:
    rules = ChatRules(blocked_channels=frozenset({66}), chime_in_percent=25)
    rolls = [i / 100 for i in range(100)]
    assert sum(should_reply(signals(), rules, "Hearth", roll=r) for r in rolls) == 25
    assert not any(should_reply(signals(channel_id=66), rules, "Hearth", roll=r) for r in rolls)
    assert not should_reply(signals(), ChatRules(), "Hearth", roll=0.0), "0 % never chimes in"

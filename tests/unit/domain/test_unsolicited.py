from bot.domain.unsolicited import withheld


def test_an_unsolicited_message_is_withheld_by_the_bot_the_person_or_the_server_and_otherwise_may_go() -> None:
    assert withheld(daily_cap=3, opted_out=False) is None
    assert withheld(daily_cap=1, opted_out=False, server_allows=True) is None
    assert withheld(daily_cap=0, opted_out=False) == "bot"
    assert withheld(daily_cap=0, opted_out=True, server_allows=False) == "bot", "the bot's word comes first"
    assert withheld(daily_cap=3, opted_out=True, server_allows=False) == "person"
    assert withheld(daily_cap=3, opted_out=False, server_allows=False) == "server"

"""The deleted channels a bot remembers stay bounded however many threads its servers delete."""

from bot.services.conversation.gone import GoneChannels


def test_the_most_recent_deleted_channels_are_remembered_and_the_oldest_forgotten() -> None:
    gone = GoneChannels(size=3)
    for channel_id in (1, 2, 3, 4):
        gone.add(channel_id)
    assert 1 not in gone
    assert all(channel_id in gone for channel_id in (2, 3, 4))
    gone.add(5)
    assert 2 not in gone and 5 in gone

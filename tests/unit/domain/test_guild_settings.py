from bot.domain import guild_settings as rules
from bot.domain.guild_settings import GuildSettings, cooldown_s


def test_a_servers_own_cooldown_wins_over_the_bots_and_dms_use_the_bots() -> None:
    assert cooldown_s(GuildSettings(cooldown_s=0.0), 2.0) == 0.0
    assert cooldown_s(GuildSettings(cooldown_s=30.0), 2.0) == 30.0
    assert cooldown_s(GuildSettings(), 2.0) == 2.0
    assert cooldown_s(None, 2.0) == 2.0


def test_without_changes_only_the_lists_that_hold_what_was_deleted() -> None:
    settings = rules.read({"chat_channels": [1, 2], "blocked_channels": [3], "allowed_roles": [7, 8]})

    assert rules.without(settings, channels=frozenset({2, 9}), roles=frozenset({8})) == {
        "chat_channels": [1],
        "allowed_roles": [7],
    }
    assert rules.without(settings, channels=frozenset({9}), roles=frozenset({9})) == {}

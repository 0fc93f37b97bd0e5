from bot.domain.guild_settings import GuildSettings, cooldown_s


def test_a_servers_own_cooldown_wins_over_the_bots_and_dms_use_the_bots() -> None:
    assert cooldown_s(GuildSettings(cooldown_s=0.0), 2.0) == 0.0
    assert cooldown_s(GuildSettings(cooldown_s=30.0), 2.0) == 30.0
    assert cooldown_s(GuildSettings(), 2.0) == 2.0
    assert cooldown_s(None, 2.0) == 2.0

"""``python -m tests.support.launcher ARGS``: ``python -m bot ARGS`` with discord.py pointed at a fake Discord.

What :meth:`FakeDiscord.patch_discord` does in the test process, for a bot running in a process of its own:
the REST base comes from FAKE_DISCORD_API and the gateway from FAKE_DISCORD_GATEWAY; then the real CLI runs.
"""

import os
import sys

import yarl
from discord.gateway import DiscordWebSocket
from discord.http import Route

from bot.cli import main


def point_at_fake_discord() -> None:
    Route.BASE = os.environ["FAKE_DISCORD_API"]
    DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(os.environ["FAKE_DISCORD_GATEWAY"])


if __name__ == "__main__":
    point_at_fake_discord()
    sys.exit(main())

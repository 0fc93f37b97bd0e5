"""Conversation: the bot reads every message it can see and the conversation service decides whether to answer."""

from bot.discord.client import HearthBot
from bot.discord.exts import declined
from bot.discord.exts.chat._cog import Chat
from bot.discord.reply_buttons import ReplyButton


async def setup(bot: HearthBot) -> None:
    if declined(bot, __name__):
        return
    await bot.add_cog(Chat(bot, bot.services.conversation, bot.services.privacy, bot.services.metrics))
    bot.add_dynamic_items(ReplyButton)  # 🔄 ◀ ▶ under replies, also those sent before a restart


async def teardown(bot: HearthBot) -> None:
    bot.remove_dynamic_items(ReplyButton)

"""End to end, on both backends: what is said in one place is recalled where it may be, and nowhere else.

Gateway events go into the real discord.py client; the prompt the fake LLM receives is what is checked.
"""

from bot.db.engine import Database
from bot.discord.client import HearthBot
from tests.fakes.discord import FakeDiscord
from tests.fakes.llm_server import FakeLLM, Reply
from tests.support.bot import container_of, running_bot


async def answered(discord: FakeDiscord, channel_id: int, text: str) -> None:
    await discord.wait_for_request(
        lambda call: (
            call.route in ("create_message", "edit_message")
            and call.channel_id == channel_id
            and (call.body or {}).get("content") == text
        )
    )


async def test_a_secret_told_in_a_dm_stays_there_while_a_guild_remembers_across_its_channels(
    db: Database, llm: FakeLLM
) -> None:
    async with FakeDiscord() as discord:
        ana = discord.add_user("ana", global_name="Ana")
        ben = discord.add_user("ben", global_name="Ben")
        guild = discord.add_guild("Cosy Corner", channels=["general", "random"], members=[ana, ben])
        general, random = guild.channel("general"), guild.channel("random")
        async with running_bot(discord, db, llm) as bot:
            mention = discord.bot.mention
            llm.script(Reply("Your secret is safe with me."), Reply("Oh no, poor plant!"))
            await discord.user_message(
                discord.dm_channel(ben), ben, "promise not to tell anyone: I'm adopting a dog named Biscuit"
            )
            await answered(discord, discord.dm_channel(ben), "Your secret is safe with me.")
            await discord.user_message(random, ana, f"{mention} my cat Pepper knocked over a plant today")
            await answered(discord, random, "Oh no, poor plant!")
            await flushed(bot)

            # In the guild, another channel: Ana's words from #random are recalled, Ben's DM is not.
            llm.script(Reply("I can't share that."), Reply("I can't share that either."))
            await discord.user_message(general, ana, f"{mention} what did Ben tell you about a dog? And my cat?")
            await answered(discord, general, "I can't share that.")
            prompt = llm.chat_requests[-1].prompt_text()
            assert 'in #random, Ana said: "@Hearth my cat Pepper knocked over a plant today"' in prompt
            assert "Biscuit" not in prompt and "adopting" not in prompt

            # In Ana's DMs: neither Ben's secret nor what was said in the guild.
            await discord.user_message(discord.dm_channel(ana), ana, "what is the name of Ben's new dog? and my cat?")
            await answered(discord, discord.dm_channel(ana), "I can't share that either.")
            prompt = llm.chat_requests[-1].prompt_text()
            assert "Biscuit" not in prompt and "adopting" not in prompt and "Pepper" not in prompt


async def flushed(bot: HearthBot) -> None:
    """Memories are written in the background: wait until everything said so far is stored."""
    await container_of(bot).embedding_worker.flush()

"""End to end, on both backends: the images people send reach the model, are remembered as descriptions, and a
model that cannot see them is noticed once.

Real discord.py against the fake Discord (attachments on its CDN), the real ``openai`` client against the fake
LLM; what is checked is what the model was sent.
"""

import asyncio
import logging
from typing import Any

import pytest
from sqlalchemy import select

from bot.db.engine import Database
from bot.db.models import Memory
from bot.discord.client import HearthBot
from bot.domain.images import MAX_IMAGE_BYTES
from tests.e2e.test_discord_branches import press, stored_as_shown_in
from tests.fakes.discord import FakeAttachment, FakeDiscord
from tests.fakes.llm_server import Fail, FakeLLM, LLMRequest, Reply
from tests.support.bot import container_of, running_bot
from tests.support.observability import counted

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


async def answered(discord: FakeDiscord, channel_id: int, text: str) -> None:
    await discord.wait_for_request(
        lambda call: (
            call.route in ("create_message", "edit_message")
            and call.channel_id == channel_id
            and (call.body or {}).get("content") == text
        )
    )


async def settled(bot: HearthBot) -> None:
    """Images described and every memory embedded: what the background work does after a turn."""
    container = container_of(bot)
    if container.image_describer is not None:
        await container.image_describer.flush()
    await container.embedding_worker.flush()


def image_parts(request: LLMRequest) -> list[dict[str, object]]:
    return [
        part
        for message in request.messages
        if isinstance(message.get("content"), list)
        for part in message["content"]
        if part.get("type") == "image_url"
    ]


async def test_an_image_is_shown_with_its_message_and_recalled_later_by_what_it_showed(
    db: Database, llm: FakeLLM
) -> None:
    llm.image_descriptions["cat.png"] = "a ginger cat asleep on a laptop keyboard"
    async with FakeDiscord() as discord:
        ana = discord.add_user("ana", global_name="Ana")
        guild = discord.add_guild("Cosy Corner", channels=["general", "random"], members=[ana])
        general, random = guild.channel("general"), guild.channel("random")
        async with running_bot(discord, db, llm) as bot:
            mention = discord.bot.mention
            llm.script(Reply("What a sleepy cat!"))
            sent = await discord.user_message(
                random,
                ana,
                f"{mention} look who took my seat",
                attachments=[
                    ("cat.png", PNG),
                    ("notes.txt", b"not an image"),
                    FakeAttachment("huge.png", PNG, claimed_size=MAX_IMAGE_BYTES + 1),
                ],
            )
            await answered(discord, random, "What a sleepy cat!")
            (reply,) = llm.reply_requests
            cat_url = sent["attachments"][0]["url"]
            # The image is a part of the user message it came with, after its text; other files are left out.
            user = reply.messages[-1]
            assert user["role"] == "user" and user["content"][0]["type"] == "text"
            assert "look who took my seat\n[file: notes.txt]\n[file: huge.png]" in user["content"][0]["text"], "told"
            assert image_parts(reply) == [{"type": "image_url", "image_url": {"url": cat_url}}]

            await settled(bot)
            # One description call for the message, off the reply path.
            assert [r.images for r in llm.description_requests] == [[cat_url]]

            # Another channel, another conversation: the photo is recalled from memory, by what it showed.
            llm.script(Reply("Your cat, asleep on the keyboard."))
            await discord.user_message(general, ana, f"{mention} what was on my keyboard in that photo?")
            await answered(discord, general, "Your cat, asleep on the keyboard.")
            later = llm.reply_requests[-1]
            remembered = "look who took my seat\n[file: notes.txt]\n[file: huge.png]\n[image: a ginger cat asleep on"
            assert remembered in later.prompt_text(), "the files not shown are remembered by name"
            assert image_parts(later) == []


async def remembered_as(db: Database, start: str) -> str:
    """The memory of the turn whose text starts ``start``."""
    async with db.reading() as session:
        found = await session.scalar(select(Memory.content).where(Memory.content.startswith(start)))
    assert found is not None
    return found


async def test_an_image_its_author_removes_in_an_edit_is_neither_shown_nor_remembered(
    db: Database, llm: FakeLLM
) -> None:
    """Ana edits her message and drops the photo from it: Hearth no longer remembers the photo, and answering her
    message again (🔄) shows the model her words without it."""
    llm.image_descriptions["cat.png"] = "a ginger cat asleep on a laptop keyboard"
    async with FakeDiscord() as discord:
        ana = discord.add_user("ana", global_name="Ana")
        general = discord.add_guild("Cosy Corner", channels=["general"], members=[ana]).channel("general")
        async with running_bot(discord, db, llm) as bot:
            llm.script(Reply("What a sleepy cat!"), Reply("Your seat looks comfy."))
            said = f"{discord.bot.mention} look who took my seat"
            sent = await discord.user_message(general, ana, said, attachments=[("cat.png", PNG)])
            await answered(discord, general, "What a sleepy cat!")
            [reply] = discord.sent_messages(general)
            await stored_as_shown_in(db, reply)
            await settled(bot)
            assert "[image: a ginger cat" in await remembered_as(db, "@Hearth look who")

            await discord.user_edits(sent, said, attachments=[])
            async with asyncio.timeout(5):  # the edit is followed in the background
                while (remembered := await remembered_as(db, "@Hearth look who")) != "@Hearth look who took my seat":
                    assert remembered.startswith("@Hearth look who took my seat\n[image")
                    await asyncio.sleep(0.02)

            await press(discord, ana, reply, "regen", predicate=lambda m: m["content"] == "Your seat looks comfy.")
            again = llm.reply_requests[-1]
            assert again.images == [] and "ginger cat" not in again.prompt_text()


@pytest.mark.parametrize("fallbacks", [[], ["backup-model"]], ids=["alone", "with-fallback"])
async def test_a_model_refusing_images_twice_in_a_row_gets_turns_without_them_and_no_image_again(
    db: Database, llm: FakeLLM, caplog: pytest.LogCaptureFixture, fallbacks: list[str]
) -> None:
    """With fallback models too: a refused image is no reason to pass the turn to another model. One refusal could
    be that image's doing (a link the endpoint failed to fetch); the second in a row is the model's."""
    llm.text_only_models.add("fake-model")  # answers 400 to any request with an image
    async with FakeDiscord() as discord:
        ana = discord.add_user("ana", global_name="Ana")
        dm = discord.dm_channel(ana)
        async with running_bot(discord, db, llm, llm_fallback_models=fallbacks) as bot:
            with caplog.at_level(logging.WARNING, logger="bot.llm.vision"):
                for said, answer in (
                    ("my new bike", "I can't see pictures, but tell me about it!"),
                    ("and my helmet", "Still can't see it."),
                ):
                    llm.script(Reply(answer))
                    await discord.user_message(dm, ana, said, attachments=[(f"{said}.png", PNG)])
                    await answered(discord, dm, answer)
                    refused, retried = llm.reply_requests[-2:]
                    assert len(image_parts(refused)) == 1
                    assert image_parts(retried) == [] and f"{said}\n[image]" in retried.prompt_text()
                    assert [r.body["model"] for r in (refused, retried)] == ["fake-model", "fake-model"]
                    if said == "my new bike":
                        assert not [r for r in caplog.records if r.name == "bot.llm.vision"], "once proves nothing"

                llm.script(Reply("Gloves, nice."))
                gloves = await discord.user_message(dm, ana, "and my gloves", attachments=[("gloves.png", PNG)])
                await answered(discord, dm, "Gloves, nice.")
                await settled(bot)
            later = llm.reply_requests[4:]
            assert len(later) == 1 and image_parts(later[0]) == []
            assert "and my gloves" in later[0].prompt_text()
            # The model known to be text-only is not sent the next image at all, for a reply or a description.
            gloves_url = gloves["attachments"][0]["url"]
            assert not any(gloves_url in r.images for r in llm.chat_requests)
            warnings = [r for r in caplog.records if r.name == "bot.llm.vision"]
            assert len(warnings) == 1 and "fake-model" in warnings[0].getMessage()


async def test_an_image_refused_once_does_not_stop_the_next_ones(
    db: Database, llm: FakeLLM, caplog: pytest.LogCaptureFixture
) -> None:
    """A vision model's endpoint that fails on one image (here: could not download it) answers that turn without
    it, and the next images are sent as before: a refusal counts against the model only when the one before it
    did too, with no image answered in between."""
    async with FakeDiscord() as discord:
        ana = discord.add_user("ana", global_name="Ana")
        dm = discord.dm_channel(ana)
        async with running_bot(discord, db, llm):
            with caplog.at_level(logging.WARNING, logger="bot.llm.vision"):
                for number, refused in enumerate((True, False, True, False)):
                    if refused:
                        llm.script(Fail(400, message="Timeout while downloading the image."))
                    llm.script(Reply(f"answer {number}"))
                    await discord.user_message(dm, ana, f"photo {number}", attachments=[(f"p{number}.png", PNG)])
                    await answered(discord, dm, f"answer {number}")
    replies = [r for r in llm.reply_requests if "response_format" not in r.body]  # not the learner's
    assert [len(image_parts(r)) for r in replies] == [1, 0, 1, 1, 0, 1]
    assert not [r for r in caplog.records if r.name == "bot.llm.vision"], "no model was taken for text-only"


async def test_images_refused_for_what_they_show_do_not_make_the_model_text_only(
    db: Database, llm: FakeLLM, caplog: pytest.LogCaptureFixture
) -> None:
    """A content filter refusing a request for its images (400 ``content_filter``) says nothing of whether the
    model sees images: each such turn is answered without its image, and the next images are sent as before."""
    filtered = "The response was filtered due to the prompt triggering Azure OpenAI's content management policy."
    async with FakeDiscord() as discord:
        ana = discord.add_user("ana", global_name="Ana")
        dm = discord.dm_channel(ana)
        async with running_bot(discord, db, llm):
            with caplog.at_level(logging.WARNING, logger="bot.llm.vision"):
                for number in range(3):
                    if number < 2:
                        llm.script(Fail(400, message=filtered, code="content_filter"))
                    llm.script(Reply(f"answer {number}"))
                    await discord.user_message(dm, ana, f"photo {number}", attachments=[(f"p{number}.png", PNG)])
                    await answered(discord, dm, f"answer {number}")
    replies = [r for r in llm.reply_requests if "response_format" not in r.body]  # not the learner's
    assert [len(image_parts(r)) for r in replies] == [1, 0, 1, 0, 1]
    assert not [r for r in caplog.records if r.name == "bot.llm.vision"], "no model was taken for text-only"


async def test_with_vision_off_no_image_is_sent_or_described(db: Database, llm: FakeLLM) -> None:
    async with FakeDiscord() as discord:
        ana = discord.add_user("ana", global_name="Ana")
        dm = discord.dm_channel(ana)
        async with running_bot(discord, db, llm, llm_vision=False) as bot:
            llm.script(Reply("Lovely sunset."))
            await discord.user_message(dm, ana, "the view tonight", attachments=[("sunset.png", PNG)])
            await answered(discord, dm, "Lovely sunset.")
            await settled(bot)
            assert all(image_parts(r) == [] for r in llm.chat_requests)
            assert llm.description_requests == []
            assert "the view tonight\n[image]" in llm.reply_requests[0].prompt_text()


async def test_a_reply_a_text_only_fallback_gives_without_the_images_still_counts_the_model_that_was_down(
    db: Database, llm: FakeLLM
) -> None:
    """The main model is down (500s); the fallback standing in for it cannot see, refuses the images and answers
    without them. The metrics show the outage as they do for a reply without images: the main model failed, with
    its server errors, and the fallback answered."""
    llm.text_only_models.add("backup-model")  # answers 400 to any request with an image

    def answer(body: dict[str, object]) -> Fail | Reply:
        return Fail(500) if body["model"] == "fake-model" else Reply("I can't see it, but tell me about it!")

    llm.default = answer
    async with FakeDiscord() as discord:
        ana = discord.add_user("ana", global_name="Ana")
        dm = discord.dm_channel(ana)
        async with running_bot(
            discord, db, llm, budget_s=0.5, llm_fallback_models=["backup-model"], learning_enabled=False
        ) as bot:
            await discord.user_message(dm, ana, "my new bike", attachments=[("bike.png", PNG)])
            await answered(discord, dm, "I can't see it, but tell me about it!")
            registry = container_of(bot).metrics.registry
            await counted(registry, "hearth_model_calls_total", 1, model="backup-model", purpose="reply", result="ok")
            await counted(registry, "hearth_model_calls_total", 1, model="fake-model", purpose="reply", result="failed")
            server_errors = {"purpose": "reply", "kind": "server_error"}
            # The main model's server errors, retried within its budget.
            assert (registry.get_sample_value("hearth_model_errors_total", server_errors) or 0) >= 2


async def test_a_fallback_known_to_be_text_only_is_sent_no_image_while_the_model_is_down(
    db: Database, llm: FakeLLM, caplog: pytest.LogCaptureFixture
) -> None:
    """The main model is down and rests; the fallback standing in for it refused images twice in a row and is known
    to be text-only. The next photo costs no request the fallback refuses, for the reply or for the description:
    the reply is answered without the image at once."""
    llm.text_only_models.add("backup-model")  # answers 400 to any request with an image
    things = ("bike", "helmet", "gloves")

    def answer(body: dict[str, Any]) -> Fail | Reply:
        if body["model"] == "fake-model":
            return Fail(500)
        said = str(body["messages"][-1]["content"])
        return Reply(f"Tell me about your {next(thing for thing in things if thing in said)}!")

    def refused_by_the_fallback() -> list[LLMRequest]:
        return [r for r in llm.chat_requests if r.body["model"] == "backup-model" and r.images]

    llm.default = answer
    llm.description_faults = [Fail(500)] * 100  # down for descriptions too
    async with FakeDiscord() as discord:
        ana = discord.add_user("ana", global_name="Ana")
        dm = discord.dm_channel(ana)
        async with running_bot(
            discord, db, llm, budget_s=0.5, llm_fallback_models=["backup-model"], learning_enabled=False
        ) as bot:
            with caplog.at_level(logging.WARNING, logger="bot.llm.vision"):
                for thing in things[:2]:
                    await discord.user_message(dm, ana, f"my new {thing}", attachments=[(f"{thing}.png", PNG)])
                    await answered(discord, dm, f"Tell me about your {thing}!")
                    await settled(bot)
            assert any("backup-model" in r.getMessage() for r in caplog.records if r.name == "bot.llm.vision")
            refused = len(refused_by_the_fallback())

            await discord.user_message(dm, ana, "my new gloves", attachments=[("gloves.png", PNG)])
            await answered(discord, dm, "Tell me about your gloves!")
            await settled(bot)
            assert "my new gloves\n[image]" in llm.reply_requests[-1].prompt_text()
            assert len(refused_by_the_fallback()) == refused, "no image sent to the fallback known to be text-only"

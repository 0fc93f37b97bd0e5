"""An image's description rewrites its turn's memory, on real databases: the word search finds it at once, and a
vector made from the text before it is not stored (the memory is embedded again from what it says now)."""

import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select

from bot.db.engine import Database
from bot.db.models import Memory
from bot.db.repositories.conversations import ConversationRepository
from bot.db.repositories.memories import MemoryRepository, NewMemory
from bot.db.repositories.users import UserRepository
from bot.domain.memory_text import with_images
from bot.domain.prompt import ChatMessage
from bot.domain.recall import RecallScope
from bot.llm.chat import ChatOptions
from bot.llm.fallback import FallbackChatModel
from bot.llm.vision import Vision, VisionGate
from bot.services.image_describer import ImageDescriber
from tests.fakes.llm_server import Fail, FakeLLM, LLMRequest, Reply
from tests.support.chat import chat_model
from tests.support.database_faults import failing_when
from tests.support.embedding import shared_embedder


@pytest.mark.parametrize("described_meanwhile", [False, True])
async def test_a_vector_made_before_the_image_was_described_is_not_stored(
    db: Database, described_meanwhile: bool
) -> None:
    at = datetime.now(UTC)
    async with db.session() as session:
        user = await UserRepository(session).upsert(discord_id=11, username="ana", display_name="Ana", seen_at=at)
        [memory_id] = await MemoryRepository(session).add_many(
            [
                NewMemory(
                    kind="message",
                    content=with_images("look who took my seat", [None]),
                    scope="dm",
                    created_at=at,
                    user_id=user.id,
                    speaker_name="Ana",
                )
            ],
            None,
            None,
        )
    scope = RecallScope(user_id=user.id, guild_id=None)
    embedder = await shared_embedder()
    async with db.reading() as session:
        claimed = await MemoryRepository(session).claim_unembedded(10)
    vectors = await embedder.embed(["Ana: look who took my seat\n[image]"])
    if described_meanwhile:
        async with db.session() as session:
            await MemoryRepository(session).rewrite(
                memory_id,
                with_images("look who took my seat", ["a ginger cat asleep on a keyboard"]),
                created_at=at,
                speaker_name="Ana",
            )
    async with db.session() as session:
        await MemoryRepository(session).fill_embeddings(claimed, vectors, embedder.model_name)
    async with db.reading() as session:
        repo = MemoryRepository(session)
        assert await repo.count_unembedded() == (1 if described_meanwhile else 0)
        found = await repo.by_words(["ginger", "keyboard"], scope, limit=5, exclude_message_ids=[])
    if described_meanwhile:
        assert [row.content for row in found] == ["look who took my seat\n[image: a ginger cat asleep on a keyboard]"]
    else:
        assert found == []


@contextlib.contextmanager
def connection_drops_once_when_a_memory_is_rewritten(database: Database) -> Iterator[list[str]]:
    """While open, the first statement that gives a memory new text fails as a dropped connection does (on
    PostgreSQL the connection really drops; on SQLite the driver raises an I/O error)."""
    dropped: list[str] = []

    def fails(statement: str, parameters: Any) -> bool:
        if dropped or not statement.lstrip().upper().startswith("UPDATE MEMORIES SET CONTENT"):
            return False
        dropped.append(statement)
        return True

    with failing_when(database, fails):
        yield dropped


async def test_a_description_is_kept_when_the_connection_drops_as_it_is_written(db: Database, llm: FakeLLM) -> None:
    at = datetime.now(UTC)
    async with db.session() as session:
        user = await UserRepository(session).upsert(discord_id=11, username="ana", display_name="Ana", seen_at=at)
        conversations = ConversationRepository(session)
        conversation = await conversations.open(channel_id=500, guild_id=None, user_id=user.id, at=at)
        message_id = await conversations.add_message(
            conversation_id=conversation.id,
            user_id=user.id,
            role="user",
            content="look who took my seat",
            at=at,
            image_urls=["https://cdn.discordapp.com/attachments/1/2/seat.png"],
            images_pending=True,
        )
        await MemoryRepository(session).add_many(
            [
                NewMemory(
                    kind="message",
                    content=with_images("look who took my seat", [None]),
                    scope="dm",
                    created_at=at,
                    user_id=user.id,
                    speaker_name="Ana",
                    message_id=message_id,
                )
            ],
            None,
            None,
        )
    llm.image_descriptions["seat.png"] = "a ginger cat asleep on a keyboard"
    describer = ImageDescriber(db, chat_model(llm.base_url), Vision(enabled=True), model="fake-model")

    with connection_drops_once_when_a_memory_is_rewritten(db) as dropped:
        describer.start()
        try:
            await describer.flush()
        finally:
            await describer.stop()

    assert dropped  # the fault did happen, after the model had answered
    async with db.reading() as session:
        remembered = (await session.scalars(select(Memory.content).where(Memory.message_id == message_id))).all()
    assert remembered == ["look who took my seat\n[image: a ginger cat asleep on a keyboard]"]
    assert len(llm.description_requests) == 1


async def _message_with_an_image(db: Database, name: str) -> int:
    """A DM message from Ana with one image, stored with its memory and its image pending; returns its id."""
    at = datetime.now(UTC)
    async with db.session() as session:
        user = await UserRepository(session).upsert(discord_id=11, username="ana", display_name="Ana", seen_at=at)
        conversations = ConversationRepository(session)
        conversation = await conversations.open(channel_id=500, guild_id=None, user_id=user.id, at=at)
        message_id = await conversations.add_message(
            conversation_id=conversation.id,
            user_id=user.id,
            role="user",
            content="look at this",
            at=at,
            image_urls=[f"https://cdn.discordapp.com/attachments/1/2/{name}"],
            images_pending=True,
        )
        await MemoryRepository(session).add_many(
            [
                NewMemory(
                    kind="message",
                    content=with_images("look at this", [None]),
                    scope="dm",
                    created_at=at,
                    user_id=user.id,
                    speaker_name="Ana",
                    message_id=message_id,
                )
            ],
            None,
            None,
        )
    return message_id


async def _remembered(db: Database, message_id: int) -> list[str]:
    async with db.reading() as session:
        return list((await session.scalars(select(Memory.content).where(Memory.message_id == message_id))).all())


async def test_images_sent_while_the_model_is_down_are_described_once_it_answers(db: Database, llm: FakeLLM) -> None:
    message_id = await _message_with_an_image(db, "seat.png")
    llm.image_descriptions["seat.png"] = "a ginger cat asleep on a keyboard"
    describer = ImageDescriber(db, chat_model(llm.base_url, budget_s=0.3), Vision(enabled=True), model="fake-model")

    llm.description_faults = [Fail(503)] * 50  # down for longer than the retry budget
    await describer.flush()
    assert llm.description_requests and await _remembered(db, message_id) == ["look at this\n[image]"]

    llm.description_faults = []  # back
    await describer.flush()
    assert await _remembered(db, message_id) == ["look at this\n[image: a ginger cat asleep on a keyboard]"]


async def test_images_the_endpoint_refuses_to_describe_are_not_asked_about_again(db: Database, llm: FakeLLM) -> None:
    message_id = await _message_with_an_image(db, "gone.png")
    describer = ImageDescriber(db, chat_model(llm.base_url, budget_s=0.3), Vision(enabled=True), model="fake-model")

    llm.description_faults = [Fail(400, message="Timed out while downloading the image.")]  # the link expired
    await describer.flush()
    await describer.flush()
    assert len(llm.description_requests) == 1
    assert await _remembered(db, message_id) == ["look at this\n[image]"]


async def test_images_a_text_only_fallback_refuses_while_the_model_is_down_are_described_once_it_answers(
    db: Database, llm: FakeLLM
) -> None:
    """The fallback model that stands in for the model asked for while it is down cannot see: its refusal says
    nothing of the images, which the model asked for describes once it is back, as after an outage without a
    fallback. Only the fallback is counted as refusing images."""
    message_id = await _message_with_an_image(db, "seat.png")
    llm.image_descriptions["seat.png"] = "a ginger cat asleep on a keyboard"
    llm.text_only_models.add("local-model")  # answers 400 to any request with an image
    now = [1000.0]
    chain = FallbackChatModel(chat_model(llm.base_url, budget_s=0.3), ["local-model"], clock=lambda: now[0])
    vision = Vision(enabled=True)
    describer = ImageDescriber(db, chain, vision, model="fake-model")

    llm.description_faults = [Fail(503)] * 50  # down for longer than the retry budget
    await describer.flush()
    assert [request.body["model"] for request in llm.description_requests][-2:] == ["fake-model", "local-model"]
    assert await _remembered(db, message_id) == ["look at this\n[image]"]

    llm.description_faults = []  # back, but resting: the fallback is asked first, and refuses again
    asked = len(llm.description_requests)
    await describer.flush()
    assert [request.body["model"] for request in llm.description_requests][asked:] == ["local-model"]

    now[0] += 61  # its rest over, the model asked for is asked first again
    await describer.flush()
    assert await _remembered(db, message_id) == ["look at this\n[image: a ginger cat asleep on a keyboard]"]
    assert vision.sees("fake-model")


# A reasoning model's answer when its thinking took all its max_tokens before a word of the descriptions.
THOUGHT_AWAY = Reply("", reasoning="The first image shows... no, let me look again. " * 4, finish_reason="length")


async def test_images_the_model_thinks_away_all_its_room_on_are_asked_about_again_with_more(
    db: Database, llm: FakeLLM
) -> None:
    message_id = await _message_with_an_image(db, "cat.png")
    llm.image_descriptions["cat.png"] = "a ginger cat asleep on a keyboard"
    model = chat_model(llm.base_url, budget_s=0.3)
    describer = ImageDescriber(db, model, Vision(enabled=True), model="fake-model", max_tokens_when_no_room=600)

    llm.description_faults = [THOUGHT_AWAY]
    await describer.flush()

    assert await _remembered(db, message_id) == ["look at this\n[image: a ginger cat asleep on a keyboard]"]
    assert [request.body["max_tokens"] for request in llm.description_requests] == [80, 600]


async def test_images_the_model_thinks_away_even_with_more_room_are_described_later(db: Database, llm: FakeLLM) -> None:
    """Not refused for good: the model is answering, it only needed more room than it was given (LLM_MAX_TOKENS
    raised, a lighter moment), so the images wait to be described as after an outage."""
    message_id = await _message_with_an_image(db, "cat.png")
    llm.image_descriptions["cat.png"] = "a ginger cat asleep on a keyboard"
    model = chat_model(llm.base_url, budget_s=0.3)
    describer = ImageDescriber(db, model, Vision(enabled=True), model="fake-model", max_tokens_when_no_room=600)

    llm.description_faults = [THOUGHT_AWAY, THOUGHT_AWAY]
    await describer.flush()
    assert await _remembered(db, message_id) == ["look at this\n[image]"]
    assert len(llm.description_requests) == 2

    await describer.flush()
    assert await _remembered(db, message_id) == ["look at this\n[image: a ginger cat asleep on a keyboard]"]


@pytest.mark.parametrize("thought_away", [1, 2], ids=["once", "with-more-room-too"])
async def test_images_the_model_thinks_away_before_a_text_only_fallback_refuses_them_are_asked_about_again_with_more(
    db: Database, llm: FakeLLM, thought_away: int
) -> None:
    """The reasoning model asked for thinks through all of the first request's room, and the fallback model that
    is asked next cannot see: its refusal says nothing of the images, which the model asked for describes with a
    reply's room, or later, as it does without a fallback."""
    message_id = await _message_with_an_image(db, "cat.png")
    llm.image_descriptions["cat.png"] = "a ginger cat asleep on a keyboard"
    llm.text_only_models.add("local-model")  # answers 400 to any request with an image
    chain = FallbackChatModel(chat_model(llm.base_url, budget_s=0.3), ["local-model"])
    describer = ImageDescriber(db, chain, Vision(enabled=True), model="fake-model", max_tokens_when_no_room=600)

    llm.description_faults = [THOUGHT_AWAY] * thought_away
    await describer.flush()
    asked = [(request.body["model"], request.body["max_tokens"]) for request in llm.description_requests]
    assert asked[0] == ("fake-model", 80) and ("fake-model", 600) in asked
    if thought_away == 2:
        assert await _remembered(db, message_id) == ["look at this\n[image]"]
        await describer.flush()  # waited as while the model is down, and asked about again

    assert await _remembered(db, message_id) == ["look at this\n[image: a ginger cat asleep on a keyboard]"]


async def _reply_with_an_image(llm: FakeLLM, vision: Vision, name: str) -> LLMRequest:
    """A reply's request with one image, through the gate the reply path uses; returns the last request sent."""
    photo = ChatMessage("user", "look at this", images=(f"https://cdn.discordapp.com/attachments/1/2/{name}",))
    await VisionGate(chat_model(llm.base_url, budget_s=0.3), vision).generate([photo], ChatOptions("fake-model"))
    return llm.reply_requests[-1]


async def test_a_model_that_cannot_see_images_is_found_out_by_the_describer_too(db: Database, llm: FakeLLM) -> None:
    """Images sent where Hearth answers no one are only ever described: each would cost a refused request for as
    long as the process runs. The describer's refusals count as the reply path's do: two in a row make the model
    text-only, for descriptions and replies alike."""
    llm.text_only_models.add("fake-model")  # answers 400 to any request with an image
    vision = Vision(enabled=True)
    photos = [await _message_with_an_image(db, f"photo{number}.png") for number in range(4)]
    describer = ImageDescriber(db, chat_model(llm.base_url, budget_s=0.3), vision, model="fake-model")

    await describer.flush()

    assert len(llm.description_requests) == 2
    assert [await _remembered(db, message_id) for message_id in photos] == [["look at this\n[image]"]] * 4
    assert (await _reply_with_an_image(llm, vision, "later.png")).images == []


async def test_one_image_refused_by_both_the_reply_and_the_describer_does_not_make_the_model_text_only(
    db: Database, llm: FakeLLM
) -> None:
    """A link the endpoint failed to fetch fails its reply and its description alike: that is one image's doing,
    not two signs that the model cannot see."""
    vision = Vision(enabled=True)
    message_id = await _message_with_an_image(db, "gone.png")
    llm.script(Fail(400, message="Timed out while downloading the image."), Reply("I cannot open it."))
    assert (await _reply_with_an_image(llm, vision, "gone.png")).images == []
    llm.description_faults = [Fail(400, message="Timed out while downloading the image.")]
    await ImageDescriber(db, chat_model(llm.base_url, budget_s=0.3), vision, model="fake-model").flush()
    assert len(llm.description_requests) == 1 and await _remembered(db, message_id) == ["look at this\n[image]"]

    llm.script(Reply("Nice."))
    assert (await _reply_with_an_image(llm, vision, "next.png")).images == [
        "https://cdn.discordapp.com/attachments/1/2/next.png"
    ]


async def test_images_the_describer_is_refused_for_what_they_show_do_not_make_the_model_text_only(
    db: Database, llm: FakeLLM
) -> None:
    vision = Vision(enabled=True)
    photos = [await _message_with_an_image(db, f"photo{number}.png") for number in range(3)]
    filtered = Fail(400, message="The response was filtered due to content management policy.", code="content_filter")
    llm.description_faults = [filtered, filtered]

    await ImageDescriber(db, chat_model(llm.base_url, budget_s=0.3), vision, model="fake-model").flush()

    assert len(llm.description_requests) == 3
    assert await _remembered(db, photos[2]) == ["look at this\n[image: an image called photo2.png]"]

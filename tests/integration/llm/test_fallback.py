"""The fallback chain over the real chat model and ``openai`` client, against the fake LLM server."""

from typing import Any

import pytest

from bot.container import with_fallbacks
from bot.domain.prompt import ChatMessage
from bot.llm.chat import ChatOptions, LLMUnavailable
from bot.llm.fallback import FallbackChatModel
from bot.llm.vision import Vision, VisionGate
from bot.settings import Settings
from tests.fakes.llm_server import BrokenStream, Fail, FakeLLM, Reply, Step
from tests.support.chat import chat_model

ASK = [ChatMessage("user", "hello?")]


def _by_model(answers: dict[str, Step]) -> Any:
    return lambda body: answers[body["model"]]


def _asked(llm: FakeLLM) -> list[str]:
    return [request.body["model"] for request in llm.chat_requests]


async def test_once_part_of_an_answer_was_shown_no_other_model_takes_over(llm: FakeLLM) -> None:
    llm.default = _by_model({"a": BrokenStream("Half an answer that breaks", after_chars=8), "b": Reply("b")})
    chain = FallbackChatModel(chat_model(llm.base_url, budget_s=0.3), ["b"])
    shown: list[str] = []

    async def preview(text: str) -> None:
        shown.append(text)

    with pytest.raises(LLMUnavailable) as failed:
        await chain.generate(ASK, ChatOptions(model="a"), on_text=preview)
    assert "Half an " in shown
    assert set(_asked(llm)) == {"a"}, "the fallback was never asked"
    assert failed.value.models == ("a",)
    # Asked again without a preview: "a" just failed, so it rests behind "b", which answers.
    assert (await chain.generate(ASK, ChatOptions(model="a"))).model == "b"


async def test_a_model_that_failed_is_tried_last_for_a_while(llm: FakeLLM) -> None:
    now = [1000.0]
    llm.default = _by_model({"a": Fail(404, message="no such model"), "b": Reply("from b"), "c": Reply("from c")})
    chain = FallbackChatModel(chat_model(llm.base_url), ["b", "c"], clock=lambda: now[0])

    first = await chain.generate(ASK, ChatOptions(model="a"))
    assert (first.text, first.model, first.fell_back_from) == ("from b", "b", ("a",))
    assert _asked(llm) == ["a", "b"], "a 404 is not retried"

    second = await chain.generate(ASK, ChatOptions(model="a"))
    assert (second.model, second.fell_back_from) == ("b", ())
    assert _asked(llm) == ["a", "b", "b"], "a model that just failed waits behind the others"

    now[0] += 61
    await chain.generate(ASK, ChatOptions(model="a"))
    assert _asked(llm) == ["a", "b", "b", "a", "b"], "after its rest it is first again"


@pytest.mark.parametrize(
    "refusal",
    [
        Fail(400, message="The prompt was filtered by the content management policy.", code="content_filter"),
        Fail(400, message="This model's maximum context length is 4096 tokens.", code="context_length_exceeded"),
        Reply("", refusal="I'm sorry, I can't help with that request."),  # OpenAI's structured outputs decline so
    ],
    ids=["content_filter", "too-long", "declined"],
)
async def test_a_model_that_refused_one_request_for_what_it_holds_is_not_put_to_rest(
    llm: FakeLLM, refusal: Step
) -> None:
    def answer(body: dict[str, Any]) -> Step:
        if body["model"] == "b":
            return Reply("from b")
        return refusal if "the refused one" in str(body["messages"]) else Reply("from a")

    llm.default = answer
    chain = FallbackChatModel(chat_model(llm.base_url), ["b"])

    first = await chain.generate([ChatMessage("user", "the refused one")], ChatOptions(model="a"))
    assert (first.model, first.fell_back_from) == ("b", ("a",))
    second = await chain.generate(ASK, ChatOptions(model="a"))
    assert (second.text, second.model, second.fell_back_from) == ("from a", "a", ())
    assert _asked(llm) == ["a", "b", "a"], "the model asked for answers the next request first"


async def test_a_model_that_thought_away_one_answers_room_is_not_put_to_rest(llm: FakeLLM) -> None:
    """A reasoning model that thinks through all of one reply's max_tokens is not down: the next model answers
    that request, and the next request goes to the model asked for first as before."""

    def answer(body: dict[str, Any]) -> Step:
        if body["model"] == "b":
            return Reply("from b")
        if "the hard one" in str(body["messages"]):
            return Reply("", reasoning="Let me weigh every side of this. " * 8, finish_reason="length")
        return Reply("from a")

    llm.default = answer
    chain = FallbackChatModel(chat_model(llm.base_url), ["b"])

    first = await chain.generate([ChatMessage("user", "the hard one")], ChatOptions(model="a"))
    assert (first.model, first.fell_back_from) == ("b", ("a",))
    second = await chain.generate(ASK, ChatOptions(model="a"))
    assert (second.text, second.model, second.fell_back_from) == ("from a", "a", ())
    assert _asked(llm) == ["a", "b", "a"], "the model asked for answers the next request first"


async def test_a_text_only_fallback_standing_in_for_a_model_that_is_down_answers_without_the_images(
    llm: FakeLLM,
) -> None:
    """The fallback that cannot see answers without the images, and is the one counted as refusing them: the model
    asked for, only down for a while, is sent images again once it is back."""
    llm.text_only_models.add("b")  # answers 400 to any request with an image
    now = [1000.0]
    vision = Vision(enabled=True)
    gate = VisionGate(FallbackChatModel(chat_model(llm.base_url, budget_s=0.3), ["b"], clock=lambda: now[0]), vision)
    for name in ("cat.png", "dog.png"):
        llm.default = _by_model({"a": Fail(503), "b": Reply("from b")})  # "a" down each time it is asked
        photo = ChatMessage("user", "look", images=(f"https://cdn.discordapp.com/attachments/1/2/{name}",))
        answer = await gate.generate([photo], ChatOptions(model="a"))
        assert (answer.text, answer.model) == ("from b", "b")
        assert llm.chat_requests[-1].images == []
        now[0] += 61  # "a" out of its rest

    llm.default = Reply("from a")
    photo = ChatMessage("user", "look", images=("https://cdn.discordapp.com/attachments/1/2/bird.png",))
    assert (await gate.generate([photo], ChatOptions(model="a"))).model == "a"
    assert llm.chat_requests[-1].images == ["https://cdn.discordapp.com/attachments/1/2/bird.png"]
    assert vision.sees("a") and not vision.sees("b")


async def test_when_every_model_fails_the_error_names_them_all(llm: FakeLLM) -> None:
    llm.default = Fail(400, message="maximum context length exceeded")
    chain = FallbackChatModel(chat_model(llm.base_url), ["b", "c"])
    with pytest.raises(LLMUnavailable) as failed:
        await chain.generate(ASK, ChatOptions(model="a"))
    assert failed.value.models == ("a", "b", "c")
    assert _asked(llm) == ["a", "b", "c"]


async def test_a_fallback_endpoint_never_gets_the_primarys_key(llm: FakeLLM) -> None:
    llm.default = _by_model({"a": Fail(404), "b": Reply("from b")})
    settings = Settings(
        _env_file=None,
        openai_api_key="primary-secret",
        llm_fallback_models="b",
        llm_fallback_base_url=llm.base_url,
    )
    chain = with_fallbacks(chat_model(llm.base_url), settings)
    try:
        assert (await chain.generate(ASK, ChatOptions(model="a"))).model == "b"
    finally:
        assert isinstance(chain, FallbackChatModel)
        await chain.aclose()
    keys = {request.body["model"]: request.headers["authorization"] for request in llm.chat_requests}
    assert keys == {"a": "Bearer test", "b": "Bearer not-needed"}

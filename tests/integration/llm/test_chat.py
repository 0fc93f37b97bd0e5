"""The chat model over the real ``openai`` client, against the fake LLM server: what its stream's retries cover."""

import logging

import pytest

from bot.domain.prompt import ChatMessage
from bot.llm.chat import ChatOptions
from tests.fakes.llm_server import FakeLLM, Reply
from tests.support.chat import chat_model

ASK = [ChatMessage("user", "hello?")]


class ShowingFailed(Exception):
    """What showing the answer so far may raise that the model has no part in."""


@pytest.mark.parametrize(
    "failure",
    [KeyError("first"), TypeError("not a message"), OSError("front end gone"), ShowingFailed("refused")],
    ids=["a bug", "a wrong call", "a connection of the front end's", "a refusal"],
)
async def test_a_preview_that_fails_ends_the_call_and_the_model_is_not_asked_again(
    llm: FakeLLM, caplog: pytest.LogCaptureFixture, failure: Exception
) -> None:
    """Showing the answer so far fails part way through a sound stream: that failure is the caller's, raised as it
    is; it is not logged as the model's fault, nor is the model asked (and paid) again for the same answer."""
    caplog.set_level(logging.INFO, logger="bot")
    llm.script(Reply("Hello there, how are you today?", chunk_size=4), Reply("Asked again."))
    model = chat_model(llm.base_url)

    async def preview(text: str) -> None:
        if len(text) > 8:
            raise failure

    with pytest.raises(type(failure)) as raised:
        await model.generate(ASK, ChatOptions(model="m"), on_text=preview)
    assert raised.value is failure
    assert len(llm.chat_requests) == 1, "the model asked once"
    assert not [r.getMessage() for r in caplog.records if "model call failed" in r.getMessage()]

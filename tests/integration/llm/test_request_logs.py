"""What a model request writes to Hearth's log: nothing at INFO (one line per request is noise on a busy bot), the
HTTP client's line when debugging."""

import io

import pytest

from bot.domain.prompt import ChatMessage
from bot.llm.chat import ChatOptions
from bot.log import setup_logging
from tests.fakes.llm_server import FakeLLM, Reply
from tests.support.chat import chat_model
from tests.support.observability import restored_logging


@pytest.mark.parametrize(("level", "said"), [("INFO", False), ("DEBUG", True)])
async def test_a_model_request_is_logged_by_the_http_client_only_when_debugging(
    llm: FakeLLM, level: str, said: bool
) -> None:
    llm.script(Reply("Hello!"))
    out = io.StringIO()
    with restored_logging():
        setup_logging(level, stream=out)
        completion = await chat_model(llm.base_url).generate([ChatMessage("user", "hi")], ChatOptions(model="m"))
    assert completion.text == "Hello!"
    assert ("HTTP Request: POST" in out.getvalue()) is said, out.getvalue()

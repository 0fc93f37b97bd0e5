"""Fakes of what lies beyond the network: Discord (gateway and REST) and an OpenAI-compatible API."""

from tests.fakes.discord import (
    DEFAULT_EVERYONE_PERMISSIONS,
    FakeChannel,
    FakeDiscord,
    FakeGuild,
    FakeUser,
    RestCall,
    UploadedFile,
)
from tests.fakes.llm_server import (
    BrokenStream,
    Fail,
    FakeLLM,
    LLMRequest,
    Reply,
    Stall,
    Step,
    echo_last_user_message,
    embed_text,
)

__all__ = [
    "DEFAULT_EVERYONE_PERMISSIONS",
    "BrokenStream",
    "Fail",
    "FakeChannel",
    "FakeDiscord",
    "FakeGuild",
    "FakeLLM",
    "FakeUser",
    "LLMRequest",
    "Reply",
    "RestCall",
    "Stall",
    "Step",
    "UploadedFile",
    "echo_last_user_message",
    "embed_text",
]

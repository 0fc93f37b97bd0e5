"""`python -m bot chat`: talk to Hearth in a terminal, as a DM from a local user, through the same service."""

import asyncio
import contextlib
import getpass
import logging
import sys
from collections.abc import AsyncIterator, Sequence
from typing import TextIO

from bot.container import Container
from bot.db.types import utcnow
from bot.domain.triggers import MessageSignals
from bot.services.incoming import Author, IncomingMessage, Place

log = logging.getLogger(__name__)

# The terminal's user and "DM channel" use ids no Discord snowflake has.
LOCAL_USER_ID = 1
LOCAL_CHANNEL_ID = 1


class TerminalReply:
    """Prints the reply as it streams: only the new part of each preview, then the rest at the end."""

    def __init__(self, out: TextIO, name: str) -> None:
        self.out = out
        self.name = name
        self.shown = ""
        self.started = False

    def _start(self) -> None:
        if not self.started:
            self.out.write(f"{self.name}: ")
            self.started = True

    @contextlib.asynccontextmanager
    async def typing(self) -> AsyncIterator[None]:
        self._start()
        self.out.flush()
        yield

    async def preview(self, text: str) -> None:
        if not text.startswith(self.shown):  # the model restarted after a fault
            self.out.write("\n" + " " * (len(self.name) + 2))
            self.shown = ""
        self.out.write(text[len(self.shown) :])
        self.out.flush()
        self.shown = text

    async def send(self, pieces: Sequence[str]) -> list[int]:
        self._start()
        await self.preview("".join(pieces))
        self.out.write("\n")
        self.out.flush()
        return []


async def chat(container: Container, *, lines: AsyncIterator[str] | None = None, out: TextIO = sys.stdout) -> None:
    """Read lines (stdin by default) until EOF or /quit, answering each."""
    await container.start()
    persona = await container.personas.for_guild(None)
    username = getpass.getuser()
    author = Author(discord_id=LOCAL_USER_ID, username=username, display_name=username)
    out.write(f"Talking to {persona.name}. Ctrl-D or /quit to leave.\n")
    async for line in lines or _stdin_lines():
        text = line.strip()
        if text in ("/quit", "/exit"):
            break
        if not text:
            continue
        incoming = IncomingMessage(
            author=author,
            place=Place(channel_id=LOCAL_CHANNEL_ID),
            text=text,
            created_at=utcnow(),
            signals=MessageSignals(text=text, author_id=LOCAL_USER_ID, channel_id=LOCAL_CHANNEL_ID, is_dm=True),
        )
        try:
            await container.conversation.handle(incoming, TerminalReply(out, persona.name))
        except Exception:  # one failed line must not end the session
            log.exception("could not answer that line")
            out.write("(something went wrong answering that; the log says what. Try again?)\n")
            out.flush()


async def _stdin_lines() -> AsyncIterator[str]:
    while True:
        try:
            line = await asyncio.to_thread(input, "you> ")
        except EOFError:
            return
        yield line

"""`python -m bot chat`: talk to Hearth in a terminal, as a DM from a local user, through the same service."""

import asyncio
import contextlib
import getpass
import logging
import sys
import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import TextIO

from bot.container import Container
from bot.db.types import utcnow
from bot.domain.triggers import MessageSignals
from bot.services.incoming import Author, IncomingMessage, Place

log = logging.getLogger(__name__)

# The terminal's user and "DM channel" use ids no Discord snowflake has.
LOCAL_USER_ID = 1
LOCAL_CHANNEL_ID = 1


class Screen:
    """The terminal the chat and the log share: a log line never lands inside a reply or after the prompt.

    Replies go to ``out`` (stdout), log lines to ``err`` (stderr); on a terminal both show on one screen, so a
    log line that arrives while a line of ``out`` is unfinished first ends that line. Once the session is over
    (:meth:`close`), log lines are dropped: nothing is printed after the person left.
    """

    def __init__(self, out: TextIO, err: TextIO) -> None:
        self.out = out
        self.err = err
        self.partial = ""  # what the unfinished line of ``out`` shows: "you> ", "Hearth: hel", or nothing
        self.interrupted = False  # a log line broke the reply's line; it goes on, indented, on a new one
        self.closed = False

    def write(self, text: str) -> None:
        self.out.write(text)
        self.out.flush()
        _, newline, tail = text.rpartition("\n")
        self.partial = tail if newline else self.partial + text

    def line_ended(self) -> None:
        """The person pressed Enter (the terminal's echo ended the line, not us)."""
        self.partial = ""

    def log(self, line: str) -> None:
        if self.closed:
            return
        prompt = self.partial == PROMPT
        if self.partial:
            self.out.write("\n")
            self.out.flush()
            self.partial = ""
            self.interrupted = not prompt
        self.err.write(line + "\n")
        self.err.flush()
        if prompt:  # show where to type again
            self.write(PROMPT)

    def close(self) -> None:
        if self.partial:
            self.write("\n")
        self.closed = True


class ScreenLog(logging.Handler):
    """Log records, each on a line of its own on the :class:`Screen`."""

    def __init__(self, screen: Screen, level: int) -> None:
        super().__init__(level)
        self.screen = screen

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.screen.log(self.format(record))
        except Exception:  # a broken terminal must not end the chat
            self.handleError(record)


@contextlib.contextmanager
def logging_to(screen: Screen, *, debug: bool) -> Iterator[None]:
    """While the chat runs, log to the screen: warnings and errors as bare lines, everything (with times and
    names) when ``debug``; the previous logging set-up comes back afterwards."""
    root = logging.getLogger()
    handler = ScreenLog(screen, logging.DEBUG if debug else logging.WARNING)
    if debug:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-8s %(name)s: %(message)s"))
    saved = root.handlers[:], root.level
    root.handlers[:] = [handler]
    root.setLevel(handler.level)
    try:
        yield
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)


class TerminalReply:
    """Prints the reply as it streams: only the new part of each preview, then the rest at the end.

    The name is written with the first words, not while the model is still thinking, so a retry warning meanwhile
    has a line of its own."""

    def __init__(self, screen: Screen, name: str) -> None:
        self.screen = screen
        self.name = name
        self.shown = ""
        self.started = False

    @property
    def _indent(self) -> str:
        return " " * (len(self.name) + 2)

    def _start(self) -> None:
        if not self.started:
            self.screen.write(f"{self.name}: ")
            self.screen.interrupted = False
            self.started = True

    @contextlib.asynccontextmanager
    async def typing(self) -> AsyncIterator[None]:
        yield

    async def preview(self, text: str) -> None:
        self._start()
        if not text.startswith(self.shown):  # the model restarted after a fault: start again below
            self.screen.write(self._indent if self.screen.interrupted else "\n" + self._indent)
            self.shown = ""
        elif self.screen.interrupted:  # a log line ended the reply's line: go on below it
            self.screen.write(self._indent)
        self.screen.interrupted = False
        self.screen.write(text[len(self.shown) :])
        self.shown = text

    def speaking_as(self, name: str, avatar_url: str | None) -> "TerminalReply":
        return self

    def reply_to(self, message_id: int) -> None:
        """A terminal shows no message as answered."""

    async def send(self, pieces: Sequence[str], *, regenerable: bool = False) -> list[int]:
        await self.preview("".join(pieces))
        self.screen.write("\n")
        return []


PROMPT = "you> "


async def chat(
    container: Container,
    *,
    lines: AsyncIterator[str] | None = None,
    screen: Screen | None = None,
) -> None:
    """Read lines (stdin by default) until EOF or /quit, answering each."""
    screen = screen or Screen(sys.stdout, sys.stderr)
    await container.start()
    persona = await container.personas.for_guild(None)
    username = getpass.getuser()
    author = Author(discord_id=LOCAL_USER_ID, username=username, display_name=username)
    screen.write(f"Talking to {persona.name}. Ctrl-D or /quit to leave.\n")
    async for line in lines or _stdin_lines(screen):
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
            await container.conversation.handle(incoming, TerminalReply(screen, persona.name))
        except Exception:  # one failed line must not end the session
            log.exception("could not answer that line")
            screen.write("(something went wrong answering that; the log says what. Try again?)\n")


def _settle(future: "asyncio.Future[str | None]", value: str | None) -> None:
    if not future.done():  # cancelled meanwhile (Ctrl-C)
        future.set_result(value)


async def _stdin_lines(screen: Screen) -> AsyncIterator[str]:
    """Lines typed after the prompt. The read runs in a daemon thread of its own, not the event loop's pool:
    a read still waiting when the chat ends (Ctrl-C) must not keep the process alive until Enter."""
    loop = asyncio.get_running_loop()
    while True:
        screen.write(PROMPT)
        typed: asyncio.Future[str | None] = loop.create_future()

        def read(typed: asyncio.Future[str | None] = typed) -> None:
            try:
                line: str | None = input()
            except (EOFError, OSError, ValueError):
                line = None
            loop.call_soon_threadsafe(_settle, typed, line)

        threading.Thread(target=read, name="chat-input", daemon=True).start()
        line = await typed
        if line is None:  # EOF: Ctrl-D, or the end of piped input
            return
        screen.line_ended()
        yield line

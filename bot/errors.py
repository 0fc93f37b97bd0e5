"""Exceptions of our own.

Everything a user or an operator can cause is a ``HearthError`` whose message is fit to show as is:
the CLI prints it as one line and exits with its ``exit_code``, the Discord layer renders it as an ephemeral
reply. The exit codes are documented in the README ("Exit codes"); keep the two in step.
"""

from typing import ClassVar


class HearthError(Exception):
    """Base class: the message is written for the person who has to act on it."""

    # The command line's exit status when this error stops it: 2, a usage or settings error, unless a
    # subclass knows better.
    exit_code: ClassVar[int] = 2


class ConfigError(HearthError):
    """A setting is missing or invalid, or the command line asks for something that does not exist."""


class DatabaseUnavailable(HearthError):
    """The database cannot be reached or is not usable."""

    exit_code = 3


class SchemaError(HearthError):
    """The database's schema revision does not fit what was asked (or what this version of Hearth knows)."""

    exit_code = 3


class DiscordUnavailable(HearthError):
    """Discord could not be reached (DNS, a refused connection, a timeout, its own outage), even after retries."""

    exit_code = 4


class DiscordRejected(ConfigError):
    """Discord answered and refused the bot: an invalid token, or a privileged intent not enabled."""

    exit_code = 5


def describe_connection_error(exc: BaseException) -> str:
    """What went wrong connecting, in a few words: refused, host not found, timed out, TLS, reset, or the error.

    Client libraries wrap the socket's error, sometimes under a misleading name (the openai SDK's aiohttp
    transport reports a refused connection as a connect *timeout*), so the whole chain is searched for the
    error that says what happened.
    """
    import socket
    import ssl

    chain: list[BaseException] = []
    pending: list[BaseException | None] = [exc]
    while pending:
        error = pending.pop(0)
        if error is None or any(error is seen for seen in chain):
            continue
        chain.append(error)
        pending += [getattr(error, "os_error", None), error.__cause__, error.__context__]
    for error in chain:
        if isinstance(error, ConnectionRefusedError):
            return "connection refused"
        if isinstance(error, socket.gaierror):
            return f"host not found (DNS: {error.strerror or error})"
        if isinstance(error, ssl.SSLError):
            return f"TLS failed ({error.reason or error})"
        if isinstance(error, ConnectionResetError):
            return "connection reset"
    for error in chain:
        if isinstance(error, TimeoutError) or "timeout" in type(error).__name__.lower():
            return "timed out"
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__

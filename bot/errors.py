"""Exceptions of our own.

Everything a user or an operator can cause is a ``HearthError`` whose message is fit to show as is:
the CLI prints it as one line, the Discord layer renders it as an ephemeral reply.
"""


class HearthError(Exception):
    """Base class: the message is written for the person who has to act on it."""


class ConfigError(HearthError):
    """A setting is missing or invalid."""


class DatabaseUnavailable(HearthError):
    """The database cannot be reached or is not usable."""

"""Hearth: a Discord companion bot that remembers people."""

__version__ = "0.1.0"

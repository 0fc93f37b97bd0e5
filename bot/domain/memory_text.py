"""What text a memory's embedding is made from, and what its word search indexes.

The same rules apply when a memory is stored and when it is re-embedded, so both live here.
"""

from collections.abc import Sequence
from datetime import datetime


def embedding_text(speaker_name: str | None, content: str, context: str | None = None) -> str:
    """``"Ana: content"`` when the memory has a speaker, else the content alone; after the turn it answered.

    A message is embedded with its speaker's name, as people ask about it ("what did Ana say about …"), and
    with the turn before it, as a reply ("yes, every Sunday!") means little without its question.
    """
    said = f"{speaker_name}: {content}" if speaker_name else content
    return f"{context}\n{said}" if context else said


def context_line(speaker_name: str | None, content: str, *, limit: int = 500) -> str:
    """How a preceding turn is kept as another memory's context: its speaker and (the start of) its text."""
    text = content if len(content) <= limit else content[:limit].rsplit(" ", 1)[0] + " …"
    return f"{speaker_name}: {text}" if speaker_name else text


def search_text(speaker_name: str | None, content: str, created_at: datetime) -> str:
    """What the word search indexes: speaker, text and the day it was said ("Ana: … (8 May 2023)").

    The speaker's name lets "what did Ana say" match Ana's own words, not only words addressed to her; the
    date lets "in June" or "2023" match.
    """
    said = f"{speaker_name}: {content}" if speaker_name else content
    return f"{said} ({created_at.day} {created_at:%B %Y})"


def edited_memory(remembered: str, before: str, now: str, kept_images: Sequence[int] | None = None) -> str:
    """A turn's memory ``remembered`` (its text ``before``, then a line per image it carried: see
    :func:`with_images`) once its text reads ``now`` and it carries only the images at ``kept_images`` (their
    positions; None: all it carried)."""
    rest = remembered[len(before) :] if remembered.startswith(before) else ""
    marks = [line for line in rest.split("\n") if line]
    if kept_images is not None:
        marks = [mark for index, mark in enumerate(marks) if index in kept_images]
    return "\n".join([now, *marks]) if now else "\n".join(marks)


def with_images(content: str, descriptions: Sequence[str | None]) -> str:
    """A turn's memory text with the images sent with it: ``[image: what it shows]`` for each one described,
    ``[image]`` until it is (or when it cannot be). A photo is recalled by what it showed, as its link expires."""
    marks = [f"[image: {d}]" if d else "[image]" for d in descriptions]
    return "\n".join([content, *marks]) if content else "\n".join(marks)

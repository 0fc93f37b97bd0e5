"""Images people send: which of a message's attachments the model is shown, and how a photo is remembered.

An image goes to the model as a link (an OpenAI ``image_url`` content part), not as its bytes: a link costs the
bot nothing to send, and a Discord attachment's link is public (signed, for a day or so), which is all the
answer to a fresh message and its description a moment later need. Images are remembered as a short
description in the turn's memory (see :func:`describe_request` and :func:`parse_descriptions`), never by link:
the link expires, the description does not.
"""

import re
from collections.abc import Sequence
from dataclasses import dataclass

from bot.domain.prompt import ChatMessage

# The image types the model is shown: those vision endpoints take (OpenAI's list). Another image/… file (an SVG,
# a HEIC or TIFF photo) is ignored like any other file: an endpoint refuses a request carrying it, and refusals
# make Hearth treat the model as text-only for the rest of the process (bot/llm/vision.py).
SHOWN_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
# At most this many images of a message are shown to the model (and described); the rest are ignored.
MAX_IMAGES_PER_MESSAGE = 4
# An attachment larger than this is not shown: vision endpoints refuse large files (OpenAI at 20 MB), and a
# photo this size is rarely what a chat is about. Discord states every attachment's size, so nothing is fetched.
MAX_IMAGE_BYTES = 10 * 1024 * 1024
# How long one image's description may be, in characters, once read from the model.
MAX_DESCRIPTION_CHARS = 300


@dataclass(frozen=True, slots=True)
class Attachment:
    """A file attached to a message, as a front end knows it."""

    url: str
    content_type: str | None
    size: int


def shown_images(attachments: Sequence[Attachment]) -> tuple[str, ...]:
    """The links of the attachments the model is shown: images of the :data:`SHOWN_TYPES` (by their content
    type) no larger than :data:`MAX_IMAGE_BYTES`, the first :data:`MAX_IMAGES_PER_MESSAGE` of them. Other files
    are ignored."""
    images = [
        a.url
        for a in attachments
        if _media_type(a.content_type) in SHOWN_TYPES and 0 < a.size <= MAX_IMAGE_BYTES and a.url
    ]
    return tuple(images[:MAX_IMAGES_PER_MESSAGE])


def still_attached(kept: Sequence[str], attached: Sequence[str]) -> list[int]:
    """The positions in ``kept`` (the links of a message's images, as it was kept) of the images it still carries,
    ``attached`` being its images' links as an edit shows them (an author may remove files in an edit, never add
    them). Links are compared without their query, which Discord signs anew."""
    now = {url.split("?", 1)[0] for url in attached}
    return [index for index, url in enumerate(kept) if url.split("?", 1)[0] in now]


def _media_type(content_type: str | None) -> str:
    """``"image/png"`` of ``"IMAGE/PNG; charset=binary"``."""
    return (content_type or "").split(";", 1)[0].strip().lower()


# The instruction a description request opens with (the fake model in the tests knows it by these words).
DESCRIBE_INSTRUCTION = "Describe each image"


def describe_request(image_urls: Sequence[str], said: str) -> list[ChatMessage]:
    """The one model call that describes a message's images (all of them at once), for its memory."""
    count = len(image_urls)
    system = (
        f"{DESCRIBE_INSTRUCTION} you are given in one short sentence (at most 25 words) saying what it shows:"
        " people, animals, objects, places, any text written in it. Write one line per image, in order, each"
        ' starting with its number and a full stop ("1. "). Write nothing else.'
    )
    text = f"The message sent with {'this image' if count == 1 else f'these {count} images'}: {said or '(none)'}"
    return [ChatMessage("system", system), ChatMessage("user", text, images=tuple(image_urls))]


_NUMBERED = re.compile(r"^\s*(?:\(?(\d+)[.):]|[-*•])\s*")


def parse_descriptions(text: str, count: int) -> list[str | None]:
    """The model's answer to :func:`describe_request`, one description per image (None where it gave none)."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    found: list[str | None] = [None] * count
    unnumbered: list[str] = []
    for line in lines:
        match = _NUMBERED.match(line)
        body = line[match.end() :].strip() if match else line
        if not body:
            continue
        body = " ".join(body.split())
        if len(body) > MAX_DESCRIPTION_CHARS:
            body = body[:MAX_DESCRIPTION_CHARS].rsplit(" ", 1)[0] + " …"
        number = int(match.group(1)) if match and match.group(1) else None
        if number is not None and 1 <= number <= count and found[number - 1] is None:
            found[number - 1] = body
        else:
            unnumbered.append(body)
    for i in range(count):  # an answer without numbers: its lines in order
        if found[i] is None and unnumbered:
            found[i] = unnumbered.pop(0)
    return found

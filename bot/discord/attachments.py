"""Files people attach to a command (character cards, lore documents), read within a size limit."""

import discord

from bot.errors import HearthError


class AttachmentTooLarge(HearthError):
    pass


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB"


async def read_attachment(attachment: discord.Attachment, limit: int, what: str) -> bytes:
    """The attachment's bytes; refused by its declared size first, and again by what actually arrives."""
    if attachment.size > limit:
        raise AttachmentTooLarge(
            f"That {what} is {_megabytes(attachment.size)}; the most I take is {_megabytes(limit)}."
        )
    data = await attachment.read()
    if len(data) > limit:
        raise AttachmentTooLarge(f"That {what} is larger than {_megabytes(limit)}.")
    return data

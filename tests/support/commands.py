"""Running slash commands through the fake Discord, as a user's client would send them."""

from collections.abc import Iterator, Mapping
from typing import Any

from tests.fakes.discord import FakeAttachment, FakeDiscord, FakeUser

JSON = dict[str, Any]
SUB_COMMAND, SUB_COMMAND_GROUP = 1, 2


async def run(
    discord: FakeDiscord, user: FakeUser, channel_id: int, name: str, options: Mapping[str, Any] | None = None
) -> tuple[JSON, JSON]:
    """Send ``/name options`` as INTERACTION_CREATE and wait for the bot's visible answer: (payload, answer)."""
    payload = discord.command_payload(user, channel_id, name, options)
    await discord.dispatch("INTERACTION_CREATE", payload)
    return payload, await discord.wait_for_response(payload)


def text_of(answer: JSON) -> str:
    """Everything a user reads in an answer: its content and its embeds' titles, descriptions and fields."""
    parts = [answer.get("content") or ""]
    for embed in answer.get("embeds") or []:
        parts += [embed.get("title") or "", embed.get("description") or ""]
        parts += [f"{field['name']}: {field['value']}" for field in embed.get("fields") or []]
    return "\n".join(part for part in parts if part)


def leaves(commands: list[JSON]) -> Iterator[tuple[str, JSON, JSON]]:
    """Every runnable command as (qualified name, its definition, its top-level command)."""
    for command in commands:
        subcommands = [o for o in command.get("options") or [] if o["type"] in (SUB_COMMAND, SUB_COMMAND_GROUP)]
        if not subcommands:
            yield command["name"], command, command
        for sub in subcommands:
            if sub["type"] == SUB_COMMAND:
                yield f"{command['name']} {sub['name']}", sub, command
            for leaf in sub.get("options") or [] if sub["type"] == SUB_COMMAND_GROUP else []:
                yield f"{command['name']} {sub['name']} {leaf['name']}", leaf, command


def some_options(definition: JSON, channel_id: int, *, user_id: int = 0, role_id: int = 0) -> dict[str, Any]:
    """A value for each required option of a leaf command, of the type it declares (``user_id`` and ``role_id``
    for user and role options: ids the fake's world holds)."""
    values: dict[str, Any] = {}
    for option in definition.get("options") or []:
        if not option.get("required"):
            continue
        if option.get("choices"):
            values[option["name"]] = option["choices"][0]["value"]
            continue
        values[option["name"]] = {
            3: "Europe/Lisbon",
            4: 1,
            5: True,
            6: user_id,
            7: channel_id,
            8: role_id,
            10: 1.0,
            11: FakeAttachment("notes.txt", b"hello"),
        }[option["type"]]
    return values

"""Discord's limits on what a bot sends: messages (content, embeds, components), autocomplete choices and modals.

Pure functions: each returns what is wrong with a body, in Discord's words where it has them (an empty list when
nothing is); the layers that take the body refuse it with 400, code 50035 (Invalid Form Body), as Discord does.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

CONTENT_CHARS = 2000
EMBEDS = 10
EMBED_TITLE_CHARS, EMBED_DESCRIPTION_CHARS, EMBED_FOOTER_CHARS, EMBED_AUTHOR_CHARS = 256, 4096, 2048, 256
EMBED_FIELDS, FIELD_NAME_CHARS, FIELD_VALUE_CHARS = 25, 256, 1024
EMBEDS_TOTAL_CHARS = 6000  # all of a message's embeds together
BUTTON_LABEL_CHARS = 80
SELECT_OPTIONS, SELECT_OPTION_CHARS = 25, 100
CHOICES, CHOICE_CHARS = 25, 100
MODAL_TITLE_CHARS, MODAL_ROWS, TEXT_INPUT_LABEL_CHARS, TEXT_INPUT_CHARS = 45, 5, 45, 4000

JSON = Mapping[str, Any]


def _too_long(what: str, text: object, limit: int) -> list[str]:
    if isinstance(text, str) and len(text) > limit:
        return [f"{what}: Must be {limit} or fewer in length."]
    return []


def _embed_text(embed: JSON) -> Iterator[str]:
    """The parts of an embed that count towards the 6000 characters of a message's embeds."""
    yield embed.get("title") or ""
    yield embed.get("description") or ""
    for field in embed.get("fields") or []:
        yield field.get("name") or ""
        yield field.get("value") or ""
    yield (embed.get("footer") or {}).get("text") or ""
    yield (embed.get("author") or {}).get("name") or ""


def _embed_problems(index: int, embed: JSON) -> list[str]:
    where = f"embeds.{index}"
    problems = _too_long(f"{where}.title", embed.get("title"), EMBED_TITLE_CHARS)
    problems += _too_long(f"{where}.description", embed.get("description"), EMBED_DESCRIPTION_CHARS)
    problems += _too_long(f"{where}.footer.text", (embed.get("footer") or {}).get("text"), EMBED_FOOTER_CHARS)
    problems += _too_long(f"{where}.author.name", (embed.get("author") or {}).get("name"), EMBED_AUTHOR_CHARS)
    fields = embed.get("fields") or []
    if len(fields) > EMBED_FIELDS:
        problems.append(f"{where}.fields: Must be {EMBED_FIELDS} or fewer in length.")
    for number, field in enumerate(fields):
        problems += _too_long(f"{where}.fields.{number}.name", field.get("name"), FIELD_NAME_CHARS)
        problems += _too_long(f"{where}.fields.{number}.value", field.get("value"), FIELD_VALUE_CHARS)
    return problems


def _components(components: Sequence[JSON]) -> Iterator[JSON]:
    """Every component, rows and labels opened."""
    for component in components:
        yield component
        yield from _components(component.get("components") or [])
        if isinstance(component.get("component"), Mapping):
            yield from _components([component["component"]])


def _component_problems(components: Sequence[JSON]) -> list[str]:
    problems: list[str] = []
    for component in _components(components):
        if component.get("type") == 2:
            problems += _too_long("components.label", component.get("label"), BUTTON_LABEL_CHARS)
        options = component.get("options") or []
        if component.get("type") == 3 and len(options) > SELECT_OPTIONS:
            problems.append(f"components.options: Must be {SELECT_OPTIONS} or fewer in length.")
        for option in options:
            problems += _too_long("components.options.label", option.get("label"), SELECT_OPTION_CHARS)
            problems += _too_long("components.options.value", option.get("value"), SELECT_OPTION_CHARS)
    return problems


def message_problems(body: JSON) -> list[str]:
    """What Discord refuses in a message body (a new message, an edit, an interaction's answer)."""
    problems = _too_long("content", body.get("content"), CONTENT_CHARS)
    embeds = body.get("embeds") or []
    if len(embeds) > EMBEDS:
        problems.append(f"embeds: Must be {EMBEDS} or fewer in length.")
    for index, embed in enumerate(embeds):
        problems += _embed_problems(index, embed)
    total = sum(len(text) for embed in embeds for text in _embed_text(embed))
    if total > EMBEDS_TOTAL_CHARS:
        problems.append(f"embeds: Embed size exceeds maximum size of {EMBEDS_TOTAL_CHARS}")
    return problems + _component_problems(body.get("components") or [])


def autocomplete_problems(data: JSON) -> list[str]:
    """What Discord refuses in an autocomplete answer: over 25 choices, a name or text value over 100 chars."""
    choices = data.get("choices") or []
    problems = [f"choices: Must be {CHOICES} or fewer in length."] if len(choices) > CHOICES else []
    for index, choice in enumerate(choices):
        if not 1 <= len(choice.get("name") or "") <= CHOICE_CHARS:
            problems.append(f"choices.{index}.name: Must be between 1 and {CHOICE_CHARS} in length.")
        problems += _too_long(f"choices.{index}.value", choice.get("value"), CHOICE_CHARS)
    return problems


def modal_problems(data: JSON) -> list[str]:
    """What Discord refuses in a modal: a long title or label, too many rows, or a text input whose pre-filled
    value is longer than it may hold (its ``max_length``, at most 4000)."""
    problems = _too_long("title", data.get("title"), MODAL_TITLE_CHARS)
    if len(data.get("components") or []) > MODAL_ROWS:
        problems.append(f"components: Must be {MODAL_ROWS} or fewer in length.")
    for component in _components(data.get("components") or []):
        if component.get("type") == 18:
            problems += _too_long("components.label", component.get("label"), TEXT_INPUT_LABEL_CHARS)
        if component.get("type") != 4:
            continue
        limit = min(int(component.get("max_length") or TEXT_INPUT_CHARS), TEXT_INPUT_CHARS)
        problems += _too_long(f"{component.get('custom_id')}.label", component.get("label"), TEXT_INPUT_LABEL_CHARS)
        problems += _too_long(f"{component.get('custom_id')}.value", component.get("value"), limit)
    return problems

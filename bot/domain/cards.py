"""SillyTavern character cards: read a card file (JSON or PNG) into a :class:`Card`, and map it to a persona.

Formats read (https://github.com/malfoyslastname/character-card-spec-v2 and the V3 spec):

* V1: a bare JSON object with top-level ``name``, ``description``, ``personality``, ``scenario``,
  ``first_mes`` and ``mes_example`` (also the older Pygmalion spelling ``char_name``, ``char_persona``, …);
* V2: ``{"spec": "chara_card_v2", "data": {...}}``; V3: ``{"spec": "chara_card_v3", "data": {...}}``;
* a PNG image carrying one of those, base64-encoded, in a text chunk with keyword ``chara`` (V2) or
  ``ccv3`` (V3, preferred when both are there): ``tEXt``, ``zTXt`` or ``iTXt``.

Pure: bytes in, values out. Everything a file can get wrong becomes a :class:`CardError` whose message can
be shown to the person who sent the file as is.
"""

import base64
import binascii
import json
import math
import re
import struct
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from bot.domain.text import normalize_newlines, one_line
from bot.errors import HearthError

MAX_CARD_BYTES = 8 * 1024 * 1024  # a PNG card with its picture is usually 0.2–3 MB
MAX_NAME_CHARS = 100  # the persona's name column
MAX_FIELD_CHARS = 20_000  # each text field of a card
MAX_TAGS = 50
MAX_TAG_CHARS = 100
MAX_GREETINGS = 10  # alternate greetings kept

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_TEXT_CHUNKS = (b"tEXt", b"zTXt", b"iTXt")
_CARD_KEYWORDS = ("ccv3", "chara")  # in order of preference

CardSpec = Literal["v1", "v2", "v3"]
_SPECS: dict[str, CardSpec] = {"chara_card_v2": "v2", "chara_card_v3": "v3"}

# The pre-V2 Pygmalion/TavernAI spelling of V1 fields, as found in old exports.
_V1_ALIASES = {
    "char_name": "name",
    "char_persona": "personality",
    "world_scenario": "scenario",
    "char_greeting": "first_mes",
    "example_dialogue": "mes_example",
}

_CHAR_MACRO = re.compile(r"\{\{\s*char\s*\}\}|<bot>", re.IGNORECASE)
_USER_MACRO = re.compile(r"\{\{\s*user\s*\}\}|<user>", re.IGNORECASE)
_USER_LABEL = re.compile(r"^([ \t]*)(?:\{\{\s*user\s*\}\}|<user>)(?=[ \t]*:)", re.IGNORECASE | re.MULTILINE)
_ORIGINAL_MACRO = re.compile(r"\{\{\s*original\s*\}\}", re.IGNORECASE)
_START_LINE = re.compile(r"^[ \t]*<start>[ \t]*$", re.IGNORECASE | re.MULTILINE)
_BLANK_RUNS = re.compile(r"\n{3,}")
_SPACES = re.compile(r"\s+")


class CardError(HearthError, ValueError):
    """A file that is not a character card Hearth can read; the message says why, for the sender."""


@dataclass(frozen=True, slots=True)
class Card:
    """A character card's contents as written in the file (macros such as ``{{char}}`` not yet replaced)."""

    name: str
    description: str = ""
    personality: str = ""
    scenario: str = ""
    first_message: str = ""
    example_dialogue: str = ""
    system_prompt: str = ""
    creator_notes: str = ""
    tags: tuple[str, ...] = ()
    spec: CardSpec = "v2"
    alternate_greetings: tuple[str, ...] = ()
    creator: str = ""
    nickname: str = ""  # V3: what ``{{char}}`` stands for, when set


# ---------------------------------------------------------------------------------------------------- reading


def parse_card(data: bytes, filename: str) -> Card:
    """Read a character card from a file's bytes; ``filename`` only names the file in error messages.

    Whoever downloads the file should refuse one over :data:`MAX_CARD_BYTES` before reading it; this is the
    last guard."""
    shown = f"“{one_line(filename, 80) or 'the file'}”"
    if len(data) > MAX_CARD_BYTES:
        raise CardError(
            f"{shown} is {_megabytes(len(data))}; a character card may be at most {_megabytes(MAX_CARD_BYTES)}."
        )
    if data.startswith(PNG_SIGNATURE):
        return _card_from_png(data, shown)
    if filename.lower().endswith((".png", ".apng")):
        raise CardError(
            f"{shown} is not a PNG image (its contents say otherwise). Send the card file exactly as SillyTavern "
            "exported it, not a converted or re-saved copy."
        )
    if data.lstrip().startswith((b"{", b"\xef\xbb\xbf")) or filename.lower().endswith(".json"):
        return _card_from_json_bytes(data, shown, inside=shown)
    raise CardError(
        f"{shown} is not a character card: send the PNG or JSON file exported from SillyTavern "
        "(or a similar tool such as chub.ai)."
    )


def _megabytes(size: int) -> str:
    """A size in MB, rounded up to a tenth so a file just over a limit never reads as the limit: "8.1 MB",
    "8 MB"."""
    return f"{math.ceil(size * 10 / (1024 * 1024)) / 10:g} MB"


def _card_from_png(data: bytes, shown: str) -> Card:
    chunks, complete = _png_text_chunks(data, shown)
    found = [chunks[keyword] for keyword in _CARD_KEYWORDS if keyword in chunks]
    if not found:
        if not complete:
            raise CardError(f"{shown} is a damaged PNG image: the file ends too early. Download it again.")
        raise CardError(
            f"{shown} is a PNG image without a character card in it. Send the card as SillyTavern exports it "
            "(the original PNG file, not a screenshot or an image copied from a web page), or its JSON file."
        )
    # Prefer the V3 chunk; if it is broken but a V2 chunk is also there, the V2 one will do.
    errors: list[CardError] = []
    for payload in found:
        if isinstance(payload, CardError):
            errors.append(payload)
            continue
        try:
            return _card_from_json_bytes(
                _decode_base64(payload, shown), shown, inside=f"the character card inside {shown}"
            )
        except CardError as error:
            errors.append(error)
    raise errors[0]  # the preferred chunk's problem


def _png_text_chunks(data: bytes, shown: str) -> tuple[dict[str, bytes | CardError], bool]:
    """The card-bearing text chunks of a PNG by lower-cased keyword (the first of each; an unreadable one as
    the error to report), and whether the chunk list was read to its end without running off the file."""
    found: dict[str, bytes | CardError] = {}
    position = len(PNG_SIGNATURE)
    while position + 8 <= len(data):
        length, kind = struct.unpack_from(">I4s", data, position)
        start = position + 8
        end = start + length
        if end + 4 > len(data):
            return found, False
        if kind == b"IEND":
            return found, True
        if kind in _TEXT_CHUNKS:
            keyword, payload = _read_text_chunk(kind, data[start:end], shown)
            if keyword in _CARD_KEYWORDS:
                found.setdefault(keyword, payload)
        position = end + 4  # skip the CRC: a damaged card shows up when its text is decoded
    return found, False


def _read_text_chunk(kind: bytes, body: bytes, shown: str) -> tuple[str, bytes | CardError]:
    """``(keyword, text)`` of a PNG text chunk (text left out for keywords other than a card's); the text is a
    :class:`CardError` when it cannot be unpacked."""
    keyword_bytes, _separator, rest = body.partition(b"\x00")
    keyword = keyword_bytes.decode("latin-1").strip().lower()
    if keyword not in _CARD_KEYWORDS:
        return keyword, b""
    damaged = CardError(f"The character card inside {shown} is damaged (it cannot be unpacked). Export it again.")
    if kind == b"tEXt":
        return keyword, rest
    if kind == b"zTXt":  # compression method (0: zlib), then the compressed text
        return keyword, _inflate(rest[1:], shown) if rest[:1] == b"\x00" else damaged
    # iTXt: compression flag, compression method, language tag \0, translated keyword \0, then the text.
    parts = rest[2:].split(b"\x00", 2)
    if len(rest) < 2 or len(parts) != 3:
        return keyword, damaged
    compressed, method, text = rest[0], rest[1], parts[2]
    if not compressed:
        return keyword, text
    return keyword, _inflate(text, shown) if method == 0 else damaged


def _inflate(compressed: bytes, shown: str) -> bytes | CardError:
    """zlib-decompress at most :data:`MAX_CARD_BYTES` (a small chunk must not expand into gigabytes)."""
    inflater = zlib.decompressobj()
    try:
        text = inflater.decompress(compressed, MAX_CARD_BYTES)
    except zlib.error:
        return CardError(f"The character card inside {shown} is damaged (it cannot be unpacked). Export it again.")
    if inflater.unconsumed_tail:
        return CardError(
            f"The character card inside {shown} unpacks to more than {_megabytes(MAX_CARD_BYTES)}; that is too big."
        )
    return text


def _decode_base64(payload: bytes, shown: str) -> bytes:
    compact = b"".join(payload.split())
    compact += b"=" * (-len(compact) % 4)  # some writers drop the padding
    if b"-" in compact or b"_" in compact:  # the URL-safe alphabet, written by a few tools
        compact = compact.translate(bytes.maketrans(b"-_", b"+/"))
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise CardError(
            f"The character card inside {shown} is damaged (its data is not valid base64). "
            "Export it again from SillyTavern."
        ) from None


def _card_from_json_bytes(raw: bytes, shown: str, *, inside: str) -> Card:
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise CardError(f"{_capital(inside)} is not readable text (it is not UTF-8).") from None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise CardError(
            f"{_capital(inside)} is not valid JSON (line {error.lineno}, column {error.colno}: {error.msg.lower()})."
        ) from None
    except (ValueError, RecursionError):
        raise CardError(f"{_capital(inside)} is not valid JSON.") from None
    return card_from_json(value, shown=shown)


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def card_from_json(value: Any, *, shown: str = "the file") -> Card:
    """A :class:`Card` from an already decoded JSON value (V1, V2 or V3)."""
    if not isinstance(value, dict):
        raise CardError(f"{shown} holds JSON, but not a character card (a card is a JSON object).")
    spec_value = value.get("spec")
    if spec_value is None:
        return _fields_to_card(_v1_fields(value, shown), "v1", shown)
    if not isinstance(spec_value, str) or spec_value not in _SPECS:
        spec_text = spec_value if isinstance(spec_value, str) else json.dumps(spec_value)[:40]
        raise CardError(
            f"{shown} is a card of a kind Hearth cannot read (spec “{spec_text[:40]}”); "
            "it reads SillyTavern V1, V2 (chara_card_v2) and V3 (chara_card_v3) cards."
        )
    fields = value.get("data")
    if not isinstance(fields, dict):
        raise CardError(f"{shown} says it is a {spec_value} card but has no “data” object with the character in it.")
    return _fields_to_card(fields, _SPECS[spec_value], shown)


def _v1_fields(value: dict[str, Any], shown: str) -> dict[str, Any]:
    if "name" in value:
        return value
    if "char_name" in value:
        return {_V1_ALIASES.get(key, key): item for key, item in value.items()}
    raise CardError(f"{shown} holds JSON, but not a character card: it has no character name.")


_JSON_TYPE_NAMES: dict[type, str] = {
    bool: "true/false",
    int: "a number",
    float: "a number",
    list: "a list",
    dict: "an object",
}


def _type_name(value: Any) -> str:
    return _JSON_TYPE_NAMES.get(type(value), type(value).__name__)


def _text(fields: Mapping[str, Any], key: str, shown: str, *, limit: int = MAX_FIELD_CHARS) -> str:
    """A text field: missing or null is empty; line ends become LF; too long or not text is an error."""
    value = fields.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise CardError(f"{shown} is not a valid character card: “{key}” should be text, not {_type_name(value)}.")
    text = normalize_newlines(value).strip()
    if len(text) > limit:
        raise CardError(
            f"The “{key}” of the character card in {shown} is {len(text):,} characters long; "
            f"Hearth takes at most {limit:,}."
        )
    return text


def _text_list(fields: Mapping[str, Any], key: str, shown: str, *, most: int, limit: int) -> tuple[str, ...]:
    value = fields.get(key)
    if value is None:
        return ()
    if not isinstance(value, list):
        raise CardError(f"{shown} is not a valid character card: “{key}” should be a list, not {_type_name(value)}.")
    items: list[str] = []
    for item in value:
        if not isinstance(item, str):
            raise CardError(f"{shown} is not a valid character card: “{key}” should hold only text.")
        text = normalize_newlines(item).strip()[:limit]
        if text and text not in items:
            items.append(text)
    return tuple(items[:most])


def _fields_to_card(fields: Mapping[str, Any], spec: CardSpec, shown: str) -> Card:
    if "name" not in fields:
        raise CardError(f"{shown} is not a valid character card: it has no character name.")
    name = _SPACES.sub(" ", _text(fields, "name", shown, limit=MAX_FIELD_CHARS))
    if not name:
        raise CardError(f"The character card in {shown} has an empty name; give the character a name and export again.")
    if len(name) > MAX_NAME_CHARS:
        raise CardError(
            f"The character's name in {shown} is {len(name):,} characters long; Hearth takes at most {MAX_NAME_CHARS}."
        )
    nickname = _SPACES.sub(" ", _text(fields, "nickname", shown, limit=MAX_NAME_CHARS)) if spec == "v3" else ""
    return Card(
        name=name,
        description=_text(fields, "description", shown),
        personality=_text(fields, "personality", shown),
        scenario=_text(fields, "scenario", shown),
        first_message=_text(fields, "first_mes", shown),
        example_dialogue=_text(fields, "mes_example", shown),
        system_prompt=_text(fields, "system_prompt", shown),
        creator_notes=_text(fields, "creator_notes", shown),
        tags=_text_list(fields, "tags", shown, most=MAX_TAGS, limit=MAX_TAG_CHARS),
        spec=spec,
        alternate_greetings=_text_list(fields, "alternate_greetings", shown, most=MAX_GREETINGS, limit=MAX_FIELD_CHARS),
        creator=_text(fields, "creator", shown)[:MAX_NAME_CHARS],
        nickname=nickname,
    )


# ---------------------------------------------------------------------------------------------------- to a persona


def expand_macros(text: str, char_name: str, *, dialogue: bool = False) -> str:
    """Replace ``{{char}}``/``<BOT>`` with the character's name and ``{{user}}``/``<USER>`` with "the user",
    in any case, as SillyTavern does. In example dialogue a ``{{user}}:`` speaker label becomes ``User:``,
    and SillyTavern's ``<START>`` separator lines become blank lines."""
    if dialogue:
        text = _START_LINE.sub("", text)
        text = _USER_LABEL.sub(lambda match: f"{match.group(1)}User", text)
        text = _BLANK_RUNS.sub("\n\n", text).strip()
    text = _CHAR_MACRO.sub(lambda _match: char_name, text)
    return _USER_MACRO.sub("the user", text)


def persona_fields(card: Card) -> dict[str, Any]:
    """The ``Persona`` columns for a card: the description, personality, scenario and the card's own
    instructions become one labelled prompt; the first message becomes the greeting."""
    char_name = card.nickname or card.name

    def expand(text: str) -> str:
        return expand_macros(text, char_name).strip()

    system_prompt = _ORIGINAL_MACRO.sub("", card.system_prompt)  # the "prompt it replaces": Hearth's own rules
    paragraphs = [
        f"{label}: {text}"
        for label, text in (
            ("Description", expand(card.description)),
            ("Personality", expand(card.personality)),
            ("Scenario", expand(card.scenario)),
            ("Instructions", expand(system_prompt)),
        )
        if text
    ]
    personality_prompt = "\n\n".join(paragraphs) or f"You are {card.name}."
    attributes: dict[str, Any] = {
        "source": "character card",
        "spec": card.spec,
        "tags": list(card.tags),
        "creator_notes": card.creator_notes or None,
    }
    if card.creator:
        attributes["creator"] = card.creator
    if card.nickname:
        attributes["nickname"] = card.nickname
    if card.alternate_greetings:
        attributes["alternate_greetings"] = [expand(greeting) for greeting in card.alternate_greetings]
    return {
        "name": card.name,
        "personality_prompt": personality_prompt,
        "backstory": None,
        "greeting": expand(card.first_message) or None,
        "example_dialogue": expand_macros(card.example_dialogue, char_name, dialogue=True) or None,
        "attributes": attributes,
    }

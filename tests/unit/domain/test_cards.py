import base64
import contextlib
import json
import random
import struct
import zlib
from typing import Any

import pytest

from bot.domain.cards import MAX_CARD_BYTES, PNG_SIGNATURE, Card, CardError, parse_card, persona_fields

V2_DATA: dict[str, Any] = {
    "name": "Mira",
    "description": "{{char}} is a lighthouse keeper on a northern island.",
    "personality": "dry humour, patient, hates fog",
    "scenario": "<USER> washes up on {{Char}}'s beach.",
    "first_mes": "*{{char}} hands {{user}} a blanket.* You're lucky the tide was kind.",
    "mes_example": (
        "<START>\n{{user}}: who are you?\n{{char}}: The one who keeps the light on.\n<START>\n<user>: cold\n"
    ),
    "creator_notes": "Works best with slow-burn roleplay.",
    "system_prompt": "{{original}} Write as {{char}} only.",
    "post_history_instructions": "",
    "alternate_greetings": ["Fog again, {{user}}."],
    "tags": ["fantasy", "sea"],
    "creator": "someone",
    "character_version": "1.2",
    "extensions": {"talkativeness": "0.5"},
    "character_book": {"entries": []},
}


def v2(**changes: Any) -> dict[str, Any]:
    return {"spec": "chara_card_v2", "spec_version": "2.0", "data": {**V2_DATA, **changes}}


def v3(**changes: Any) -> dict[str, Any]:
    data = {**V2_DATA, "group_only_greetings": [], "assets": [], "nickname": "", **changes}
    return {"spec": "chara_card_v3", "spec_version": "3.0", "data": data}


def encoded(card: Any) -> bytes:
    return base64.b64encode(json.dumps(card).encode())


def chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png(*text_chunks: bytes) -> bytes:
    """A real 1×1 RGB PNG with the given chunks between its header and its pixels."""
    header = chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0))
    pixels = chunk(b"IDAT", zlib.compress(b"\x00\xff\x80\x00"))
    return PNG_SIGNATURE + header + b"".join(text_chunks) + pixels + chunk(b"IEND", b"")


def text(keyword: str, payload: bytes) -> bytes:
    return chunk(b"tEXt", keyword.encode() + b"\x00" + payload)


def as_json(value: Any) -> bytes:
    return json.dumps(value).encode()


def ztext(keyword: str, payload: bytes) -> bytes:
    return chunk(b"zTXt", keyword.encode() + b"\x00\x00" + zlib.compress(payload))


def itext(keyword: str, payload: bytes, *, compressed: bool) -> bytes:
    body = zlib.compress(payload) if compressed else payload
    return chunk(b"iTXt", keyword.encode() + b"\x00" + bytes([int(compressed), 0]) + b"en\x00\x00" + body)


def test_a_v2_json_card_is_read_field_by_field() -> None:
    card = parse_card(json.dumps(v2()).encode(), "mira.json")

    assert card == Card(
        name="Mira",
        description=V2_DATA["description"],
        personality=V2_DATA["personality"],
        scenario=V2_DATA["scenario"],
        first_message=V2_DATA["first_mes"],
        example_dialogue=V2_DATA["mes_example"].strip(),
        system_prompt=V2_DATA["system_prompt"],
        creator_notes=V2_DATA["creator_notes"],
        tags=("fantasy", "sea"),
        spec="v2",
        alternate_greetings=("Fog again, {{user}}.",),
        creator="someone",
    )


def test_v3_and_bare_v1_json_are_read_too() -> None:
    card3 = parse_card(("\ufeff" + json.dumps(v3(nickname="Mi"))).encode(), "mira.json")  # with a BOM
    v1 = {key: V2_DATA[key] for key in ("name", "description", "personality", "scenario", "first_mes", "mes_example")}
    card1 = parse_card(json.dumps(v1).encode(), "mira.json")
    pygmalion = parse_card(
        json.dumps({"char_name": "Old", "char_persona": "grumpy", "char_greeting": "Hm."}).encode(), "x"
    )

    assert (card3.spec, card3.name, card3.nickname, card3.tags) == ("v3", "Mira", "Mi", ("fantasy", "sea"))
    assert (card1.spec, card1.name, card1.first_message, card1.system_prompt, card1.tags) == (
        "v1",
        "Mira",
        V2_DATA["first_mes"],
        "",
        (),
    )
    assert (pygmalion.name, pygmalion.personality, pygmalion.first_message) == ("Old", "grumpy", "Hm.")


@pytest.mark.parametrize(
    "make_chunk",
    [
        lambda keyword, payload: text(keyword, payload),
        lambda keyword, payload: ztext(keyword, payload),
        lambda keyword, payload: itext(keyword, payload, compressed=False),
        lambda keyword, payload: itext(keyword, payload, compressed=True),
    ],
    ids=["tEXt", "zTXt", "iTXt", "iTXt-compressed"],
)
def test_a_png_card_is_read_from_any_text_chunk(make_chunk: Any) -> None:
    other = text("Software", b"some editor")
    card = parse_card(png(other, make_chunk("chara", encoded(v2()))), "Mira.png")

    assert (card.spec, card.name, card.tags) == ("v2", "Mira", ("fantasy", "sea"))


def test_a_png_with_both_chunks_is_read_from_ccv3_and_falls_back_to_chara_when_ccv3_is_broken() -> None:
    both = png(text("chara", encoded(v2(name="Old Mira"))), text("ccv3", encoded(v3(name="New Mira"))))
    broken_v3 = png(text("ccv3", b"@@@ not base64 @@@"), text("chara", encoded(v2(name="Old Mira"))))

    assert (parse_card(both, "m.png").spec, parse_card(both, "m.png").name) == ("v3", "New Mira")
    assert parse_card(broken_v3, "m.png").name == "Old Mira"


def test_when_every_card_chunk_is_broken_the_preferred_ones_problem_is_reported() -> None:
    unpackable_v3 = chunk(b"zTXt", b"ccv3\x00\x01" + zlib.compress(encoded(v3())))  # compression method 1: unknown
    both_broken = png(unpackable_v3, text("chara", b"@@@ not base64 @@@"))

    with pytest.raises(CardError, match=r"inside “m\.png” is damaged \(it cannot be unpacked\)"):
        parse_card(both_broken, "m.png")


def test_windows_and_old_mac_line_ends_become_newlines_in_every_text_field() -> None:
    card = parse_card(
        as_json(v2(description="one\r\ntwo\rthree", tags=["a\rb"], alternate_greetings=["hi\r\nthere\r"])), "m.json"
    )

    assert (card.description, card.tags, card.alternate_greetings) == ("one\ntwo\nthree", ("a\nb",), ("hi\nthere",))


def test_a_long_or_multi_line_file_name_is_shown_on_one_line_and_cut() -> None:
    with pytest.raises(CardError) as raised:
        parse_card(b"GIF89a", "cat\n  picture" + "s" * 100 + ".gif")
    with pytest.raises(CardError, match=r"^“the file” is not a character card"):
        parse_card(b"GIF89a", " \n ")

    shown = str(raised.value).split("”")[0] + "”"
    assert shown == "“cat picture" + "s" * 68 + "…”"  # 80 characters between the quotes


def test_unpadded_and_line_wrapped_base64_is_accepted() -> None:
    payload = encoded(v2()).rstrip(b"=")
    wrapped = b"\n".join(payload[i : i + 76] for i in range(0, len(payload), 76))

    assert parse_card(png(text("chara", wrapped)), "m.png").name == "Mira"


@pytest.mark.parametrize(
    ("data", "filename", "message"),
    [
        (b"GIF89a\x01\x00\x01\x00", "cat.gif", "“cat.gif” is not a character card: send the PNG or JSON file"),
        (b"\xff\xd8\xff\xe0 jpeg", "card.png", "“card.png” is not a PNG image"),
        (png(text("Comment", b"hello")), "cat.png", "“cat.png” is a PNG image without a character card in it"),
        (png(text("chara", encoded(v2())))[:-40], "cut.png", "“cut.png” is a damaged PNG image: the file ends"),
        (png(text("chara", b"%%%%")), "m.png", "The character card inside “m.png” is damaged (its data is not valid"),
        (
            png(text("chara", base64.b64encode(b"\xff\xfe{"))),
            "m.png",
            "The character card inside “m.png” is not readable text",
        ),
        (
            png(text("chara", base64.b64encode(b"{nope"))),
            "m.png",
            "The character card inside “m.png” is not valid JSON (line 1",
        ),
        (png(chunk(b"zTXt", b"chara\x00\x00not zlib")), "m.png", "is damaged (it cannot be unpacked)"),
        (b'{"name": "Mira",', "m.json", "“m.json” is not valid JSON (line 1, column 17"),
        (b"[1, 2]", "m.json", "“m.json” holds JSON, but not a character card (a card is a JSON object)"),
        (b"{" * 100_000, "deep.json", "“deep.json” is not valid JSON"),
        (b'{"name": "Mi\xe9ra"}', "m.json", "“m.json” is not readable text (it is not UTF-8)"),
        (as_json({"description": "no name"}), "m.json", "“m.json” holds JSON, but not a character card: it has no"),
        (as_json({"spec": "chara_card_v2", "data": {"description": "x"}}), "m.json", "it has no character name"),
        (as_json({"spec": "chara_card_v2"}), "m.json", "has no “data” object"),
        (as_json(v2(description=5)), "m.json", "“description” should be text, not a number"),
        (as_json(v2(name=["Mira"])), "m.json", "“name” should be text, not a list"),
        (as_json(v2(tags="a, b")), "m.json", "“tags” should be a list, not str"),
        (
            as_json({**v2(), "spec": "chara_card_v9"}),
            "m.json",
            "a card of a kind Hearth cannot read (spec “chara_card_v9”)",
        ),
        (as_json(v2(name="  ")), "m.json", "The character card in “m.json” has an empty name"),
        (as_json(v2(name="M" * 101)), "m.json", "name in “m.json” is 101 characters long; Hearth takes at most 100"),
        (as_json(v2(scenario="x" * 20_001)), "m.json", "“scenario” of the character card in “m.json” is 20,001"),
    ],
)
def test_what_is_not_a_card_says_why_in_words_for_the_sender(data: bytes, filename: str, message: str) -> None:
    with pytest.raises(CardError) as raised:
        parse_card(data, filename)

    assert message in str(raised.value)


def test_a_file_over_the_limit_is_refused_before_it_is_read() -> None:
    with pytest.raises(CardError, match=r"“big.png” is 8\.1 MB; a character card may be at most 8 MB\."):
        parse_card(PNG_SIGNATURE + b"\x00" * MAX_CARD_BYTES, "big.png")


def test_a_compressed_chunk_may_not_unpack_past_the_limit() -> None:
    bomb = chunk(b"zTXt", b"chara\x00\x00" + zlib.compress(b"A" * (MAX_CARD_BYTES + 1), 9))

    with pytest.raises(CardError, match="unpacks to more than 8 MB"):
        parse_card(png(bomb), "bomb.png")


def test_damaged_files_raise_only_card_errors() -> None:
    """Cut or scribbled-on cards fail with a CardError, never with a struct, zlib, base64 or JSON error."""
    original = png(ztext("ccv3", encoded(v3())), itext("chara", encoded(v2()), compressed=True))
    rng = random.Random(7)
    for attempt in range(400):
        damaged = bytearray(original[: rng.randrange(len(original))] if attempt % 2 else original)
        for _ in range(rng.randrange(1, 8)):
            if damaged:
                damaged[rng.randrange(len(damaged))] = rng.randrange(256)
        with contextlib.suppress(CardError):
            parse_card(bytes(damaged), "damaged.png")


def test_a_card_becomes_persona_fields_with_macros_replaced() -> None:
    fields = persona_fields(parse_card(json.dumps(v2()).encode(), "mira.json"))

    assert fields["name"] == "Mira"
    assert fields["personality_prompt"] == (
        "Description: Mira is a lighthouse keeper on a northern island.\n\n"
        "Personality: dry humour, patient, hates fog\n\n"
        "Scenario: the user washes up on Mira's beach.\n\n"
        "Instructions: Write as Mira only."
    )
    assert fields["backstory"] is None
    assert fields["greeting"] == "*Mira hands the user a blanket.* You're lucky the tide was kind."
    assert fields["example_dialogue"] == "User: who are you?\nMira: The one who keeps the light on.\n\nUser: cold"
    assert fields["attributes"] == {
        "source": "character card",
        "spec": "v2",
        "tags": ["fantasy", "sea"],
        "creator_notes": "Works best with slow-burn roleplay.",
        "creator": "someone",
        "alternate_greetings": ["Fog again, the user."],
    }


def test_a_card_with_only_a_name_still_has_a_personality() -> None:
    fields = persona_fields(Card(name="Quiet One", spec="v1"))

    assert fields["personality_prompt"] == "You are Quiet One."
    assert (fields["greeting"], fields["example_dialogue"]) == (None, None)
    assert fields["attributes"] == {"source": "character card", "spec": "v1", "tags": [], "creator_notes": None}


def test_a_v3_nickname_is_what_char_stands_for() -> None:
    fields = persona_fields(parse_card(json.dumps(v3(nickname="Mimi")).encode(), "mira.json"))

    assert fields["name"] == "Mira"
    assert fields["greeting"].startswith("*Mimi hands the user")

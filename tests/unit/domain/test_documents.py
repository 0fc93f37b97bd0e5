"""Reading uploaded lore documents as text, and cutting them into passages that make sense alone."""

import itertools
import re

import pytest

from bot.domain import documents
from bot.domain.documents import (
    MAX_CHUNKS,
    MAX_DOCUMENT_BYTES,
    DocumentError,
    check_upload,
    chunk_document,
    decode_document,
)

LORE = "# Setting\n\nBrinefall is a fishing town.\r\nIt was founded by smugglers.\n\n## The Harbour\n\nBoats. Ñandú!\n"


@pytest.mark.parametrize(
    "data",
    [
        LORE.encode("utf-8"),
        b"\xef\xbb\xbf" + LORE.encode("utf-8"),
        LORE.encode("utf-16"),  # with its byte order mark, in the machine's byte order
        b"\xfe\xff" + LORE.encode("utf-16-be"),
        b"\xff\xfe" + LORE.encode("utf-16-le"),
    ],
    ids=["utf-8", "utf-8 with BOM", "utf-16", "utf-16-be", "utf-16-le"],
)
def test_text_is_read_in_utf8_or_in_the_encoding_its_bom_names(data: bytes) -> None:
    assert decode_document(data, "lore.md") == LORE.replace("\r\n", "\n")


@pytest.mark.parametrize(
    ("filename", "data", "message"),
    [
        ("lore.pdf", b"%PDF-1.7 ...", "“lore.pdf” is not a text document: upload a .txt or .md file."),
        ("lore", b"text", "“lore” is not a text document"),
        ("map.txt", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "“map.txt” looks like a binary file"),
        ("data.md", bytes(range(1, 32)) * 20, "“data.md” looks like a binary file"),
        ("wide.txt", "no byte order mark".encode("utf-16-le"), "“wide.txt” looks like a binary file"),
        ("old.txt", "Café in Brinefall".encode("cp1252"), "“old.txt” is not UTF-8 text: save it as UTF-8"),
        ("blank.md", b" \n\n\t\n", "“blank.md” is empty"),
        ("late.txt", b"Plain text. " * 1000 + b"\x00\x01\x02", "“late.txt” looks like a binary file"),
        (
            "late.md",
            "Plain text. ".encode("utf-16") + "Text. ".encode("utf-16-le") * 1000 + b"\x00\x00",
            "“late.md” looks",
        ),
        ("big.txt", b"a " * (MAX_DOCUMENT_BYTES // 2 + 1), "“big.txt” is too large (limit 2 MB)"),
    ],
    ids=[
        "pdf",
        "no extension",
        "png renamed",
        "control bytes",
        "utf-16 without BOM",
        "cp1252",
        "blank",
        "NUL after the sample",
        "NUL after the sample, utf-16",
        "too large",
    ],
)
def test_unusable_files_are_refused_with_a_reason_fit_for_the_uploader(
    filename: str, data: bytes, message: str
) -> None:
    with pytest.raises(DocumentError) as refused:
        decode_document(data, filename)
    assert str(refused.value).startswith(message)


def test_markdown_is_cut_by_headings_and_paragraphs_each_passage_naming_where_it_sits() -> None:
    text = (
        "Intro before any heading.\n\n"
        "# Setting\n\nBrinefall is a fishing town\non a cold coast.\n\n"
        "## The Harbour\n\nThe harbour freezes in winter.\n\n- Mira runs the ferry\n- Tom mends nets\n\n"
        "The Lighthouse\n--------------\n\nOona keeps the light.\n\n"
        "```\n# a comment, not a heading\n```\n\n"
        "---\n\n"
        "# People ##\n\n### **Mira**\n\nMira is the captain.\n"
    )
    assert chunk_document(text) == [
        "Intro before any heading.",
        "Setting: Brinefall is a fishing town on a cold coast.",
        "Setting > The Harbour: The harbour freezes in winter.\n- Mira runs the ferry\n- Tom mends nets",
        "Setting > The Lighthouse: Oona keeps the light.\n# a comment, not a heading",
        "People > Mira: Mira is the captain.",
    ]


@pytest.mark.parametrize(
    ("front_matter", "title"),
    [
        ("---\ntitle: The Harbour\ntags: [lore, places]\ndate: 2024-03-01\n---\n", "The Harbour"),
        ('---\ntitle: "The Harbour"\naliases:\n  - Docks\n...\n', "The Harbour"),
        ("---\nlayout: post\ncreated at: 2024-03-01\n---\n", None),
        ("+++\ntitle = 'The Harbour'\ndraft = false\n+++\n", "The Harbour"),
    ],
    ids=["yaml", "yaml closed by dots", "yaml without a title", "toml"],
)
def test_front_matter_is_left_out_and_its_title_heads_the_passages(front_matter: str, title: str | None) -> None:
    body = "The harbour freezes in winter.\n\n### Ferries\n\nMira runs the ferry.\n"
    prefix = f"{title}: " if title else ""
    nested = f"{title} > Ferries: " if title else "Ferries: "
    assert chunk_document(front_matter + body) == [
        prefix + "The harbour freezes in winter.",
        nested + "Mira runs the ferry.",
    ]


def test_a_rule_or_a_heading_at_the_top_is_not_taken_for_front_matter() -> None:
    assert chunk_document("---\nThe harbour freezes in winter.\n\n---\n\nMira runs the ferry.\n") == [
        "The harbour freezes in winter.\nMira runs the ferry."
    ]
    assert chunk_document("---\ntitle: never closed\n\nMira runs the ferry.\n")[-1].endswith("Mira runs the ferry.")


def test_long_text_is_packed_within_the_word_limit_splitting_at_sentence_ends_with_overlap() -> None:
    sentences = [f"Sentence {i} tells of the tides and the nets." for i in range(60)]  # 9 words each
    short = "The harbour master is Ada."
    text = "# Tides\n\n" + " ".join(sentences) + "\n\n" + short + "\n\n" + "Second paragraph about gulls. " * 3
    chunks = chunk_document(text, max_words=50, overlap_words=12)

    bodies = [chunk.removeprefix("Tides: ") for chunk in chunks]
    assert all(chunk.startswith("Tides: ") for chunk in chunks)
    assert all(len(body.split()) <= 50 for body in bodies)
    # Cuts fall between sentences, and each passage after the first repeats the last sentence before it.
    for previous, body in itertools.pairwise(bodies):
        last_sentence = re.split(r"(?<=\.)\s", previous)[-1]
        assert body.startswith(last_sentence + (" " if last_sentence.startswith("Sentence") else "\n"))
    assert all(body.rstrip().endswith(".") for body in bodies)
    # Every sentence is kept, in order.
    seen = " ".join(bodies)
    positions = [seen.find(sentence) for sentence in sentences]
    assert -1 not in positions and positions == sorted(positions)
    # A paragraph that fits in a passage is not split across two; short ones are packed together.
    assert bodies[-1] == short + "\n" + "Second paragraph about gulls. " * 2 + "Second paragraph about gulls."


def test_a_sentence_longer_than_a_passage_is_cut_between_words_and_text_without_spaces_by_length() -> None:
    words = " ".join(f"w{i}" for i in range(500))
    chunks = chunk_document(words, max_words=100, overlap_words=0)
    assert [len(chunk.split()) for chunk in chunks] == [100] * 5
    assert " ".join(chunks) == words

    unspaced = "x" * 5000
    pieces = chunk_document(unspaced, max_words=100, overlap_words=0)
    assert "".join(pieces) == unspaced and all(len(piece) <= 800 for piece in pieces)

    chinese = "港" * 5000  # a character a word: each holds a token or more
    pieces = chunk_document(chinese, max_words=100, overlap_words=0)
    assert "".join(pieces) == chinese and all(len(piece) <= 100 for piece in pieces)


def test_chinese_and_japanese_are_cut_at_their_full_stops_and_measured_by_the_character() -> None:
    sentences = ["港口每年冬天都会结冰。", "米拉船长每周两次驾驶渡船前往外岛！", "「灯塔在哪里？」", "奥娜看守灯塔。"]
    sentences *= 10
    chunks = chunk_document("".join(sentences), max_words=40, overlap_words=0)
    assert all(len(chunk) <= 40 for chunk in chunks)
    assert "".join(chunks) == "".join(sentences), "cut between sentences, with no space put between them"
    assert all(chunk.endswith(("。", "！", "」")) for chunk in chunks)


def test_the_heading_path_counts_in_a_passage_and_its_outermost_headings_give_way_when_long() -> None:
    titles = [" ".join(f"h{level}w{i}" for i in range(25)) for level in range(6)]  # 150 words of headings
    headings = "\n\n".join(f"{'#' * (level + 1)} {title}" for level, title in enumerate(titles))
    body = " ".join(f"Sentence {i} tells of the tides and the nets." for i in range(60))
    chunks = chunk_document(f"{headings}\n\n{body}")

    assert chunks and all(len(chunk.split()) <= 180 for chunk in chunks)
    path = f"… > {titles[-3]} > {titles[-2]} > {titles[-1]}: "
    assert all(chunk.startswith(path) for chunk in chunks), "the innermost headings, as many as half a passage holds"
    assert " ".join(chunk.removeprefix(path) for chunk in chunks).count("tides and the nets") >= 60
    assert chunk_document(f"# {titles[0]}\n\nThe tide is high.", max_words=40) == ["The tide is high."]


def test_no_empty_passages_and_a_cap_on_how_many_a_document_makes() -> None:
    assert chunk_document("# Only\n\n## Headings\n\n   \n") == []
    too_many = "\n\n".join(f"# Part {i}\n\nText {i}." for i in range(MAX_CHUNKS + 1))
    with pytest.raises(DocumentError, match="too long: it would make more than 2,000 passages"):
        chunk_document(too_many)


def test_an_upload_is_refused_by_name_and_size_before_it_is_downloaded() -> None:
    check_upload("lore.md", MAX_DOCUMENT_BYTES)
    with pytest.raises(DocumentError, match=r"“lore\.md” is too large"):
        check_upload("lore.md", MAX_DOCUMENT_BYTES + 1)
    with pytest.raises(DocumentError, match=r"“lore\.docx” is not a text document"):
        check_upload("lore.docx", 10)


# A megabyte-sized paragraph: 30,000 sentences of 10 words (300,000 words, about 1.6 MB). Chunking it took half a
# minute when each piece summed the rest of its paragraph; it is linear now, so these tests take a fraction of a
# second (and would take minutes again if it were not).
BIG_SENTENCES = [f"Sentence {i} tells of the tides and the fishing nets." for i in range(30_000)]


@pytest.mark.parametrize("wrapped", [False, True], ids=["one line", "wrapped lines"])
def test_a_megabyte_paragraph_is_chunked_in_full_and_in_order(wrapped: bool) -> None:
    text = ("\n" if wrapped else " ").join(BIG_SENTENCES)
    chunks = chunk_document(text)

    # 18 sentences (180 words) in the first passage; each one after repeats the last 3 (30 words) and adds 15.
    assert len(chunks) == 1 + -(-(len(BIG_SENTENCES) - 18) // 15) == MAX_CHUNKS
    assert chunks[0] == " ".join(BIG_SENTENCES[:18])
    assert chunks[1] == " ".join(BIG_SENTENCES[15:33])
    assert chunks[-1] == " ".join(BIG_SENTENCES[29_985:])
    assert all(len(chunk.split()) <= 180 for chunk in chunks)

    words = " ".join(f"w{i}" for i in range(300_000))  # one sentence: cut every 180 words, nothing repeated
    cut = chunk_document(words)
    assert len(cut) == 1_667 and " ".join(cut) == words


def test_a_document_over_the_passage_cap_is_refused_as_soon_as_it_reaches_it(monkeypatch: pytest.MonkeyPatch) -> None:
    joined: list[int] = []
    join = documents._join

    def counting_join(pieces: list[documents._Piece]) -> str:
        joined.append(len(pieces))
        return join(pieces)

    monkeypatch.setattr(documents, "_join", counting_join)
    # 13 sentences more than the cap holds; and a 2 MB paragraph of one-letter words, 5,556 passages' worth.
    with pytest.raises(DocumentError, match="more than 2,000 passages"):
        chunk_document(" ".join([*BIG_SENTENCES, *BIG_SENTENCES[:13]]))
    assert len(joined) == MAX_CHUNKS + 1
    joined.clear()
    with pytest.raises(DocumentError, match="more than 2,000 passages"):
        chunk_document("a " * (MAX_DOCUMENT_BYTES // 2))
    assert len(joined) == MAX_CHUNKS + 1, "the passages past the cap were not made"


def test_lines_with_long_runs_of_spaces_or_marks_are_read_in_linear_time() -> None:
    spaces = " " * 200_000  # the heading and rule patterns used to backtrack over these in quadratic time (minutes)
    text = f"#{spaces}Harbour{spaces}\n\nBoats.\n\n-{' -' * 200_000}\n\nNets{spaces}x"
    assert chunk_document(text) == ["Harbour: Boats.\nNets x"]
